/**
 * `ampbraze syncs`: every sync of every kind and every schedule on one screen, and whether each is healthy.
 *
 * A sync is what the store's run ledger calls one (its sync id, whatever workflow ids its runs had). Its runs are
 * found in Temporal through the project's search attributes, so a run started by hand, by the client API or by a
 * schedule is found alike; a run that failed before it reached the ledger still shows, under its schedule or its
 * workflow id. Schedules give the next run and the cadence a sync is late against.
 */
import type { Client, ScheduleSummary, WorkflowExecutionInfo } from '@temporalio/client';
import type { RunRecord, StateStore, SyncSummary } from '../store/store.js';
import { SCHEDULED_BY_ID, SYNC_KIND } from '../temporal/search-attributes.js';
import { streamBacklogs, type StreamBacklog } from './receivers.js';
import { EVENT_PIPELINE, spenderOf, syncGroupOf } from './sync-groups.js';
import { dayOf } from './usage.js';

/** Temporal statuses of a run that ended badly. */
const FAILED_STATUSES = new Set(['FAILED', 'TIMED_OUT', 'TERMINATED']);
/** A scheduled sync is late once its last success is older than this many of its periods (plus a grace). */
const LATE_AFTER_PERIODS = 2;
const LATE_GRACE_MS = 5 * 60_000;
/** The newest executions read from Temporal: a month of hourly runs and more. */
const MAX_EXECUTIONS = 2_000;
const DAY_MS = 86_400_000;
/** The ledger's run statuses in Temporal's words, for runs Temporal no longer lists. */
const LEDGER_STATUS: Record<RunRecord['status'], string> = {
  running: 'RUNNING',
  succeeded: 'COMPLETED',
  failed: 'FAILED',
  cancelled: 'CANCELED',
};

export interface HealthThresholds {
  /** A stream with more items than this waiting is unhealthy. */
  maxBacklog: number;
  /** A stream whose oldest waiting item is older than this is unhealthy. */
  maxBacklogAgeSeconds: number;
}

export const DEFAULT_THRESHOLDS: HealthThresholds = { maxBacklog: 10_000, maxBacklogAgeSeconds: 15 * 60 };

export interface LastRun {
  workflowId?: string;
  /** Temporal's status (RUNNING, COMPLETED, FAILED, …), or the ledger's when Temporal no longer keeps the run. */
  status: string;
  /** The ledger's outcome (succeeded, unchanged, dry_run, failed, …), once the run recorded one. */
  outcome?: string;
  startedAt: string;
  closedAt?: string;
  /** `schedule <id>`, or `direct` (the CLI, the client API, the Temporal UI or `temporal workflow start`). */
  startedBy: string;
}

export interface SyncRow {
  kind: string;
  sync: string;
  lastRun?: LastRun;
  lastSucceededAt?: string;
  schedule?: { scheduleId: string; paused: boolean; nextRunAt?: string; periodMs?: number };
  dataPointsToday: number;
  dataPointsMonth: number;
  /** The last run's failures and skips by reason, most frequent first. */
  failures: Record<string, number>;
  skips: Record<string, number>;
  problems: string[];
}

export interface SyncsReport {
  generatedAt: string;
  syncs: SyncRow[];
  streams: Array<StreamBacklog & { problems: string[] }>;
  healthy: boolean;
}

/** What the report is built from, read from Temporal and the store (see `gatherSyncsReport`). */
export interface SyncsSources {
  nowMs: number;
  executions: ReadonlyArray<
    Pick<WorkflowExecutionInfo, 'type' | 'workflowId' | 'runId' | 'status' | 'startTime' | 'closeTime'> & {
      kind: string;
      scheduledBy?: string;
    }
  >;
  schedules: ReadonlyArray<Pick<ScheduleSummary, 'scheduleId' | 'state' | 'info'> & { workflowType?: string }>;
  /** Recent runs of the ledger, newest first: they tie Temporal runs to syncs. */
  ledgerRuns: readonly RunRecord[];
  summaries: readonly SyncSummary[];
  dataPoints: ReadonlyArray<{ day: string; syncId: string; runId: string; points: number }>;
  streams: readonly StreamBacklog[];
  thresholds: HealthThresholds;
}

