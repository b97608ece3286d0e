import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { IntegrityError, StoreUnavailableError } from '../../lib/errors';
import { ModelRegistry, modelKey } from '../../lib/registry/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { publishExternalModel } from '../../lib/training/publish';
import { onnxFixture } from '../support/fixtures';
import { draft } from '../support/registry';
import { testBucket } from '../support/s3';

describe.each([
  { kind: 'plain', versioned: false },
  { kind: 'versioned', versioned: true },
])('registry on moto S3, $kind bucket (conditional writes honoured)', ({ versioned }) => {
  it('passes the conditional-write probe', async () => {
    const s3 = await testBucket({ versioned });
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: 'loyalty', client: s3.client });

    expect(await store.checkConditionalWrites('models/')).toEqual({ ok: true, problems: [] });
    expect((await store.list('models/')).keys).toEqual([]);
  });

  it('gives 12 concurrent publishers 12 distinct versions and loses none', async () => {
    const s3 = await testBucket({ versioned });
    const registry = () => new ModelRegistry(new S3ObjectStore({ bucket: s3.bucket, client: s3.client }), { actor: 'racer' });
    const payloads = Array.from({ length: 12 }, (_, i) => new TextEncoder().encode(`model bytes ${i}`));

    const published = await Promise.all(payloads.map((bytes) => registry().publish('churn', bytes, draft())));

    expect(published.map((m) => m.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const reader = registry();
    const contents = await Promise.all(published.map(async (m) => new TextDecoder().decode((await reader.readModel('churn', m.version)).bytes)));
    expect(contents.sort()).toEqual(payloads.map((p) => new TextDecoder().decode(p)).sort());
  });

  it('keeps every one of 6 concurrent promotions in the alias history', async () => {
    const s3 = await testBucket({ versioned });
    const setup = new ModelRegistry(new S3ObjectStore({ bucket: s3.bucket, client: s3.client }), { actor: 'ops' });
    for (let i = 0; i < 6; i++) await setup.publish('churn', new TextEncoder().encode(`v${i}`), draft());

    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        new ModelRegistry(new S3ObjectStore({ bucket: s3.bucket, client: s3.client }), { actor: `ops-${i}` }).promote('churn', 'production', i + 1),
      ),
    );

    const record = (await setup.getAlias('churn', 'production'))!;
    expect(record.history).toHaveLength(6);
    expect(record.history.map((e) => e.to).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(record.history.at(-1)!.to).toBe(record.version);
    // Each move started from the version the previous one left: the history is one unbroken chain.
    record.history.forEach((e, i) => expect(e.from).toBe(i === 0 ? null : record.history[i - 1]!.to));
  });
});

describe('registry on moto S3', () => {
  it('publishes, lists, promotes, rolls back and verifies real models', async () => {
    const s3 = await testBucket({ versioned: true });
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: 'loyalty/prod', client: s3.client });
    const registry = new ModelRegistry(store, { actor: 'ops' });
    const logreg = onnxFixture('sklearn_logreg_iris');
    const xgb = onnxFixture('sklearn_xgboost_iris');

    const v1 = await publishExternalModel(registry, { name: 'iris', bytes: logreg.bytes, features: ['sepal_width', 'petal_width'] });
    const v2 = await publishExternalModel(registry, { name: 'iris', bytes: xgb.bytes, features: ['sepal_width', 'petal_width'] });
    await registry.promote('iris', 'production', v1.version);
    await registry.promote('iris', 'production', v2.version);
    const rolledBack = await registry.rollback('iris', 'production');

    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect(rolledBack.version).toBe(1);
    expect((await registry.listVersions('iris')).map((m) => m.model.sha256)).toEqual([v1.model.sha256, v2.model.sha256]);
    const loaded = await registry.readModel('iris', 'production');
    expect(loaded.manifest.version).toBe(1);
    expect(loaded.bytes.byteLength).toBe(v1.model.size_bytes);
    expect(await registry.listModels()).toEqual(['iris']);
    expect(store.location).toBe(`s3://${s3.bucket}/loyalty/prod/`);
  });

  it('refuses bytes replaced behind the registry', async () => {
    const s3 = await testBucket();
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: 'tamper', client: s3.client });
    const registry = new ModelRegistry(store, { actor: 'ops' });
    await publishExternalModel(registry, { name: 'iris', bytes: onnxFixture('sklearn_logreg_iris').bytes, features: ['a', 'b'] });

    await store.put(modelKey('iris', 1), onnxFixture('sklearn_xgboost_iris').bytes);

    await expect(registry.readModel('iris', 1)).rejects.toBeInstanceOf(IntegrityError);
  });

  it('reports an unreachable S3 plainly', async () => {
    const dead = new S3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      forcePathStyle: true,
      maxAttempts: 1,
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: 'b', client: dead }), { actor: 'ops' });

    await expect(registry.listModels()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(registry.resolve('churn', 'production')).rejects.toThrow(/S3 s3:\/\/b\/: could not read/);
  });
});

describe('segment runs on moto S3: one unfinished run per segment and types', () => {
  it('gives 12 starters racing in separate services (as separate Lambdas would be) one run, created and planned once', async () => {
    const s3 = await testBucket();
    const { loadConfig } = await import('../../lib/config');
    const { SegmentRunStore } = await import('../../lib/segments/runs');
    const { SegmentRunService } = await import('../../lib/services/segment-runs');
    const settings = loadConfig({ STAGE: 'test' }).segments;
    const planned: string[] = [];
    const warehouse = async () => ({ warehouse: { getSegment: async (id: string) => ({ id, name: id, description: null }) } }) as never;
    // Each starter has its own store client and service, sharing only the bucket.
    const starter = () => {
      const runs = new SegmentRunStore(new S3ObjectStore({ bucket: s3.bucket, prefix: 'results', client: s3.client }));
      return new SegmentRunService({
        runs,
        warehouse,
        registry: new ModelRegistry(new S3ObjectStore({ bucket: s3.bucket, client: s3.client }), { actor: 'test' }),
        invoker: { invoke: () => Promise.reject(new Error('no workers here')) },
        planners: { start: async (segment: string, run: string) => void planned.push(`${segment}/${run}`) },
        settings,
      });
    };

    const runs = await Promise.all(Array.from({ length: 12 }, () => starter().start('high-value', ['churn', 'nbo', 'rfm'])));

    expect(new Set(runs.map((r) => r.run_id)).size).toBe(1);
    expect(planned).toEqual([`high-value/${runs[0]!.run_id}`]);
    const store = new S3ObjectStore({ bucket: s3.bucket, prefix: 'results', client: s3.client });
    expect((await store.list('segments/high-value/runs/')).keys).toHaveLength(1);
    expect((await new SegmentRunStore(store).activeRuns()).map((r) => r.run_id)).toEqual([runs[0]!.run_id]);
  });
});
