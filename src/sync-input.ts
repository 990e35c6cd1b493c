/** The workflow input fields every sync kind takes: dry run, budgets, paging and what to do when a run is in progress. */
import { z } from 'zod';

/** Pages a run applies at once unless its input says otherwise. */
export const DEFAULT_PAGES_IN_FLIGHT = 4;

/** `pageSize` is what one page activity holds (members, users or events), sent as several Braze requests. */
export function runInputFields(defaultPageSize: number) {
  return {
    /** Plan and report what would be sent (and what it would cost); send nothing. */
    dryRun: z.boolean().default(false),
    /** Data points this run may spend; the run pauses (it does not fail) before a page would exceed it. */
    maxDataPoints: dataPointBudgetSchema.optional(),
    /** Data points all syncs together may spend per UTC day. */
    maxDataPointsPerDay: dataPointBudgetSchema.optional(),
    pageSize: z.number().int().min(1).max(10_000).default(defaultPageSize),
    /** Pages applied at once: more fill a high Braze rate limit; the shared limiter still holds the ceiling. */
    pagesInFlight: z.number().int().min(1).max(32).default(DEFAULT_PAGES_IN_FLIGHT),
    /** When another run of the same sync is in progress: `skip` ends at once (sending nothing), `wait` waits its turn. */
    ifRunning: z.enum(['skip', 'wait']).default('skip'),
  };
}

/** A budget of data points: a whole number no larger than any contract (and exact as a double). */
export const dataPointBudgetSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const DURATION_UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
/** The longest duration an input may name: a workflow waiting longer is better ended and started again. */
const MAX_DURATION_MS = 7 * 24 * 3_600_000;

/** A duration `durationSchema` accepted, in ms. */
export function durationMs(duration: string): number {
  const [, amount, unit] = /^(\d+)(ms|s|m|h)$/.exec(duration) ?? [];
  if (unit === undefined) throw new RangeError(`"${duration}" is not a duration such as "5m" or "30s"`);
  return Number(amount) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS];
}

/** A Temporal duration as typed into the UI, e.g. "5m" or "30s", of at most a week. */
export const durationSchema = z
  .string()
  .regex(/^\d{1,9}(ms|s|m|h)$/, 'must be a duration such as "5m" or "30s"')
  .refine((value) => {
    // A value that is no duration at all is reported by the pattern above.
    const [, amount, unit] = /^(\d+)(ms|s|m|h)$/.exec(value) ?? [];
    return unit === undefined || Number(amount) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS] <= MAX_DURATION_MS;
  }, 'must be at most a week (168h)');
