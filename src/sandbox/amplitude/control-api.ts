/** Unauthenticated `/_sandbox/*` inspection and control endpoints (the sandbox only listens on loopback). */
import { z } from 'zod';
import { BodyTooLargeError, InvalidJsonError, readJsonBody, sendJson } from '../http-util.js';
import type { CohortMembership, SandboxCohort } from '../dataset.js';
import { cohortWebhookDestinationSchema, emptyWebhookReport, webhookDeliverySchema, type CohortWebhookReport } from './cohort-webhooks.js';
import { eventStreamDestinationSchema } from './event-stream-webhooks.js';
import { currentFaults, setFaults, type Exchange, type SandboxContext } from './context.js';
import { formatDay } from './deletions.js';
import { countExportLinesInHour, exportLinesInHour, parseHour } from './export-api.js';

const MAX_CONTROL_BODY_BYTES = 16 * 1024 * 1024;
/** `/_sandbox/export/<hour>?events=1` answers in one JSON body, so only test-sized hours are listed. */
const MAX_LISTED_EXPORT_LINES = 100_000;

const membershipChangeSchema = z.object({
  set: z.array(z.string()).optional(),
  add: z.array(z.string()).optional(),
  remove: z.array(z.string()).optional(),
  /** How the recompute's webhook batches travel, when cohort webhooks are configured. */
  webhook: webhookDeliverySchema.optional(),
});
export type MembershipChange = z.input<typeof membershipChangeSchema>;

const faultsSchema = z.object({
  serverErrorRate: z.number().min(0).max(1).optional(),
  rateLimitBurstEvery: z.number().int().nonnegative().optional(),
  rateLimitBurstLength: z.number().int().nonnegative().optional(),
  latencyMs: z.number().nonnegative().optional(),
  exportTimeouts: z.number().int().nonnegative().optional(),
});

/** Reads and validates a JSON body, answering 400 itself when it is unusable. */
async function readBodyAs<T>(exchange: Exchange, schema: z.ZodType<T>): Promise<T | undefined> {
  try {
    const parsed = schema.safeParse(await readJsonBody(exchange.req, MAX_CONTROL_BODY_BYTES));
    if (parsed.success) return parsed.data;
    sendJson(exchange.res, 400, { error: z.prettifyError(parsed.error) });
  } catch (error) {
    if (!(error instanceof BodyTooLargeError || error instanceof InvalidJsonError)) throw error;
    sendJson(exchange.res, 400, { error: error.message });
  }
  return undefined;
}

export function sandboxState({ res, context }: Exchange): void {
  sendJson(res, 200, {
    downloadRequestsThisMonth: context.cohortExports.monthlyRequests.count(),
    ingestedEvents: context.ingestion.count,
    cohorts: context.dataset.cohorts(),
    faults: currentFaults(context),
    profileRequests: {
      ...context.profileRequestTotals,
      limitPerMinute: context.options.profileRequestsPerMinute,
      byMinute: minuteHistory(context.profileRequestsByMinute),
    },
    deletions: deletionsState(context),
  });
}

/** The deletion jobs' clock (ahead of real time once advanced) and every job, as the User Privacy API lists them. */
function deletionsState({ deletions }: SandboxContext) {
  return { today: formatDay(deletions.now()), jobs: deletions.list() };
}

const advanceSchema = z.object({ days: z.number().positive() });

/** `POST /_sandbox/deletions/advance {"days"}`: moves the deletion jobs' clock ahead (see `UserDeletions`). */
export async function advanceDeletionClock(exchange: Exchange): Promise<void> {
  const advance = await readBodyAs(exchange, advanceSchema);
  if (!advance) return;
  exchange.context.deletions.advance(advance.days);
  sendJson(exchange.res, 200, deletionsState(exchange.context));
}

const profileLimitSchema = z.object({ requestsPerMinute: z.number().int().min(1) });

/** Changes the User Profile API's per-minute limit (a benchmark lifts it while it fills the store, then puts it back). */
export async function setProfileLimit(exchange: Exchange): Promise<void> {
  const limit = await readBodyAs(exchange, profileLimitSchema);
  if (!limit) return;
  exchange.context.options.profileRequestsPerMinute = limit.requestsPerMinute;
  sendJson(exchange.res, 200, { requestsPerMinute: limit.requestsPerMinute });
}

export function sandboxEvents({ res, context }: Exchange): void {
  sendJson(res, 200, { events: context.ingestion.list() });
}

/** What the Export API holds for one hour: `{hour, count, fromDataset, ingested}`, plus `events` with `?events=1`. */
export function exportHour({ res, url, context }: Exchange, hour: string): void {
  const hourStart = parseHour(hour);
  if (hourStart === undefined) return sendJson(res, 400, { error: 'the hour must be YYYYMMDDTHH (UTC)' });
  const count = countExportLinesInHour(context, hourStart);
  const fromDataset = context.dataset.countEventsInHour(hourStart);
  const summary = { hour, count, fromDataset, ingested: count - fromDataset };
  if (url.searchParams.get('events') !== '1') return sendJson(res, 200, summary);
  if (count > MAX_LISTED_EXPORT_LINES)
    return sendJson(res, 400, { error: `${count} events are too many to list; the limit is ${MAX_LISTED_EXPORT_LINES}` });
  sendJson(res, 200, { ...summary, events: [...exportLinesInHour(context, hourStart)] });
}

