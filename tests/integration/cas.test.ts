import { describe, expect, it } from 'vitest';
import { ContentionError } from '../../lib/errors';
import { casUpdate, CAS_ATTEMPTS } from '../../lib/storage/cas';
import { FsObjectStore } from '../../lib/storage/fs';
import type { ObjectStore } from '../../lib/storage/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { tempDir } from '../support/registry';
import { testBucket } from '../support/s3';

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const read = async (store: ObjectStore, key: string) => JSON.parse(new TextDecoder().decode((await store.get(key))!.body)) as number[];

/** The one read-modify-write every stored document goes through (aliases, runs, histories, trends), on both stores it runs against. */
describe.each([
  ['the folder store', async () => new FsObjectStore(tempDir())],
  ['S3 on moto', async () => {
    const s3 = await testBucket({ versioned: false });
    return new S3ObjectStore({ bucket: s3.bucket, client: s3.client });
  }],
])('casUpdate on %s', (_name, open) => {
  it('keeps every one of 10 concurrent appends, creates the document when absent, and writes nothing when told to keep', async () => {
    const store = await open();
    const append = (n: number) =>
      casUpdate(store, 'doc.json', (stored) => {
        const list = stored ? (JSON.parse(new TextDecoder().decode(stored.body)) as number[]) : [];
        return list.includes(n) ? { keep: true, result: 'kept' } : { write: json([...list, n]), result: 'written' };
      }, { contention: 'the list kept changing' });
    expect(await Promise.all(Array.from({ length: 10 }, (_, i) => append(i)))).toEqual(new Array(10).fill('written'));
    expect((await read(store, 'doc.json')).sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const before = (await store.get('doc.json'))!.etag;
    expect(await append(3)).toBe('kept');
    expect((await store.get('doc.json'))!.etag).toBe(before);
  });

  it('gives up with a 409 naming the document when another writer wins every attempt, and passes other errors through', async () => {
    const store = await open();
    await store.put('busy.json', json([0]));
    let calls = 0;
    const losing = casUpdate(store, 'busy.json', async () => {
      calls++;
      // Someone else writes between this read and the write below, every time.
      await store.put('busy.json', json([calls]));
      return { write: json(['mine']), result: null };
    }, { contention: 'busy.json kept changing' });
    await expect(losing).rejects.toThrow(ContentionError);
    await expect(losing).rejects.toThrow(new RegExp(`^busy.json kept changing \\(${CAS_ATTEMPTS} compare-and-swap attempts lost to other writers\\)$`));
    expect(calls).toBe(CAS_ATTEMPTS);
    expect(await read(store, 'busy.json')).toEqual([CAS_ATTEMPTS]);
    await expect(casUpdate(store, 'busy.json', () => {
      throw new RangeError('bad document');
    }, { contention: 'x' })).rejects.toThrow(RangeError);
  });
});
