/**
 * The `eventSync` workflow input: one hour of Amplitude events (ingested into the activity index, and the
 * selected ones forwarded to Braze as custom events). Validated at the top of the workflow, so free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { runInputFields } from '../../src/sync-input.js';
import { EXPORT_HOUR as EXPORT_HOUR_ATTRIBUTE, SYNC_KIND } from '../../src/temporal/search-attributes.js';

/** Its runs' `AmpBrazeSyncKind` search attribute and the `sync_kind` label of the data-point metric. */
export const EVENT_SYNC_KIND = 'event';

/** Amplitude's Export API hour, `YYYYMMDDTHH` (UTC). */
export const EXPORT_HOUR = /^(\d{4})(\d{2})(\d{2})T(\d{2})$/;
const HOUR_MS = 3_600_000;

/** The hour's start in ms since the epoch, or undefined unless `hour` is a real `YYYYMMDDTHH` hour. */
export function exportHourStart(hour: string): number | undefined {
  const match = EXPORT_HOUR.exec(hour);
  if (!match) return undefined;
  const [year, month, day, hourOfDay] = match.slice(1).map(Number) as [number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hourOfDay);
  const date = new Date(ms);
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day && date.getUTCHours() === hourOfDay ? ms : undefined;
}

/** The `YYYYMMDDTHH` hour that contains `ms`. */
export function exportHourOf(ms: number): string {
  const iso = new Date(Math.floor(ms / HOUR_MS) * HOUR_MS).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}`;
}

/** Every hour from `from` through `to`, in order. */
export function exportHoursBetween(from: string, to: string): string[] {
  const start = exportHourStart(from);
  const end = exportHourStart(to);
  if (start === undefined || end === undefined) throw new RangeError('hours must be YYYYMMDDTHH (UTC)');
  const hours: string[] = [];
  for (let ms = start; ms <= end; ms += HOUR_MS) hours.push(exportHourOf(ms));
  return hours;
}

const exportHour = z
  .string()
  .trim()
  .refine((hour) => exportHourStart(hour) !== undefined, 'must be an hour as YYYYMMDDTHH (UTC), e.g. "20261201T09"');

const propertyValue = z.union([z.string(), z.number(), z.boolean()]);

/** The events a sync or stream sends to Braze, and how it addresses their users: `eventSync` and `eventStream` alike. */
export const eventSelectionFields = {
  /** Event types forwarded to Braze: names, `["*"]` for all, or empty for ingest only (nothing sent). */
  eventTypes: z.array(z.string().trim().min(1, 'event type names must not be empty')).default([]),
  /** Forward an event only if each named event property has one of the listed values, per event type. */
  propertyFilters: z.record(z.string(), z.record(z.string(), z.array(propertyValue).min(1))).default({}),
  /** Event properties carried to Braze (default: all that Braze accepts). */
  eventProperties: z.array(z.string().min(1)).optional(),
  /**
   * How events reach Braze users: `user_id` as the external_id (always first); `device_id` or `amplitude_id`
   * address anonymous users through a user alias named after that id.
   */
  identifiers: z
    .array(z.enum(['user_id', 'device_id', 'amplitude_id']))
    .min(1)
    .default(['user_id'])
    .refine((ids) => ids[0] === 'user_id', 'must start with "user_id" (an alias is only for users without one)')
    .refine((ids) => new Set(ids).size === ids.length, 'each identifier may appear once'),
  /** The user alias label for anonymous users (default: `amplitude_device_id` or `amplitude_id`). */
  aliasLabel: z
    .string()
    .regex(/^[^:]+$/, 'must be non-empty and contain no ":"')
    .max(255)
    .optional(),
  /** `true`: never create Braze users (Amplitude's own stream creates them, so the default is `false`). */
  updateExistingOnly: z.boolean().default(false),
};

/**
 * What becomes of an event whose request was cut off without Braze's answer (its worker killed mid-request). Braze
 * does not deduplicate events: `at-least-once` sends it again (a duplicate only if the lost request had arrived);
 * `at-most-once` leaves it out and reports it as unconfirmed.
 */
export const deliverySchema = z.enum(['at-least-once', 'at-most-once']).default('at-least-once');
export type Delivery = z.output<typeof deliverySchema>;

export const eventSyncInputSchema = z.strictObject({
  /** The hour of Amplitude data (by server upload time). Omitted: the schedule's time (or now) minus `lagHours`. */
  hour: exportHour.optional(),
  /** Export data appears about 2 h after Amplitude receives it: a scheduled run reads this many hours back. */
  lagHours: z.number().int().min(0).max(72).default(3),
  ...eventSelectionFields,
  delivery: deliverySchema,
  // A dry run still ingests the hour (the activity index is not a Braze write).
  ...runInputFields(5_000),
});

export type EventSyncInput = z.input<typeof eventSyncInputSchema>;
export type EventSyncOptions = z.output<typeof eventSyncInputSchema>;
export type EventSelection = Pick<
  EventSyncOptions,
  'eventTypes' | 'propertyFilters' | 'eventProperties' | 'identifiers' | 'aliasLabel' | 'updateExistingOnly'
>;

/** The sync of one hour, and its one-off workflow id: whatever the id a run has, the hour's lease is this. */
export function eventSyncId(hour: string): string {
  return `event-sync-${hour}`;
}

/** The search attributes an event sync's runs carry: the kind and, once it is known, the hour. */
export function eventRunSearchAttributes(options: { hour?: string }): SearchAttributePair[] {
  return [
    { key: SYNC_KIND, value: EVENT_SYNC_KIND },
    ...(options.hour === undefined ? [] : [{ key: EXPORT_HOUR_ATTRIBUTE, value: options.hour }]),
  ];
}
