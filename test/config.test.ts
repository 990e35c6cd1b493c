import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfigError,
  loadAmplitudeConfig,
  loadBrazeConfig,
  loadConfig,
  loadStoreConfig,
  loadTemporalConfig,
  redactedConfig,
  temporalConnectionOptions,
  type ConfigProblem,
  type Env,
} from '../src/config.js';

const SECRETS = {
  AMPLITUDE_API_KEY: 'amp-api-key-s3cr3t',
  AMPLITUDE_SECRET_KEY: 'amp-secret-key-s3cr3t',
  BRAZE_API_KEY: 'braze-rest-key-s3cr3t',
};

const minimalEnv: Env = { ...SECRETS, BRAZE_REST_ENDPOINT: 'https://rest.iad-01.braze.com' };

function configErrorOf(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail('expected a ConfigError');
}

const problemsOf = (load: () => unknown): readonly ConfigProblem[] => configErrorOf(load).problems;
const messageOf = (load: () => unknown): string => configErrorOf(load).message;

describe('loadConfig', () => {
  void test('applies the documented defaults', () => {
    const config = loadConfig(minimalEnv);
    assert.deepEqual(config.temporal, {
      address: 'localhost:7233',
      namespace: 'default',
      taskQueue: 'amplitude-braze-sync',
      apiKey: undefined,
      tls: undefined,
      grpcMetadata: {},
      workerPrometheusAddress: undefined,
      workerMaxConcurrentActivities: 20,
      workerShutdownGraceMs: 30_000,
    });
    assert.equal(config.amplitude.region, 'us');
    assert.equal(config.amplitude.apiUrl, 'https://amplitude.com');
    assert.equal(config.amplitude.profileApiUrl, 'https://profile-api.amplitude.com');
    assert.equal(config.amplitude.ingestUrl, 'https://api2.amplitude.com');
    assert.equal(config.amplitude.cohortDownloadsPerMonth, 500);
    assert.equal(config.amplitude.apiKey.reveal(), SECRETS.AMPLITUDE_API_KEY);
    assert.equal(config.braze.restEndpoint, 'https://rest.iad-01.braze.com');
    assert.equal(config.braze.apiKey.reveal(), SECRETS.BRAZE_API_KEY);
    assert.deepEqual(config.braze.objectLimit, { mode: 'per_array', maxObjects: 75 });
    assert.deepEqual(config.braze.rateLimit, { requests: 3000, windowMs: 3000 });
    assert.equal(config.braze.partner, undefined);
    assert.equal(config.braze.appId, undefined);
    assert.deepEqual(config.store, { kind: 'sqlite', path: 'data/state.db' });
  });

  void test('reads the worker settings and names a bad one', () => {
    const config = loadConfig({ ...minimalEnv, WORKER_MAX_CONCURRENT_ACTIVITIES: '8', WORKER_SHUTDOWN_GRACE: '2m' });
    assert.deepEqual([config.temporal.workerMaxConcurrentActivities, config.temporal.workerShutdownGraceMs], [8, 120_000]);
    const problems = problemsOf(() => loadConfig({ ...minimalEnv, WORKER_MAX_CONCURRENT_ACTIVITIES: '0', WORKER_SHUTDOWN_GRACE: 'soon' }));
    assert.deepEqual(
      problems.map((problem) => problem.variable),
      ['WORKER_MAX_CONCURRENT_ACTIVITIES', 'WORKER_SHUTDOWN_GRACE'],
    );
  });

  void test('treats empty and blank values as unset', () => {
    const config = loadConfig({ ...minimalEnv, TEMPORAL_ADDRESS: '', AMPLITUDE_REGION: '  ', STATE_DB: '' });
    assert.equal(config.temporal.address, 'localhost:7233');
    assert.equal(config.amplitude.region, 'us');
    assert.deepEqual(config.store, { kind: 'sqlite', path: 'data/state.db' });
  });

  void test('lists every problem of every section in one error, one line each', () => {
    const env = { ...minimalEnv, BRAZE_API_KEY: undefined, AMPLITUDE_REGION: 'mars', AMPLITUDE_API_URL: 'not a url' };
    const error = configErrorOf(() => loadConfig(env));
    assert.deepEqual(
      error.problems.map((problem) => problem.variable),
      ['AMPLITUDE_REGION', 'AMPLITUDE_API_URL', 'BRAZE_API_KEY'],
    );
    const lines = error.message.split('\n');
    assert.equal(lines[0], 'Invalid configuration (3 problems):');
    assert.deepEqual(lines.slice(1), [
      '  AMPLITUDE_REGION: must be "us" or "eu"',
      '  AMPLITUDE_API_URL: must be an http(s) URL such as https://example.com',
      '  BRAZE_API_KEY: is required (a REST API key with the users.track and users.export.ids permissions)',
    ]);
  });

  void test('rejects a quoted Braze key with a hint, without echoing it', () => {
    const message = messageOf(() => loadBrazeConfig({ ...minimalEnv, BRAZE_API_KEY: `"${SECRETS.BRAZE_API_KEY}"` }));
    assert.match(message, /BRAZE_API_KEY: is wrapped in quotes; remove them \(Braze answers 401 for a quoted key\)/);
    assert.ok(!message.includes(SECRETS.BRAZE_API_KEY));
    assert.equal(
      problemsOf(() => loadAmplitudeConfig({ ...minimalEnv, AMPLITUDE_SECRET_KEY: `'${SECRETS.AMPLITUDE_SECRET_KEY}'` }))[0]?.variable,
      'AMPLITUDE_SECRET_KEY',
    );
  });

  void test('never shows a secret in an error, in redactedConfig, in JSON or in console output', () => {
    const partnerSecrets = {
      BRAZE_PARTNER_API_KEY: 'partner-key-s3cr3t',
      BRAZE_DATA_IMPORT_KEY: 'data-import-s3cr3t',
      TEMPORAL_API_KEY: 'temporal-key-s3cr3t',
    };
    const env = {
      ...minimalEnv,
      ...partnerSecrets,
      BRAZE_PARTNER_NAME: 'amplitude',
      TEMPORAL_GRPC_META_X_TENANT_TOKEN: 'grpc-meta-s3cr3t',
    };
    const allSecrets = [...Object.values(SECRETS), ...Object.values(partnerSecrets), 'grpc-meta-s3cr3t'];

    const config = loadConfig(env);
    const renderings = [
      JSON.stringify(redactedConfig(config)),
      JSON.stringify(config),
      inspect(config, { depth: 10 }),
      String(config.braze.apiKey),
    ];
    for (const rendering of renderings) {
      for (const secret of allSecrets) assert.ok(!rendering.includes(secret), `${secret} leaked into ${rendering}`);
    }
    const redacted = redactedConfig(config);
    assert.equal(redacted.braze.apiKey, '***');
    assert.equal(redacted.braze.partner?.dataImportKey, '***');
    assert.equal(redacted.temporal.grpcMetadata['x-tenant-token'], '***');
    assert.equal(redacted.braze.restEndpoint, 'https://rest.iad-01.braze.com');

    const broken = {
      ...env,
      AMPLITUDE_REGION: 'nowhere',
      BRAZE_API_KEY: `"${SECRETS.BRAZE_API_KEY}"`,
      STATE_DB: 'postgres://user:db-password-s3cr3t@db/state',
    };
    const message = messageOf(() => loadConfig(broken));
    for (const secret of [...allSecrets, 'db-password-s3cr3t']) assert.ok(!message.includes(secret), `${secret} leaked into the error`);
  });

  void test('resolves EU hosts, with no Profile API unless overridden', () => {
    const eu = loadAmplitudeConfig({ ...minimalEnv, AMPLITUDE_REGION: 'EU' });
    assert.equal(eu.region, 'eu');
    assert.equal(eu.apiUrl, 'https://analytics.eu.amplitude.com');
    assert.equal(eu.profileApiUrl, undefined);
    assert.equal(eu.ingestUrl, 'https://api.eu.amplitude.com');

    const overridden = loadAmplitudeConfig({ ...minimalEnv, AMPLITUDE_REGION: 'eu', AMPLITUDE_PROFILE_API_URL: 'http://127.0.0.1:4010/' });
    assert.equal(overridden.profileApiUrl, 'http://127.0.0.1:4010');
    assert.equal(overridden.apiUrl, 'https://analytics.eu.amplitude.com');
  });

  void test('enables partner cohorts only when name, partner key and data import key are all set', () => {
    const partnerVariables = { BRAZE_PARTNER_NAME: 'amplitude', BRAZE_PARTNER_API_KEY: 'partner-key', BRAZE_DATA_IMPORT_KEY: 'import-key' };
    for (const left of Object.keys(partnerVariables)) {
      assert.equal(
        loadBrazeConfig({ ...minimalEnv, ...partnerVariables, [left]: undefined }).partner,
        undefined,
        `partner without ${left}`,
      );
    }
    const partner = loadBrazeConfig({ ...minimalEnv, ...partnerVariables }).partner;
    assert.equal(partner?.name, 'amplitude');
    assert.equal(partner?.partnerApiKey.reveal(), 'partner-key');
    assert.equal(partner?.dataImportKey.reveal(), 'import-key');
  });
});

