import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type GenerationKind, deliver, sendJson } from './simulator.answer';
import { CapacityGate, Exchange } from './simulator.exchange';
import { ReplicaState } from './simulator.prefix-cache';
import { errorBody, metricsText, modelList, modelNotFoundBody, modelObject } from './simulator.responses';
import type { SimulatedFault, SimulatorOptions, SimulatorStats } from './simulator.types';
import { DEFAULT_OPTIONS, type ResolvedOptions, readJsonBody, resolveOptions, validateGeneration } from './simulator.validate';

export type { SimulatedFault, SimulatorOptions, SimulatorStats } from './simulator.types';

/** Most entries of `startedUsers` kept. */
const STARTED_USERS_KEPT = 100_000;

const GENERATION_ROUTES: Record<string, GenerationKind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embedding',
  '/v1/responses': 'responses',
};

const ID_PREFIX: Record<GenerationKind, string> = { chat: 'chatcmpl-', completion: 'cmpl-', embedding: 'embd-', responses: 'resp_' };
const MODEL_PATH = /^\/v1\/models\/(.+)$/;

interface AbortWaiter {
  target: number;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * An in-process OpenAI/vLLM-compatible upstream on `node:http`, with injectable faults,
 * bounded capacity and request accounting, for tests and demos of the gateway.
 */
export class UpstreamSimulator {
  private options: ResolvedOptions;
  private server: Server | undefined;
  private stopping: Promise<void> | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly active = new Set<Exchange>();
  private readonly gate: CapacityGate;
  private readonly abortWaiters = new Set<AbortWaiter>();
  private counters = UpstreamSimulator.emptyCounters();
  /** Requests that a fault with `times` has already hit, per counter. */
  private readonly faultHits = new Map<string, number>();
  private nextId = 1;
  private readonly runningByUser = new Map<string, number>();
  private readonly replica: ReplicaState;

  constructor(options: SimulatorOptions = {}) {
    this.options = resolveOptions(DEFAULT_OPTIONS, options);
    this.replica = new ReplicaState(this.options.prefixCacheTokens, this.options.blockTokens);
    this.gate = new CapacityGate(this.options.capacity, (running) => {
      this.counters.maxInFlight = Math.max(this.counters.maxInFlight, running);
    });
  }

