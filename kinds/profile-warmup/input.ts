/**
 * The `profileWarmup` workflow input: whose profiles to refresh before a send (an Amplitude cohort, the users active
 * in a window, or a saved list), and how fresh a profile must be to be left alone. Validated at the top of the
 * workflow, so free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { cohortIdSchema } from '../cohort-sync/input.js';
import { durationSchema } from '../../src/sync-input.js';
import { COHORT_ID, SYNC_KIND } from '../../src/temporal/search-attributes.js';

/** Its runs' `AmpBrazeSyncKind` search attribute. */
export const PROFILE_WARMUP_KIND = 'profile-warmup';

/** A saved list's name: it names the list in the store and in the warm-up's id. */
export const listNameSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"');

export const profileWarmupInputSchema = z
  .strictObject({
    /** Warm the members of this Amplitude cohort (one download from the monthly quota). */
    cohortId: cohortIdSchema.optional(),
    /** Warm the identified users of the activity index active in this many days. */
    activeWithinDays: z.number().int().min(1).max(365).optional(),
    /** Warm a list saved with `ampbraze profiles list save` (or `saveProfileList`). */
    list: listNameSchema.optional(),
    /** A profile fetched within this long before the warm-up started is fresh: it is not fetched again. */
    freshWithin: durationSchema.default('1h'),
    /** Fetch at most this many profiles (the Profile API allows 600 a minute per organisation). */
    maxFetches: z.number().int().min(1).optional(),
  })
  .refine(
    (input) => [input.cohortId, input.activeWithinDays, input.list].filter((given) => given !== undefined).length === 1,
    'give exactly one audience: cohortId, activeWithinDays or list',
  );
export type ProfileWarmupInput = z.input<typeof profileWarmupInputSchema>;
export type ProfileWarmupOptions = z.output<typeof profileWarmupInputSchema>;

/** The audience in a word, which also names the warm-up. */
export function audienceName(options: Pick<ProfileWarmupOptions, 'cohortId' | 'activeWithinDays' | 'list'>): string {
  if (options.cohortId !== undefined) return `cohort-${options.cohortId}`;
  if (options.list !== undefined) return `list-${options.list}`;
  return `active-${options.activeWithinDays}d`;
}

export const profileWarmupId = (options: ProfileWarmupOptions) => `profile-warmup-${audienceName(options)}`;

/** The store's audience id of a saved list (kept until saved again); a run's own audience is `warmup:<run id>`. */
export const savedListAudience = (list: string) => `list:${list}`;

export function profileWarmupSearchAttributes(options: ProfileWarmupOptions): SearchAttributePair[] {
  return [
    { key: SYNC_KIND, value: PROFILE_WARMUP_KIND },
    ...(options.cohortId !== undefined ? [{ key: COHORT_ID, value: options.cohortId }] : []),
  ];
}
