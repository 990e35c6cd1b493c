/**
 * The dead letters of the receiver's streams, for operators: list them, replay them once their cause is fixed, or
 * discard them. A replayed item refused at the door goes through the same door again (and stays a dead letter, with
 * the reason, if it still fails); an item a worker could not process is spooled again as it was. Replaying wakes
 * the stream's workflow, as the receiver does.
 */
import type { Client } from '@temporalio/client';
import { nudgeCohortStream, nudgeCurrentsForward } from '../client.js';
import { cohortStreamTargetOf } from '../../kinds/cohort-sync/input.js';
import { cohortWebhookBatchSchema } from '../cohort/webhook.js';
import { CURRENTS_STREAM } from '../currents/amplitude-events.js';
import { admitStreamed, streamedBodySchema } from '../../kinds/event-stream/door.js';
import { eventStreamNameOf } from '../../kinds/event-stream/input.js';
import { nudgeEventStream } from '../../kinds/event-stream/kind.js';
import type { DeadLetterReplay, IngressItem, StateStore, StoredDeadLetter } from '../store/store.js';
import { admitCohortWebhook, admitCurrentsEvents, describeIssues } from './doors.js';

export interface DeadLetterFilter {
  /** One stream (`currents`, `cohort-webhook:cohort-sync-<id>…`); all when unset. */
  stream?: string;
  /** Only these keys. */
  keys?: readonly string[];
  /** Only letters whose reason contains this text. */
  reasonContains?: string;
  /** At most this many. */
  limit?: number;
}

/** The dead letters the filter selects, oldest first, read from the store a page at a time. */
export async function* deadLetters(store: StateStore, filter: DeadLetterFilter = {}): AsyncGenerator<StoredDeadLetter> {
  const keys = filter.keys && new Set(filter.keys);
  let remaining = filter.limit ?? Infinity;
  let after: StoredDeadLetter | undefined;
  while (remaining > 0) {
    const page = await store.deadLetters({ stream: filter.stream, after, limit: 1_000 });
    for (const letter of page) {
      if (keys && !keys.has(letter.dedupeKey)) continue;
      if (filter.reasonContains && !letter.reason.includes(filter.reasonContains)) continue;
      yield letter;
      if (--remaining === 0) return;
    }
    if (page.length < 1_000) return;
    after = page.at(-1);
  }
}

export interface ReplayReport {
  /** Letters whose items are in the spool again. */
  replayed: number;
  /** Letters the door refuses still, with why: they stay. */
  stillRefused: Array<{ stream: string; dedupeKey: string; reason: string }>;
  /** Streams whose workflow was started or woken. */
  woken: string[];
}

/**
 * Replays the selected dead letters. `client` wakes each stream's workflow (on `taskQueue`); without it, the items
 * wait in the spool for the next batch the receiver takes.
 */
export async function replayDeadLetters(
  store: StateStore,
  filter: DeadLetterFilter,
  wake?: { client: Client; taskQueue?: string },
): Promise<ReplayReport> {
  const report: ReplayReport = { replayed: 0, stillRefused: [], woken: [] };
  const byStream = new Map<string, DeadLetterReplay[]>();
  const now = Date.now();
  for await (const letter of deadLetters(store, filter)) {
    const item = replayedItem(letter, now);
    if (typeof item === 'string') report.stillRefused.push({ stream: letter.stream, dedupeKey: letter.dedupeKey, reason: item });
    else inGroup(byStream, letter.stream).push({ dedupeKey: letter.dedupeKey, item });
  }
  for (const [stream, replays] of byStream) {
    report.replayed += await store.replayDeadLetters(stream, replays, Date.now());
    if (wake && (await wakeStream(stream, wake))) report.woken.push(stream);
  }
  return report;
}

/** Deletes the selected dead letters for good; returns how many. */
export async function discardDeadLetters(store: StateStore, filter: DeadLetterFilter): Promise<number> {
  const byStream = new Map<string, string[]>();
  for await (const letter of deadLetters(store, filter)) inGroup(byStream, letter.stream).push(letter.dedupeKey);
  let discarded = 0;
  for (const [stream, keys] of byStream) discarded += await store.discardDeadLetters(stream, keys);
  return discarded;
}

function inGroup<T>(groups: Map<string, T[]>, key: string): T[] {
  let group = groups.get(key);
  if (!group) groups.set(key, (group = []));
  return group;
}

/** What a dead letter puts back into its spool, or why the door refuses it still. */
function replayedItem(letter: StoredDeadLetter, nowMs: number): IngressItem | string {
  if (letter.partitionKey !== undefined)
    return { dedupeKey: letter.dedupeKey, partitionKey: letter.partitionKey, body: letter.body as IngressItem['body'] };
  const admitted = admitThroughDoor(letter, nowMs);
  if (typeof admitted === 'string') return admitted;
  const [item] = admitted.items;
  return item ?? admitted.letters[0]?.reason ?? 'the door admits nothing of it';
}

function admitThroughDoor(letter: StoredDeadLetter, nowMs: number): ReturnType<typeof admitCurrentsEvents> | string {
  if (letter.stream === CURRENTS_STREAM) return admitCurrentsEvents([letter.body]);
  if (cohortStreamTargetOf(letter.stream)) {
    const batch = cohortWebhookBatchSchema.safeParse(letter.body);
    return batch.success ? admitCohortWebhook(batch.data, nowMs) : `not a cohort webhook batch: ${describeIssues(batch.error.issues)}`;
  }
  if (eventStreamNameOf(letter.stream) !== undefined) {
    const body = streamedBodySchema.safeParse(letter.body);
    return body.success ? admitStreamed(body.data) : `not an Amplitude event or user: ${describeIssues(body.error.issues)}`;
  }
  return `no door serves stream "${letter.stream}"`;
}

/** Starts or wakes the workflow draining `stream`; false for a stream no workflow drains. */
async function wakeStream(stream: string, { client, taskQueue }: { client: Client; taskQueue?: string }): Promise<boolean> {
  if (stream === CURRENTS_STREAM) {
    await nudgeCurrentsForward(client, { taskQueue });
    return true;
  }
  const eventStream = eventStreamNameOf(stream);
  if (eventStream !== undefined) {
    await nudgeEventStream(client, eventStream, { taskQueue });
    return true;
  }
  const target = cohortStreamTargetOf(stream);
  if (!target) return false;
  await nudgeCohortStream(client, target, { taskQueue });
  return true;
}