  /** Listens on `port` (0 = any free port); `baseUrl` is `http://host:port/v1`. */
  async start(port = 0, host = '127.0.0.1'): Promise<{ baseUrl: string; port: number }> {
    if (this.server) throw new Error('UpstreamSimulator is already started');
    const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => this.onRequest(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const bound = (server.address() as AddressInfo).port;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    return { baseUrl: `http://${urlHost}:${bound}/v1`, port: bound };
  }

  /** Closes the server and destroys every open socket, hanging requests included; idempotent. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    const server = this.server;
    if (!server) return Promise.resolve();
    // Waiting for every open response's 'close' keeps stats settled once stop() resolves.
    const responsesClosed = [...this.active].map((exchange) => {
      exchange.serverClosed = true;
      exchange.shutdown();
      return new Promise<void>((resolve) => exchange.res.once('close', () => resolve()));
    });
    for (const waiter of this.abortWaiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('UpstreamSimulator stopped'));
    }
    this.abortWaiters.clear();
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    server.closeAllConnections();
    this.stopping = Promise.all([serverClosed, ...responsesClosed]).then(() => {
      this.server = undefined;
      this.stopping = undefined;
    });
    return this.stopping;
  }

  /** Changes behaviour at run time; `modelFaults` is replaced as a whole (`{}` clears it). */
  configure(options: Partial<SimulatorOptions>): void {
    this.options = resolveOptions(this.options, options);
    if (options.modelFaults !== undefined) {
      for (const counter of [...this.faultHits.keys()]) if (counter.startsWith('model:')) this.faultHits.delete(counter);
    }
    this.gate.setCapacity(this.options.capacity);
    this.replica.configure(this.options.prefixCacheTokens, this.options.blockTokens);
  }

  /** A snapshot copy of the counters. */
  get stats(): SimulatorStats {
    const c = this.counters;
    return {
      ...c,
      requestsByPath: { ...c.requestsByPath },
      requestsByUser: { ...c.requestsByUser },
      maxInFlightByUser: { ...c.maxInFlightByUser },
      startedUsers: [...c.startedUsers],
      completedByUser: { ...c.completedByUser },
      inFlight: this.active.size,
      prefixCacheQueries: this.replica.cache.queries,
      prefixCacheHits: this.replica.cache.hits,
      running: this.gate.runningCount,
      waiting: this.gate.waitingCount,
      lastHeaders: c.lastHeaders ? { ...c.lastHeaders } : undefined,
    };
  }

  /** Zeroes the counters; live gauges (in flight, running, waiting) keep reflecting reality. */
  resetStats(): void {
    this.counters = UpstreamSimulator.emptyCounters();
    this.counters.maxInFlight = this.gate.runningCount;
  }

  /** Resolves when `stats.clientAborts` reaches `n`; rejects after `timeoutMs`. */
  waitForClientAborts(n: number, timeoutMs: number): Promise<void> {
    if (this.counters.clientAborts >= n) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: AbortWaiter = {
        target: n,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.abortWaiters.delete(waiter);
          reject(new Error(`Timed out waiting for ${n} client aborts (saw ${this.counters.clientAborts})`));
        }, timeoutMs),
      };
      this.abortWaiters.add(waiter);
    });
  }

  private static emptyCounters() {
    return {
      requestsTotal: 0,
      requestsByPath: {} as Record<string, number>,
      requestsByUser: {} as Record<string, number>,
      maxInFlightByUser: {} as Record<string, number>,
      startedUsers: [] as string[],
      completedByUser: {} as Record<string, number>,
      maxInFlight: 0,
      stalled: 0,
      clientAborts: 0,
      completed: 0,
      lastHeaders: undefined as SimulatorStats['lastHeaders'],
      lastBody: undefined as unknown,
    };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((error: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 500, errorBody(`Simulator failure: ${String(error)}`, 'server_error'));
      } else {
        res.destroy();
      }
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://simulator').pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && path === '/health') return sendJson(res, 200, { status: 'ok' });
    if (method === 'GET' && path === '/metrics') return this.sendMetrics(res);
    if (path !== '/v1' && !path.startsWith('/v1/')) return this.sendUnknownUrl(res, method, path);

    const exchange = this.track(req, res, path);
    if (this.options.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return sendJson(res, 401, errorBody('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
    }
    if (method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList(this.options.models));
    const modelPath = method === 'GET' ? MODEL_PATH.exec(path) : null;
    if (modelPath) return this.sendModel(res, decodeURIComponent(modelPath[1]));
    const kind = GENERATION_ROUTES[path];
    if (method !== 'POST' || kind === undefined) return this.sendUnknownUrl(res, method, path);
    await this.generate(exchange, kind);
  }

  private async generate(exchange: Exchange, kind: GenerationKind): Promise<void> {
    const parsed = await readJsonBody(exchange.req);
    if (exchange.closed) return;
    if (parsed.ok) {
      this.counters.lastBody = parsed.value;
      const user = (parsed.value as { user?: unknown } | null)?.user;
      if (typeof user === 'string') this.counters.requestsByUser[user] = (this.counters.requestsByUser[user] ?? 0) + 1;
    }
    const checked = validateGeneration(kind, parsed, this.options.models);
    if (!checked.ok) return sendJson(exchange.res, checked.status, checked.error);
    const { body, model } = checked;
    const fault = checked.fault
      ? this.countedFault(checked.fault, `x_sim:${checked.fault.key ?? model}`)
      : this.countedFault(this.options.modelFaults[model] ?? {}, `model:${model}`);
    exchange.model = model;

    if (!(await this.gate.acquire(exchange))) return;
    const user = typeof body.user === 'string' ? body.user : undefined;
    if (user !== undefined) {
      const running = (this.runningByUser.get(user) ?? 0) + 1;
      this.runningByUser.set(user, running);
      this.counters.maxInFlightByUser[user] = Math.max(this.counters.maxInFlightByUser[user] ?? 0, running);
      if (this.counters.startedUsers.length < STARTED_USERS_KEPT) this.counters.startedUsers.push(user);
      const counters = this.counters;
      exchange.res.once('close', () => {
        this.runningByUser.set(user, (this.runningByUser.get(user) ?? 1) - 1);
        if (exchange.res.writableFinished) counters.completedByUser[user] = (counters.completedByUser[user] ?? 0) + 1;
      });
    }
    const prompt = this.replica.prefill(kind, body, exchange);
    const stallMs = this.replica.stalls(this.options.stall.share) ? this.options.stall.ms : 0;
    if (stallMs > 0) this.counters.stalled++;
    const firstByteMs = (fault.latencyMs ?? this.options.latencyMs) + prompt.uncachedTokens * this.options.prefillMsPerToken + stallMs;
    if (!(await exchange.delay(firstByteMs))) return;
    await deliver(exchange, {
      kind,
      meta: { id: `${ID_PREFIX[kind]}sim${this.nextId++}`, created: Math.floor(Date.now() / 1000), model },
      body,
      fault,
      chunkIntervalMs: this.options.chunkIntervalMs,
      defaultChunks: this.options.defaultChunks,
      cachedTokens: prompt.cachedTokens,
    });
  }

  /** The fault itself, or no fault once a fault limited by `times` has hit that many requests. */
  private countedFault(fault: SimulatedFault, counter: string): SimulatedFault {
    if (fault.times === undefined) return fault;
    const hits = this.faultHits.get(counter) ?? 0;
    if (hits >= fault.times) return { ...fault, fault: 'none' };
    this.faultHits.set(counter, hits + 1);
    return fault;
  }

  private track(req: IncomingMessage, res: ServerResponse, path: string): Exchange {
    const exchange = new Exchange(req, res);
    const c = this.counters;
    c.requestsTotal++;
    c.requestsByPath[path] = (c.requestsByPath[path] ?? 0) + 1;
    c.lastHeaders = { ...req.headers };
    this.active.add(exchange);
    res.once('close', () => this.onClose(exchange));
    return exchange;
  }

  private onClose(exchange: Exchange): void {
    const finished = exchange.res.writableFinished;
    const aborted = !finished && !exchange.serverClosed;
    exchange.shutdown();
    this.active.delete(exchange);
    this.gate.leave(exchange);
    if (finished) this.counters.completed++;
    if (!aborted) return;
    this.counters.clientAborts++;
    for (const waiter of [...this.abortWaiters]) {
      if (this.counters.clientAborts < waiter.target) continue;
      clearTimeout(waiter.timer);
      this.abortWaiters.delete(waiter);
      waiter.resolve();
    }
  }

  private sendMetrics(res: ServerResponse): void {
    const load = (model: string) => {
      let running = 0;
      let waiting = 0;
      for (const exchange of this.active) {
        if (exchange.model !== model) continue;
        if (exchange.state === 'running') running++;
        else if (exchange.state === 'waiting') waiting++;
      }
      return { running, waiting };
    };
    const text = metricsText(this.options.models, load, this.options.capacity, {
      kvUsage: this.replica.kvUsage(),
      prefixCacheQueries: this.replica.cache.queries,
      prefixCacheHits: this.replica.cache.hits,
    });
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(text);
  }

  private sendModel(res: ServerResponse, id: string): void {
    if (this.options.models.includes(id)) sendJson(res, 200, modelObject(id));
    else sendJson(res, 404, modelNotFoundBody(id));
  }

  private sendUnknownUrl(res: ServerResponse, method: string, path: string): void {
    sendJson(res, 404, errorBody(`Unknown request URL: ${method} ${path}.`, 'invalid_request_error', 'unknown_url'));
  }
}
