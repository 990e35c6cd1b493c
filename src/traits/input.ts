/**
 * The `traitSync` workflow input: which Amplitude user properties become which Braze custom attributes, for
 * the users active in the window. Validated at the top of the workflow, so free of I/O.
 */
import { z } from 'zod';
import { runInputFields } from '../sync-input.js';

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

export const traitSyncInputSchema = z
  .strictObject({
    /** Names the sync (its id is `trait-sync-<name>`); default: a hash of what it writes. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lowercase letters, digits, "-" or "_"')
      .max(100)
      .optional(),
    /** Amplitude user property names, e.g. `["plan", "lifetime_value"]`: each becomes a custom attribute. */
    properties: z.array(z.string().trim().min(1, 'property names must not be empty')).min(1, 'name at least one Amplitude user property'),
    /** Put before every attribute name, e.g. `amp_` (default: none, the same name as in Amplitude). */
    attributePrefix: z.string().default(''),
    /** Per Amplitude property, the Braze attribute name to use instead (no prefix added). */
    rename: z.record(z.string(), attributeName).default({}),
    /** Per Braze attribute, the type to send; default: faithful to the Amplitude value. */
    types: z.record(z.string(), z.enum(ATTRIBUTE_TYPES)).default({}),
    /** When a user's value disappears: `unset` sends `null` once; `keep` leaves Braze's value as it is. */
    onMissing: z.enum(['unset', 'keep']).default('unset'),
    /** Users with an event within this many days are synced (at most the activity index's window). */
    windowDays: z.number().int().min(1).max(365).default(90),
    /** Allow attributes named like Braze's standard profile fields (`email`, `country`, …). */
    standardFields: z.boolean().default(false),
    ...runInputFields(1_000),
  })
  .superRefine((input, ctx) => {
    const names = attributeNames(input);
    if (new Set(input.properties).size !== input.properties.length)
      ctx.addIssue({ code: 'custom', path: ['properties'], message: 'each property may appear once' });
    for (const property of Object.keys(input.rename)) {
      if (!input.properties.includes(property))
        ctx.addIssue({ code: 'custom', path: ['rename', property], message: `"${property}" is not one of the properties synced` });
    }
    for (const attribute of Object.keys(input.types)) {
      if (!names.has(attribute)) {
        ctx.addIssue({
          code: 'custom',
          path: ['types', attribute],
          message: `"${attribute}" is not an attribute this sync writes (${[...names].join(', ')})`,
        });
      }
    }
    const written = new Map<string, string>();
    for (const [property, attribute] of propertyAttributes(input)) {
      const problem = attributeName.safeParse(attribute).error?.issues[0]?.message;
      if (problem)
        ctx.addIssue({ code: 'custom', path: ['properties'], message: `the attribute "${attribute}" for "${property}" ${problem}` });
      if (RESERVED_NAMES.has(attribute)) {
        ctx.addIssue({
          code: 'custom',
          path: ['properties'],
          message: `"${attribute}" is a Braze identifier, not an attribute: rename it (rename) or prefix it (attributePrefix)`,
        });
      } else if (STANDARD_PROFILE_FIELDS.has(attribute) && !input.standardFields) {
        ctx.addIssue({
          code: 'custom',
          path: ['properties'],
          message: `"${attribute}" is a Braze standard profile field: prefix the attributes (e.g. "attributePrefix": "amp_"), rename it ("rename": {"${property}": "amp_${property}"}), or set "standardFields": true to write the profile field`,
        });
      }
      const earlier = written.get(attribute);
      if (earlier !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['properties'],
          message: `"${earlier}" and "${property}" would both write the attribute "${attribute}"`,
        });
      written.set(attribute, property);
    }
  });

export type TraitSyncInput = z.input<typeof traitSyncInputSchema>;
export type TraitSyncOptions = z.output<typeof traitSyncInputSchema>;
export type TraitSelection = Pick<TraitSyncOptions, 'properties' | 'attributePrefix' | 'rename' | 'types' | 'onMissing'>;

/** Each Amplitude property with the Braze attribute it writes. */
export function propertyAttributes(
  selection: Pick<TraitSyncOptions, 'properties' | 'attributePrefix' | 'rename'>,
): Array<[string, string]> {
  return selection.properties.map((property) => [property, selection.rename[property] ?? `${selection.attributePrefix}${property}`]);
}

function attributeNames(selection: Pick<TraitSyncOptions, 'properties' | 'attributePrefix' | 'rename'>): Set<string> {
  return new Set(propertyAttributes(selection).map(([, attribute]) => attribute));
}

/**
 * The sync's stable identity and one-off workflow id: `trait-sync-<name>`, or `trait-sync-<hash>` of the
 * attributes it writes and where their values come from, so the same selection is always the same sync.
 */
export function traitSyncId(options: Pick<TraitSyncOptions, 'name' | 'properties' | 'attributePrefix' | 'rename'>): string {
  if (options.name !== undefined) return `trait-sync-${options.name}`;
  const pairs = propertyAttributes(options).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `trait-sync-${fnv1a(JSON.stringify(pairs))}`;
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
