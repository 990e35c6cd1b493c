/**
 * The identity endpoints (`/users/export/ids`, `/users/alias/new`, `/users/identify`, `/users/merge`,
 * `/users/delete`), each capped at 50 entries per request, and the exported profile shape. All but export share
 * one rate limit (see the server).
 */
import {
  aliasesOf,
  badRequest,
  isAlias,
  isPlainObject,
  nonEmptyString,
  stringsOf,
  success,
  type Reply,
  type UserAlias,
} from './json-values.js';
import type { ActivitySummary, Identifier, Profile, ProfileStore } from './profiles.js';

export const MAX_IDENTIFIERS = 50;

const tooMany = (what: string) => badRequest(`A maximum of ${MAX_IDENTIFIERS} ${what} may be provided per request`);

export function exportIds(body: Record<string, unknown>, store: ProfileStore): Reply {
  const externalIds = stringsOf(body.external_ids);
  const aliases = aliasesOf(body.user_aliases);
  if (externalIds.length + aliases.length > MAX_IDENTIFIERS) return tooMany('external_ids and user_aliases');
  const single = (['braze_id', 'device_id', 'email_address', 'phone'] as const).flatMap((field): Identifier[] => {
    const value = body[field];
    return nonEmptyString(value) ? [{ kind: field === 'email_address' ? 'email' : field, value }] : [];
  });
  const identifiers: Identifier[] = [
    ...externalIds.map((value) => ({ kind: 'external_id' as const, value })),
    ...aliases.map((alias) => ({ kind: 'user_alias' as const, alias })),
    ...single,
  ];
  if (identifiers.length === 0) return badRequest('Provide external_ids, user_aliases, braze_id, device_id, email_address or phone');
  if (body.fields_to_export !== undefined && !Array.isArray(body.fields_to_export))
    return badRequest("'fields_to_export' must be an array of field names");
  const fields = body.fields_to_export === undefined ? undefined : new Set(stringsOf(body.fields_to_export));

  const users = new Map<Profile, Record<string, unknown>>();
  const invalidUserIds: string[] = [];
  for (const identifier of identifiers) {
    const profile = store.find(identifier);
    if (profile) users.set(profile, exportedProfile(profile, fields));
    else if (identifier.kind === 'external_id') invalidUserIds.push(identifier.value);
  }
  return success(201, { users: [...users.values()], invalid_user_ids: invalidUserIds });
}

/** With `external_id` the alias is added to that user (silently nothing if unknown); without, an alias-only user is created. */
export function newAliases(body: Record<string, unknown>, store: ProfileStore): Reply {
  const entries = Array.isArray(body.user_aliases) ? body.user_aliases : [];
  if (entries.length > MAX_IDENTIFIERS) return tooMany('user_aliases');
  if (!entries.every(isAlias)) return badRequest("Each user alias needs 'alias_name' and 'alias_label'");
  for (const entry of entries) {
    const alias = { alias_name: entry.alias_name, alias_label: entry.alias_label };
    const externalId = (entry as { external_id?: unknown }).external_id;
    if (nonEmptyString(externalId)) {
      const profile = store.find({ kind: 'external_id', value: externalId });
      if (profile) store.addAlias(profile, alias);
    } else if (!store.find({ kind: 'user_alias', alias })) {
      store.create({ kind: 'user_alias', alias });
    }
  }
  return success(201, { aliases_processed: entries.length });
}

const MERGE_BEHAVIORS = ['none', 'merge'];

/**
 * An alias-only profile either receives the external_id (unknown id) or is combined with the external_id's
 * profile, unless that profile already has an alias with the same label. Combined, the identified profile gets
 * the alias; with `merge_behavior` "merge" also the attributes it lacks, the events and the purchases, which with
 * "none" (the default) are orphaned with the alias-only profile.
 */
