import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { FastifyRequest } from 'fastify';
import { AdminOnlyError, AuthenticationError } from '../common/errors';
import type { ClientIdentity } from '../common/request-context';
import type { RouteKind } from '../common/route-kind.decorator';
import { authConfig } from '../config/sections';
import { ADMIN_IDENTITY, ANONYMOUS_IDENTITY, ApiKeyRing, definitionsFromApiKeys, parseApiKeys, presentedKey } from './api-key-ring';

type Headers = FastifyRequest['headers'];

/**
 * Who may call what. Client routes take a client key (or the admin key); admin routes take only the
 * admin key and are closed while none is configured; with `API_KEYS` unset, client routes are open.
 */
/** The queue share of a key without its own, when several keys share the gateway. */
export const DEFAULT_KEY_QUEUE_SHARE = 0.8;

@Injectable()
export class AuthService implements OnModuleInit {
  /** Whether several client keys share the gateway (the key set is fixed at start-up). */
  private severalKeys?: boolean;

  private readonly logger = new Logger(AuthService.name);
  private readonly ring: ApiKeyRing;

  constructor(@Inject(authConfig.KEY) private readonly config: ConfigType<typeof authConfig>) {
    this.ring = config.clientKeys
      ? new ApiKeyRing(config.clientKeys, config.adminApiKey, 'API_KEYS_FILE')
      : new ApiKeyRing(definitionsFromApiKeys(parseApiKeys(config.apiKeys)), config.adminApiKey);
  }

  onModuleInit(): void {
    this.logger.log({
      msg: 'auth configured',
      clientKeys: this.ring.describe(),
      adminKey: this.ring.hasAdminKey,
      rateLimitRpm: this.config.rateLimitRpm,
    });
  }

  /** False while no client key is configured (API_KEYS and API_KEYS_FILE unset): client routes accept anyone. */
  get enforcing(): boolean {
    return this.ring.enforcing;
  }

  /** Every configured client identity (names, tiers, weights and caps; never a key). */
  clientIdentities(): ClientIdentity[] {
    return this.ring.identities();
  }

  /**
   * The share of MAX_QUEUE_SIZE a key may hold waiting: its own `maxQueueShare`, else, when several
   * client keys are configured, {@link DEFAULT_KEY_QUEUE_SHARE}, so that one key flooding the queue never
   * fills it to the last place and other keys always find room. With one key (or none) the whole queue.
   */
  queueShareOf(client: ClientIdentity): number | undefined {
    if (client.maxQueueShare !== undefined) return client.maxQueueShare;
    this.severalKeys ??= this.ring.identities().length > 1;
    return this.severalKeys ? DEFAULT_KEY_QUEUE_SHARE : undefined;
  }

  /**
   * The caller's identity on a route of `kind`; undefined on public routes, which need none.
   * @throws AuthenticationError (401) for a missing or unknown key
   * @throws AdminOnlyError (403) for a client key on an admin route, or any key while admin routes are closed
   */
  authorize(kind: RouteKind, headers: Headers): ClientIdentity | undefined {
    if (kind === 'public') return undefined;
    const key = presentedKey(headers);
    if (kind === 'admin') {
      if (!this.ring.hasAdminKey) throw new AdminOnlyError('Admin routes are closed on this gateway: no admin key is configured');
      if (this.ring.isAdminKey(key)) return ADMIN_IDENTITY;
      if (this.ring.clientIdentity(key)) throw new AdminOnlyError();
      throw missingOrUnknown(key);
    }
    if (!this.ring.enforcing) return this.ring.isAdminKey(key) ? ADMIN_IDENTITY : ANONYMOUS_IDENTITY;
    const identity = this.ring.identify(key);
    if (!identity) throw missingOrUnknown(key);
    return identity;
  }

  /** True when the request carries the admin key; for routes that show more to the admin (/health, /metrics). */
  isAdmin(request: Pick<FastifyRequest, 'headers'>): boolean {
    return this.ring.isAdminKey(presentedKey(request.headers));
  }

  /** True when `/metrics` needs the admin key (`METRICS_AUTH=admin`). */
  get metricsNeedAdmin(): boolean {
    return this.config.metricsAuth === 'admin';
  }

  /** True when `/health` details need the admin key (`HEALTH_DETAILS=admin`). */
  get healthDetailsNeedAdmin(): boolean {
    return this.config.healthDetails === 'admin';
  }
}

function missingOrUnknown(key: string | undefined): AuthenticationError {
  return new AuthenticationError(
    key === undefined ? 'Missing API key: send it as `Authorization: Bearer KEY` or `X-API-Key: KEY`' : 'Unknown API key',
  );
}
