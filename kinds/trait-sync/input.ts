/**
 * The `traitSync` workflow input: which Amplitude user properties become which Braze custom attributes, for
 * the users active in the window. Validated at the top of the workflow, so free of I/O.
 */
import type { SearchAttributePair } from '@temporalio/common';
import { z } from 'zod';
import { cohortIdSchema } from '../cohort-sync/input.js';
import { SYNC_KIND } from '../../src/temporal/search-attributes.js';
import { runInputFields } from '../../src/sync-input.js';

/** Its runs' `AmpBrazeSyncKind` search attribute and the `sync_kind` label of the data-point metric. */
export const TRAIT_SYNC_KIND = 'trait';

/** A day of the Profile API at its whole organisation limit (600 a minute): more in one run cannot be fetched. */
const MAX_PROFILE_FETCHES = 864_000;

/**
 * Braze's standard profile fields: written as custom attributes of the same name they would change the
 * profile itself (an `email` property would overwrite the user's email), so a sync must opt in to them.
 */
export const STANDARD_PROFILE_FIELDS = new Set([
  'email',
  'first_name',
  'last_name',
  'country',
  'language',
  'dob',
  'phone',
  'gender',
  'home_city',
  'time_zone',
  'email_subscribe',
  'push_subscribe',
  'subscription_groups',
  'image_url',
  'date_of_first_session',
  'date_of_last_session',
]);

/** Identifiers and request flags of an attributes object: never attribute names, whatever the opt-in. */
const RESERVED_NAMES = new Set(['external_id', 'user_alias', 'braze_id', 'push_tokens', '_update_existing_only', '_merge_objects']);

export const ATTRIBUTE_TYPES = ['string', 'number', 'boolean', 'time'] as const;
export type AttributeType = (typeof ATTRIBUTE_TYPES)[number];

const attributeName = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .refine((name) => !name.startsWith('$'), 'must not start with "$" (Braze refuses it)');

const recommendationInput = z.strictObject({
  /** The Amplitude recommendation id. */
  id: z.string().trim().min(1, 'the recommendation id is required'),
  /** The Braze string-array attribute that gets the recommended items. */
  attribute: attributeName,
  /** What a control-group user gets instead of the items (default: the attribute is unset). */
  controlDefault: z.array(z.string().max(255)).optional(),
});

const names = (what: string) => z.array(z.string().trim().min(1, `${what} must not be empty`)).default([]);

export const traitSyncInputSchema = z
  .strictObject({
    /** Names the sync (its id is `trait-sync-<name>`); default: a hash of what it writes. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lowercase letters, digits, "-" or "_"')
      .max(100)
      .optional(),
    /** Amplitude user property names, e.g. `["plan", "lifetime_value"]`: each becomes a custom attribute. */
    properties: names('property names'),
    /** Amplitude computation ids (read through the User Profile API): each becomes a custom attribute. */
    computations: names('computation ids'),
    /** Amplitude recommendations (User Profile API): each one's items become a string-array attribute. */
    recommendations: z.array(recommendationInput).default([]),
    /** Put before every property and computation attribute name, e.g. `amp_` (default: none, the same name). */
    attributePrefix: z.string().default(''),
    /** Per Amplitude property or computation id, the Braze attribute name to use instead (no prefix added). */
    rename: z.record(z.string(), attributeName).default({}),
    /** Per Braze attribute, the type to send; default: faithful to the Amplitude value (computations: numbers). */
    types: z.record(z.string(), z.enum(ATTRIBUTE_TYPES)).default({}),
    /** When a user's value disappears: `unset` sends `null` once; `keep` leaves Braze's value as it is. */
    onMissing: z.enum(['unset', 'keep']).default('unset'),
    /** Users with an event within this many days are synced (at most the activity index's window). */
    windowDays: z.number().int().min(1).max(365).default(90),
    /**
     * An Amplitude cohort as the audience instead of the activity index (for projects that do not ingest events):
     * its members and their user properties come from one cohort download, made only when `lastComputed` moved.
     */
    audienceCohortId: cohortIdSchema.optional(),
    /**
     * Also write the user properties it maps within seconds of Amplitude ingesting them, through the real-time event
     * stream (`eventStream`, Send Users): same names, prefixes and types, never an unset; needs a `name`.
     * Computations and recommendations stay scheduled.
     */
    realtime: z.boolean().default(false),
    /** Allow attributes named like Braze's standard profile fields (`email`, `country`, …). */
    standardFields: z.boolean().default(false),
    /**
     * User Profile API requests one run may make (computations and recommendations): a large audience is
     * fetched over several runs, users with new activity first and then the stalest.
     */
    maxProfileFetches: z.number().int().min(1).max(MAX_PROFILE_FETCHES).default(9_000),
    ...runInputFields(1_000),
  })
  .superRefine((input, ctx) => {
    const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (input.properties.length + input.computations.length + input.recommendations.length === 0) {
      issue(['properties'], 'name at least one Amplitude user property (or computation, or recommendation) to sync');
    }
    if (input.realtime && input.name === undefined) issue(['realtime'], 'a real-time trait sync needs a "name"');
    if (input.realtime && input.audienceCohortId !== undefined)
      issue(['realtime'], 'real-time writes follow the activity index: leave out audienceCohortId');
    if (input.audienceCohortId !== undefined && readsProfiles(input)) {
      issue(
        ['audienceCohortId'],
        'a cohort audience carries user properties only (the cohort file’s columns): sync computations and recommendations in a trait sync without audienceCohortId, over the activity index',
      );
    }
    for (const [field, ids] of [
      ['properties', input.properties],
      ['computations', input.computations],
      ['recommendations', input.recommendations.map((rec) => rec.id)],
    ] as const) {
      if (new Set(ids).size !== ids.length) issue([field], 'each may appear once');
    }
    for (const key of Object.keys(input.rename)) {
      if (!input.properties.includes(key) && !input.computations.includes(key)) {
        issue(['rename', key], `"${key}" is not one of the properties or computations synced`);
      }
    }
    const attributes = traitAttributes(input);
    for (const attribute of Object.keys(input.types)) {
      if (!attributes.some((written) => written.attribute === attribute)) {
        issue(
          ['types', attribute],
          `"${attribute}" is not an attribute this sync writes (${attributes.map((a) => a.attribute).join(', ')})`,
        );
      }
    }
    const written = new Map<string, string>();
    for (const { source, key, attribute } of attributes) {
      const field = source === 'property' ? 'properties' : source === 'computation' ? 'computations' : 'recommendations';
      const problem = attributeName.safeParse(attribute).error?.issues[0]?.message;
      if (problem) issue([field], `the attribute "${attribute}" for "${key}" ${problem}`);
      if (RESERVED_NAMES.has(attribute)) {
        issue([field], `"${attribute}" is a Braze identifier, not an attribute: rename it (rename) or prefix it (attributePrefix)`);
      } else if (STANDARD_PROFILE_FIELDS.has(attribute) && !input.standardFields) {
        issue(
          [field],
          `"${attribute}" is a Braze standard profile field: prefix the attributes (e.g. "attributePrefix": "amp_"), rename it ("rename": {"${key}": "amp_${key}"}), or set "standardFields": true to write the profile field`,
        );
      }
      const earlier = written.get(attribute);
      if (earlier !== undefined) issue([field], `"${earlier}" and "${key}" would both write the attribute "${attribute}"`);
      written.set(attribute, key);
    }
  });

