/**
 * The `cohortSync` workflow input: what a user types into `temporal workflow start --input`, a Temporal UI
 * schedule, or passes to `startCohortSync`. Validated at the top of the workflow, so it must stay free of I/O.
 */
import { z } from 'zod';
import { runInputFields } from '../sync-input.js';

export const IDENTIFIERS = ['user_id', 'user_alias', 'device_id'] as const;
const DEFAULT_ATTRIBUTE_NAME = 'amplitude_cohorts';
export type Identifier = (typeof IDENTIFIERS)[number];

export const cohortSyncInputSchema = z
  .strictObject({
    cohortId: z.string().trim().min(1, 'the Amplitude cohort id is required, e.g. "26umsb5"'),
    /** `attribute`: a custom-attribute array of cohort ids; `partner_cohort`: Braze's native Amplitude cohort. */
    target: z.enum(['attribute', 'partner_cohort']).default('attribute'),
    /** The custom-attribute array that holds the user's Amplitude cohort ids (target `attribute`). */
    attributeName: z
      .string()
      .regex(/^[^$.\s][^.\s]*$/, 'must be a Braze custom attribute name (no spaces or dots, not starting with $)')
      .max(255)
      .default(DEFAULT_ATTRIBUTE_NAME),
    /** Braze identifiers to try in priority order; a member none of them can address is skipped with a reason. */
    identifiers: z.array(z.enum(IDENTIFIERS)).min(1).default(['user_id']),
    /** `user_alias`: the alias label, and whether the alias name is the Amplitude id or the user id. */
    aliasLabel: z
      .string()
      .regex(/^[^:]+$/, 'must be non-empty and contain no ":"')
      .max(255)
      .default('amplitude_id'),
    aliasNameFrom: z.enum(['amplitude_id', 'user_id']).default('amplitude_id'),
    ...runInputFields(1_000),
    /** Download again even if the cohort's `lastComputed` has not moved. */
    force: z.boolean().default(false),
  })
  .superRefine((input, ctx) => {
    if (input.target === 'attribute' && input.identifiers.includes('device_id')) {
      ctx.addIssue({
        code: 'custom',
        path: ['identifiers'],
        message: 'device_id can address users only with target "partner_cohort" (Braze /users/track has no device_id identifier)',
      });
    }
    if (new Set(input.identifiers).size !== input.identifiers.length) {
      ctx.addIssue({ code: 'custom', path: ['identifiers'], message: 'each identifier may appear once' });
    }
  });

export type CohortSyncInput = z.input<typeof cohortSyncInputSchema>;
export type CohortSyncOptions = z.output<typeof cohortSyncInputSchema>;

/**
 * The stable identity of a sync, and its workflow id: `cohort-sync-<cohortId>` for the default attribute, with
 * `-attribute-<name>` or `-partner` for other targets. Its snapshot and ledger entries hang off it.
 */
export function cohortSyncId(options: Pick<CohortSyncOptions, 'cohortId' | 'target' | 'attributeName'>): string {
  const base = `cohort-sync-${options.cohortId}`;
  if (options.target === 'partner_cohort') return `${base}-partner`;
  return options.attributeName === DEFAULT_ATTRIBUTE_NAME ? base : `${base}-attribute-${options.attributeName}`;
}
