/**
 * Amplitude's Cohort Webhooks destination: when a cohort is recomputed, the users who entered and who left are
 * POSTed to the configured URL in batches (default "Amplitude cohort format", `computed_time` in epoch seconds as
 * a string, a `message_id` per batch that stays the same across retries), with `User-Agent: Amplitude/Webhook/1.0`
 * and the configured custom headers. A post unanswered within 2 s times out and is retried, so a slow receiver
 * gets duplicates; a recompute can also be told to drop its batches (a lost update) or deliver them twice.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Dataset, SandboxIdentity } from '../dataset.js';
import { postRetrySchema, RetryingPoster, type PostTally } from '../retrying-post.js';

/** Amplitude allows up to five custom headers on a webhook destination. */
const MAX_CUSTOM_HEADERS = 5;

export const cohortWebhookDestinationSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  headers: z
    .record(z.string(), z.string())
    .default({})
    .refine((headers) => Object.keys(headers).length <= MAX_CUSTOM_HEADERS, { message: `at most ${MAX_CUSTOM_HEADERS} custom headers` }),
  /** Cohorts whose recomputes are sent; absent: every cohort. */
  cohortIds: z.array(z.string()).optional(),
  usersPerBatch: z.number().int().min(1).max(10_000).default(1_000),
  /** User properties sent with each user (up to 50, as chosen on the sync). */
  userProperties: z.array(z.string()).max(50).default([]),
  timeoutMs: z.number().int().positive().default(2_000),
  retry: postRetrySchema,
});
export type CohortWebhookDestination = z.input<typeof cohortWebhookDestinationSchema>;

/** How one recompute's batches travel: as Amplitude sends them, lost, twice, or after a delay. */
export const webhookDeliverySchema = z.object({
  /** The batches never arrive (an update a webhook missed). */
  drop: z.boolean().default(false),
  /** Each acknowledged batch is posted once more, as after a timeout the receiver did answer. */
  duplicate: z.boolean().default(false),
  /** Held this long before the first post, so a later recompute's batches can arrive first. */
  delayMs: z.number().int().nonnegative().default(0),
});
export type WebhookDelivery = z.input<typeof webhookDeliverySchema>;

export interface CohortWebhookReport extends PostTally {
  /** Batches formed (enter and leave), not counting posts of one again. */
  batches: number;
  /** Batches acknowledged a second time on purpose. */
  duplicatesSent: number;
  /** Batches dropped on purpose. */
  dropped: number;
  /** Batches never acknowledged by their deadline. */
  gaveUp: number;
  /** Members left out because they have no user id (the default payload carries user ids). */
  anonymousSkipped: number;
}

export interface CohortRecompute {
  cohortId: string;
  cohortName: string;
  computedTime: number;
  entered: readonly SandboxIdentity[];
  left: readonly SandboxIdentity[];
}

export class CohortWebhooks {
  private destination: z.output<typeof cohortWebhookDestinationSchema> | undefined;
  private readonly totals = emptyWebhookReport();
  private readonly closing = new AbortController();

  constructor(private readonly dataset: Dataset) {}

  /** Throws a ZodError for an invalid destination; `undefined` stops sending. */
  configure(destination: CohortWebhookDestination | undefined): void {
    this.destination = destination === undefined ? undefined : cohortWebhookDestinationSchema.parse(destination);
  }

  sends(cohortId: string): boolean {
    return this.destination !== undefined && (this.destination.cohortIds?.includes(cohortId) ?? true);
  }

  /** Everything sent so far. */
  report(): CohortWebhookReport {
    return { ...this.totals, statuses: { ...this.totals.statuses } };
  }

  /** Sends one recompute's batches (enter first, then leave); resolves once each is acknowledged or given up. */
  async deliver(recompute: CohortRecompute, delivery: WebhookDelivery = {}): Promise<CohortWebhookReport> {
    const destination = this.destination;
    const report = emptyWebhookReport();
    if (!destination || !this.sends(recompute.cohortId)) return report;
    const how = webhookDeliverySchema.parse(delivery);
    const headers = { ...destination.headers, 'user-agent': 'Amplitude/Webhook/1.0' };
    const target = { url: destination.url, headers, timeoutMs: destination.timeoutMs, retry: destination.retry, connections: 1 };
    const poster = new RetryingPoster(target, report, this.closing.signal);
    try {
      if (how.delayMs > 0) await sleep(how.delayMs, undefined, { signal: this.closing.signal });
      const update = randomUUID();
      for (const [kind, members] of [
        ['enter', recompute.entered],
        ['leave', recompute.left],
      ] as const) {
        const users = members.flatMap((member) => (member.userId === null ? [] : [this.userOf(member, member.userId)]));
        report.anonymousSkipped += members.length - users.length;
        for (let start = 0, index = 0; start < users.length; start += destination.usersPerBatch, index++) {
          report.batches += 1;
          if (how.drop) {
            report.dropped += 1;
            continue;
          }
          const body = JSON.stringify({
            cohort_name: recompute.cohortName,
            cohort_id: recompute.cohortId,
            in_cohort: kind === 'enter',
            computed_time: String(recompute.computedTime),
            message_id: `${update}::${kind}::${index}`,
            users: users.slice(start, start + destination.usersPerBatch),
          });
          if (!(await poster.postUntilAcknowledged(body))) report.gaveUp += 1;
          else if (how.duplicate && (await poster.postUntilAcknowledged(body))) report.duplicatesSent += 1;
        }
      }
    } finally {
      await poster.close();
      addTo(this.totals, report);
    }
    return report;
  }

  /** Aborts the sends still retrying. */
  close(): void {
    this.closing.abort(new Error('the Amplitude sandbox is closing'));
  }

  private userOf(member: SandboxIdentity, userId: string): { user_id: string; user_properties?: Record<string, unknown> } {
    const names = this.destination?.userProperties ?? [];
    if (names.length === 0) return { user_id: userId };
    const properties: Record<string, unknown> = this.dataset.userPropertiesAt(member.index, Date.now());
    return {
      user_id: userId,
      user_properties: Object.fromEntries(names.filter((name) => name in properties).map((name) => [name, properties[name]])),
    };
  }
}

export function emptyWebhookReport(): CohortWebhookReport {
  return { batches: 0, posts: 0, retriedPosts: 0, statuses: {}, duplicatesSent: 0, dropped: 0, gaveUp: 0, anonymousSkipped: 0 };
}

function addTo(totals: CohortWebhookReport, report: CohortWebhookReport): void {
  for (const key of ['batches', 'posts', 'retriedPosts', 'duplicatesSent', 'dropped', 'gaveUp', 'anonymousSkipped'] as const) {
    totals[key] += report[key];
  }
  for (const [status, n] of Object.entries(report.statuses)) totals.statuses[status] = (totals.statuses[status] ?? 0) + n;
}
