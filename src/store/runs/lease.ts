/**
 * The sync-lease rule, written once as SQL that both stores run (src/store/dialect.ts): a claim takes a lease no one
 * holds, renews its own, or takes one whose holder let it lapse; otherwise it is told who holds it.
 */
import type { SqlDialect } from '../dialect.js';
import type { SyncLeaseClaim, SyncLeaseHold } from '../store.js';

export interface LeaseHolderRow {
  holder: string;
  workflowId: string;
  hold: SyncLeaseHold;
  expiresAtMs: number;
}

export function leaseStatements({ param }: SqlDialect): { claim: string; holder: string; release: string } {
  return {
    // Changes one row when the claim holds. On PostgreSQL the upsert locks an existing lease row even when its WHERE
    // refuses the claim, so the holder read next is current; on SQLite the claim runs under the write lock.
    claim: `INSERT INTO sync_leases AS l (sync_id, holder, workflow_id, hold, expires_at_ms)
      VALUES (${param(1)}, ${param(2)}, ${param(3)}, ${param(4)}, ${param(5, 'number')})
      ON CONFLICT (sync_id) DO UPDATE SET holder = excluded.holder, workflow_id = excluded.workflow_id, hold = excluded.hold,
        expires_at_ms = excluded.expires_at_ms
      WHERE l.holder = excluded.holder OR l.expires_at_ms <= ${param(6, 'number')}`,
    holder: `SELECT holder, workflow_id AS "workflowId", hold, expires_at_ms AS "expiresAtMs" FROM sync_leases WHERE sync_id = ${param(1)}`,
    release: `DELETE FROM sync_leases WHERE sync_id = ${param(1)} AND holder = ${param(2)}`,
  };
}

/** The parameters of `claim`. */
export function claimParameters(claim: SyncLeaseClaim): [string, string, string, SyncLeaseHold, number, number] {
  const { syncId, holder, workflowId, hold, ttlMs, nowMs } = claim;
  return [syncId, holder, workflowId, hold, nowMs + ttlMs, nowMs];
}