export type TraitSyncInput = z.input<typeof traitSyncInputSchema>;
export type TraitSyncOptions = z.output<typeof traitSyncInputSchema>;
export type TraitSelection = Pick<
  TraitSyncOptions,
  'properties' | 'computations' | 'recommendations' | 'attributePrefix' | 'rename' | 'types' | 'onMissing'
>;
type AttributeSources = Pick<TraitSyncOptions, 'properties' | 'computations' | 'recommendations' | 'attributePrefix' | 'rename'>;

/** Where a trait sync with `realtime: true` keeps its mapping for the event streams (in the store's stream settings). */
export const REALTIME_TRAITS_PREFIX = 'realtime-traits:';

/** The mapping of user properties to attributes that the event streams apply in real time. */
export type RealtimeTraitMapping = Pick<TraitSyncOptions, 'properties' | 'attributePrefix' | 'rename' | 'types'>;

export function realtimeMappingOf(options: TraitSyncOptions): RealtimeTraitMapping {
  const { properties, attributePrefix, rename, types } = options;
  return { properties, attributePrefix, rename, types };
}

/** One attribute the sync writes, and where its value comes from. */
export interface TraitAttribute {
  /** `property`: the activity index; `computation` and `recommendation`: the User Profile API. */
  source: 'property' | 'computation' | 'recommendation';
  /** The Amplitude property name, computation id or recommendation id. */
  key: string;
  attribute: string;
  /** Recommendations: what a control-group user gets (undefined: unset). */
  controlDefault?: string[];
}

/** Every attribute the sync writes, with its source. */
export function traitAttributes(selection: AttributeSources): TraitAttribute[] {
  const named = (key: string) => selection.rename[key] ?? `${selection.attributePrefix}${key}`;
  return [
    ...selection.properties.map((key) => ({ source: 'property' as const, key, attribute: named(key) })),
    ...selection.computations.map((key) => ({ source: 'computation' as const, key, attribute: named(key) })),
    ...selection.recommendations.map((rec) => ({
      source: 'recommendation' as const,
      key: rec.id,
      attribute: rec.attribute,
      ...(rec.controlDefault && { controlDefault: rec.controlDefault }),
    })),
  ];
}

/** Whether the sync needs Amplitude's User Profile API (computations or recommendations). */
export function readsProfiles(selection: Pick<TraitSyncOptions, 'computations' | 'recommendations'>): boolean {
  return selection.computations.length + selection.recommendations.length > 0;
}

/** The search attributes a trait sync's runs carry. */
export function traitRunSearchAttributes(): SearchAttributePair[] {
  return [{ key: SYNC_KIND, value: TRAIT_SYNC_KIND }];
}

/**
 * The sync's stable identity and one-off workflow id: `trait-sync-<name>`, or `trait-sync-<hash>` of the
 * attributes it writes and where their values come from, so the same selection is always the same sync.
 */
export function traitSyncId(options: AttributeSources & Pick<TraitSyncOptions, 'name' | 'audienceCohortId'>): string {
  if (options.name !== undefined) return `trait-sync-${options.name}`;
  const written = traitAttributes(options)
    .map(({ source, key, attribute }) => `${source}:${key}>${attribute}`)
    .sort();
  if (options.audienceCohortId !== undefined) written.push(`audience:cohort:${options.audienceCohortId}`);
  return `trait-sync-${fnv1a(JSON.stringify(written))}`;
}

/**
 * What a synced source version stands for besides the source itself: a named sync whose selection changed must
 * read its cohort again even though the cohort did not move.
 */
export function selectionFingerprint(selection: TraitSelection): string {
  const { properties, computations, recommendations, attributePrefix, rename, types, onMissing } = selection;
  return fnv1a(JSON.stringify([properties, computations, recommendations, attributePrefix, rename, types, onMissing]));
}

/** FNV-1a, 32 bits, as 8 hex digits: a short stable name, not a security measure (and free of Node APIs). */
function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
