/**
 * Both sandboxes over one seeded dataset: users known to Amplitude are (mostly) known to Braze too, as in a
 * real workspace. Used by `npm run sandbox`, the demo and the tests.
 */
import { startAmplitudeSandbox, type AmplitudeSandbox } from './amplitude/index.js';
import type { AmplitudeSandboxOptions } from './amplitude/options.js';
import { startBrazeSandbox, type BrazeSandbox, type BrazeSandboxOptions } from './braze/index.js';
import { Dataset, type DatasetOptions } from './dataset.js';

export interface SandboxesOptions {
  seed: number;
  users: number;
  amplitudePort?: number;
  brazePort?: number;
  /** Partner cohort API enabled in the Braze sandbox (default true). */
  partner?: boolean;
  dataset?: Partial<DatasetOptions>;
  amplitude?: Partial<AmplitudeSandboxOptions>;
  braze?: Partial<BrazeSandboxOptions>;
}

/** Fixed, obviously fake credentials: the sandboxes check them exactly as the vendors would. */
export const SANDBOX_CREDENTIALS = {
  amplitudeApiKey: 'sandbox-amplitude-api-key',
  amplitudeSecretKey: 'sandbox-amplitude-secret-key',
  brazeApiKey: 'sandbox-braze-rest-key',
  brazePartnerName: 'amplitude',
  brazePartnerApiKey: 'sandbox-braze-partner-key',
  brazeDataImportKey: 'sandbox-braze-data-import-key',
} as const;

export interface Sandboxes {
  dataset: Dataset;
  amplitude: AmplitudeSandbox;
  braze: BrazeSandbox;
  /** The environment a worker needs to use these sandboxes. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startSandboxes(options: SandboxesOptions): Promise<Sandboxes> {
  const dataset = new Dataset({ ...options.dataset, seed: options.seed, users: options.users });
  const credentials = SANDBOX_CREDENTIALS;
  const partner = options.partner ?? true;
  const amplitude = await startAmplitudeSandbox({
    port: options.amplitudePort ?? 0,
    apiKey: credentials.amplitudeApiKey,
    secretKey: credentials.amplitudeSecretKey,
    dataset,
    ...options.amplitude,
  });
  const braze = await startBrazeSandbox({
    port: options.brazePort ?? 0,
    apiKeys: [{ key: credentials.brazeApiKey }],
    initialUsers: brazeProfilesOf(dataset),
    partner: partner
      ? {
          name: credentials.brazePartnerName,
          partnerApiKey: credentials.brazePartnerApiKey,
          dataImportKeys: [credentials.brazeDataImportKey],
        }
      : undefined,
    ...options.braze,
  });
  const env: Record<string, string> = {
    AMPLITUDE_API_KEY: credentials.amplitudeApiKey,
    AMPLITUDE_SECRET_KEY: credentials.amplitudeSecretKey,
    AMPLITUDE_API_URL: amplitude.url,
    AMPLITUDE_PROFILE_API_URL: amplitude.url,
    AMPLITUDE_INGEST_URL: amplitude.url,
    BRAZE_REST_ENDPOINT: braze.url,
    BRAZE_API_KEY: credentials.brazeApiKey,
    ...(partner
      ? {
          BRAZE_PARTNER_NAME: credentials.brazePartnerName,
          BRAZE_PARTNER_API_KEY: credentials.brazePartnerApiKey,
          BRAZE_DATA_IMPORT_KEY: credentials.brazeDataImportKey,
        }
      : {}),
  };
  return {
    dataset,
    amplitude,
    braze,
    env,
    close: async () => {
      await Promise.all([amplitude.close(), braze.close()]);
    },
  };
}

function* brazeProfilesOf(dataset: Dataset) {
  for (const user of dataset.identities()) {
    if (!user.existsInBraze) continue;
    yield user.userId ? { external_id: user.userId } : { device_ids: [dataset.deviceIdOf(user.index)] };
  }
}
