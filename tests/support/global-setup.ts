import type { TestProject } from 'vitest/node';
import { startMoto, type Moto } from '../../devkit/moto';
import { startTestPostgres, type TestPostgres } from '../../devkit/postgres';

let pg: TestPostgres | undefined;
let moto: Moto | undefined;

/** Starts one PostgreSQL and one moto server (S3 without IAM checks) for the whole run. */
export async function setup(project: TestProject): Promise<void> {
  [pg, moto] = await Promise.all([startTestPostgres(), startMoto()]);
  project.provide('postgresUrl', pg.url);
  project.provide('motoEndpoint', moto.endpoint);
}

export async function teardown(): Promise<void> {
  pg?.stop();
  await moto?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
    motoEndpoint: string;
  }
}
