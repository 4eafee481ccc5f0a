import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';

/** This process's id among the instances sharing one Redis (leases, heartbeats, delivery inboxes). */
@Injectable()
export class InstanceIdentity {
  readonly id = randomUUID();
}
