/**
 * The User Privacy API's deletion jobs. Amplitude batches deletion requests into jobs it schedules 10–13 days out;
 * the sandbox schedules each request 10 days after the (UTC) day it was made, the earliest Amplitude would, so the
 * requests of one day share a job. A job is `staging` until 3 days before its day (from then on Amplitude takes no
 * more changes to it), `submitted` from then, and `done` once its day is over, when its users are deleted: the
 * sandbox forgets their ids and properties (one who comes back is a new user), while the seeded events and cohort
 * memberships stay as they were. Jobs follow a clock of their own, which tests move ahead instead of waiting.
 */
import type { ProfileStore } from './profiles.js';

export type DeletionStatus = 'staging' | 'submitted' | 'done';

/** One user of a job, as Amplitude lists it. */
export interface DeletionEntry {
  amplitude_id: number;
  requested_on_day: string;
  requester?: string;
}

/** A job as the API answers it. */
export interface DeletionJobView {
  amplitude_ids: DeletionEntry[];
  day: string;
  status: DeletionStatus;
}

export const DAY_MS = 86_400_000;
const SCHEDULED_AFTER_DAYS = 10;
const FROZEN_DAYS = 3;

interface Job {
  /** Epoch ms of the scheduled day's UTC midnight. */
  dayMs: number;
  /** By Amplitude id: a user requested twice for the same job is listed once. */
  entries: Map<number, DeletionEntry>;
  carriedOut: boolean;
}

/** `YYYY-MM-DD` of an epoch ms (UTC). */
export const formatDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function statusAt(dayMs: number, now: number): DeletionStatus {
  if (now >= dayMs + DAY_MS) return 'done';
  return now >= dayMs - FROZEN_DAYS * DAY_MS ? 'submitted' : 'staging';
}

export class UserDeletions {
  /** By scheduled day. */
  private readonly jobs = new Map<number, Job>();
  private clockOffsetMs = 0;

  constructor(private readonly profiles: ProfileStore) {}

  /** The jobs' clock: real time, moved ahead by `advance`. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** Moves the clock `days` ahead and carries out the jobs done by then. */
  advance(days: number): void {
    this.clockOffsetMs += days * DAY_MS;
    this.carryOutDone();
  }

  /** Adds the users to the job of today's requests and answers it, listing this request's users. */
  schedule(amplitudeIds: readonly number[], requester: string | undefined): DeletionJobView {
    const now = this.now();
    const today = Math.floor(now / DAY_MS) * DAY_MS;
    const dayMs = today + SCHEDULED_AFTER_DAYS * DAY_MS;
    const job = this.jobs.get(dayMs) ?? { dayMs, entries: new Map<number, DeletionEntry>(), carriedOut: false };
    const requested = amplitudeIds.map((amplitudeId) => {
      const entry = job.entries.get(amplitudeId) ?? {
        amplitude_id: amplitudeId,
        requested_on_day: formatDay(today),
        ...(requester === undefined ? {} : { requester }),
      };
      job.entries.set(amplitudeId, entry);
      return entry;
    });
    if (job.entries.size > 0) this.jobs.set(dayMs, job);
    return { amplitude_ids: requested, day: formatDay(dayMs), status: statusAt(dayMs, now) };
  }

  /** The jobs scheduled from `startMs` to `endMs` (UTC midnights, both included), in day order. */
  list(startMs = -Infinity, endMs = Infinity): DeletionJobView[] {
    const now = this.now();
    return [...this.jobs.values()]
      .filter((job) => job.dayMs >= startMs && job.dayMs <= endMs)
      .sort((a, b) => a.dayMs - b.dayMs)
      .map((job) => ({ amplitude_ids: [...job.entries.values()], day: formatDay(job.dayMs), status: statusAt(job.dayMs, now) }));
  }

  /** Deletes the users of every job that is done and was not carried out yet. */
  carryOutDone(): void {
    const now = this.now();
    for (const job of this.jobs.values()) {
      if (job.carriedOut || statusAt(job.dayMs, now) !== 'done') continue;
      for (const amplitudeId of job.entries.keys()) this.profiles.delete(amplitudeId);
      job.carriedOut = true;
    }
  }
}
