import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createScoringApp, type ScoringApp as App } from '../../lib/app/scoring';
import { loadConfig } from '../../lib/config';
import { ModelRegistry } from '../../lib/registry/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse } from '../../lib/warehouse/index';
import { publishTiny } from '../support/models';
import { createTestDatabase } from '../../devkit/postgres';
import { testBucket, type TestBucket } from '../support/s3';

let s3: TestBucket;
let app: App;

beforeAll(async () => {
  s3 = await testBucket({ versioned: true });
  const url = await createTestDatabase(inject('postgresUrl'), 'api_s3');
  const loader = await openWarehouse(url);
  await loadDemoData(loader.pool, loader.warehouse.cfg, { customers: 500, seed: 4 });
  await loader.close();
  const registry = new ModelRegistry(new S3ObjectStore({ bucket: s3.bucket, prefix: 'prod', client: s3.client }), { actor: 'test' });
  await publishTiny(registry, 'churn');
  await publishTiny(registry, 'nbo');
  Object.assign(process.env, s3.env);
  app = await createScoringApp(loadConfig({ MODEL_REGISTRY_URI: `s3://${s3.bucket}/prod`, WAREHOUSE_URL: url, STAGE: 'test', ML_MOCK_MODE: 'off' }));
});

afterAll(async () => {
  await app?.close();
});

describe('scoring with the registry on S3 and the warehouse on PostgreSQL', () => {
  it('loads verified models from S3 and scores customers from PostgreSQL with base-wide RFM quintiles', async () => {
    const outcome = await app.scoring.score(['demo-000001', 'demo-000002', 'demo-000500', 'demo-000501'], 'all', 10_000);

    expect(outcome.results).toHaveLength(3);
    expect(outcome.errors).toEqual([{ customer_id: 'demo-000501', error: 'Customer not found in warehouse' }]);
    const result = outcome.results[0]!.result as { churn: { source: unknown }; rfm: { source: unknown } };
    expect(result.churn.source).toEqual({ type: 'model', name: 'churn', version: 1, alias: 'production' });
    expect(result.rfm.source).toEqual({ type: 'rules', name: 'rfm', cut_points: 'quintiles' });
    const profile = (await app.profile.get()).value;
    expect(profile.customers).toBe(500);
    expect(profile.quintiles.monetary[0]).toBeLessThanOrEqual(profile.quintiles.monetary[3]!);
  });
});
