/**
 * The receiver's door for Amplitude's Webhooks streaming destination: what one post becomes in a stream's spool. A
 * post holds one event (the Export API event JSON) or one user (the Identify user format), or, from a template that
 * batches, an array of them. Each is checked on its own; an event is keyed by its `$insert_id` (else `uuid`), so the
 * destination's retries and duplicates stop here, and a user update by its content. Pure.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { eventKeyOf, userKeyOf } from '../../src/events/amplitude-events.js';
import { identifierSchema } from '../../src/ingress/bounds.js';
import { jsonBoundsProblem, jsonText } from '../../src/ingress/bounds.js';
import { deadLetterOf, describeIssues, type Admitted } from '../../src/ingress/doors.js';
import type { JsonObject } from '../../src/store/store.js';

/** Items one post may hold (the default payload holds one). */
export const MAX_STREAMED_ITEMS_PER_POST = 2_000;

const properties = z.record(z.string(), z.unknown());

/** An event as the destination sends it by default; the fields the stream uses are checked, the rest kept. */
export const streamedEventSchema = z.looseObject({
  $insert_id: identifierSchema.nullish(),
  uuid: identifierSchema.nullish(),
  amplitude_id: z.number(),
  user_id: identifierSchema.nullish(),
  device_id: identifierSchema.nullish(),
  event_type: z.string().min(1).max(1_024),
  event_time: z.string().max(64),
  server_upload_time: z.string().max(64).default(''),
  event_properties: properties.nullish(),
  user_properties: properties.nullish(),
  library: z.string().nullish(),
});
export type StreamedEvent = z.output<typeof streamedEventSchema>;

/** A user update as the destination sends it by default (users on events and on Identify calls). */
export const streamedUserSchema = z
  .looseObject({
    user_id: identifierSchema.nullish(),
    device_id: identifierSchema.nullish(),
    user_properties: properties.default({}),
  })
  .refine((user) => Boolean(user.user_id || user.device_id), 'a user needs a user_id or a device_id');
export type StreamedUser = z.output<typeof streamedUserSchema>;

export const streamedBodySchema = z.union([z.record(z.string(), z.unknown()), z.array(z.unknown()).max(MAX_STREAMED_ITEMS_PER_POST)]);

/** Whether a spooled (or posted) item is an event rather than a user update. */
export function isEvent(item: unknown): boolean {
  return typeof item === 'object' && item !== null && 'event_type' in item;
}

/** Events become spool items keyed by their insert id, user updates by a hash of their content; the rest dead letters. */
export function admitStreamed(body: z.output<typeof streamedBodySchema>): Admitted {
  const items = Array.isArray(body) ? body : [body];
  const admitted: Admitted = { items: [], letters: [] };
  items.forEach((raw, index) => {
    const where = Array.isArray(body) ? `[${index}]: ` : '';
    const refuse = (problem: string) => admitted.letters.push(deadLetterOf(raw, `${where}${problem}`));
    const outOfBounds = jsonBoundsProblem(raw);
    if (outOfBounds) return refuse(outOfBounds);
    if (isEvent(raw)) {
      const event = streamedEventSchema.safeParse(raw);
      if (!event.success) return refuse(`not an Amplitude event: ${describeIssues(event.error.issues)}`);
      const eventKey = eventKeyOf(event.data);
      if (eventKey === undefined) return refuse('the event has neither $insert_id nor uuid, so it cannot be kept from duplicating');
      admitted.items.push({ dedupeKey: eventKey, partitionKey: userKeyOf(event.data), body: raw as JsonObject });
      return;
    }
    const user = streamedUserSchema.safeParse(raw);
    if (!user.success) return refuse(`neither an Amplitude event nor a user: ${describeIssues(user.error.issues)}`);
    const contentHash = createHash('sha256').update(jsonText(raw)).digest('hex');
    admitted.items.push({ dedupeKey: `user:${contentHash}`, partitionKey: userKeyOf(user.data), body: raw as JsonObject });
  });
  return admitted;
}
