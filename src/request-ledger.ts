/**
 * The request ledger every page writes through: each vendor request is recorded before it is sent and again
 * with what it did, so totals are exact across retries and crashes (see StateStore.recordRequestsSending). A
 * worker sends hundreds of requests a second from many pages at once; the records of requests that start or
 * finish in the same moment share one store transaction instead of taking one each.
 */
import type { SendingRequest, SentRequest, StateStore } from './store/store.js';

export class RequestLedger {
  readonly sending: (request: SendingRequest) => Promise<void>;
  /** Resolves with false when the request was recorded before (a retried attempt), which then adds nothing. */
  readonly sent: (request: SentRequest) => Promise<boolean>;

  constructor(store: StateStore) {
    this.sending = coalesce(async (requests: SendingRequest[]) => {
      await store.recordRequestsSending(requests);
      return requests.map(() => undefined);
    });
    this.sent = coalesce((requests: SentRequest[]) => store.recordSentRequests(requests));
  }
}

/**
 * Turns a batch operation into a per-item one: items submitted before the event loop's next turn go to `flush`
 * together, and each caller gets its own item's result (or the batch's error).
 */
export function coalesce<T, R>(flush: (items: T[]) => Promise<R[]>): (item: T) => Promise<R> {
  let waiting: Array<{ item: T; resolve: (result: R) => void; reject: (error: unknown) => void }> = [];
  const flushWaiting = () => {
    const batch = waiting;
    waiting = [];
    flush(batch.map(({ item }) => item)).then(
      (results) => batch.forEach(({ resolve }, index) => resolve(results[index] as R)),
      (error: unknown) => batch.forEach(({ reject }) => reject(error)),
    );
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      if (waiting.length === 1) setImmediate(flushWaiting);
    });
}