export async function changeCohortMembers(exchange: Exchange, cohortId: string): Promise<void> {
  const { res, context } = exchange;
  const change = await readBodyAs(exchange, membershipChangeSchema);
  if (!change) return;
  const { dataset } = context;
  if (!dataset.cohort(cohortId)) return sendJson(res, 404, { error: `unknown cohort ${cohortId}` });
  const unknownIds = [...(change.set ?? []), ...(change.add ?? []), ...(change.remove ?? [])].filter(
    (amplitudeId) => dataset.indexOfAmplitudeId(amplitudeId) === undefined,
  );
  if (unknownIds.length > 0) return sendJson(res, 400, { error: `unknown amplitude ids: ${unknownIds.join(', ')}` });
  sendJson(res, 200, await recomputeCohort(context, cohortId, change));
}

/**
 * Recomputes a cohort with the change (`lastComputed` moves on) and, when cohort webhooks send it, posts who entered
 * and who left; resolves once the batches were acknowledged (or given up), with the cohort and the delivery report.
 */
export async function recomputeCohort(
  context: SandboxContext,
  cohortId: string,
  change: MembershipChange,
): Promise<{ cohort: SandboxCohort; webhook: CohortWebhookReport }> {
  const { dataset } = context;
  const before = dataset.cohortMembership(cohortId);
  if (change.set) dataset.setCohortMembers(cohortId, change.set);
  if (change.add) dataset.addCohortMembers(cohortId, change.add);
  if (change.remove) dataset.removeCohortMembers(cohortId, change.remove);
  const after = dataset.cohortMembership(cohortId);
  const cohort = dataset.cohort(cohortId)!;
  if (!before || !after || !context.cohortWebhooks.sends(cohortId)) return { cohort, webhook: emptyWebhookReport() };
  const identities = (from: CohortMembership, notIn: CohortMembership) =>
    [...from.indexes()].filter((index) => !notIn.includes(index)).map((index) => dataset.identity(index));
  const recompute = {
    cohortId,
    cohortName: cohort.name,
    computedTime: cohort.lastComputed,
    entered: identities(after, before),
    left: identities(before, after),
  };
  return { cohort, webhook: await context.cohortWebhooks.deliver(recompute, change.webhook) };
}

export async function configureCohortWebhooks(exchange: Exchange): Promise<void> {
  const destination = exchange.req.method === 'DELETE' ? undefined : await readBodyAs(exchange, cohortWebhookDestinationSchema);
  if (exchange.req.method !== 'DELETE' && !destination) return;
  exchange.context.cohortWebhooks.configure(destination);
  sendJson(exchange.res, 200, { configured: destination !== undefined, report: exchange.context.cohortWebhooks.report() });
}

export function cohortWebhookReport({ res, context }: Exchange): void {
  sendJson(res, 200, context.cohortWebhooks.report());
}

/** `POST /_sandbox/event-stream` (a destination) or `DELETE`: where the Webhooks streaming destination sends. */
export async function configureEventStream(exchange: Exchange): Promise<void> {
  const destination = exchange.req.method === 'DELETE' ? undefined : await readBodyAs(exchange, eventStreamDestinationSchema);
  if (exchange.req.method !== 'DELETE' && !destination) return;
  exchange.context.eventStream.configure(destination);
  sendJson(exchange.res, 200, { configured: destination !== undefined, report: exchange.context.eventStream.sent() });
}

/** `GET /_sandbox/event-stream`: what the streaming destination sent so far. */
export function eventStreamReport({ res, context }: Exchange): void {
  sendJson(res, 200, context.eventStream.sent());
}

const hotIdsSchema = z.object({ fraction: z.number().min(0).max(1), forMs: z.number().int().nonnegative() });

/** `POST /_sandbox/hot-ids {"fraction", "forMs"}`: see `Ingestion.setHotIds`. */
export async function setHotIds(exchange: Exchange): Promise<void> {
  const hot = await readBodyAs(exchange, hotIdsSchema);
  if (!hot) return;
  exchange.context.ingestion.setHotIds(hot.fraction, hot.forMs);
  sendJson(exchange.res, 200, hot);
}

const unnamedRefusalsSchema = z.object({ insertIds: z.array(z.string()) });

/** `POST /_sandbox/unnamed-refusals {"insertIds"}`: see `Ingestion.setUnnamedRefusals`. */
export async function setUnnamedRefusals(exchange: Exchange): Promise<void> {
  const refusals = await readBodyAs(exchange, unnamedRefusalsSchema);
  if (!refusals) return;
  exchange.context.ingestion.setUnnamedRefusals(refusals.insertIds);
  sendJson(exchange.res, 200, refusals);
}

export async function setSandboxFaults(exchange: Exchange): Promise<void> {
  const faults = await readBodyAs(exchange, faultsSchema);
  if (!faults) return;
  setFaults(exchange.context, faults);
  sendJson(exchange.res, 200, { faults: currentFaults(exchange.context) });
}

/** Counts per epoch minute from the first to the last with any, zeros included. */
function minuteHistory(counts: ReadonlyMap<number, number>): { firstMinuteStartMs?: number; answered: number[] } {
  if (counts.size === 0) return { answered: [] };
  const minutes = [...counts.keys()];
  const [first, last] = [Math.min(...minutes), Math.max(...minutes)];
  return {
    firstMinuteStartMs: first * 60_000,
    answered: Array.from({ length: last - first + 1 }, (_, offset) => counts.get(first + offset) ?? 0),
  };
}
