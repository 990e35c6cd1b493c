/**
 * Cohort-sync steps shared by the end-to-end tests and `npm run record:histories`: a membership change as
 * Amplitude's recompute would make it, and following a run's progress (to see it pause over its budget).
 */
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { getSyncProgress } from '../../src/client.js';
import type { Dataset } from '../../src/sandbox/dataset.js';
import type { CohortSyncProgress } from '../../kinds/cohort-sync/workflow.js';

/** Moves `leave` identified members out of the cohort and `enter` identified non-members into it. */
export function changeCohortMembership(dataset: Dataset, cohortId: string, counts: { leave: number; enter: number }): void {
  const members = [...dataset.cohortMembers(cohortId)];
  const memberIds = new Set(members.map((m) => m.amplitudeId));
  const leaving = members.filter((m) => m.userId).slice(0, counts.leave);
  const entering = [...dataset.identities()].filter((u) => u.userId && !memberIds.has(u.amplitudeId)).slice(0, counts.enter);
  dataset.removeCohortMembers(
    cohortId,
    leaving.map((m) => m.amplitudeId),
  );
  dataset.addCohortMembers(
    cohortId,
    entering.map((u) => u.amplitudeId),
  );
}

/** Polls the progress query until `reached` holds (or gives up after 20 s and returns the last progress). */
export async function waitForProgress(
  client: Client,
  workflowId: string,
  reached: (progress: CohortSyncProgress) => boolean,
): Promise<CohortSyncProgress> {
  let progress = await getSyncProgress(client, workflowId);
  for (let i = 0; i < 100 && !reached(progress); i++) {
    await new Promise((r) => setTimeout(r, 200));
    progress = await getSyncProgress(client, workflowId);
  }
  return progress;
}

export async function waitUntilPaused(client: Client, workflowId: string): Promise<CohortSyncProgress> {
  const progress = await waitForProgress(client, workflowId, (p) => p.phase === 'paused');
  assert.equal(progress.phase, 'paused');
  return progress;
}
