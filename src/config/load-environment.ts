import { EnvironmentVariables, validateEnvironment } from './environment';
import { ClientKeyDefinition, loadApiKeysFile } from './api-keys-file';
import { loadUpstreamsFile, UpstreamTopology } from './upstreams-file';
import { parseHandover, WORKER_HANDOVER_VARIABLE, WorkerHandover } from './worker-handover';

/**
 * The one place that reads `process.env`. Sections call it from their `registerAs` factories, so the
 * environment is validated before any module sees a value.
 */
export function loadEnvironment(): EnvironmentVariables {
  return validateEnvironment(process.env);
}

/** Reads `UPSTREAMS_FILE`, resolving each `apiKeyEnv` from the process environment. */
export function loadUpstreamTopology(path: string): UpstreamTopology {
  return loadUpstreamsFile(path, process.env);
}

/** Reads `API_KEYS_FILE`, resolving each `keyEnv` from the process environment (only digests leave). */
export function loadClientKeys(path: string, adminKey?: string): ClientKeyDefinition[] {
  return loadApiKeysFile(path, process.env, adminKey);
}

/** What the cluster primary handed this worker process (see worker-handover.ts); undefined in any other process. */
export function loadWorkerHandover(): WorkerHandover | undefined {
  return parseHandover(process.env[WORKER_HANDOVER_VARIABLE]);
}
