import { patched, proxyActivities } from '@temporalio/workflow';
import type { DoctorActivities, DoctorReport } from '../activities/doctor.js';

// Each check catches its own vendor errors and reports them; one attempt shows the truth of the moment.
const checks = proxyActivities<DoctorActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

/** Proves the whole path (client → Temporal → worker → activity → vendor API) and reports each check plainly. */
export async function doctor(): Promise<DoctorReport> {
  const results = await Promise.all([
    checks.checkWorker(),
    checks.checkStateStore(),
    checks.checkAmplitudeCohortApi(),
    checks.checkAmplitudeProfileApi(),
    checks.checkBrazeRestApi(),
    checks.checkBrazePartnerApi(),
    // Doctor runs recorded before the backlog check replay without it.
    ...(patched('ingress-backlog-check') ? [checks.checkIngressBacklogs()] : []),
  ]);
  return { ok: results.every((check) => check.status !== 'failed'), checks: results };
}