/** Reads the report's sources: this deployment's runs and schedules (those of its task queue) and the store's ledgers. */
export async function gatherSyncsReport(
  client: Client,
  store: StateStore,
  options: { taskQueue: string; thresholds?: HealthThresholds; nowMs?: number },
): Promise<SyncsReport> {
  const { taskQueue, thresholds = DEFAULT_THRESHOLDS, nowMs = Date.now() } = options;
  const since = new Date(nowMs - 35 * DAY_MS);
  const executions: SyncsSources['executions'][number][] = [];
  const query = `TaskQueue = ${JSON.stringify(taskQueue)} AND (${SYNC_KIND.name} IS NOT NULL OR WorkflowType = 'currentsForward') AND StartTime > "${since.toISOString()}"`;
  for await (const execution of client.workflow.list({ query })) {
    executions.push({
      ...execution,
      kind: execution.typedSearchAttributes.get(SYNC_KIND) ?? (execution.type === 'currentsForward' ? 'currents' : execution.type),
      scheduledBy: execution.typedSearchAttributes.get(SCHEDULED_BY_ID),
    });
    if (executions.length >= MAX_EXECUTIONS) break;
  }
  const schedules: SyncsSources['schedules'][number][] = [];
  for await (const schedule of client.schedule.list()) {
    const { action } = await client.schedule.getHandle(schedule.scheduleId).describe();
    if (action.type === 'startWorkflow' && action.taskQueue === taskQueue)
      schedules.push({ ...schedule, workflowType: action.workflowType });
  }
  const month = dayOf(nowMs).slice(0, 7);
  return buildSyncsReport({
    nowMs,
    executions,
    schedules,
    ledgerRuns: await store.recentRuns({ limit: 5_000 }),
    summaries: await store.latestRunOfEachSync(since.getTime()),
    dataPoints: await store.dataPointsByDay(`${month}-01`),
    streams: await streamBacklogs(store, nowMs),
    thresholds,
  });
}

