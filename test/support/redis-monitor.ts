import Redis from 'ioredis';

/**
 * A connection in MONITOR mode on `url`, owned by the caller, who disconnects it. Unlike ioredis's
 * `monitor()`, a failed start never leaves a connection behind (one reconnecting with nobody listening
 * would keep the test process alive after its Redis is gone): each failed attempt is closed, and after
 * `attempts` of them the error names every cause.
 */
export async function startMonitor(url: string, attempts = 3, timeoutMs = 5000): Promise<Redis> {
  const causes: string[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const connection = new Redis(url, { monitor: true, maxRetriesPerRequest: 1 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`MONITOR did not start within ${timeoutMs} ms`)), timeoutMs);
        connection.once('monitoring', () => {
          clearTimeout(timer);
          resolve();
        });
        connection.once('error', (error: Error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
      connection.on('error', () => undefined); // from here, the test's own assertions say what went wrong
      return connection;
    } catch (error) {
      connection.on('error', () => undefined);
      connection.disconnect();
      causes.push((error as Error).message);
    }
  }
  throw new Error(`MONITOR could not start on ${url}: ${causes.join('; ')}`);
}
