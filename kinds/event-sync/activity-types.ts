/**
 * The shapes that cross between the `eventSync` workflow and its activities. They are kept in history, so they
 * carry references and counts only: no secrets, no user ids, no property values.
 */
import type { Delivery, EventSelection } from './input.js';
import type { CloseRunInput, PageBudgets } from '../../activities/engine.js';
import type { RunRef } from '../../activities/sync-lease.js';

export type { PageOutcome, RunFailures } from '../../activities/engine.js';

export interface IngestEventHourInput {
  run: RunRef;
  /** `YYYYMMDDTHH` (UTC). */
  hour: string;
  selection: EventSelection;
}

export interface IngestedHour {
  /** Lines in the hour's export (0 when Amplitude has no data for it: a 404). */
  events: number;
  /** Lines an earlier attempt had already committed, which this one read without writing again. */
  resumedFromLine: number;
  /** Distinct users whose activity the hour recorded. */
  usersActive: number;
  /** Events selected and addressable: staged to go to Braze. */
  staged: number;
  /** Selected events that cannot go, counted by reason. */
  skipReasons: Record<string, number>;
  /** Properties left out of forwarded events because Braze refuses them, counted by reason. */
  droppedProperties: Record<string, number>;
}

export interface EventPlan {
  /** Staged events not yet in the sent-event ledger. */
  toSend: number;
  /** Staged events already sent (by an earlier run of this hour, or a backfill): never sent again. */
  alreadySent: number;
  pages: number;
  /** The most one page can cost: what each page in flight holds back from the budgets. */
  maxPageDataPoints: number;
}

export interface ApplyEventPageInput extends PageBudgets {
  run: RunRef;
  page: number;
  /** Absent in inputs recorded before delivery modes existed: at-most-once, as then. */
  delivery?: Delivery;
}

export type FinishEventRunInput = CloseRunInput;

export interface PrunedStore {
  usersPruned: number;
  sentEventsPruned: number;
}
