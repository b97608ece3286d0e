import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ConflictError,
  IntegrityError,
  NotFoundError,
  StoreUnavailableError,
  ValidationError,
} from '../../lib/errors';
import { ModelRegistry, manifestKey, modelKey, previousVersion } from '../../lib/registry/index';
import type { ObjectStore } from '../../lib/storage/index';
import { draft, FaultyStore, tempFsStore } from '../support/registry';

const bytes = (text: string) => new TextEncoder().encode(text);

function registry(store: ObjectStore = tempFsStore()) {
  return new ModelRegistry(store, { actor: 'test-user' });
}

describe('ModelRegistry on a local folder', () => {
  it('numbers versions upwards and records checksum, size and author', async () => {
    const reg = registry();

    const v1 = await reg.publish('churn', bytes('model one'), draft());
    const v2 = await reg.publish('churn', bytes('model two'), draft());

    expect([v1.version, v2.version]).toEqual([1, 2]);
    expect(v1.model.sha256).toBe(createHash('sha256').update('model one').digest('hex'));
    expect(v1.model.size_bytes).toBe(9);
    expect(v1.created_by).toBe('test-user');
    expect((await reg.listVersions('churn')).map((m) => m.version)).toEqual([1, 2]);
    expect(await reg.listModels()).toEqual(['churn']);
  });

  it('gives concurrent publishers distinct versions and keeps every one intact', async () => {
    const reg = registry();

    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => reg.publish('nbo', bytes(`model ${i}`), draft())));

    const versions = results.map((m) => m.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const manifest of results) {
      const loaded = await reg.readModel('nbo', manifest.version);
      expect(loaded.manifest.model.sha256).toBe(manifest.model.sha256);
    }
  });

  it('resolves numbers, aliases and latest', async () => {
    const reg = registry();
    await reg.publish('churn', bytes('a'), draft());
    await reg.publish('churn', bytes('b'), draft());
    await reg.promote('churn', 'production', 1);

    expect((await reg.resolve('churn', 'production')).version).toBe(1);
    expect((await reg.resolve('churn', 'latest')).version).toBe(2);
    expect((await reg.resolve('churn', '2')).version).toBe(2);
    await expect(reg.resolve('churn', 'staging')).rejects.toThrow(/no alias "staging"/);
    await expect(reg.resolve('churn', 7)).rejects.toBeInstanceOf(NotFoundError);
    await expect(reg.resolve('unknown', 'production')).rejects.toThrow(/no published versions/);
  });

  it('refuses a model whose bytes no longer match the manifest', async () => {
    const store = tempFsStore();
    const reg = registry(store);
    await reg.publish('churn', bytes('original'), draft());

    await store.put(modelKey('churn', 1), bytes('tampered'));

    await expect(reg.readModel('churn', 1)).rejects.toBeInstanceOf(IntegrityError);
    await expect(reg.promote('churn', 'production', 1)).rejects.toThrow(/does not match its manifest/);
    expect(await reg.getAlias('churn', 'production')).toBeNull();
  });

  it('reports a manifest with missing fields by name', async () => {
    const store = tempFsStore();
    const reg = registry(store);
    await reg.publish('churn', bytes('x'), draft());
    const stored = JSON.parse(new TextDecoder().decode((await store.get(manifestKey('churn', 1)))!.body));
    delete stored.model.sha256;
    delete stored.output;
    await store.put(manifestKey('churn', 1), bytes(JSON.stringify(stored)));

    const error = await reg.getManifest('churn', 1).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toMatch(/model\.sha256/);
    expect((error as Error).message).toMatch(/output/);
  });

  it('keeps alias history and rolls back step by step', async () => {
    const reg = registry();
    for (const text of ['a', 'b', 'c']) await reg.publish('churn', bytes(text), draft());
    await reg.promote('churn', 'production', 1);
    await reg.promote('churn', 'production', 2);
    await reg.promote('churn', 'production', 3, 'better AUC');

    const first = await reg.rollback('churn', 'production');
    const second = await reg.rollback('churn', 'production');

    expect(first.version).toBe(2);
    expect(second.version).toBe(1);
    expect(second.history.map((h) => [h.action, h.from, h.to])).toEqual([
      ['promote', null, 1],
      ['promote', 1, 2],
      ['promote', 2, 3],
      ['rollback', 3, 2],
      ['rollback', 2, 1],
    ]);
    expect(second.history[2]!.reason).toBe('better AUC');
    expect(second.history.every((h) => h.by === 'test-user')).toBe(true);
    await expect(reg.rollback('churn', 'production')).rejects.toThrow(/no earlier version/);
    expect((await reg.rollback('churn', 'production', 3)).version).toBe(3);
  });

  it('does not record a promotion to the version an alias already has', async () => {
    const reg = registry();
    await reg.publish('churn', bytes('a'), draft());
    await reg.promote('churn', 'staging', 1);

    const again = await reg.promote('churn', 'staging', 1);

    expect(again.history).toHaveLength(1);
  });

  it('never promotes a version the gates refused', async () => {
    const reg = registry();
    await reg.publish('churn', bytes('bad'), draft({ status: 'refused', refusal_reasons: ['predictions collapsed'] }));

    await expect(reg.promote('churn', 'production', 1)).rejects.toBeInstanceOf(ConflictError);
    await expect(reg.promote('churn', 'production', 1)).rejects.toThrow(/predictions collapsed/);
    expect(await reg.getAlias('churn', 'production')).toBeNull();
  });

  it('never promotes, under a served name, a model the warehouse cannot feed or of the wrong kind', async () => {
    const reg = registry();
    const odd = draft();
    odd.input.features = [{ name: 'shoe_size', type: 'float32', tensor: 'input', column: 0 }, odd.input.features[1]!];
    await reg.publish('churn', bytes('odd'), odd);
    await reg.publish('nbo', bytes('binary'), draft());
    await reg.publish('propensity', bytes('anything'), odd);

    await expect(reg.promote('churn', 'production', 1)).rejects.toMatchObject({ code: 'model_not_servable', message: expect.stringMatching(/takes shoe_size, which the warehouse does not provide/) });
    await expect(reg.promote('nbo', 'staging', 1)).rejects.toThrow(/it is a binary model where nbo must be multilabel or multiclass/);
    expect(await reg.getAlias('churn', 'production')).toBeNull();
    // Names the API does not serve take any features.
    expect((await reg.promote('propensity', 'production', 1)).version).toBe(1);
  });

  it('serialises concurrent alias moves without losing history', async () => {
    const reg = registry();
    for (let i = 0; i < 6; i++) await reg.publish('churn', bytes(`m${i}`), draft());

    await Promise.all([1, 2, 3, 4, 5, 6].map((v) => reg.promote('churn', 'production', v)));

    const alias = (await reg.getAlias('churn', 'production'))!;
    expect(alias.history).toHaveLength(6);
    expect(alias.history.at(-1)!.to).toBe(alias.version);
    for (let i = 1; i < alias.history.length; i++) expect(alias.history[i]!.from).toBe(alias.history[i - 1]!.to);
  });

  it.each(['../x', 'a/b', 'Churn', '', '-x', 'x'.repeat(65), '1abc'])('refuses the name %j', async (name) => {
    const reg = registry();
    await expect(reg.publish(name, bytes('x'), draft())).rejects.toBeInstanceOf(ValidationError);
    await expect(reg.promote('churn', name, 1)).rejects.toBeInstanceOf(ValidationError);
  });

  it('leaves no version behind when the manifest cannot be written', async () => {
    const faulty = new FaultyStore(tempFsStore(), () => new StoreUnavailableError('disk full'));
    faulty.failPut = (key) => key.endsWith('manifest.json');
    const reg = registry(faulty);

    await expect(reg.publish('churn', bytes('x'), draft())).rejects.toBeInstanceOf(StoreUnavailableError);

    expect(await reg.listVersions('churn')).toEqual([]);
    expect((await faulty.inner.list('models/')).keys).toEqual([]);
  });

  it('leaves the alias untouched when the store fails while moving it', async () => {
    const faulty = new FaultyStore(tempFsStore(), () => new StoreUnavailableError('network down'));
    const reg = registry(faulty);
    await reg.publish('churn', bytes('a'), draft());
    await reg.publish('churn', bytes('b'), draft());
    await reg.promote('churn', 'production', 1);
    faulty.failPut = (key) => key.includes('/aliases/');

    await expect(reg.promote('churn', 'production', 2)).rejects.toBeInstanceOf(StoreUnavailableError);

    expect((await reg.getAlias('churn', 'production'))!.version).toBe(1);
  });

  it('ignores a version whose manifest was never written', async () => {
    const store = tempFsStore();
    const reg = registry(store);
    await reg.publish('churn', bytes('a'), draft());
    await store.put(modelKey('churn', 2), bytes('orphan from a crashed publish'));

    expect((await reg.listVersions('churn')).map((m) => m.version)).toEqual([1]);
    expect((await reg.resolve('churn', 'latest')).version).toBe(1);
    expect((await reg.publish('churn', bytes('c'), draft())).version).toBe(3);
  });
});

describe('previousVersion', () => {
  it('skips versions that were rolled back', () => {
    const at = '2026-01-01T00:00:00Z';
    const event = (action: 'promote' | 'rollback', from: number | null, to: number) => ({ at, by: 'x', action, from, to, reason: null });
    const record = {
      schema_version: 1 as const,
      name: 'churn',
      alias: 'production',
      version: 4,
      updated_at: at,
      updated_by: 'x',
      history: [event('promote', null, 1), event('promote', 1, 2), event('rollback', 2, 1), event('promote', 1, 4)],
    };
    expect(previousVersion(record)).toBe(1);
  });
});
