/**
 * The ingress spool: what the receiver accepted, drained in order per partition, deferred, dead-lettered, replayed
 * and pruned. On PostgreSQL; the same contract as src/store/ingress/sqlite.ts.
 */
import { batches, type PostgresDb } from '../postgres-db.js';
import { jsonText } from '../../ingress/bounds.js';
import {
  pageLimit,
  pendingIngressSql,
  ingressBacklogSql,
  PENDING_INGRESS_STREAMS,
  DEAD_LETTER_COUNTS,
  deadLettersSql,
  NO_POSITION,
  toStoredDeadLetter,
  type DeadLetterRow,
  toIngressBacklog,
  toSpooledItem,
  type SpooledRow,
  requireKey,
} from '../shared.js';
import {
  type DeadLetter,
  type DeadLetterCount,
  type DeadLetterPosition,
  type DeadLetterReplay,
  type SpooledDeadLetter,
  type StoredDeadLetter,
  type IngressBacklog,
  type IngressItem,
  type SpooledItem,
  type IngressSpool,
  type JsonObject,
  type AdmittedBatch,
} from '../store.js';

const PENDING_INGRESS = pendingIngressSql({ stream: '$1', nowMs: '$2', limit: '$3' });

const INGRESS_BACKLOG = ingressBacklogSql({ stream: '$1', nowMs: '$2' });

const DEAD_LETTERS = deadLettersSql({
  stream: '$1::text',
  afterAtMs: '$2::bigint',
  afterStream: '$3::text',
  afterKey: '$4::text',
  limit: '$5',
});

const SPOOL_ITEMS = `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body)
  SELECT $1, k, p, $2, b FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(k, p, b, n) ORDER BY n
  ON CONFLICT DO NOTHING`;

function spoolColumns(stream: string, items: readonly IngressItem[], receivedAtMs: number): unknown[] {
  return [
    stream,
    receivedAtMs,
    items.map((item) => requireKey(item.dedupeKey)),
    items.map((item) => item.partitionKey),
    items.map((item) => JSON.stringify(item.body)),
  ];
}

export class PostgresIngress implements IngressSpool {
  readonly #db: PostgresDb;

  constructor(db: PostgresDb) {
    this.#db = db;
  }

