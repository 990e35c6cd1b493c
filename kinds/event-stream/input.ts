/**
 * The `eventStream` workflow input: a named stream of Amplitude's Webhooks streaming destination
 * (`POST /amplitude/stream/<name>` on the receiver), with the same selection of events as `eventSync`. Validated at
 * the top of the workflow, so free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { dataPointBudgetSchema, durationSchema } from '../../src/sync-input.js';
import { SYNC_KIND } from '../../src/temporal/search-attributes.js';
import { deliverySchema, eventSelectionFields, type EventSelection } from '../event-sync/input.js';

/** Its runs' `AmpBrazeSyncKind` search attribute and the `sync_kind` label of the data-point metric. */
export const EVENT_STREAM_KIND = 'event_stream';

/** A stream's name: it is part of the receiver's URL, the workflow id and the spool's name. */
export const eventStreamNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, "_" or "-" (it is part of the webhook URL)');

/** What can be changed while the stream runs (the `configure` update), and what it keeps when it idles out. */
export const eventStreamSettingsSchema = z.strictObject({
  ...eventSelectionFields,
  delivery: deliverySchema,
  /** Spooled items one round reads at most (a round sends them in requests of up to 75 events). */
  batchSize: z.number().int().min(1).max(10_000).default(1_000),
  /** With less than one request's worth spooled, a round waits this long for more before it sends. */
  flushWait: durationSchema.default('50ms'),
  /** Data points all syncs together may spend per UTC day: the stream pauses (it never drops) at it. */
  maxDataPointsPerDay: dataPointBudgetSchema.optional(),
  /** How long an empty spool is waited on for the receiver's next signal before the workflow ends. */
  idleTimeout: durationSchema.default('30m'),
});

export const eventStreamInputSchema = eventStreamSettingsSchema.extend({ name: eventStreamNameSchema });

export type EventStreamInput = z.input<typeof eventStreamInputSchema>;
export type EventStreamOptions = z.output<typeof eventStreamInputSchema>;
export type EventStreamSettings = z.output<typeof eventStreamSettingsSchema>;
/** A change of settings: the fields given replace the stream's, the others stay. */
export type EventStreamSettingsChange = Partial<z.input<typeof eventStreamSettingsSchema>>;

/** Whether an input names settings, or only the stream (as the receiver's start does: the saved settings apply). */
export function namesSettings(input: object): boolean {
  return Object.keys(input).some((key) => key !== 'name');
}

export function selectionOf(settings: EventStreamSettings): EventSelection {
  const { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly } = settings;
  return { eventTypes, propertyFilters, eventProperties, identifiers, aliasLabel, updateExistingOnly };
}

/** The stream's workflow id. */
export function eventStreamWorkflowId(name: string): string {
  return `event-stream-${name}`;
}

/** The receiver's spool the stream drains, and the sync id its requests are recorded under. */
export function eventStreamSpool(name: string): string {
  return `event-stream:${name}`;
}

/** The stream a spool name names, or undefined for a name `eventStreamSpool` cannot have made. */
export function eventStreamNameOf(spool: string): string | undefined {
  const name = spool.startsWith('event-stream:') ? spool.slice('event-stream:'.length) : undefined;
  return name !== undefined && eventStreamNameSchema.safeParse(name).success ? name : undefined;
}

export function eventStreamSearchAttributes(): SearchAttributePair[] {
  return [{ key: SYNC_KIND, value: EVENT_STREAM_KIND }];
}
