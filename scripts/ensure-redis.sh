#!/usr/bin/env bash
# Makes sure `redis-server` is on this machine: Bulwark starts a private one when REDIS_URL is unset,
# and the end-to-end tests start their own. Installs it with apt-get when it can; otherwise says how.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if [ -n "${REDIS_URL:-}" ] && [ "${npm_lifecycle_event:-}" = "prestart" ]; then exit 0; fi
echo "redis-server is not installed; installing it..." >&2
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if $SUDO apt-get install -y redis-server >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y redis-server >/dev/null 2>&1; }; then
    # Debian starts a system service on install; Bulwark runs its own, so stop that one.
    command -v systemctl >/dev/null 2>&1 && $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
    exit 0
  fi
fi
if command -v brew >/dev/null 2>&1; then brew install redis && exit 0; fi
echo "Could not install redis-server. Install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis) or set REDIS_URL to an existing Redis." >&2
exit 1
