/**
 * What the Braze sandbox is asked to send over Currents, from its control object or `POST /_sandbox/currents/send`:
 * the sender's options plus either the events themselves or how many to generate for the sandbox's profiles.
 */
import { z } from 'zod';
import { generateCurrentsEvents, type CurrentsAudience, type CurrentsEvent } from './events.js';
import { CurrentsSender, currentsSenderOptionsSchema, type CurrentsSendReport } from './sender.js';

const fraction = z.number().min(0).max(1);

/** The documented shape; further fields pass through as given. */
const currentsEventSchema = z.looseObject({
  event_type: z.string().min(1),
  id: z.string().min(1),
  time: z.number().int(),
  user: z.looseObject({
    user_id: z.string(),
    external_user_id: z.string().optional(),
    device_id: z.string().optional(),
    timezone: z.string(),
  }),
  properties: z.record(z.string(), z.unknown()),
});

const generationSchema = z
  .object({
    count: z.number().int().nonnegative(),
    seed: z.number().int().optional(),
    anonymousFraction: fraction.optional(),
    brazeIdOnlyFraction: fraction.optional(),
    nowSeconds: z.number().int().optional(),
    spreadSeconds: z.number().int().nonnegative().optional(),
  })
  .refine((g) => (g.anonymousFraction ?? 0.05) + (g.brazeIdOnlyFraction ?? 0.005) <= 1, {
    message: 'anonymousFraction and brazeIdOnlyFraction add up to more than 1',
  });

export const currentsSendRequestSchema = currentsSenderOptionsSchema
  .extend({
    /** Sent as given… */
    events: z.array(currentsEventSchema).optional(),
    /** …or this many generated for the sandbox's profiles. */
    generate: generationSchema.optional(),
  })
  .refine((r) => (r.events === undefined) !== (r.generate === undefined), { message: 'give either events or generate, not both' });

/** Events are typed as generated; over HTTP, fields beyond the documented ones pass through too. */
export type CurrentsSendRequest = Omit<z.input<typeof currentsSendRequestSchema>, 'events'> & { events?: readonly CurrentsEvent[] };

/** Throws a ZodError for an invalid request; `audience` is only read when events are generated. */
export async function sendCurrents(
  request: CurrentsSendRequest,
  audience: () => CurrentsAudience,
  signal?: AbortSignal,
): Promise<CurrentsSendReport> {
  const { events, generate, ...senderOptions } = currentsSendRequestSchema.parse(request);
  const source: Iterable<CurrentsEvent> = events ?? generateCurrentsEvents(audience(), generate!);
  return new CurrentsSender(senderOptions).send(source, signal);
}