/** Puts the sources together into one row per sync, each with its problems. Pure: the health rules live here. */
export function buildSyncsReport(sources: SyncsSources): SyncsReport {
  const { nowMs } = sources;
  const rows = new Map<string, SyncRow>();
  const rowOf = (sync: string, kind: string) => {
    let row = rows.get(sync);
    if (!row) rows.set(sync, (row = { kind, sync, dataPointsToday: 0, dataPointsMonth: 0, failures: {}, skips: {}, problems: [] }));
    return row;
  };

  // The ledger's run ids end with the Temporal run id that opened the run: a Temporal run leads to its sync.
  const syncOfRunId = new Map(sources.ledgerRuns.map((run) => [run.runId.slice(run.runId.lastIndexOf('/') + 1), run.syncId]));
  for (const { lastRun } of sources.summaries) syncOfRunId.set(lastRun.runId.slice(lastRun.runId.lastIndexOf('/') + 1), lastRun.syncId);
  const syncOfWorkflow = new Map<string, string>();
  const syncOfSchedule = new Map<string, string>();
  for (const execution of sources.executions) {
    const syncId = syncOfRunId.get(execution.runId);
    if (syncId === undefined) continue;
    syncOfWorkflow.set(execution.workflowId, syncGroupOf(syncId));
    if (execution.scheduledBy) syncOfSchedule.set(execution.scheduledBy, syncGroupOf(syncId));
  }
  for (const schedule of sources.schedules) {
    for (const { action } of schedule.info.recentActions) {
      const syncId = syncOfRunId.get(action.workflow.firstExecutionRunId);
      if (syncId !== undefined) syncOfSchedule.set(schedule.scheduleId, syncGroupOf(syncId));
    }
  }

  // The ledger's view of each sync: its last run's outcome, failures and skips, and its last success.
  const ledgerLast = new Map<string, RunRecord>();
  for (const { lastRun, lastSucceededAt } of sources.summaries) {
    const sync = syncGroupOf(lastRun.syncId);
    const row = rowOf(sync, lastRun.kind);
    row.lastSucceededAt = latest(row.lastSucceededAt, lastSucceededAt?.toISOString());
    const known = ledgerLast.get(sync);
    if (known && known.startedAt >= lastRun.startedAt) continue;
    ledgerLast.set(sync, lastRun);
    const stats = lastRun.stats ?? {};
    row.lastRun = {
      status: LEDGER_STATUS[lastRun.status],
      ...(typeof stats.outcome === 'string' && { outcome: stats.outcome }),
      startedAt: lastRun.startedAt.toISOString(),
      ...(lastRun.finishedAt && { closedAt: lastRun.finishedAt.toISOString() }),
      startedBy: 'direct',
    };
    row.failures = countsOf(stats.failureReasons);
    row.skips = countsOf(stats.skipReasons);
  }

  // Temporal's view: who started each run and how it ended, and runs that never reached the ledger.
  const executionsOf = new Map<string, Array<SyncsSources['executions'][number]>>();
  const syncOfTemporalRun = new Map<string, string>();
  for (const execution of sources.executions) {
    const syncId = syncOfRunId.get(execution.runId);
    const sync =
      (syncId && syncGroupOf(syncId)) ??
      syncOfWorkflow.get(execution.workflowId) ??
      (execution.scheduledBy && syncOfSchedule.get(execution.scheduledBy)) ??
      (execution.kind === 'event' ? EVENT_PIPELINE : execution.scheduledBy ? `schedule ${execution.scheduledBy}` : execution.workflowId);
    const row = rowOf(sync, execution.kind);
    syncOfTemporalRun.set(execution.runId, sync);
    if (execution.status.name === 'COMPLETED' && execution.closeTime)
      row.lastSucceededAt = latest(row.lastSucceededAt, execution.closeTime.toISOString());
    executionsOf.set(sync, [...(executionsOf.get(sync) ?? []), execution]);
  }
  for (const [sync, executions] of executionsOf) {
    const row = rows.get(sync)!;
    const ledger = ledgerLast.get(sync);
    const ledgerRunId = ledger && ledger.runId.slice(ledger.runId.lastIndexOf('/') + 1);
    const opened = executions.find((execution) => execution.runId === ledgerRunId);
    const newest = executions.reduce((a, b) => (b.startTime > a.startTime ? b : a));
    // The ledger's last run, continued as new: its newest execution tells how it is doing now.
    const continued = opened && ledger?.status === 'running' && newest.workflowId === opened.workflowId;
    const current = !ledger || newest.startTime > ledger.startedAt ? newest : opened;
    if (!current) continue;
    const sameRun = current === opened || continued;
    row.lastRun = {
      workflowId: current.workflowId,
      status: current.status.name,
      ...(sameRun && row.lastRun?.outcome !== undefined && { outcome: row.lastRun.outcome }),
      startedAt: (sameRun && ledger ? ledger.startedAt : current.startTime).toISOString(),
      ...(current.closeTime && { closedAt: current.closeTime.toISOString() }),
      startedBy: (opened ?? current).scheduledBy ? `schedule ${(opened ?? current).scheduledBy}` : 'direct',
    };
    if (!sameRun) [row.failures, row.skips] = [{}, {}];
  }

  for (const schedule of sources.schedules) {
    const sync = syncOfSchedule.get(schedule.scheduleId) ?? `schedule ${schedule.scheduleId}`;
    const row = rowOf(sync, rows.get(sync)?.kind ?? schedule.workflowType ?? 'schedule');
    const [next, after] = schedule.info.nextActionTimes;
    row.schedule = {
      scheduleId: schedule.scheduleId,
      paused: schedule.state.paused,
      ...(next && { nextRunAt: next.toISOString() }),
      ...(next && after && { periodMs: after.getTime() - next.getTime() }),
    };
    const firstAction = schedule.info.recentActions[0]?.takenAt.getTime();
    const { periodMs } = row.schedule;
    const since = row.lastSucceededAt ? Date.parse(row.lastSucceededAt) : firstAction;
    if (
      !schedule.state.paused &&
      periodMs !== undefined &&
      since !== undefined &&
      nowMs - since > LATE_AFTER_PERIODS * periodMs + LATE_GRACE_MS
    ) {
      row.problems.push(
        `late: ${row.lastSucceededAt ? 'last succeeded' : 'never succeeded since its first run'} ${age(nowMs - since)} ago, runs every ${age(periodMs)}`,
      );
    }
  }

  const today = dayOf(nowMs);
  for (const { day, syncId, runId, points } of sources.dataPoints) {
    // A run's id ends with the Temporal run that opened it: a stream's points go to the stream, not to the sync it feeds.
    const row = rows.get(syncOfTemporalRun.get(runId.slice(runId.lastIndexOf('/') + 1)) ?? spenderOf({ syncId, runId }));
    if (!row) continue;
    row.dataPointsMonth += points;
    if (day === today) row.dataPointsToday += points;
  }

  for (const row of rows.values()) {
    const run = row.lastRun;
    if (run && (FAILED_STATUSES.has(run.status) || run.outcome === 'failed'))
      row.problems.unshift(`last run ${run.status.toLowerCase().replace('_', ' ')}`);
  }

  const streams = sources.streams.map((stream) => {
    const problems: string[] = [];
    const { maxBacklog, maxBacklogAgeSeconds } = sources.thresholds;
    if (stream.pending > maxBacklog) problems.push(`backlog of ${stream.pending} over ${maxBacklog}`);
    if (stream.oldestAgeSeconds > maxBacklogAgeSeconds)
      problems.push(`oldest item waiting ${age(stream.oldestAgeSeconds * 1000)}, over ${age(maxBacklogAgeSeconds * 1000)}`);
    return { ...stream, problems };
  });
  const syncs = [...rows.values()].sort((a, b) => (a.kind === b.kind ? (a.sync < b.sync ? -1 : 1) : a.kind < b.kind ? -1 : 1));
  return {
    generatedAt: new Date(nowMs).toISOString(),
    syncs,
    streams,
    healthy: syncs.every((row) => row.problems.length === 0) && streams.every((stream) => stream.problems.length === 0),
  };
}

