import { activityInfo } from '@temporalio/activity';
import { latestVersionOf, MIGRATIONS } from '../src/store/migrations.js';
import { CURRENTS_STREAM } from '../src/currents/amplitude-events.js';
import type { WorkerContext } from '../src/worker-context.js';
import { cohortStreamBacklog } from '../kinds/cohort-stream/activities.js';
import { currentsBacklog } from '../kinds/currents-forward/activities.js';

export interface CheckResult {
  name: string;
  /** `warning`: works, but needs a look (a backlog growing old); not a failure. */
  status: 'ok' | 'warning' | 'failed' | 'skipped';
  detail: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: CheckResult[];
}

/** Turns a check body into a result: any error becomes a failed check carrying its (secret-free) message. */
async function check(name: string, body: () => Promise<string>): Promise<CheckResult> {
  try {
    return { name, status: 'ok', detail: await body() };
  } catch (error) {
    return { name, status: 'failed', detail: error instanceof Error ? error.message : String(error) };
  }
}

export function createDoctorActivities(context: WorkerContext) {
  return {
    async checkWorker(): Promise<CheckResult> {
      const info = activityInfo();
      return check('Temporal', () =>
        Promise.resolve(`worker ${context.workerIdentity} polls task queue "${info.taskQueue}" in namespace "${info.workflowNamespace}"`),
      );
    },

    async checkStateStore(): Promise<CheckResult> {
      const { store } = context;
      return check('State store', async () => {
        try {
          const version = await store.schemaVersion();
          const latest = latestVersionOf(MIGRATIONS);
          if (version !== latest) throw new Error(`reachable, but at schema version ${version} where this build expects ${latest}`);
          await store.probeWrite();
          return `${store.description}: reachable, migrated (schema version ${version}), writable`;
        } catch (error) {
          throw new Error(`${store.description}: ${error instanceof Error ? error.message : String(error)}`);
        }
      });
    },

    async checkAmplitudeCohortApi(): Promise<CheckResult> {
      return check('Amplitude cohort API', async () => {
        const cohorts = await context.amplitude.listCohorts();
        return `${cohorts.length} cohorts visible`;
      });
    },

    async checkAmplitudeProfileApi(): Promise<CheckResult> {
      if (!context.amplitudeProfileApiAvailable) {
        return {
          name: 'Amplitude User Profile API',
          status: 'skipped',
          detail: 'not available in the EU region (set AMPLITUDE_PROFILE_API_URL to override)',
        };
      }
      return check('Amplitude User Profile API', async () => {
        // An unknown user id proves the key works without reading anyone's profile.
        await context.amplitude.getUserProfile({ userId: 'ampbraze-doctor-probe' }, {});
        return 'secret key accepted';
      });
    },

    async checkBrazeRestApi(): Promise<CheckResult> {
      return check('Braze REST API', async () => {
        await context.braze.ping();
        return 'API key accepted';
      });
    },

    /** The receiver's spools: Currents events not yet forwarded, cohort webhook changes not yet applied, and their age. */
    async checkIngressBacklogs(): Promise<CheckResult> {
      const name = 'Ingress backlogs';
      try {
        const streams = (await context.store.pendingIngressStreams()).filter((stream) => stream !== CURRENTS_STREAM);
        const backlogs = [
          { what: 'Currents → Amplitude', backlog: await currentsBacklog(context) },
          ...(await Promise.all(
            streams.map(async (stream) => ({
              what: `${stream.slice(stream.indexOf(':') + 1)} webhooks`,
              backlog: await cohortStreamBacklog(context, stream),
            })),
          )),
        ];
        const detail = backlogs
          .map(
            ({ what, backlog }) =>
              `${what}: ${backlog.pending} waiting${backlog.pending > 0 ? `, the oldest ${Math.round(backlog.oldestAgeMs / 1000)} s` : ''}${backlog.warning ? ` (${backlog.warning})` : ''}`,
          )
          .join('; ');
        const letters = await context.store.deadLetterCounts();
        const deadLettered = letters.reduce((sum, { count }) => sum + count, 0);
        const tooMany = deadLettered > context.currents.deadLetterWarnCount;
        const lettersDetail = tooMany
          ? `; ${deadLettered} dead letters (${letters.map(({ stream, count }) => `${stream}: ${count}`).join(', ')}), over DEAD_LETTER_WARN_COUNT (${context.currents.deadLetterWarnCount}): \`ampbraze deadletters list\` shows why`
          : '';
        const warn = tooMany || backlogs.some(({ backlog }) => backlog.warning);
        return { name, status: warn ? 'warning' : 'ok', detail: `${detail}${lettersDetail}` };
      } catch (error) {
        return { name, status: 'failed', detail: error instanceof Error ? error.message : String(error) };
      }
    },

    checkBrazePartnerApi(): Promise<CheckResult> {
      if (!context.brazePartnerConfigured) {
        return Promise.resolve({
          name: 'Braze partner cohort API',
          status: 'skipped',
          detail: 'not configured (set BRAZE_PARTNER_NAME, BRAZE_PARTNER_API_KEY and BRAZE_DATA_IMPORT_KEY to enable native cohorts)',
        });
      }
      return Promise.resolve({
        name: 'Braze partner cohort API',
        status: 'ok',
        detail: 'configured; keys are verified on the first partner-cohort sync (the API has no read-only call)',
      });
    },
  };
}

export type DoctorActivities = ReturnType<typeof createDoctorActivities>;