describe('loadBrazeConfig', () => {
  void test('refuses an SDK endpoint and names the REST one', () => {
    const message = messageOf(() => loadBrazeConfig({ ...minimalEnv, BRAZE_REST_ENDPOINT: 'https://sdk.iad-01.braze.com' }));
    assert.match(message, /BRAZE_REST_ENDPOINT: is an SDK endpoint, not a REST endpoint: use https:\/\/rest\.iad-01\.braze\.com/);
  });

  void test('parses object and rate limits, and explains bad ones', () => {
    const config = loadBrazeConfig({ ...minimalEnv, BRAZE_OBJECT_LIMIT: 'combined:50', BRAZE_RATE_LIMIT: '250000/h' });
    assert.deepEqual(config.objectLimit, { mode: 'combined', maxObjects: 50 });
    assert.deepEqual(config.rateLimit, { requests: 250_000, windowMs: 3_600_000 });
    assert.deepEqual(loadBrazeConfig({ ...minimalEnv, BRAZE_RATE_LIMIT: '20000/1m' }).rateLimit, { requests: 20_000, windowMs: 60_000 });

    const problems = problemsOf(() => loadBrazeConfig({ ...minimalEnv, BRAZE_OBJECT_LIMIT: 'per_array:100', BRAZE_RATE_LIMIT: 'fast' }));
    assert.deepEqual(
      problems.map((problem) => problem.variable),
      ['BRAZE_OBJECT_LIMIT', 'BRAZE_RATE_LIMIT'],
    );
  });

  void test('requires the endpoint and key, and nothing of Amplitude or Temporal', () => {
    const problems = problemsOf(() => loadBrazeConfig({}));
    assert.deepEqual(
      problems.map((problem) => problem.variable),
      ['BRAZE_REST_ENDPOINT', 'BRAZE_API_KEY'],
    );
  });
});

