import { CancelledError } from '../common/errors';

/**
 * Wraps the rest of a committed upstream stream so that `settle` runs exactly once, whatever its end:
 * with no argument when it completes, with the error when it breaks (the signal's reason when the
 * signal caused it), with a {@link CancelledError} when the reader stops early (`return()`, also before
 * the first read), and with the signal's reason when the signal aborts while nobody reads. In the last
 * two cases the upstream stream is closed too, so neither its breaker permit nor its connection leaks.
 */
export function settleWhenEnded(rest: AsyncIterable<string>, signal: AbortSignal, settle: (error?: unknown) => void): AsyncIterable<string> {
  const inner = rest[Symbol.asyncIterator]();
  let ended: { error?: unknown } | undefined;
  let reading = false;

  const end = (error?: unknown) => {
    if (ended) return;
    ended = error === undefined ? {} : { error };
    signal.removeEventListener('abort', onAbort);
    settle(error);
  };
  const closeInner = () => void inner.return?.()?.catch(() => undefined);
  const onAbort = () => {
    // A read in progress fails by itself with the reason; an idle stream has nobody to tell.
    if (reading) return;
    end(signal.reason);
    closeInner();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  const iterator: AsyncIterator<string> = {
    async next(): Promise<IteratorResult<string>> {
      if (ended) {
        if ('error' in ended) throw ended.error;
        return { done: true, value: undefined };
      }
      reading = true;
      try {
        const result = await inner.next();
        if (result.done) end();
        return result;
      } catch (error) {
        const reason = signal.aborted ? signal.reason : error;
        end(reason);
        throw reason;
      } finally {
        reading = false;
      }
    },
    async return(): Promise<IteratorResult<string>> {
      if (!ended) {
        end(new CancelledError('client'));
        closeInner();
      }
      return { done: true, value: undefined };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}
