/** Cohort export jobs, their pre-signed download links, and the quotas on requesting them. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { CohortMembership } from '../dataset.js';
import { FixedWindowCounter, MonthlyCounter } from './limits.js';

/** An export request: the membership as it was when requested, so later changes don't leak into the file. */
export interface CohortExport {
  requestId: string;
  cohortId: string;
  membership: CohortMembership;
  /** Empty for `props=0`. */
  propertyColumns: string[];
  requestedAt: number;
}

/** Amplitude keeps a `/file` link valid this long. */
const FILE_LINK_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000;

export type LinkLookup = { status: 'valid'; job: CohortExport } | { status: 'expired' } | { status: 'unknown' };

export class CohortExports {
  readonly monthlyRequests = new MonthlyCounter();
  readonly perCohortRequests = new FixedWindowCounter(10 * 60 * 1000);
  private readonly jobs = new Map<string, CohortExport>();
  private readonly links = new Map<string, { job: CohortExport; expiresAt: number }>();

  create(cohortId: string, membership: CohortMembership, propertyColumns: string[]): CohortExport {
    const job = { requestId: randomUUID(), cohortId, membership, propertyColumns, requestedAt: Date.now() };
    this.jobs.set(job.requestId, job);
    return job;
  }

  find(requestId: string): CohortExport | undefined {
    const job = this.jobs.get(requestId);
    return job && Date.now() - job.requestedAt < FILE_LINK_LIFETIME_MS ? job : undefined;
  }

  isComplete(job: CohortExport, jobDurationMs: number): boolean {
    return Date.now() >= job.requestedAt + jobDurationMs;
  }

  /** A fresh pre-signed link token, valid for `ttlMs`. */
  presign(job: CohortExport, ttlMs: number): string {
    const token = randomBytes(24).toString('hex');
    this.links.set(token, { job, expiresAt: Date.now() + ttlMs });
    return token;
  }

  lookupLink(token: string): LinkLookup {
    const link = this.links.get(token);
    if (!link) return { status: 'unknown' };
    return Date.now() < link.expiresAt ? { status: 'valid', job: link.job } : { status: 'expired' };
  }

  expireLinksNow(): void {
    for (const link of this.links.values()) link.expiresAt = 0;
  }
}
