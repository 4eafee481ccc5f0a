import type { Priority } from '../common/priority';

/**
 * One admission decision, made once at the door and the admission guard from cached figures and carried
 * with the request to the queue core. Nothing decides admission again but the exact step in Redis,
 * which applies the bounds this object names.
 */
export interface Admission {
  priority: Priority;
  /** Who queues it: fair share between keys and the per-key caps. */
  client: AdmittedClient;
  /** Epoch ms after which no work for the request may start or continue. */
  deadlineAt: number;
  /** Its expected upstream time (prompt and output size against the learned rate), once the model is learned. */
  expectedServiceMs?: number;
  /** Whether the strategy in force at admission lets the dispatcher retry. */
  retriesAllowed: boolean;
}

/** The client key as the queue core applies it. */
export interface AdmittedClient {
  /** Non-secret id of the key. */
  id: string;
  /** Its weight in fair share within a priority (1 by default). */
  weight: number;
  /** Most requests of the key waiting at once (0: no cap of its own). */
  maxWaiting: number;
  /** Most requests of the key running at once, across instances (0: no cap of its own). */
  maxRunning: number;
}