describe('loadStoreConfig', () => {
  void test('accepts a file or :memory:, or a PostgreSQL URL in STATE_STORE_URL that never prints its password', () => {
    assert.deepEqual(loadStoreConfig({ STATE_DB: ':memory:' }), { kind: 'sqlite', path: ':memory:' });
    const url = 'postgresql://sync:db-password-s3cr3t@db.internal:6432/state';
    const postgres = loadStoreConfig({ STATE_STORE_URL: url, STATE_DB: '  ' });
    assert.equal(postgres.kind === 'postgres' && postgres.url.reveal(), url);
    for (const rendering of [JSON.stringify(postgres), inspect(postgres), JSON.stringify(redactedConfig(postgres))])
      assert.doesNotMatch(rendering, /s3cr3t/);
  });

  void test('refuses a PostgreSQL URL in STATE_DB, a non-PostgreSQL STATE_STORE_URL, and both set, without echoing the URL', () => {
    const url = 'postgres://sync:db-password-s3cr3t@db/state';
    const problems = [
      messageOf(() => loadStoreConfig({ STATE_DB: url })),
      messageOf(() => loadStoreConfig({ STATE_STORE_URL: 'mysql://sync:db-password-s3cr3t@db/state' })),
      messageOf(() => loadStoreConfig({ STATE_STORE_URL: url, STATE_DB: 'data/state.db' })),
    ];
    assert.match(problems[0]!, /STATE_DB: is a PostgreSQL URL: set it as STATE_STORE_URL/);
    assert.match(problems[1]!, /STATE_STORE_URL: must be a PostgreSQL URL/);
    assert.match(problems[2]!, /STATE_STORE_URL: cannot be combined with STATE_DB/);
    for (const problem of problems) assert.doesNotMatch(problem, /s3cr3t/);
  });
});

