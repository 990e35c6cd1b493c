/**
 * The ingress spool: what the receiver accepted, drained in order per partition, deferred, dead-lettered, replayed
 * and pruned. On SQLite; the same contract as src/store/ingress/postgres.ts.
 */
import type Database from 'better-sqlite3';
import { type SqliteDb } from '../sqlite-db.js';
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
  type IngressBacklogRow,
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

export class SqliteIngress implements IngressSpool {
  readonly #db: SqliteDb;
  readonly #sql;

  constructor(db: SqliteDb) {
    this.#db = db;
    this.#sql = prepareStatements(db.handle);
  }

  async admitIngress(batches: readonly AdmittedBatch[], receivedAtMs: number): Promise<Array<{ spooled: number; duplicates: number }>> {
    const admit = this.#db.handle.transaction(() =>
      batches.map(({ stream, items, letters }) => {
        for (const letter of letters)
          this.#sql.insertDeadLetter.run(stream, requireKey(letter.dedupeKey), letter.reason, jsonText(letter.body), receivedAtMs, null);
        const spooled = items.reduce(
          (sum, { dedupeKey, partitionKey, body }) =>
            sum + this.#sql.spoolItem.run(stream, requireKey(dedupeKey), partitionKey, receivedAtMs, JSON.stringify(body)).changes,
          0,
        );
        return { spooled, duplicates: items.length - spooled };
      }),
    );
    return this.#db.settle(() => admit.immediate());
  }

  async spoolIngress(
    stream: string,
    items: readonly IngressItem[],
    receivedAtMs: number,
  ): Promise<{ spooled: number; duplicates: number }> {
    // One transaction: the sender's batch is in the store as a whole, or not at all (and it sends it again).
    const spool = this.#db.handle.transaction(() =>
      items.reduce((spooled, { dedupeKey, partitionKey, body }) => {
        const inserted = this.#sql.spoolItem.run(stream, requireKey(dedupeKey), partitionKey, receivedAtMs, JSON.stringify(body));
        return spooled + inserted.changes;
      }, 0),
    );
    const spooled = await this.#db.settle(() => spool.immediate());
    return { spooled, duplicates: items.length - spooled };
  }

  pendingIngress(stream: string, options: { nowMs: number; limit: number }): Promise<SpooledItem[]> {
    return this.#db.settle(() =>
      this.#sql.pendingIngress.all({ stream, nowMs: options.nowMs, limit: pageLimit(options.limit) }).map(toSpooledItem),
    );
  }

  async completeIngress(stream: string, seqs: readonly number[], doneAtMs: number): Promise<void> {
    await this.#db.inTransactions(seqs, (chunk) => void this.#sql.completeIngress.run(doneAtMs, stream, JSON.stringify(chunk)));
  }

  async discardIngress(stream: string, seqs: readonly number[]): Promise<void> {
    await this.#db.inTransactions(seqs, (chunk) => void this.#sql.discardIngress.run(stream, JSON.stringify(chunk)));
  }

  async deferIngress(stream: string, partitionKeys: readonly string[], notBeforeMs: number): Promise<void> {
    await this.#db.inTransactions(partitionKeys, (chunk) => void this.#sql.deferIngress.run(notBeforeMs, stream, JSON.stringify(chunk)));
  }

  async deadLetterIngress(stream: string, letters: ReadonlyArray<DeadLetter | SpooledDeadLetter>, atMs: number): Promise<void> {
    // Nothing to keep is no write (PostgreSQL's batches() skips it too): a drain calls this every round.
    if (letters.length === 0) return;
    await this.#db.inTransactions(letters, (chunk) => {
      for (const letter of chunk) {
        const partitionKey = 'seq' in letter ? letter.partitionKey : null;
        this.#sql.insertDeadLetter.run(stream, requireKey(letter.dedupeKey), letter.reason, jsonText(letter.body), atMs, partitionKey);
        if ('seq' in letter) this.#sql.completeIngress.run(atMs, stream, JSON.stringify([letter.seq]));
      }
    });
  }

  streamSettings(stream: string): Promise<JsonObject | undefined> {
    return this.#db.settle(() => {
      const row = this.#sql.streamSettings.get(stream);
      return row && (JSON.parse(row.settings) as JsonObject);
    });
  }

  saveStreamSettings(stream: string, settings: JsonObject, atMs: number): Promise<void> {
    return this.#db.settle(() => void this.#sql.saveStreamSettings.run(stream, JSON.stringify(settings), atMs));
  }

  deleteStreamSettings(stream: string): Promise<void> {
    return this.#db.settle(() => void this.#sql.deleteStreamSettings.run(stream));
  }

  streamSettingsNamed(prefix: string): Promise<Array<{ stream: string; settings: JsonObject }>> {
    // Names are compared byte-wise: every name with the prefix sorts in [prefix, prefix + U+FFFF).
    return this.#db.settle(() =>
      this.#sql.streamSettingsNamed
        .all(prefix, `${prefix}\uffff`)
        .map((row) => ({ stream: row.stream, settings: JSON.parse(row.settings) as JsonObject })),
    );
  }

  ingressBacklog(stream: string, nowMs: number): Promise<IngressBacklog> {
    return this.#db.settle(() => toIngressBacklog(this.#sql.ingressBacklog.get({ stream, nowMs })!));
  }

  pendingIngressStreams(): Promise<string[]> {
    return this.#db.settle(() => this.#sql.pendingIngressStreams.all().map((row) => row.stream));
  }

  deadLetters(options: { stream?: string; after?: DeadLetterPosition; limit: number }): Promise<StoredDeadLetter[]> {
    const { stream = null, after } = options;
    const position = after ? { afterAtMs: after.atMs, afterStream: after.stream, afterKey: after.dedupeKey } : NO_POSITION;
    return this.#db.settle(() =>
      this.#sql.deadLetters.all({ stream, ...position, limit: pageLimit(options.limit) }).map(toStoredDeadLetter),
    );
  }

  deadLetterCounts(): Promise<DeadLetterCount[]> {
    return this.#db.settle(() => this.#sql.deadLetterCounts.all());
  }

  async replayDeadLetters(stream: string, replays: readonly DeadLetterReplay[], atMs: number): Promise<number> {
    let replayed = 0;
    await this.#db.inTransactions(replays, (chunk) => {
      for (const { dedupeKey, item } of chunk) {
        const spool = [stream, requireKey(item.dedupeKey), item.partitionKey, atMs, JSON.stringify(item.body)] as const;
        this.#sql.respoolItem.run(...spool);
        replayed += this.#sql.deleteDeadLetter.run(stream, dedupeKey).changes;
      }
    });
    return replayed;
  }

  async discardDeadLetters(stream: string, dedupeKeys: readonly string[]): Promise<number> {
    let discarded = 0;
    await this.#db.inTransactions(dedupeKeys, (chunk) => {
      for (const key of chunk) discarded += this.#sql.deleteDeadLetter.run(stream, key).changes;
    });
    return discarded;
  }

  pruneIngress(beforeMs: number, limit: number): Promise<number> {
    return this.#db.settle(() => this.#sql.pruneIngress.run(beforeMs, pageLimit(limit)).changes);
  }
}

