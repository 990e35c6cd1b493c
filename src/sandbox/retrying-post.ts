/**
 * How the vendors' webhook senders post (Braze Currents, Amplitude's cohort webhooks): until a 2xx, every non-2xx
 * answer, network error or timeout retried with capped exponential backoff, up to a deadline per body.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { z } from 'zod';

export const postRetrySchema = z
  .object({
    initialDelayMs: z.number().int().nonnegative().default(500),
    maxDelayMs: z.number().int().nonnegative().default(60_000),
    /** Per body, from its first post (Braze keeps retrying Currents for at least 24 h). */
    giveUpAfterMs: z.number().int().nonnegative().default(86_400_000),
  })
  .prefault({});
export type PostRetry = z.output<typeof postRetrySchema>;

/** What the posts did so far, by attempt. */
export interface PostTally {
  /** Every HTTP attempt. */
  posts: number;
  /** Attempts after a failed one. */
  retriedPosts: number;
  /** Attempts by outcome: the HTTP status, `timeout` or `network_error`. */
  statuses: Record<string, number>;
  /** When present, each acknowledged post's time from sending to the answer, in ms. */
  ackLatenciesMs?: number[];
}

export interface PostTarget {
  url: string;
  /** Sent with every post, besides `content-type: application/json`. */
  headers: Record<string, string>;
  /** A post unanswered for this long counts as failed and is retried. */
  timeoutMs: number;
  retry: PostRetry;
  connections: number;
}

const isSuccess = (outcome: string) => /^2\d\d$/.test(outcome);

export class RetryingPoster {
  private readonly agent: Agent;
  private readonly headers: Record<string, string>;

  /** Counts into `tally`; `stop` aborts the posts and waits in progress. */
  constructor(
    private readonly target: PostTarget,
    private readonly tally: PostTally,
    private readonly stop: AbortSignal,
  ) {
    this.agent = new Agent({ connections: target.connections });
    const extra = Object.entries(target.headers).map(([name, value]) => [name.toLowerCase(), value] as const);
    this.headers = { 'content-type': 'application/json', ...Object.fromEntries(extra) };
  }

  /** Posts until a 2xx; gives up only once the deadline has passed, the last attempt made at the deadline. */
  async postUntilAcknowledged(body: string): Promise<boolean> {
    const { initialDelayMs, maxDelayMs, giveUpAfterMs } = this.target.retry;
    const deadline = Date.now() + giveUpAfterMs;
    for (let attempt = 1; ; attempt++) {
      if (isSuccess(await this.postOnce(body, this.target.timeoutMs, attempt > 1))) return true;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      const backoff = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
      await sleep(Math.min(backoff, remaining), undefined, { signal: this.stop });
    }
  }

  /** One post, counted in the tally: its HTTP status as a string, or `timeout` / `network_error`. */
  async postOnce(body: string, timeoutMs = this.target.timeoutMs, retried = false): Promise<string> {
    if (retried) this.tally.retriedPosts += 1;
    this.tally.posts += 1;
    const sentAt = performance.now();
    const outcome = await this.post(body, timeoutMs);
    this.tally.statuses[outcome] = (this.tally.statuses[outcome] ?? 0) + 1;
    if (isSuccess(outcome)) this.tally.ackLatenciesMs?.push(Math.round((performance.now() - sentAt) * 10) / 10);
    return outcome;
  }

  /** Once nothing is posting any more. */
  close(): Promise<void> {
    return this.agent.destroy();
  }

  /** The HTTP status as a string, or `timeout` / `network_error`; throws only when stopped. */
  private async post(body: string, timeoutMs: number): Promise<string> {
    try {
      const response = await request(this.target.url, {
        method: 'POST',
        headers: this.headers,
        body,
        dispatcher: this.agent,
        signal: AbortSignal.any([this.stop, AbortSignal.timeout(Math.max(1, timeoutMs))]),
      });
      await response.body.dump();
      return String(response.statusCode);
    } catch (error) {
      if (this.stop.aborted) throw this.stop.reason;
      return error instanceof Error && error.name === 'TimeoutError' ? 'timeout' : 'network_error';
    }
  }
}