/** The report as the terminal shows it: a table of syncs, one of the receivers' streams, and the problems. */
export function syncsText(report: SyncsReport): string {
  const nowMs = Date.parse(report.generatedAt);
  const ago = (iso: string | undefined) => (iso === undefined ? '–' : `${age(nowMs - Date.parse(iso))} ago`);
  const lines: string[] = [];
  const header = ['KIND', 'SYNC', 'LAST RUN', 'STARTED BY', 'LAST SUCCESS', 'NEXT RUN', 'POINTS TODAY', 'POINTS MONTH', 'NOTES'];
  const table = report.syncs.map((row) => {
    const run = row.lastRun;
    const when = run && (run.closedAt ? ago(run.closedAt) : `for ${age(nowMs - Date.parse(run.startedAt))}`);
    const outcome = run
      ? `${run.status.toLowerCase().replace('_', ' ')}${run.outcome && run.outcome !== 'succeeded' ? ` (${run.outcome})` : ''}, ${when}`
      : 'never ran';
    const next = row.schedule
      ? row.schedule.paused
        ? 'paused'
        : row.schedule.nextRunAt
          ? `in ${age(Date.parse(row.schedule.nextRunAt) - nowMs)}`
          : '–'
      : '–';
    const notes = [...row.problems.map((problem) => `✗ ${problem}`), ...short('failed', row.failures), ...short('skipped', row.skips)];
    return [
      row.kind,
      row.sync,
      outcome,
      run?.startedBy ?? '–',
      ago(row.lastSucceededAt),
      next,
      String(row.dataPointsToday),
      String(row.dataPointsMonth),
      notes.join('; '),
    ];
  });
  lines.push(...columns([header, ...table]));
  if (report.syncs.length === 0) lines.push('No syncs have run in the last 35 days, and no schedule exists.');
  lines.push('');
  if (report.streams.length === 0) lines.push('Receivers: nothing waiting in any stream, no dead letters.');
  else {
    lines.push(
      ...columns([
        ['STREAM', 'WAITING', 'OLDEST', 'DEAD LETTERS', 'NOTES'],
        ...report.streams.map((stream) => [
          stream.stream,
          String(stream.pending),
          stream.pending ? age(stream.oldestAgeSeconds * 1000) : '–',
          String(stream.deadLetters),
          stream.problems.map((problem) => `✗ ${problem}`).join('; '),
        ]),
      ]),
    );
  }
  const problems =
    report.syncs.reduce((sum, row) => sum + row.problems.length, 0) +
    report.streams.reduce((sum, stream) => sum + stream.problems.length, 0);
  lines.push('', problems === 0 ? 'All healthy.' : `${problems} problem${problems === 1 ? '' : 's'} (marked ✗).`);
  return lines.join('\n');
}

function countsOf(value: unknown): Record<string, number> {
  if (typeof value !== 'object' || value === null) return {};
  const entries = Object.entries(value).filter((entry): entry is [string, number] => typeof entry[1] === 'number' && entry[1] > 0);
  return Object.fromEntries(entries.sort((a, b) => b[1] - a[1]));
}

/** The two most frequent reasons, cut short: the rest is in `ampbraze <kind> status` and the run's result. */
function short(what: string, counts: Record<string, number>): string[] {
  const entries = Object.entries(counts);
  if (entries.length === 0) return [];
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const top = entries.slice(0, 2).map(([reason, count]) => `${count} ${reason.length > 40 ? `${reason.slice(0, 39)}…` : reason}`);
  return [`${total} ${what} (${top.join(', ')}${entries.length > 2 ? ', …' : ''})`];
}

function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

/** A duration as a person says it: 45 s, 12 min, 3 h, 2 d. */
export function age(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3_600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}