  async admitIngress(batches: readonly AdmittedBatch[], receivedAtMs: number): Promise<Array<{ spooled: number; duplicates: number }>> {
    return this.#db.transaction(async (client) => {
      const results: Array<{ spooled: number; duplicates: number }> = [];
      for (const { stream, items, letters } of batches) {
        if (letters.length > 0) {
          await client.query(
            `INSERT INTO ingress_dead_letters (stream, dedupe_key, reason, body, at_ms, partition_key)
             SELECT $1, k, r, b, $2, NULL FROM unnest($3::text[], $4::text[], $5::text[]) AS t(k, r, b) ON CONFLICT DO NOTHING`,
            [
              stream,
              receivedAtMs,
              letters.map((l) => requireKey(l.dedupeKey)),
              letters.map((l) => l.reason),
              letters.map((l) => jsonText(l.body)),
            ],
          );
        }
        const spooled =
          items.length === 0 ? 0 : ((await client.query(SPOOL_ITEMS, spoolColumns(stream, items, receivedAtMs))).rowCount ?? 0);
        results.push({ spooled, duplicates: items.length - spooled });
      }
      return results;
    });
  }

  async spoolIngress(
    stream: string,
    items: readonly IngressItem[],
    receivedAtMs: number,
  ): Promise<{ spooled: number; duplicates: number }> {
    if (items.length === 0) return { spooled: 0, duplicates: 0 };
    // One statement: the sender's batch is in the store as a whole, or not at all (and it sends it again).
    const result = await this.#db.query(SPOOL_ITEMS, spoolColumns(stream, items, receivedAtMs));
    const spooled = result.rowCount ?? 0;
    return { spooled, duplicates: items.length - spooled };
  }

  async pendingIngress(stream: string, options: { nowMs: number; limit: number }): Promise<SpooledItem[]> {
    return (await this.#db.rows<SpooledRow>(PENDING_INGRESS, [stream, options.nowMs, pageLimit(options.limit)])).map(toSpooledItem);
  }

  async completeIngress(stream: string, seqs: readonly number[], doneAtMs: number): Promise<void> {
    for (const chunk of batches(seqs))
      await this.#db.query(
        'UPDATE ingress_spool SET done_at_ms = $1 WHERE stream = $2 AND seq = ANY($3::bigint[]) AND done_at_ms IS NULL',
        [doneAtMs, stream, chunk],
      );
  }

  async discardIngress(stream: string, seqs: readonly number[]): Promise<void> {
    for (const chunk of batches(seqs))
      await this.#db.query('DELETE FROM ingress_spool WHERE stream = $1 AND seq = ANY($2::bigint[])', [stream, chunk]);
  }

  async deferIngress(stream: string, partitionKeys: readonly string[], notBeforeMs: number): Promise<void> {
    for (const chunk of batches(partitionKeys))
      await this.#db.query(
        'UPDATE ingress_spool SET not_before_ms = $1 WHERE stream = $2 AND partition_key = ANY($3::text[]) AND done_at_ms IS NULL',
        [notBeforeMs, stream, chunk],
      );
  }

  async deadLetterIngress(stream: string, letters: ReadonlyArray<DeadLetter | SpooledDeadLetter>, atMs: number): Promise<void> {
    for (const chunk of batches(letters)) {
      await this.#db.transaction(async (client) => {
        await client.query(
          `INSERT INTO ingress_dead_letters (stream, dedupe_key, reason, body, at_ms, partition_key)
           SELECT $1, k, r, b, $2, p FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS t(k, r, b, p) ON CONFLICT DO NOTHING`,
          [
            stream,
            atMs,
            chunk.map((letter) => requireKey(letter.dedupeKey)),
            chunk.map((letter) => letter.reason),
            chunk.map((letter) => jsonText(letter.body)),
            chunk.map((letter) => ('seq' in letter ? letter.partitionKey : null)),
          ],
        );
        const seqs = chunk.flatMap((letter) => ('seq' in letter ? [letter.seq] : []));
        await client.query(
          'UPDATE ingress_spool SET done_at_ms = $1 WHERE stream = $2 AND seq = ANY($3::bigint[]) AND done_at_ms IS NULL',
          [atMs, stream, seqs],
        );
      });
    }
  }

  async streamSettings(stream: string): Promise<JsonObject | undefined> {
    const [row] = await this.#db.rows<{ settings: string }>('SELECT settings FROM stream_settings WHERE stream = $1', [stream]);
    return row && (JSON.parse(row.settings) as JsonObject);
  }

  async saveStreamSettings(stream: string, settings: JsonObject, atMs: number): Promise<void> {
    await this.#db.query(
      `INSERT INTO stream_settings (stream, settings, updated_at_ms) VALUES ($1, $2, $3)
       ON CONFLICT (stream) DO UPDATE SET settings = excluded.settings, updated_at_ms = excluded.updated_at_ms`,
      [stream, JSON.stringify(settings), atMs],
    );
  }

  async deleteStreamSettings(stream: string): Promise<void> {
    await this.#db.query('DELETE FROM stream_settings WHERE stream = $1', [stream]);
  }

  async streamSettingsNamed(prefix: string): Promise<Array<{ stream: string; settings: JsonObject }>> {
    // Names are compared byte-wise: every name with the prefix sorts in [prefix, prefix + U+FFFF).
    const rows = await this.#db.rows<{ stream: string; settings: string }>(
      'SELECT stream, settings FROM stream_settings WHERE stream >= $1 AND stream < $2 ORDER BY stream',
      [prefix, `${prefix}\uffff`],
    );
    return rows.map((row) => ({ stream: row.stream, settings: JSON.parse(row.settings) as JsonObject }));
  }

  async ingressBacklog(stream: string, nowMs: number): Promise<IngressBacklog> {
    return toIngressBacklog(await this.#db.one(INGRESS_BACKLOG, [stream, nowMs]));
  }

  async pendingIngressStreams(): Promise<string[]> {
    return (await this.#db.rows<{ stream: string }>(PENDING_INGRESS_STREAMS, [])).map((row) => row.stream);
  }

  async deadLetters(options: { stream?: string; after?: DeadLetterPosition; limit: number }): Promise<StoredDeadLetter[]> {
    const { afterAtMs, afterStream, afterKey } = options.after
      ? { afterAtMs: options.after.atMs, afterStream: options.after.stream, afterKey: options.after.dedupeKey }
      : NO_POSITION;
    const rows = await this.#db.rows<DeadLetterRow>(DEAD_LETTERS, [
      options.stream ?? null,
      afterAtMs,
      afterStream,
      afterKey,
      pageLimit(options.limit),
    ]);
    return rows.map(toStoredDeadLetter);
  }

  async deadLetterCounts(): Promise<DeadLetterCount[]> {
    return this.#db.rows<DeadLetterCount>(DEAD_LETTER_COUNTS, []);
  }

  async replayDeadLetters(stream: string, replays: readonly DeadLetterReplay[], atMs: number): Promise<number> {
    let replayed = 0;
    for (const chunk of batches(replays)) {
      replayed += await this.#db.transaction(async (client) => {
        await client.query(
          `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body)
           SELECT $1, k, p, $2, b FROM unnest($3::text[], $4::text[], $5::text[]) AS t(k, p, b)
           ON CONFLICT (stream, dedupe_key) DO UPDATE SET partition_key = excluded.partition_key,
             received_at_ms = excluded.received_at_ms, body = excluded.body, not_before_ms = 0, done_at_ms = NULL`,
          [
            stream,
            atMs,
            chunk.map(({ item }) => requireKey(item.dedupeKey)),
            chunk.map(({ item }) => item.partitionKey),
            chunk.map(({ item }) => JSON.stringify(item.body)),
          ],
        );
        const deleted = await client.query('DELETE FROM ingress_dead_letters WHERE stream = $1 AND dedupe_key = ANY($2::text[])', [
          stream,
          chunk.map(({ dedupeKey }) => dedupeKey),
        ]);
        return deleted.rowCount ?? 0;
      });
    }
    return replayed;
  }

  async discardDeadLetters(stream: string, dedupeKeys: readonly string[]): Promise<number> {
    let discarded = 0;
    for (const chunk of batches(dedupeKeys)) {
      const deleted = await this.#db.query('DELETE FROM ingress_dead_letters WHERE stream = $1 AND dedupe_key = ANY($2::text[])', [
        stream,
        chunk,
      ]);
      discarded += deleted.rowCount ?? 0;
    }
    return discarded;
  }

  async pruneIngress(beforeMs: number, limit: number): Promise<number> {
    const result = await this.#db.query(
      'DELETE FROM ingress_spool WHERE seq IN (SELECT seq FROM ingress_spool WHERE done_at_ms < $1 LIMIT $2)',
      [beforeMs, pageLimit(limit)],
    );
    return result.rowCount ?? 0;
  }
}
