/** Zod schemas for the Braze response bodies the client reads, and the types derived from them. */
import { z } from 'zod';

export const TRACK_ARRAYS = ['attributes', 'events', 'purchases'] as const;
export type TrackArray = (typeof TRACK_ARRAYS)[number];

/** 2xx from `/users/track`: per-object failures come back in `errors[]`, indexed into the arrays as sent. */
export const trackResponseSchema = z.looseObject({
  message: z.string(),
  errors: z
    .array(
      z.looseObject({ type: z.string(), input_array: z.enum(TRACK_ARRAYS).optional(), index: z.number().int().nonnegative().optional() }),
    )
    .optional(),
});

const exportedUserSchema = z.looseObject({
  external_id: z.string().nullish(),
  braze_id: z.string().nullish(),
  user_aliases: z.array(z.looseObject({ alias_name: z.string(), alias_label: z.string() })).nullish(),
  custom_attributes: z.record(z.string(), z.unknown()).nullish(),
});
export type BrazeExportedUser = z.output<typeof exportedUserSchema>;

export const exportResponseSchema = z.looseObject({
  message: z.string(),
  users: z.array(exportedUserSchema),
  invalid_user_ids: z.array(z.string()).optional(),
});

/** `/users/delete`: how many of the profiles named Braze queued for deletion. */
export const deleteResponseSchema = z.looseObject({ deleted: z.number().int().nonnegative() });

export const identifyResponseSchema = z.looseObject({ message: z.string(), aliases_processed: z.number().int().nonnegative() });
