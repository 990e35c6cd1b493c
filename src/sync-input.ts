/** The workflow input fields every sync kind takes: dry run, budgets, paging and what to do when a run is in progress. */
import { z } from 'zod';

/** `pageSize` is what one page activity holds (members, users or events), sent as several Braze requests. */
export function runInputFields(defaultPageSize: number) {
  return {
    /** Plan and report what would be sent (and what it would cost); send nothing. */
    dryRun: z.boolean().default(false),
    /** Data points this run may spend; the run pauses (it does not fail) before a page would exceed it. */
    maxDataPoints: z.number().int().positive().optional(),
    /** Data points all syncs together may spend per UTC day. */
    maxDataPointsPerDay: z.number().int().positive().optional(),
    pageSize: z.number().int().min(1).max(10_000).default(defaultPageSize),
    /** Pages applied at once: more fill a high Braze rate limit; the shared limiter still holds the ceiling. */
    pagesInFlight: z.number().int().min(1).max(32).default(4),
    /** When another run of the same sync is in progress: `skip` ends at once (sending nothing), `wait` waits its turn. */
    ifRunning: z.enum(['skip', 'wait']).default('skip'),
  };
}

/** A Temporal duration as typed into the UI, e.g. "5m" or "30s". */
export const durationSchema = z.string().regex(/^\d+(ms|s|m|h)$/, 'must be a duration such as "5m" or "30s"');
