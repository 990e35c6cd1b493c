/**
 * The SQLite connection every SQLite concern of the store shares (better-sqlite3), and how work runs on it: one
 * synchronous unit at a time (a statement, or a transaction, which a failure rolls back), waiting for another
 * process's write lock on timers rather than on the event loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { attributePatches, chunks, requireKey, yieldToEventLoop } from './shared.js';

/** How long an operation waits for the write lock, in all, unless the store is opened with another timeout. */
export const DEFAULT_SQLITE_TIMEOUT_MS = 5 * 60_000;

export class SqliteDb {
  constructor(
    readonly handle: Database.Database,
    private readonly timeoutMs = DEFAULT_SQLITE_TIMEOUT_MS,
  ) {}

  /**
   * Runs one synchronous unit of SQLite work so that any error arrives as a rejected promise. While another process
   * holds the write lock, it tries again on a timer until the store's timeout: the event loop is never blocked for
   * longer than SQLite's own short busy wait.
   */
  async settle<T>(work: () => T): Promise<T> {
    for (let deadline = Date.now() + this.timeoutMs, pauseMs = 2; ; pauseMs = Math.min(pauseMs * 2, 50)) {
      try {
        return work();
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw error;
      }
      await sleep(pauseMs * (0.5 + Math.random()));
    }
  }

  /** Applies `apply` to chunks of at most MAX_ROWS_PER_TRANSACTION items, one transaction each (at least one). */
  async inTransactions<T>(items: readonly T[], apply: (chunk: readonly T[], isLast: boolean) => void): Promise<void> {
    const all = chunks(items);
    for (const [index, chunk] of all.entries()) {
      await this.settle(() => this.handle.transaction(() => apply(chunk, index === all.length - 1)).immediate());
      await yieldToEventLoop();
    }
  }
}

/** SQLITE_BUSY and its extended codes: another connection holds the lock; the work can simply run again. */
export function isBusy(error: unknown): boolean {
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
}

/** Attribute snapshot changes (a null value unsets) as the JSON array of [member, patch] the merge statement reads. */
export function attributePatchesJson(changes: readonly { memberKey: string; attribute: string; value: string | null }[]): string {
  return JSON.stringify([...attributePatches(changes)].map(([memberKey, patch]) => [requireKey(memberKey), patch]));
}
