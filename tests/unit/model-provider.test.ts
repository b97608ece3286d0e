import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { mockClient } from 'aws-sdk-client-mock';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ModelUnavailableError } from '../../lib/errors';
import { ModelRegistry, aliasKey, manifestKey, modelKey } from '../../lib/registry/index';
import { ModelProvider } from '../../lib/scoring/models';
import { S3ObjectStore } from '../../lib/storage/s3';
import { FEATURES } from '../../lib/catalog';
import { tinyModel } from '../support/models';

const s3 = mockClient(S3Client);
const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });

/** An in-memory bucket behind the mocked S3 client; `down` makes every call fail like a network error. */
const objects = new Map<string, Uint8Array>();
let down = false;
let gets = 0;

function serve(): void {
  s3.on(GetObjectCommand).callsFake((input: { Key: string }) => {
    gets++;
    if (down) throw Object.assign(new Error('connect ETIMEDOUT'), { name: 'TimeoutError' });
    const body = objects.get(input.Key);
    if (!body) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    return { Body: sdkStreamMixin(Readable.from([Buffer.from(body)])), ETag: `"${body.length}"` };
  });
  s3.on(ListObjectsV2Command).callsFake((input: { Prefix: string }) => {
    if (down) throw Object.assign(new Error('connect ETIMEDOUT'), { name: 'TimeoutError' });
    return { Contents: [...objects.keys()].filter((k) => k.startsWith(input.Prefix)).map((Key) => ({ Key })), IsTruncated: false };
  });
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
let v1: { bytes: Uint8Array; draft: Awaited<ReturnType<typeof tinyModel>>['draft'] };
let v2: typeof v1;

/** Stores version n of churn as the registry would, and points production at it. */
function storeVersion(n: number, model: typeof v1, options: { corrupt?: boolean } = {}): void {
  const sha = createHash('sha256').update(model.bytes).digest('hex');
  const manifest = {
    ...model.draft,
    schema_version: 1,
    name: 'churn',
    version: n,
    created_at: '2026-01-01T00:00:00.000Z',
    created_by: 'test',
    model: { ...model.draft.model, file: 'model.onnx', format: 'onnx', sha256: sha, size_bytes: model.bytes.length },
  };
  const bytes = options.corrupt ? Uint8Array.from(model.bytes, (b, i) => (i === 100 ? b ^ 0xff : b)) : model.bytes;
  objects.set(`r/${modelKey('churn', n)}`, bytes);
  objects.set(`r/${manifestKey('churn', n)}`, json(manifest));
  objects.set(
    `r/${aliasKey('churn', 'production')}`,
    json({ schema_version: 1, name: 'churn', alias: 'production', version: n, updated_at: 'x', updated_by: 'x', history: [{ at: 'x', by: 'x', action: 'promote', from: null, to: n, reason: null }] }),
  );
}

let clock = 0;
function provider(mockMode: 'auto' | 'on' | 'off' = 'off') {
  const registry = new ModelRegistry(new S3ObjectStore({ bucket: 'b', prefix: 'r', client }), { actor: 'test' });
  return new ModelProvider(registry, { alias: 'production', ttlMs: 60_000, mockMode, columns: FEATURES, expectedKind: { churn: ['binary'] }, now: () => clock });
}

beforeAll(async () => {
  v1 = await tinyModel('churn', { seed: 1 });
  v2 = await tinyModel('churn', { seed: 2 });
});

beforeEach(() => {
  s3.reset();
  objects.clear();
  down = false;
  gets = 0;
  clock = 1_000_000;
  serve();
});

afterEach(() => s3.reset());

describe('ModelProvider over S3', () => {
  it('loads and verifies a version once, then serves it from memory until the TTL passes', async () => {
    storeVersion(1, v1);
    const models = provider();

    const first = await models.get('churn');
    const callsAfterLoad = gets;
    await models.get('churn');
    clock += 30_000;
    await models.get('churn');

    expect(first.handle).toMatchObject({ kind: 'model', alias: 'production' });
    expect(first.handle.kind === 'model' && first.handle.manifest.version).toBe(1);
    expect(first.warnings).toEqual([]);
    expect(gets).toBe(callsAfterLoad);
    expect(models.status('churn')).toMatchObject({ mode: 'model', serving: { version: 1 } });
  });

  it('refuses a model whose bytes do not match the manifest checksum (503, nothing served)', async () => {
    storeVersion(1, v1, { corrupt: true });

    const error = await provider().get('churn').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ModelUnavailableError);
    expect((error as Error).message).toMatch(/does not match its manifest/);
  });

  it('keeps serving the last good version when S3 fails after a good load, and says so', async () => {
    storeVersion(1, v1);
    const models = provider();
    await models.get('churn');

    clock += 61_000;
    down = true;
    const { handle, warnings } = await models.get('churn');

    expect(handle.kind === 'model' && handle.manifest.version).toBe(1);
    expect(warnings).toEqual([expect.objectContaining({ code: 'stale_model', model: 'churn' })]);
    expect(warnings[0]!.message).toMatch(/still serving v1/);
  });

  it('picks up a promotion after the TTL without a redeploy', async () => {
    storeVersion(1, v1);
    const models = provider();
    await models.get('churn');

    storeVersion(2, v2);
    const before = await models.get('churn');
    clock += 61_000;
    const after = await models.get('churn');

    expect(before.handle.kind === 'model' && before.handle.manifest.version).toBe(1);
    expect(after.handle.kind === 'model' && after.handle.manifest.version).toBe(2);
  });

  it('keeps the last good version when the newly promoted one is corrupt', async () => {
    storeVersion(1, v1);
    const models = provider();
    await models.get('churn');
    storeVersion(2, v2, { corrupt: true });

    clock += 61_000;
    const { handle, warnings } = await models.get('churn');

    expect(handle.kind === 'model' && handle.manifest.version).toBe(1);
    expect(warnings[0]!.message).toMatch(/v2/);
  });

  it('answers with 503 when S3 is down and nothing was loaded yet', async () => {
    down = true;
    await expect(provider().get('churn')).rejects.toBeInstanceOf(ModelUnavailableError);
  });

  it('falls back to the labelled baseline only when nothing is published and mock mode is auto', async () => {
    const auto = await provider('auto').get('churn');
    expect(auto.handle.kind).toBe('mock');
    expect(auto.warnings[0]).toMatchObject({ code: 'mock_predictions', model: 'churn' });

    const error = await provider('off').get('churn').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelUnavailableError);
    expect((error as Error).message).toMatch(/loyalty-ml train churn --promote production/);

    storeVersion(1, v1);
    expect((await provider('auto').get('churn')).handle.kind).toBe('model');
    expect((await provider('on').get('churn')).handle.kind).toBe('mock');
  });
});
