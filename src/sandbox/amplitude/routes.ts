/** Which handler serves each path, and what stands in front of it (faults, Basic auth, the concurrency limit). */
import { cohortExportFile, cohortExportStatus, listCohorts, presignedCohortFile, requestCohortExport } from './cohort-api.js';
import type { Exchange } from './context.js';
import {
  advanceDeletionClock,
  changeCohortMembers,
  cohortWebhookReport,
  configureCohortWebhooks,
  configureEventStream,
  eventStreamReport,
  exportHour,
  sandboxEvents,
  setProfileLimit,
  sandboxState,
  setHotIds,
  setUnnamedRefusals,
  setSandboxFaults,
} from './control-api.js';
import { exportEvents } from './export-api.js';
import { identify } from './identify-api.js';
import { eventUpload } from './ingest-api.js';
import { listDeletionJobs, requestDeletions } from './privacy-api.js';
import { userProfile } from './profile-api.js';
import { userActivity } from './user-activity-api.js';

/**
 * - `dashboard`: Amplitude's `/api/*` (Basic auth, shared concurrency limit, fault injection);
 * - `user-lookup`: User Activity (Basic auth, its own concurrency limit, fault injection);
 * - `vendor`: the other Amplitude hosts (their own auth, fault injection);
 * - `open`: pre-signed S3 links and the sandbox's own control endpoints.
 */
export type RouteGuard = 'dashboard' | 'user-lookup' | 'vendor' | 'open';

export interface Route {
  methods: readonly string[];
  path: RegExp;
  guard: RouteGuard;
  handle: (exchange: Exchange, ...params: string[]) => void | Promise<void>;
}

const GET = ['GET'];
const POST = ['POST'];

export const ROUTES: readonly Route[] = [
  { methods: GET, path: /^\/api\/3\/cohorts$/, guard: 'dashboard', handle: listCohorts },
  { methods: GET, path: /^\/api\/5\/cohorts\/request\/([^/]+)$/, guard: 'dashboard', handle: requestCohortExport },
  { methods: GET, path: /^\/api\/5\/cohorts\/request-status\/([^/]+)$/, guard: 'dashboard', handle: cohortExportStatus },
  { methods: GET, path: /^\/api\/5\/cohorts\/request\/([^/]+)\/file$/, guard: 'dashboard', handle: cohortExportFile },
  { methods: GET, path: /^\/api\/2\/export$/, guard: 'dashboard', handle: exportEvents },
  { methods: GET, path: /^\/api\/2\/useractivity$/, guard: 'user-lookup', handle: userActivity },
  { methods: POST, path: /^\/api\/2\/deletions\/users$/, guard: 'dashboard', handle: requestDeletions },
  { methods: GET, path: /^\/api\/2\/deletions\/users$/, guard: 'dashboard', handle: listDeletionJobs },
  { methods: GET, path: /^\/s3\/([^/]+)$/, guard: 'open', handle: presignedCohortFile },
  { methods: GET, path: /^\/v1\/userprofile$/, guard: 'vendor', handle: userProfile },
  { methods: POST, path: /^\/2\/httpapi$/, guard: 'vendor', handle: eventUpload('httpapi') },
  { methods: POST, path: /^\/batch$/, guard: 'vendor', handle: eventUpload('batch') },
  { methods: ['GET', 'POST'], path: /^\/identify$/, guard: 'vendor', handle: identify },
  { methods: GET, path: /^\/_sandbox\/state$/, guard: 'open', handle: sandboxState },
  { methods: GET, path: /^\/_sandbox\/events$/, guard: 'open', handle: sandboxEvents },
  { methods: GET, path: /^\/_sandbox\/export\/([^/]+)$/, guard: 'open', handle: exportHour },
  { methods: POST, path: /^\/_sandbox\/cohorts\/([^/]+)\/members$/, guard: 'open', handle: changeCohortMembers },
  { methods: POST, path: /^\/_sandbox\/faults$/, guard: 'open', handle: setSandboxFaults },
  { methods: POST, path: /^\/_sandbox\/hot-ids$/, guard: 'open', handle: setHotIds },
  { methods: POST, path: /^\/_sandbox\/profile-limit$/, guard: 'open', handle: setProfileLimit },
  { methods: POST, path: /^\/_sandbox\/unnamed-refusals$/, guard: 'open', handle: setUnnamedRefusals },
  { methods: ['POST', 'DELETE'], path: /^\/_sandbox\/cohort-webhooks$/, guard: 'open', handle: configureCohortWebhooks },
  { methods: GET, path: /^\/_sandbox\/cohort-webhooks$/, guard: 'open', handle: cohortWebhookReport },
  { methods: ['POST', 'DELETE'], path: /^\/_sandbox\/event-stream$/, guard: 'open', handle: configureEventStream },
  { methods: GET, path: /^\/_sandbox\/event-stream$/, guard: 'open', handle: eventStreamReport },
  { methods: POST, path: /^\/_sandbox\/deletions\/advance$/, guard: 'open', handle: advanceDeletionClock },
];

export function matchRoute(method: string, pathname: string): { route: Route; params: string[] } | undefined {
  for (const route of ROUTES) {
    const match = route.path.exec(pathname);
    if (match && route.methods.includes(method)) return { route, params: match.slice(1).map(decodeURIComponent) };
  }
  return undefined;
}
