/**
 * The erasure's statements, written once for both stores: every table that can hold a user's id or values, and
 * how the user's rows are found in it. A statement reads lists of values (the user's keys, raw ids, the JSON text
 * the ids appear as in stored bodies) as numbered parameters: a JSON array on SQLite, a text array on PostgreSQL.
 */
import type { ErasureIdentities } from '../store.js';

export interface ErasureDialect {
  /** `column` is one of list parameter `n`. */
  inList(column: string, n: number): string;
  /** Some value of list parameter `n` occurs in `text`. */
  containsAny(text: string, n: number): string;
  /** 1-based position of `needle` in `text` (0 if absent). */
  position(text: string, needle: string): string;
}

export const SQLITE_ERASURE: ErasureDialect = {
  inList: (column, n) => `${column} IN (SELECT value FROM json_each(?${n}))`,
  containsAny: (text, n) => `EXISTS (SELECT 1 FROM json_each(?${n}) q WHERE instr(${text}, q.value) > 0)`,
  position: (text, needle) => `instr(${text}, ${needle})`,
};

// `= ANY` of an array: as a join, the generic plan of a prepared statement scans the whole table.
export const POSTGRES_ERASURE: ErasureDialect = {
  inList: (column, n) => `${column} = ANY ($${n}::text[])`,
  containsAny: (text, n) => `EXISTS (SELECT 1 FROM unnest($${n}::text[]) q(v) WHERE strpos(${text}, q.v) > 0)`,
  position: (text, needle) => `strpos(${text}, ${needle})`,
};

/** The lists an erasure's statements read. */
export interface ErasureLists {
  /** The users' keys in every spelling the store uses: `ext:`, `dev:`, `alias:<label>:` (member keys), `user_id:`, `device_id:`, `amplitude_id:`. */
  keys: string[];
  userIds: string[];
  deviceIds: string[];
  amplitudeIds: string[];
  /** Every raw id: the name of an alias, the partition of a cohort webhook change. */
  rawIds: string[];
  /** Each id as stored JSON writes it (`"user-42"`), to find the bodies that carry it. */
  quotedIds: string[];
  /** How a staged Braze event names its user: `"external_id":"user-42"`, `"alias_name":"…"`. */
  eventIdentifiers: string[];
}

type ListName = keyof ErasureLists;

/** A statement and the lists it reads, in parameter order. */
export interface ErasureStatement {
  /** The table it changes, as reported. */
  table: string;
  sql: string;
  lists: ListName[];
}

/** Every id of the users, once: what an alias of theirs may be named, and what their stored bodies may carry. */
export function rawIdsOf({ userIds, deviceIds, amplitudeIds }: ErasureIdentities): string[] {
  return [...new Set([...userIds, ...deviceIds, ...amplitudeIds])];
}

export function erasureLists(identities: ErasureIdentities, aliasKeys: readonly string[]): ErasureLists {
  const { userIds, deviceIds, amplitudeIds } = identities;
  const rawIds = rawIdsOf(identities);
  const keys = [
    ...userIds.flatMap((id) => [`ext:${id}`, `user_id:${id}`]),
    ...deviceIds.flatMap((id) => [`dev:${id}`, `device_id:${id}`]),
    ...amplitudeIds.map((id) => `amplitude_id:${id}`),
    ...aliasKeys,
  ];
  return {
    keys: [...new Set(keys)],
    userIds,
    deviceIds,
    amplitudeIds,
    rawIds,
    quotedIds: rawIds.map((id) => JSON.stringify(id)),
    eventIdentifiers: [
      ...userIds.map((id) => `"external_id":${JSON.stringify(id)}`),
      ...rawIds.map((id) => `"alias_name":${JSON.stringify(id)}`),
    ],
  };
}

/** Tables whose keys may be member keys, so may hold `alias:<label>:<name>` keys named after an erased id. */
const MEMBER_KEY_TABLES = ['snapshot_members', 'membership_marks', 'user_attribute_snapshots', 'staged_members', 'member_failures'];

/** The alias keys (`alias:<label>:<name>`) whose name is one of list 1, in any table of member keys. */
export function aliasKeysSql(d: ErasureDialect): string {
  // Labels hold no ':' (src/cohort/identifiers.ts), so the name starts after the first one following `alias:`.
  const nameOf = `substr(member_key, 7 + ${d.position('substr(member_key, 7)', "':'")})`;
  return MEMBER_KEY_TABLES.map(
    (table) => `SELECT member_key FROM ${table} WHERE member_key >= 'alias:' AND member_key < 'alias;' AND ${d.inList(nameOf, 1)}`,
  ).join(' UNION ');
}

/** Staged events of the users (their keys, so the sent-event ledger's entries for them can be hashed). */
export function erasedStagedEventsSql(d: ErasureDialect): string {
  return `SELECT run_id AS "runId", event_key AS "eventKey" FROM staged_events WHERE ${d.containsAny('body', 1)}`;
}
export const ERASED_STAGED_EVENT_LISTS: ListName[] = ['eventIdentifiers'];

/** Member failures of the users: the ledger keeps counting them by reason, under a hash of the key. */
export function erasedFailuresSql(d: ErasureDialect): string {
  return `SELECT run_id AS "runId", member_key AS "memberKey" FROM member_failures WHERE ${d.inList('member_key', 1)}`;
}