export function identify(body: Record<string, unknown>, store: ProfileStore): Reply {
  const entries = body.aliases_to_identify;
  if (!Array.isArray(entries)) return badRequest("'aliases_to_identify' must be an array");
  if (entries.length > MAX_IDENTIFIERS) return tooMany('aliases_to_identify');
  if (!entries.every((e) => isPlainObject(e) && nonEmptyString(e.external_id) && isAlias(e.user_alias))) {
    return badRequest("Each entry needs 'external_id' and 'user_alias'");
  }
  const mergeBehavior = body.merge_behavior ?? 'none';
  if (typeof mergeBehavior !== 'string' || !MERGE_BEHAVIORS.includes(mergeBehavior)) {
    return badRequest("'merge_behavior' must be 'none' or 'merge'");
  }
  for (const entry of entries as Array<{ external_id: string; user_alias: UserAlias }>) {
    const anonymous = store.find({ kind: 'user_alias', alias: entry.user_alias });
    if (!anonymous || anonymous.identified) continue;
    const known = store.find({ kind: 'external_id', value: entry.external_id });
    if (!known) {
      store.setExternalId(anonymous, entry.external_id);
    } else if (!known.aliases.some((a) => a.alias_label === entry.user_alias.alias_label)) {
      if (mergeBehavior === 'merge') store.absorb(anonymous, known);
      else store.takeOverIdentifiers(anonymous, known);
    }
  }
  return success(201, { aliases_processed: entries.length });
}

/** Accepted asynchronously (202); each pair folds `identifier_to_merge` into `identifier_to_keep`. */
export function merge(body: Record<string, unknown>, store: ProfileStore): Reply {
  const updates = Array.isArray(body.merge_updates) ? body.merge_updates : [];
  if (updates.length > MAX_IDENTIFIERS) return tooMany('merge_updates');
  const pairs = updates.map((u) => (isPlainObject(u) ? [identifierOf(u.identifier_to_merge), identifierOf(u.identifier_to_keep)] : []));
  if (!pairs.every(([from, into]) => from && into))
    return badRequest("Each merge update needs 'identifier_to_merge' and 'identifier_to_keep'");
  for (const [from, into] of pairs as Array<[Identifier, Identifier]>) {
    const merged = store.find(from);
    const kept = store.find(into);
    if (merged && kept && merged !== kept) store.absorb(merged, kept);
  }
  return success(202);
}

/** Exactly one identifier list; deletes are free of data points. */
export function deleteUsers(body: Record<string, unknown>, store: ProfileStore): Reply {
  const lists: Record<string, Identifier[]> = {
    external_ids: stringsOf(body.external_ids).map((value) => ({ kind: 'external_id', value })),
    user_aliases: aliasesOf(body.user_aliases).map((alias) => ({ kind: 'user_alias', alias })),
    braze_ids: stringsOf(body.braze_ids).map((value) => ({ kind: 'braze_id', value })),
    email_addresses: (Array.isArray(body.email_addresses) ? body.email_addresses : []).flatMap((e): Identifier[] =>
      isPlainObject(e) && nonEmptyString(e.email) ? [{ kind: 'email', value: e.email }] : [],
    ),
    phone_numbers: stringsOf(body.phone_numbers).map((value) => ({ kind: 'phone', value })),
  };
  const given = Object.keys(lists).filter((name) => body[name] !== undefined);
  if (given.length !== 1) return badRequest(`Provide exactly one of ${Object.keys(lists).join(', ')}`);
  const identifiers = lists[given[0]!]!;
  if (identifiers.length > MAX_IDENTIFIERS) return tooMany(given[0]!);
  let deleted = 0;
  for (const identifier of identifiers) {
    const profile = store.find(identifier);
    if (profile) {
      store.delete(profile);
      deleted += 1;
    }
  }
  return success(201, { deleted });
}

function identifierOf(value: unknown): Identifier | undefined {
  if (!isPlainObject(value)) return undefined;
  if (nonEmptyString(value.external_id)) return { kind: 'external_id', value: value.external_id };
  if (isAlias(value.user_alias)) return { kind: 'user_alias', alias: value.user_alias };
  return undefined;
}

/** The `/users/export/ids` shape, optionally limited to `fields_to_export`. */
export function exportedProfile(profile: Profile, fields?: ReadonlySet<string>): Record<string, unknown> {
  const summaries = (map: ReadonlyMap<string, ActivitySummary> | undefined) =>
    [...(map ?? [])].map(([name, summary]) => ({ name, ...summary }));
  const full: Record<string, unknown> = {
    external_id: profile.externalId,
    user_aliases: profile.aliases,
    braze_id: profile.brazeId,
    ...Object.fromEntries(profile.standardAttributes ?? []),
    custom_attributes: Object.fromEntries(profile.customAttributes ?? []),
    custom_events: summaries(profile.customEvents),
    purchases: summaries(profile.purchases),
    devices: profile.deviceIds.map((device_id) => ({ device_id })),
  };
  if (!fields) return full;
  return Object.fromEntries(Object.entries(full).filter(([field]) => fields.has(field)));
}
