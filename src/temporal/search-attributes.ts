/**
 * The project's custom search attributes: they let the Temporal UI filter and show syncs by kind, cohort, hour and
 * data points spent. `npm run temporal` and the test server register them at start-up; on a Temporal cluster
 * register them once with `temporal operator search-attribute create` (see the README).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SYNC_KIND = defineSearchAttributeKey('AmpBrazeSyncKind', SearchAttributeType.KEYWORD);
export const COHORT_ID = defineSearchAttributeKey('AmpBrazeCohortId', SearchAttributeType.KEYWORD);
export const DATA_POINTS = defineSearchAttributeKey('AmpBrazeDataPoints', SearchAttributeType.INT);
/** The Amplitude hour (`YYYYMMDDTHH`) an event sync processes. */
export const EXPORT_HOUR = defineSearchAttributeKey('AmpBrazeHour', SearchAttributeType.KEYWORD);
/** Set by Temporal on runs a Schedule starts: the schedule's nominal time for the run. */
export const SCHEDULED_START_TIME = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);
/** Set by Temporal on runs a Schedule starts: the schedule's id. */
export const SCHEDULED_BY_ID = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

export const PROJECT_SEARCH_ATTRIBUTES = [SYNC_KIND, COHORT_ID, DATA_POINTS, EXPORT_HOUR];

/** `Name=Type` pairs in the form `temporal server start-dev --search-attribute` accepts. */
export function searchAttributeFlags(): string[] {
  const cliType: Record<string, string> = {
    [SearchAttributeType.KEYWORD]: 'Keyword',
    [SearchAttributeType.INT]: 'Int',
  };
  return PROJECT_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${cliType[key.type]}`]);
}
