/**
 * Access to the one throw-away PostgreSQL cluster that `npm test` (scripts/run-tests.ts) starts for the whole run.
 * Each caller gets a database of its own, so test files (and tests) never see each other's rows.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

export function testPostgresUrl(): string {
  const url = process.env.TEST_POSTGRES_URL;
  if (!url) throw new Error('TEST_POSTGRES_URL is not set: run the tests with `npm test` (add file names to run only those)');
  return url;
}

/** Creates an empty database on the test cluster and returns its connection URL. */
export async function createTestDatabase(): Promise<string> {
  const name = `test_${randomUUID().replaceAll('-', '')}`;
  const client = new pg.Client({ connectionString: testPostgresUrl() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(testPostgresUrl());
  url.pathname = `/${name}`;
  return url.href;
}
