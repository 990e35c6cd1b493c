/**
 * The receiver's doors: what a pushed batch becomes in the spool. Every item is checked on its own — bounds first
 * (`bounds.ts`), then its schema — and one that fails becomes a dead letter under a hash of its content with the
 * reason, while the rest of the batch goes on. A dead letter's body is what the door would take again, so that
 * `replayDeadLetters` can send it through the same door once the cause is fixed. Pure.
 */
import { createHash } from 'node:crypto';
import { currentsEventSchema, partitionKeyOf } from '../currents/amplitude-events.js';
import { cohortWebhookUserSchema, computedTimeProblem, type CohortWebhookBatch, type MembershipChange } from '../cohort/webhook.js';
import type { DeadLetter, IngressItem, JsonObject, JsonValue } from '../store/store.js';
import { jsonBoundsProblem, jsonText } from './bounds.js';

/** A batch as the spool takes it: items to spool, and what the door refused. */
export interface Admitted {
  items: IngressItem[];
  letters: DeadLetter[];
}

/** Valid Currents events become spool items keyed by their `id`; the rest become dead letters. */
export function admitCurrentsEvents(events: readonly unknown[]): Admitted {
  const admitted: Admitted = { items: [], letters: [] };
  events.forEach((raw, index) => {
    const refuse = (problem: string) => admitted.letters.push(deadLetterOf(raw, `events[${index}]: ${problem}`));
    const outOfBounds = jsonBoundsProblem(raw);
    if (outOfBounds) return refuse(outOfBounds);
    const parsed = currentsEventSchema.safeParse(raw);
    if (!parsed.success) return refuse(describeIssues(parsed.error.issues));
    admitted.items.push({ dedupeKey: parsed.data.id, partitionKey: partitionKeyOf(parsed.data), body: raw as JsonObject });
  });
  return admitted;
}

/**
 * One membership change per user, keyed by the batch's `message_id` and the user (a retried batch repeats both).
 * A user entry the door refuses — or every entry, when the batch's `computed_time` cannot order them — becomes a
 * dead letter holding a batch of that one user.
 */
export function admitCohortWebhook(batch: CohortWebhookBatch, nowMs: number): Admitted {
  const admitted: Admitted = { items: [], letters: [] };
  const { users, ...envelope } = batch;
  const batchProblem = computedTimeProblem(batch.computed_time, nowMs);
  users.forEach((raw, index) => {
    const refuse = (problem: string) => admitted.letters.push(deadLetterOf({ ...envelope, users: [raw] }, problem));
    if (batchProblem) return refuse(batchProblem);
    const outOfBounds = jsonBoundsProblem(raw);
    if (outOfBounds) return refuse(`users[${index}]: ${outOfBounds}`);
    const user = cohortWebhookUserSchema.safeParse(raw);
    if (!user.success) return refuse(`users[${index}]: ${describeIssues(user.error.issues)}`);
    const change: MembershipChange = { user_id: user.data.user_id, in_cohort: batch.in_cohort, computed_time: Number(batch.computed_time) };
    admitted.items.push({ dedupeKey: `${batch.message_id}|${user.data.user_id}`, partitionKey: user.data.user_id, body: change });
  });
  return admitted;
}

/** A refused item under the hash of its content: sent again, it is recognised as the same dead letter. */
export function deadLetterOf(content: unknown, reason: string): DeadLetter {
  const text = jsonText(content ?? null);
  return { dedupeKey: `content:${createHash('sha256').update(text).digest('hex')}`, reason, body: (content ?? null) as JsonValue };
}

export function describeIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((issue) => `${issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''}${issue.message}`).join('; ');
}
