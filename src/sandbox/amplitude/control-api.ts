/** Unauthenticated `/_sandbox/*` inspection and control endpoints (the sandbox only listens on loopback). */
import { z } from 'zod';
import { BodyTooLargeError, InvalidJsonError, readJsonBody, sendJson } from '../http-util.js';
import type { Exchange } from './context.js';

const MAX_CONTROL_BODY_BYTES = 16 * 1024 * 1024;

const membershipChangeSchema = z.object({
  set: z.array(z.string()).optional(),
  add: z.array(z.string()).optional(),
  remove: z.array(z.string()).optional(),
});

const faultsSchema = z.object({
  serverErrorRate: z.number().min(0).max(1).optional(),
  rateLimitBurstEvery: z.number().int().nonnegative().optional(),
  rateLimitBurstLength: z.number().int().nonnegative().optional(),
  latencyMs: z.number().nonnegative().optional(),
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
    faults: context.faults.current,
  });
}

export function sandboxEvents({ res, context }: Exchange): void {
  sendJson(res, 200, { events: context.ingestion.list() });
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
  if (change.set) dataset.setCohortMembers(cohortId, change.set);
  if (change.add) dataset.addCohortMembers(cohortId, change.add);
  if (change.remove) dataset.removeCohortMembers(cohortId, change.remove);
  sendJson(res, 200, { cohort: dataset.cohort(cohortId) });
}

export async function setSandboxFaults(exchange: Exchange): Promise<void> {
  const faults = await readBodyAs(exchange, faultsSchema);
  if (!faults) return;
  exchange.context.faults.setFaults(faults);
  sendJson(exchange.res, 200, { faults: exchange.context.faults.current });
}
