/**
 * The `cohortSync` workflow input: what a user types into `temporal workflow start --input`, a Temporal UI
 * schedule, or passes to `startCohortSync`. Validated at the top of the workflow, so it must stay free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { COHORT_ID, SYNC_KIND } from '../../src/temporal/search-attributes.js';
import { dataPointBudgetSchema, durationSchema, runInputFields } from '../../src/sync-input.js';

/** Its runs' `AmpBrazeSyncKind` search attribute and the `sync_kind` label of the data-point metric. */
export const COHORT_SYNC_KIND = 'cohort';
export const COHORT_STREAM_KIND = 'cohort_stream';

export const IDENTIFIERS = ['user_id', 'user_alias', 'device_id'] as const;
const DEFAULT_ATTRIBUTE_NAME = 'amplitude_cohorts';
export type Identifier = (typeof IDENTIFIERS)[number];

/**
 * An Amplitude cohort id, e.g. "26umsb5". No "-": the sync ids below put target suffixes after it with one, so
 * cohort "abc-partner" and cohort "abc" with the partner target would otherwise share a snapshot.
 */
export const cohortIdSchema = z
  .string()
  .trim()
  .min(1, 'the Amplitude cohort id is required, e.g. "26umsb5"')
  .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be an Amplitude cohort id: at most 64 letters, digits or "_", e.g. "26umsb5"');

/** Which cohort, and where its membership goes in Braze: shared by `cohortSync` and `cohortStream`. */
const membershipTargetFields = {
  cohortId: cohortIdSchema,
  /** `attribute`: a custom-attribute array of cohort ids; `partner_cohort`: Braze's native Amplitude cohort. */
  target: z.enum(['attribute', 'partner_cohort']).default('attribute'),
  /** The custom-attribute array that holds the user's Amplitude cohort ids (target `attribute`). */
  attributeName: z
    .string()
    .regex(/^[^$.\s][^.\s]*$/, 'must be a Braze custom attribute name (no spaces or dots, not starting with $)')
    .max(255)
    .default(DEFAULT_ATTRIBUTE_NAME),
};

export const cohortSyncInputSchema = z
  .strictObject({
    ...membershipTargetFields,
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
export function cohortSyncId(options: MembershipTarget): string {
  return `cohort-sync-${options.cohortId}${targetSuffix(options)}`;
}

/** The search attributes a cohort sync's runs carry: the kind and the cohort, to find them in the Temporal UI. */
export function cohortRunSearchAttributes(options: Pick<CohortSyncOptions, 'cohortId'>): SearchAttributePair[] {
  return [
    { key: SYNC_KIND, value: COHORT_SYNC_KIND },
    { key: COHORT_ID, value: options.cohortId },
  ];
}

/** A cohort stream's: the same, with its own kind. */
export function cohortStreamSearchAttributes(options: Pick<CohortSyncOptions, 'cohortId'>): SearchAttributePair[] {
  return [
    { key: SYNC_KIND, value: COHORT_STREAM_KIND },
    { key: COHORT_ID, value: options.cohortId },
  ];
}

/**
 * The `cohortStream` input: which cohort's webhook batches it applies, and to which target. The receiver starts it
 * from the webhook URL (`?target=partner_cohort`, `?attribute=<name>`); it shares the cohort sync's snapshot and lease.
 */
export const cohortStreamInputSchema = z.strictObject({
  ...membershipTargetFields,
  /** Data points all syncs together may spend per UTC day: the stream pauses before a round would exceed it. */
  maxDataPointsPerDay: dataPointBudgetSchema.optional(),
  /** Users per round: one round reads this many spooled changes and sends them in as few requests as it can. */
  batchSize: z.number().int().min(1).max(5_000).default(1_000),
  /** How long an empty spool is waited on for the receiver's next signal before the workflow ends. */
  idleTimeout: durationSchema.default('5m'),
});
export type CohortStreamInput = z.input<typeof cohortStreamInputSchema>;
export type CohortStreamOptions = z.output<typeof cohortStreamInputSchema>;

/** `cohort-stream-<cohortId>` plus the target suffix of the cohort sync it shares a snapshot with. */
export function cohortStreamWorkflowId(options: MembershipTarget): string {
  return `cohort-stream-${options.cohortId}${targetSuffix(options)}`;
}

/** The spool stream of one cohort's webhook batches for one target. */
export function cohortStreamName(options: MembershipTarget): string {
  return `cohort-webhook:${cohortSyncId(options)}`;
}

type MembershipTarget = Pick<CohortSyncOptions, 'cohortId' | 'target' | 'attributeName'>;

/** The cohort and target a `cohortStreamName` names, or undefined for a name it cannot have made. */
export function cohortStreamTargetOf(streamName: string): MembershipTarget | undefined {
  // Cohort ids hold no "-", so the first one after the prefix ends the id and the rest is the target's suffix.
  const match = /^cohort-webhook:cohort-sync-([A-Za-z0-9_]+)(?:(-partner)|-attribute-(.+))?$/.exec(streamName);
  if (!match) return undefined;
  const [, cohortId, partner, attributeName] = match as unknown as [string, string, string | undefined, string | undefined];
  if (partner) return { cohortId, target: 'partner_cohort', attributeName: DEFAULT_ATTRIBUTE_NAME };
  return { cohortId, target: 'attribute', attributeName: attributeName ?? DEFAULT_ATTRIBUTE_NAME };
}

function targetSuffix(options: MembershipTarget): string {
  if (options.target === 'partner_cohort') return '-partner';
  return options.attributeName === DEFAULT_ATTRIBUTE_NAME ? '' : `-attribute-${options.attributeName}`;
}