function prepareStatements(db: Database.Database) {
  return {
    deleteStreamSettings: db.prepare<[string]>('DELETE FROM stream_settings WHERE stream = ?'),
    streamSettingsNamed: db.prepare<[string, string], { stream: string; settings: string }>(
      'SELECT stream, settings FROM stream_settings WHERE stream >= ? AND stream < ? ORDER BY stream',
    ),
    saveStreamSettings: db.prepare<[string, string, number]>(
      `INSERT INTO stream_settings (stream, settings, updated_at_ms) VALUES (?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET settings = excluded.settings, updated_at_ms = excluded.updated_at_ms`,
    ),
    streamSettings: db.prepare<[string], { settings: string }>('SELECT settings FROM stream_settings WHERE stream = ?'),
    completeIngress: db.prepare<[number, string, string]>(
      'UPDATE ingress_spool SET done_at_ms = ? WHERE stream = ? AND seq IN (SELECT value FROM json_each(?)) AND done_at_ms IS NULL',
    ),
    discardIngress: db.prepare<[string, string]>('DELETE FROM ingress_spool WHERE stream = ? AND seq IN (SELECT value FROM json_each(?))'),
    deadLetterCounts: db.prepare<[], DeadLetterCount>(DEAD_LETTER_COUNTS),
    deadLetters: db.prepare<
      { stream: string | null; afterAtMs: number; afterStream: string; afterKey: string; limit: number },
      DeadLetterRow
    >(deadLettersSql({ stream: '@stream', afterAtMs: '@afterAtMs', afterStream: '@afterStream', afterKey: '@afterKey', limit: '@limit' })),
    deferIngress: db.prepare<[number, string, string]>(
      `UPDATE ingress_spool SET not_before_ms = ?
       WHERE stream = ? AND partition_key IN (SELECT value FROM json_each(?)) AND done_at_ms IS NULL`,
    ),
    deleteDeadLetter: db.prepare<[string, string]>('DELETE FROM ingress_dead_letters WHERE stream = ? AND dedupe_key = ?'),
    ingressBacklog: db.prepare<{ stream: string; nowMs: number }, IngressBacklogRow>(
      ingressBacklogSql({ stream: '@stream', nowMs: '@nowMs' }),
    ),
    insertDeadLetter: db.prepare<[string, string, string, string, number, string | null]>(
      `INSERT INTO ingress_dead_letters (stream, dedupe_key, reason, body, at_ms, partition_key) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    pendingIngress: db.prepare<{ stream: string; nowMs: number; limit: number }, SpooledRow>(
      pendingIngressSql({ stream: '@stream', nowMs: '@nowMs', limit: '@limit' }),
    ),
    pendingIngressStreams: db.prepare<[], { stream: string }>(PENDING_INGRESS_STREAMS),
    pruneIngress: db.prepare<[number, number]>(
      'DELETE FROM ingress_spool WHERE seq IN (SELECT seq FROM ingress_spool WHERE done_at_ms < ? LIMIT ?)',
    ),
    respoolItem: db.prepare<[string, string, string, number, string]>(
      `INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (stream, dedupe_key) DO UPDATE SET partition_key = excluded.partition_key, received_at_ms = excluded.received_at_ms,
         body = excluded.body, not_before_ms = 0, done_at_ms = NULL`,
    ),
    spoolItem: db.prepare<[string, string, string, number, string]>(
      'INSERT INTO ingress_spool (stream, dedupe_key, partition_key, received_at_ms, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
  };
}