describe('loadTemporalConfig', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ampbraze-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void test('needs no vendor credentials', () => {
    const config = loadTemporalConfig({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_NAMESPACE: 'prod',
      TEMPORAL_TASK_QUEUE: 'syncs',
    });
    assert.equal(config.address, 'temporal.internal:7233');
    assert.equal(config.namespace, 'prod');
    assert.equal(config.taskQueue, 'syncs');
  });

  void test('an API key implies TLS unless TEMPORAL_TLS says false', async () => {
    const cloud = loadTemporalConfig({ TEMPORAL_API_KEY: 'key', TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233' });
    assert.deepEqual(cloud.tls, { clientCert: undefined, serverCaCertPath: undefined, serverName: undefined });
    const options = await temporalConnectionOptions(cloud);
    assert.equal(options.apiKey, 'key');
    assert.deepEqual(options.tls, { serverNameOverride: undefined, serverRootCACertificate: undefined, clientCertPair: undefined });

    const plaintext = loadTemporalConfig({ TEMPORAL_API_KEY: 'key', TEMPORAL_TLS: 'false' });
    assert.equal(plaintext.tls, undefined);
    assert.equal((await temporalConnectionOptions(plaintext)).tls, false);
  });

  void test('reports TLS settings that contradict each other', () => {
    const problems = problemsOf(() =>
      loadTemporalConfig({
        TEMPORAL_TLS: 'false',
        TEMPORAL_TLS_CLIENT_CERT_PATH: 'client.pem',
        TEMPORAL_ADDRESS: 'http://localhost:7233',
        TEMPORAL_TLS_DISABLE_HOST_VERIFICATION: 'true',
      }),
    );
    assert.deepEqual(
      problems.map((problem) => problem.variable),
      ['TEMPORAL_ADDRESS', 'TEMPORAL_TLS_DISABLE_HOST_VERIFICATION', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS'],
    );
    assert.match(problems[2]?.message ?? '', /is required when TEMPORAL_TLS_CLIENT_CERT_PATH is set/);
  });

  void test('reads mTLS files into connection options, and names the variable of a missing file', async () => {
    await writeFile(join(dir, 'client.pem'), 'CERT');
    await writeFile(join(dir, 'client.key'), 'KEY');
    const config = loadTemporalConfig({
      TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'client.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: join(dir, 'client.key'),
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      TEMPORAL_GRPC_META_X_ROUTING_KEY: 'blue',
    });
    const options = await temporalConnectionOptions(config);
    assert.ok(options.tls);
    assert.equal(options.tls.clientCertPair?.crt.toString(), 'CERT');
    assert.equal(options.tls.clientCertPair?.key.toString(), 'KEY');
    assert.equal(options.tls.serverNameOverride, 'temporal.internal');
    assert.deepEqual(options.metadata, { 'x-routing-key': 'blue' });

    const missing = loadTemporalConfig({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: join(dir, 'absent-ca.pem') });
    await assert.rejects(temporalConnectionOptions(missing), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read ".*absent-ca\.pem" \(ENOENT\)/);
      return true;
    });
  });

  void test('reads a .env file in the working directory without overriding set variables', async () => {
    await writeFile(join(dir, '.env'), 'TEMPORAL_NAMESPACE=from-dotenv\nTEMPORAL_TASK_QUEUE=from-dotenv\n');
    const previousDir = process.cwd();
    const saved = { TEMPORAL_NAMESPACE: process.env.TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE: process.env.TEMPORAL_TASK_QUEUE };
    process.env.TEMPORAL_TASK_QUEUE = 'from-environment';
    delete process.env.TEMPORAL_NAMESPACE;
    process.chdir(dir);
    try {
      const config = loadTemporalConfig();
      assert.equal(config.namespace, 'from-dotenv');
      assert.equal(config.taskQueue, 'from-environment');
    } finally {
      process.chdir(previousDir);
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
