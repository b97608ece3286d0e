import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, StoreUnavailableError } from '../../lib/errors';
import { ModelRegistry, modelKey } from '../../lib/registry/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { publishExternalModel } from '../../lib/training/publish';
import { onnxFixture } from '../support/fixtures';
import { startS3rver, type TestS3 } from '../support/s3rver';
import { S3Client } from '@aws-sdk/client-s3';

let s3: TestS3;

beforeAll(async () => {
  s3 = await startS3rver();
});

afterAll(async () => {
  await s3?.stop();
});

describe('registry on a local S3 (s3rver)', () => {
  it('publishes, lists, promotes, rolls back and verifies real models', async () => {
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
