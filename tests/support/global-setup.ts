import type { TestProject } from 'vitest/node';
import { startTestPostgres, type TestPostgres } from './postgres';

let pg: TestPostgres | undefined;

/** Starts one PostgreSQL for the whole run and hands its URL to the tests. */
export async function setup(project: TestProject): Promise<void> {
  pg = await startTestPostgres();
  project.provide('postgresUrl', pg.url);
}

export async function teardown(): Promise<void> {
  pg?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
