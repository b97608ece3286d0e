import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  DeleteObjectCommand,
} from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { mockClient } from 'aws-sdk-client-mock';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContentionError, PreconditionFailedError, StoreUnavailableError, UnsafeStoreError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { draft } from '../support/registry';

const s3 = mockClient(S3Client);
const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });

function serviceError(name: string, status: number): S3ServiceException {
  return new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status }, message: name });
}

function body(text: string) {
  return sdkStreamMixin(Readable.from([Buffer.from(text)]));
}

beforeEach(() => s3.reset());
afterEach(() => s3.reset());

type PutInput = { Key?: string; IfNoneMatch?: string; IfMatch?: string };

/**
 * PutObject answered as S3 answers conditional writes for the probe's keys (create-only refused
 * the second time, If-Match compared with the stored ETag), and by `others` for every other key.
 * `store` lets a test play an S3-compatible store that gets them wrong.
 */
function putObjects(others: (input: PutInput) => unknown, store: { ignoreIfNoneMatch?: boolean; ignoreIfMatch?: boolean; refuseOwnEtag?: boolean } = {}) {
  const etags = new Map<string, string>();
  let n = 0;
  s3.on(PutObjectCommand).callsFake((input: PutInput) => {
    const key = input.Key ?? '';
    if (!key.includes('/_probe/')) return others(input);
    const current = etags.get(key);
    if (input.IfNoneMatch === '*' && current && !store.ignoreIfNoneMatch) throw serviceError('PreconditionFailed', 412);
    if (input.IfMatch !== undefined && !store.ignoreIfMatch && (input.IfMatch !== current || store.refuseOwnEtag)) throw serviceError('PreconditionFailed', 412);
    const etag = `"probe-${++n}"`;
    etags.set(key, etag);
    return { ETag: etag };
  });
  s3.on(DeleteObjectCommand).resolves({});
}

describe('S3ObjectStore', () => {
  const store = () => new S3ObjectStore({ bucket: 'models-bucket', prefix: 'loyalty', client });

  it('sends If-None-Match: * for create-only writes and maps 412 to PreconditionFailedError', async () => {
    s3.on(PutObjectCommand).rejects(serviceError('PreconditionFailed', 412));

    await expect(store().put('models/churn/versions/1/model.onnx', new Uint8Array([1]), { ifNoneMatch: true })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );

    const input = s3.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(input.IfNoneMatch).toBe('*');
    expect(input.Key).toBe('loyalty/models/churn/versions/1/model.onnx');
    expect(input.Bucket).toBe('models-bucket');
  });

  it('sends If-Match for compare-and-swap and treats 409 (concurrent conditional write) as a lost race', async () => {
    s3.on(PutObjectCommand).rejects(serviceError('ConditionalRequestConflict', 409));

    await expect(store().put('models/churn/aliases/production.json', new Uint8Array([1]), { ifMatch: '"abc"' })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect(s3.commandCalls(PutObjectCommand)[0]!.args[0].input.IfMatch).toBe('"abc"');
  });

  it('reports an unreachable S3 as StoreUnavailableError without leaking the SDK error as its message', async () => {
    s3.on(GetObjectCommand).rejects(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { name: 'TimeoutError' }));

    const error = await store().get('models/churn/aliases/production.json').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).expose).toBe(false);
    expect((error as Error).message).toContain('s3://models-bucket/loyalty/');
  });

  it('returns null for a missing key', async () => {
    s3.on(GetObjectCommand).rejects(serviceError('NoSuchKey', 404));
    expect(await store().get('models/churn/aliases/production.json')).toBeNull();
  });

  it('pages through listings and strips the prefix', async () => {
    s3.on(ListObjectsV2Command)
      .resolvesOnce({ Contents: [{ Key: 'loyalty/models/a/versions/1/manifest.json' }], IsTruncated: true, NextContinuationToken: 't1' })
      .resolvesOnce({ Contents: [{ Key: 'loyalty/models/a/versions/2/manifest.json' }], IsTruncated: false });

    const { keys } = await store().list('models/a/versions/');

    expect(keys).toEqual(['models/a/versions/1/manifest.json', 'models/a/versions/2/manifest.json']);
    expect(s3.commandCalls(ListObjectsV2Command)[1]!.args[0].input.ContinuationToken).toBe('t1');
  });
});

