/**
 * What differs between the SQL the two stores run, where a rule is written once as SQL that both run: the names of
 * a few functions and how a numbered parameter is written. Everything else (UPDATE … RETURNING, upserts with a
 * WHERE, CASE, coalesce) is the same in SQLite and PostgreSQL.
 */
export interface SqlDialect {
  /** The smallest / largest of its arguments (`least` / `greatest`; SQLite's multi-argument `min` / `max`). */
  least: string;
  greatest: string;
  /** Parameter `n` (1-based), of a number type where `number` says so (PostgreSQL must know to compare it). */
  param: (n: number, type?: 'number') => string;
  /** The current time as the store keeps timestamps (ISO text on SQLite, TIMESTAMPTZ on PostgreSQL). */
  now: string;
}

export const POSTGRES_DIALECT: SqlDialect = {
  least: 'least',
  greatest: 'greatest',
  param: (n, type) => (type === 'number' ? `$${n}::bigint` : `$${n}`),
  now: 'now()',
};

export const SQLITE_DIALECT: SqlDialect = {
  least: 'min',
  greatest: 'max',
  param: (n) => `?${n}`,
  now: `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`,
};

/** Values for SQLite's numbered parameters (`?1`, `?2`, …), which better-sqlite3 binds from an object by number. */
export function numbered(values: readonly unknown[]): Record<number, unknown> {
  return Object.fromEntries(values.map((value, index) => [index + 1, value]));
}