export function erasureStatements(d: ErasureDialect): ErasureStatement[] {
  const byKey = (table: string, column: string): ErasureStatement => ({
    table,
    sql: `DELETE FROM ${table} WHERE ${d.inList(column, 1)}`,
    lists: ['keys'],
  });
  return [
    byKey('snapshot_members', 'member_key'),
    byKey('membership_marks', 'member_key'),
    byKey('user_attribute_snapshots', 'member_key'),
    byKey('user_activity', 'user_key'),
    byKey('profile_fetches', 'user_key'),
    byKey('amplitude_profiles', 'user_key'),
    byKey('profile_audiences', 'user_key'),
    byKey('staged_traits', 'user_key'),
    {
      table: 'amplitude_identities',
      sql: `DELETE FROM amplitude_identities WHERE ${d.inList('amplitude_id', 1)} OR ${d.inList('user_key', 2)}`,
      lists: ['amplitudeIds', 'keys'],
    },
    {
      table: 'braze_aliases',
      sql: `DELETE FROM braze_aliases WHERE ${d.inList('alias_name', 1)} OR ${d.inList('external_id', 2)}`,
      lists: ['rawIds', 'userIds'],
    },
    {
      table: 'amplitude_device_ids',
      sql: `DELETE FROM amplitude_device_ids WHERE ${d.inList('amplitude_id', 1)} OR ${d.inList('device_id', 2)}`,
      lists: ['amplitudeIds', 'deviceIds'],
    },
    {
      table: 'staged_members',
      sql: `DELETE FROM staged_members WHERE ${d.inList('member_key', 1)} OR ${d.inList('user_id', 2)} OR ${d.inList('device_id', 3)}
        OR ${d.inList('amplitude_id', 4)}`,
      lists: ['keys', 'userIds', 'deviceIds', 'amplitudeIds'],
    },
    { table: 'staged_events', sql: `DELETE FROM staged_events WHERE ${d.containsAny('body', 1)}`, lists: ['eventIdentifiers'] },
    {
      // Pending items by their partition (the user or device); processed ones, kept to recognise redeliveries, by body too.
      table: 'ingress_spool',
      sql: `DELETE FROM ingress_spool WHERE ${d.inList('partition_key', 1)} OR ${d.inList('partition_key', 2)}
        OR (done_at_ms IS NOT NULL AND ${d.containsAny('body', 3)})`,
      lists: ['keys', 'rawIds', 'quotedIds'],
    },
    { table: 'ingress_dead_letters', sql: `DELETE FROM ingress_dead_letters WHERE ${d.containsAny('body', 1)}`, lists: ['quotedIds'] },
    {
      // A page ending at an erased key ends, as before, after the last key below it that is left (its source's keys).
      table: 'plan_pages',
      sql: `UPDATE plan_pages SET through_key = coalesce(CASE kind
          WHEN 'enter' THEN (SELECT max(s.member_key) FROM staged_members s WHERE s.run_id = plan_pages.run_id AND s.member_key < plan_pages.through_key)
          WHEN 'leave' THEN (SELECT max(m.member_key) FROM snapshot_members m
            WHERE m.sync_id = (SELECT r.sync_id FROM runs r WHERE r.run_id = plan_pages.run_id) AND m.member_key < plan_pages.through_key)
          WHEN 'trait' THEN (SELECT max(t.user_key) FROM staged_traits t WHERE t.run_id = plan_pages.run_id AND t.user_key < plan_pages.through_key)
        END, '') WHERE kind <> 'event' AND ${d.inList('through_key', 1)}`,
      lists: ['keys'],
    },
    {
      // A keyset-paged source resumes from the start of the erased key's kind: staging a user again replaces its row.
      table: 'staging_checkpoints',
      sql: `UPDATE staging_checkpoints SET after_key = substr(after_key, 1, ${d.position('after_key', "':'")}) WHERE ${d.inList('after_key', 1)}`,
      lists: ['keys'],
    },
  ];
}

/** Every table that can hold personal data, for a VACUUM after an erasure. */
export const TABLES_WITH_USER_DATA = [
  ...new Set([
    ...MEMBER_KEY_TABLES,
    'user_activity',
    'profile_fetches',
    'amplitude_profiles',
    'profile_audiences',
    'staged_traits',
    'staged_events',
    'sent_events',
    'amplitude_identities',
    'amplitude_device_ids',
    'braze_aliases',
    'ingress_spool',
    'ingress_dead_letters',
    'plan_pages',
    'staging_checkpoints',
    'erasure_requests',
  ]),
];

/** Recounts the active suppressions per key (after the list changed, in the same transaction). */
export const RECOUNT_SUPPRESSION_KEYS = [
  'DELETE FROM suppression_keys',
  `INSERT INTO suppression_keys (key_fingerprint, active)
   SELECT key_fingerprint, count(*) FROM suppressions WHERE lifted_at_ms IS NULL GROUP BY key_fingerprint`,
];

export const SUPPRESSION_SUMMARY = 'SELECT key_fingerprint AS fingerprint, active FROM suppression_keys';

/** How far an Amplitude id's last sighting moves before it is rewritten: an hour, against a 90-day window. */
export const IDENTITY_TIME_STEP_MS = 3_600_000;
