import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';

/**
 * This process's one id among the instances sharing a Redis: it names its leases, its heartbeat, its
 * delivery inbox and the origin of what it publishes.
 */
@Injectable()
export class ClusterIdentity {
  readonly id = randomUUID();
}
