/**
 * Starting (or waking) the workflow that drains a stream, once the receiver spooled something for it. A burst of
 * batches costs the Temporal server a signal or two, not one each; a start that fails (Temporal unreachable, the
 * search attributes not registered) is tried again on a timer until it succeeds — the spooled items wait in the
 * store meanwhile — and `/readyz` reports it.
 */

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

interface StreamState {
  running: boolean;
  again: boolean;
  retryTimer?: NodeJS.Timeout;
  retryMs: number;
  /** The last start failed, and none succeeded since. */
  failing: boolean;
}

export class StreamWaker {
  readonly #streams = new Map<string, StreamState>();
  #closed = false;

  constructor(private readonly onFailure: (stream: string, error: unknown) => void) {}

  /** Runs `start` for `stream` now, or once more after the run in progress; on failure, again later. */
  wake(stream: string, start: () => Promise<void>): void {
    const state = this.#streams.get(stream) ?? { running: false, again: false, retryMs: FIRST_RETRY_MS, failing: false };
    this.#streams.set(stream, state);
    if (state.running) {
      state.again = true;
      return;
    }
    clearTimeout(state.retryTimer);
    void this.#run(stream, state, start);
  }

  /** The streams whose workflow could not be started yet (why is logged as it happens). */
  failing(): string[] {
    return [...this.#streams].flatMap(([stream, state]) => (state.failing ? [stream] : []));
  }

  /** Stops retrying (the receiver is shutting down; what is spooled stays for the next start). */
  close(): void {
    this.#closed = true;
    for (const state of this.#streams.values()) clearTimeout(state.retryTimer);
  }

  async #run(stream: string, state: StreamState, start: () => Promise<void>): Promise<void> {
    state.running = true;
    let failed = false;
    do {
      state.again = false;
      try {
        await start();
        state.retryMs = FIRST_RETRY_MS;
        failed = false;
      } catch (error) {
        failed = true;
        this.onFailure(stream, error);
      }
    } while (state.again && !failed);
    state.failing = failed;
    state.running = false;
    if (failed && !this.#closed) {
      state.retryTimer = setTimeout(() => this.wake(stream, start), state.retryMs);
      state.retryTimer.unref();
      state.retryMs = Math.min(state.retryMs * 2, MAX_RETRY_MS);
    }
  }
}