describe('ModelRegistry over S3 conditional writes', () => {
  it('takes the next number when another publisher claimed the version first (412)', async () => {
    // The listing shows no versions; the claim of v1 loses a race, the retry sees v1 and claims v2.
    s3.on(ListObjectsV2Command)
      .resolvesOnce({ Contents: [], IsTruncated: false })
      .resolves({ Contents: [{ Key: 'loyalty/models/churn/versions/1/model.onnx' }], IsTruncated: false });
    putObjects((input) => {
      if (input.Key === 'loyalty/models/churn/versions/1/model.onnx') throw serviceError('PreconditionFailed', 412);
      return { ETag: '"e"' };
    });
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: 'b', prefix: 'loyalty', client }), { actor: 'test' });

    const manifest = await registry.publish('churn', new Uint8Array([1, 2, 3]), draft());

    expect(manifest.version).toBe(2);
    const puts = s3
      .commandCalls(PutObjectCommand)
      .map((c) => [c.args[0].input.Key, c.args[0].input.IfNoneMatch])
      .filter(([key]) => !key!.includes('/_probe/'));
    expect(puts).toEqual([
      ['loyalty/models/churn/versions/1/model.onnx', '*'],
      ['loyalty/models/churn/versions/2/model.onnx', '*'],
      ['loyalty/models/churn/versions/2/manifest.json', '*'],
    ]);
  });

  it('removes the claimed model file when the manifest write fails', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: false });
    putObjects((input) => {
      if (input.Key === 'loyalty/models/churn/versions/1/manifest.json') throw serviceError('InternalError', 500);
      return { ETag: '"e"' };
    });
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: 'b', prefix: 'loyalty', client }), { actor: 'test' });

    await expect(registry.publish('churn', new Uint8Array([1]), draft())).rejects.toBeInstanceOf(StoreUnavailableError);

    const deleted = s3.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input.Key!);
    expect(deleted.filter((k) => !k.includes('/_probe/'))).toEqual(['loyalty/models/churn/versions/1/model.onnx']);
  });

  it('retries an alias move that lost the compare-and-swap (412 on If-Match) against the new state', async () => {
    const manifest = JSON.stringify({ ...draft(), schema_version: 1, name: 'churn', version: 2, created_at: '2026-01-01T00:00:00.000Z', created_by: 't', model: { ...draft().model, file: 'model.onnx', format: 'onnx', sha256: 'a'.repeat(64), size_bytes: 1 } });
    const alias = (version: number, history: number) =>
      JSON.stringify({
        schema_version: 1, name: 'churn', alias: 'production', version, updated_at: 'x', updated_by: 'x',
        history: Array.from({ length: history }, (_, i) => ({ at: 'x', by: 'x', action: 'promote', from: i === 0 ? null : i, to: i + 1, reason: null })),
      });
    s3.on(GetObjectCommand, { Key: 'loyalty/models/churn/versions/2/model.onnx' }).callsFake(() => ({ Body: body('x'), ETag: '"b"' }));
    // sha256('x')
    const sha = '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881';
    s3.on(GetObjectCommand, { Key: 'loyalty/models/churn/versions/2/manifest.json' }).callsFake(() => ({
      Body: body(manifest.replace('a'.repeat(64), sha)),
      ETag: '"m"',
    }));
    s3.on(GetObjectCommand, { Key: 'loyalty/models/churn/aliases/production.json' })
      .callsFakeOnce(() => ({ Body: body(alias(1, 1)), ETag: '"v1"' }))
      .callsFake(() => ({ Body: body(alias(3, 3)), ETag: '"v3"' }));
    putObjects((input) => {
      if (input.IfMatch === '"v3"') return { ETag: '"v4"' };
      throw serviceError('PreconditionFailed', 412);
    });
    const registry = new ModelRegistry(new S3ObjectStore({ bucket: 'b', prefix: 'loyalty', client }), { actor: 'test' });

    const record = await registry.promote('churn', 'production', 2);

    expect(record.version).toBe(2);
    expect(record.history.at(-1)).toMatchObject({ from: 3, to: 2 });
    expect(record.history).toHaveLength(4);
  });
});

describe('stores that do not honour conditional writes', () => {
  const registry = () => new ModelRegistry(new S3ObjectStore({ bucket: 'compatible', prefix: 'loyalty', client }), { actor: 'test' });

  it('refuses to publish to a store that ignores If-None-Match, naming the store and what it ignored', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: false });
    putObjects(() => ({ ETag: '"e"' }), { ignoreIfNoneMatch: true });

    const error = await registry().publish('churn', new Uint8Array([1]), draft()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnsafeStoreError);
    expect((error as Error).message).toMatch(/^Refusing to publish on s3:\/\/compatible\/loyalty\/: this store ignores If-None-Match/);
    expect((error as UnsafeStoreError).userFault).toBe(false);
    const written = s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input.Key!);
    expect(written.every((k) => k.includes('/_probe/'))).toBe(true);
  });

  it('refuses to promote on a store that refuses its own ETag in If-Match (as Ceph RGW 16 does with quoted ETags)', async () => {
    putObjects(() => ({ ETag: '"e"' }), { refuseOwnEtag: true });

    await expect(registry().promote('churn', 'production', 1)).rejects.toThrow(/refuses a write with the ETag it returned itself in If-Match \(answered 412 PreconditionFailed\)/);
  });

  it('refuses a store that ignores If-Match', async () => {
    putObjects(() => ({ ETag: '"e"' }), { ignoreIfMatch: true });

    const support = await new S3ObjectStore({ bucket: 'compatible', client }).checkConditionalWrites('models/');

    expect(support).toEqual({ ok: false, problems: ['ignores If-Match (a write with a wrong ETag replaced the object)'] });
  });

  it('reports contention that outlasts the retries as a failure (exit 1), not as bad input', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: false });
    putObjects(() => {
      throw serviceError('PreconditionFailed', 412);
    });

    const error = await registry().publish('churn', new Uint8Array([1]), draft()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ContentionError);
    expect((error as ContentionError).userFault).toBe(false);
    expect((error as Error).message).toMatch(/nothing was published/);
  }, 30_000);
});
