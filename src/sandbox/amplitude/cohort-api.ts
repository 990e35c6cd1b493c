/** The Behavioral Cohorts API: list, request an export, poll it, download the file (inline or via S3). */
import { randomBytes } from 'node:crypto';
import { USER_PROPERTY_NAMES } from '../dataset.js';
import { sendJson, sendText } from '../http-util.js';
import type { CohortExport } from './cohort-exports.js';
import { cohortCsvChunks, estimateCohortFileBytes, streamCohortFile } from './cohort-file.js';
import { sendApiError, type Exchange } from './context.js';

export function listCohorts({ res, url, context }: Exchange): void {
  const includeSyncInfo = url.searchParams.get('includeSyncInfo') === 'true';
  const cohorts = context.dataset.cohorts().map((cohort) => (includeSyncInfo ? { ...cohort, syncMetadata: [] } : cohort));
  sendJson(res, 200, { cohorts });
}

export function requestCohortExport({ res, url, context }: Exchange, cohortId: string): void {
  const { options, dataset, cohortExports } = context;
  if (cohortExports.monthlyRequests.count() >= options.monthlyDownloadQuota) {
    sendApiError(res, 429, `Monthly cohort download limit reached: ${options.monthlyDownloadQuota} requests per month`);
    return;
  }
  // Every request call counts against the monthly quota, whatever its outcome.
  cohortExports.monthlyRequests.add();
  const cohort = dataset.cohort(cohortId);
  const membership = dataset.cohortMembership(cohortId);
  if (!cohort || !membership) {
    sendApiError(res, 404, `Cohort ${cohortId} not found`);
    return;
  }
  if (cohortExports.perCohortRequests.count(cohortId) >= options.perCohortRequestsPer10Min) {
    sendApiError(
      res,
      429,
      `Cohort download limit reached for cohort ${cohortId}: ${options.perCohortRequestsPer10Min} requests per 10 minutes`,
    );
    return;
  }
  cohortExports.perCohortRequests.add(cohortId);
  if (cohort.size > options.maxCohortSize) {
    sendApiError(res, 400, `Cohort ${cohortId} has ${cohort.size} users, over the maximum download size of ${options.maxCohortSize} users`);
    return;
  }
  const propKeys = url.searchParams.getAll('propKeys');
  const propertyColumns = url.searchParams.get('props') === '1' ? (propKeys.length > 0 ? propKeys : [...USER_PROPERTY_NAMES]) : [];
  const job = cohortExports.create(cohortId, membership, propertyColumns);
  sendJson(res, 202, { request_id: job.requestId, cohort_id: cohortId });
}

export function cohortExportStatus({ res, context }: Exchange, requestId: string): void {
  const job = context.cohortExports.find(requestId);
  if (!job) {
    sendApiError(res, 404, `Request ${requestId} not found`);
    return;
  }
  const complete = context.cohortExports.isComplete(job, context.options.exportJobDurationMs);
  sendJson(res, complete ? 200 : 202, {
    request_id: job.requestId,
    cohort_id: job.cohortId,
    async_status: complete ? 'JOB COMPLETED' : 'JOB INPROGRESS',
  });
}

export async function cohortExportFile(exchange: Exchange, requestId: string): Promise<void> {
  const { res, context } = exchange;
  const job = context.cohortExports.find(requestId);
  if (!job) {
    sendApiError(res, 404, `Request ${requestId} not found`);
    return;
  }
  if (!context.cohortExports.isComplete(job, context.options.exportJobDurationMs)) {
    sendApiError(res, 400, `Request ${requestId} is not complete yet (JOB INPROGRESS)`);
    return;
  }
  if (estimateCohortFileBytes(job) > context.options.inlineFileMaxBytes) {
    const token = context.cohortExports.presign(job, context.options.presignedUrlTtlMs);
    res.writeHead(302, { location: `${context.baseUrl}/s3/${token}`, 'content-length': 0 });
    res.end();
    return;
  }
  await sendFile(exchange, job);
}

/** The pre-signed S3 link: no Amplitude auth, an S3-style XML error once expired. */
export async function presignedCohortFile(exchange: Exchange, token: string): Promise<void> {
  const link = exchange.context.cohortExports.lookupLink(token);
  if (link.status === 'valid') await sendFile(exchange, link.job);
  else sendS3AccessDenied(exchange, link.status === 'expired' ? 'Request has expired' : 'Access Denied');
}

async function sendFile({ res, context }: Exchange, job: CohortExport): Promise<void> {
  const chunks = cohortCsvChunks(job, context.dataset, context.profiles, context.options);
  const delivery = { gzip: context.options.gzipFiles, bytesPerSecond: context.options.fileBytesPerSecond };
  await streamCohortFile(res, chunks, delivery, `cohort_${job.cohortId}.csv`);
}

function sendS3AccessDenied({ res }: Exchange, message: string): void {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>AccessDenied</Code><Message>${message}</Message>` +
    `<ServerTime>${new Date().toISOString()}</ServerTime><RequestId>${randomBytes(8).toString('hex').toUpperCase()}</RequestId></Error>`;
  sendText(res, 403, xml, 'application/xml');
}
