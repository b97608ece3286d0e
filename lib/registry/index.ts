import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  ConflictError,
  ContentionError,
  IntegrityError,
  NotFoundError,
  PreconditionFailedError,
  UnsafeStoreError,
  ValidationError,
} from '../errors';
import { FEATURES, OFFER_IDS, SERVED_MODELS, type ServedModelName } from '../catalog';
import { casBackoffMs, casUpdate, CAS_ATTEMPTS, type CasChange } from '../storage/cas';
import type { ObjectStore } from '../storage/index';
import { ManifestSchema, type ManifestDraft, type ModelManifest } from './manifest';

export * from './manifest';

/** Model and alias names: one path segment, lowercase. */
export const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;
const NAME = NAME_PATTERN;

/**
 * Why the API could not serve this version under its name, in words (empty when it can, or when
 * the name is not one the API serves): a served model takes warehouse features only, answers the
 * kind its name promises, and for NBO ranks offers of the catalog.
 */
export function servingProblems(manifest: Pick<ModelManifest, 'name' | 'input' | 'output'>): string[] {
  const kinds = SERVED_MODELS[manifest.name as ServedModelName] as readonly string[] | undefined;
  if (!kinds) return [];
  const problems: string[] = [];
  const unknown = manifest.input.features.map((f) => f.name).filter((f) => !(FEATURES as readonly string[]).includes(f));
  if (unknown.length) problems.push(`it takes ${unknown.join(', ')}, which the warehouse does not provide (it provides ${FEATURES.join(', ')})`);
  if (!kinds.includes(manifest.output.kind)) problems.push(`it is a ${manifest.output.kind} model where ${manifest.name} must be ${kinds.join(' or ')}`);
  else if (manifest.name === 'nbo') {
    const strangers = manifest.output.classes.filter((c) => !OFFER_IDS.includes(c));
    if (strangers.length) problems.push(`its classes ${strangers.join(', ')} are not offers of models/offers.json`);
  }
  return problems;
}

/** Refuses model and alias names that could not be a single path segment (`../x`, `a/b`, …). */
export function assertName(kind: 'model' | 'alias', name: string): void {
  if (!NAME.test(name)) {
    throw new ValidationError(
      `Invalid ${kind} name "${name}": use 1-64 lowercase letters, digits, "-" or "_", starting with a letter`,
      { code: `invalid_${kind}_name` },
    );
  }
}

export const AliasEventSchema = z.object({
  at: z.string(),
  by: z.string(),
  action: z.enum(['promote', 'rollback']),
  from: z.number().int().positive().nullable(),
  to: z.number().int().positive(),
  reason: z.string().nullable(),
});

export const AliasRecordSchema = z.object({
  schema_version: z.literal(1),
  name: z.string(),
  alias: z.string(),
  version: z.number().int().positive(),
  updated_at: z.string(),
  updated_by: z.string(),
  history: z.array(AliasEventSchema),
});

export type AliasRecord = z.infer<typeof AliasRecordSchema>;
export type AliasEvent = z.infer<typeof AliasEventSchema>;

/** A model version's manifest together with its verified bytes. */
export interface LoadedModel {
  manifest: ModelManifest;
  bytes: Uint8Array;
}

/** A reference to a version: its number, an alias name, or `latest`. */
export type VersionRef = number | string;

/**
 * The model registry over an object store. Versions are immutable and numbered upwards; a version
 * exists once its manifest is written, which happens last. Aliases (`production`, `staging`, …) are
 * single documents replaced whole with compare-and-swap, carrying their own history.
 *
 * Layout below the store root:
 *   models/<name>/versions/<n>/model.onnx
 *   models/<name>/versions/<n>/manifest.json
 *   models/<name>/aliases/<alias>.json
 */
export class ModelRegistry {
  constructor(
    readonly store: ObjectStore,
    private readonly options: { actor: string; now?: () => Date },
  ) {}

  get location(): string {
    return this.store.location;
  }

  /** Names of the models that have at least one published version. */
  async listModels(): Promise<string[]> {
    // One flat listing (registries hold few objects); it does not rely on delimiter grouping.
    const { keys } = await this.store.list('models/');
    const names = new Set<string>();
    for (const key of keys) {
      const m = /^models\/([^/]+)\/versions\/\d+\/manifest\.json$/.exec(key);
      if (m && NAME.test(m[1]!)) names.add(m[1]!);
    }
    return [...names].sort();
  }

  /** Every published version of a model, oldest first. */
  async listVersions(name: string, options: { newest?: number } = {}): Promise<ModelManifest[]> {
    assertName('model', name);
    const numbers = await this.versionNumbers(name, true);
    // Only the manifests asked for are read: one GET each.
    const wanted = options.newest === undefined ? numbers : numbers.slice(-options.newest);
    return Promise.all(wanted.map((n) => this.getManifest(name, n)));
  }

  /** The manifest of one version. NotFoundError when it does not exist (or is not finished). */
  async getManifest(name: string, version: number): Promise<ModelManifest> {
    assertName('model', name);
    const stored = await this.store.get(manifestKey(name, version));
    if (!stored) throw new NotFoundError(`Model "${name}" has no version ${version}`, { code: 'version_not_found' });
    return parseManifest(stored.body, `${name} v${version}`);
  }

  /** Resolves a version number, alias or `latest` to that version's manifest. */
  async resolve(name: string, ref: VersionRef): Promise<ModelManifest> {
    assertName('model', name);
    const version = await this.resolveVersion(name, ref);
    return this.getManifest(name, version);
  }

  /** Resolves a reference to a version number. */
  async resolveVersion(name: string, ref: VersionRef): Promise<number> {
    if (typeof ref === 'number' || /^\d+$/.test(ref)) {
      const n = Number(ref);
      if (!Number.isSafeInteger(n) || n < 1) throw new ValidationError(`Invalid version "${ref}"`);
      return n;
    }
    if (ref === 'latest') {
      const numbers = await this.versionNumbers(name, true);
      if (!numbers.length) throw this.noVersions(name);
      return numbers[numbers.length - 1]!;
    }
    assertName('alias', ref);
    const alias = await this.getAlias(name, ref);
    if (!alias) {
      const numbers = await this.versionNumbers(name, true);
      if (!numbers.length) throw this.noVersions(name);
      throw new NotFoundError(
        `Model "${name}" has no alias "${ref}" (it has versions ${numbers.join(', ')}; name one, or latest, or promote one to "${ref}")`,
        { code: 'alias_not_found' },
      );
    }
    return alias.version;
  }

  /**
   * Reads a version's bytes and verifies them against the manifest's sha256 and size. Refuses
   * (IntegrityError) on any mismatch: a corrupted or replaced model file is never served.
   */
  async readModel(name: string, ref: VersionRef): Promise<LoadedModel> {
    const manifest = await this.resolve(name, ref);
    const stored = await this.store.get(modelKey(name, manifest.version));
    if (!stored) {
      throw new IntegrityError(`Model "${name}" v${manifest.version}: the manifest exists but model.onnx is missing`, { code: 'model_file_missing' });
    }
    const sha = sha256(stored.body);
    if (sha !== manifest.model.sha256 || stored.body.byteLength !== manifest.model.size_bytes) {
      throw new IntegrityError(
        `Model "${name}" v${manifest.version}: model.onnx does not match its manifest ` +
          `(sha256 ${sha.slice(0, 12)}…, ${stored.body.byteLength} bytes; expected ${manifest.model.sha256.slice(0, 12)}…, ${manifest.model.size_bytes} bytes)`,
      );
    }
    return { manifest, bytes: stored.body };
  }

  /**
   * Publishes new bytes as the next version. The version number is claimed by creating its
   * model.onnx with a create-only write, so racing publishers get distinct numbers; the manifest is
   * written last, also create-only. If the manifest cannot be written the model file is removed,
   * so a failed publish leaves no visible trace.
   */
  async publish(name: string, bytes: Uint8Array, draft: ManifestDraft): Promise<ModelManifest> {
    assertName('model', name);
    if (bytes.byteLength === 0) throw new ValidationError('The model file is empty');
    await this.assertSafeStore('publish');
    const sha = sha256(bytes);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const pause = casBackoffMs(attempt);
      if (pause) await sleep(pause);
      const taken = await this.versionNumbers(name, false);
      const version = (taken.length ? taken[taken.length - 1]! : 0) + 1;
      try {
        await this.store.put(modelKey(name, version), bytes, { ifNoneMatch: true, contentType: 'application/octet-stream' });
      } catch (error) {
        if (error instanceof PreconditionFailedError) continue;
        throw error;
      }
      const manifest = ManifestSchema.parse({
        ...draft,
        schema_version: 1,
        name,
        version,
        created_at: this.now().toISOString(),
        created_by: this.options.actor,
        model: { ...draft.model, file: 'model.onnx', format: 'onnx', sha256: sha, size_bytes: bytes.byteLength },
      });
      try {
        await this.store.put(manifestKey(name, version), encodeJson(manifest), {
          ifNoneMatch: true,
          contentType: 'application/json',
        });
      } catch (error) {
        await this.store.delete(modelKey(name, version)).catch(() => undefined);
        throw error;
      }
      return manifest;
    }
    throw new ContentionError(
      `Could not claim a version number for "${name}" after ${CAS_ATTEMPTS} attempts: other writers took every number tried (or the store keeps refusing create-only writes); nothing was published`,
    );
  }

  async getAlias(name: string, alias: string): Promise<AliasRecord | null> {
    assertName('model', name);
    assertName('alias', alias);
    const stored = await this.store.get(aliasKey(name, alias));
    return stored ? parseAlias(stored.body, `${name}@${alias}`) : null;
  }

  async listAliases(name: string): Promise<AliasRecord[]> {
    assertName('model', name);
    const { keys } = await this.store.list(`models/${name}/aliases/`);
    const aliases = keys.map((k) => k.slice(`models/${name}/aliases/`.length).replace(/\.json$/, '')).filter((a) => NAME.test(a));
    const records = await Promise.all(aliases.map((a) => this.getAlias(name, a)));
    return records.filter((r): r is AliasRecord => r !== null);
  }

  /**
   * Points an alias at a version. Only a version that exists, passed its gates and whose bytes
   * verify can be promoted. Concurrent moves are serialised by compare-and-swap on the alias file.
   */
  async promote(name: string, alias: string, ref: VersionRef, reason: string | null = null): Promise<AliasRecord> {
    assertName('alias', alias);
    await this.assertSafeStore('promote');
    const version = await this.resolveVersion(name, ref);
    await this.assertPromotable(name, version);
    return this.moveAlias(name, alias, async () => version, 'promote', reason);
  }

  /**
   * Moves an alias back: to `to` when given, otherwise to the version it pointed at before the
   * current one (skipping versions that were themselves rolled back).
   */
  async rollback(name: string, alias: string, to: number | null = null, reason: string | null = null): Promise<AliasRecord> {
    assertName('alias', alias);
    await this.assertSafeStore('roll back');
    return this.moveAlias(
      name,
      alias,
      async (current) => {
        if (!current) throw new NotFoundError(`Model "${name}" has no alias "${alias}" to roll back`, { code: 'alias_not_found' });
        const target = to ?? previousVersion(current);
        if (target === null) {
          throw new ConflictError(`Alias "${alias}" of "${name}" has no earlier version to roll back to`, { code: 'nothing_to_roll_back' });
        }
        await this.assertPromotable(name, target);
        return target;
      },
      'rollback',
      reason,
    );
  }

  private async assertPromotable(name: string, version: number): Promise<void> {
    const manifest = await this.getManifest(name, version);
    if (manifest.status === 'refused') {
      throw new ConflictError(
        `Model "${name}" v${version} was refused by the quality gates and cannot be promoted: ${manifest.refusal_reasons.join('; ')}`,
        { code: 'model_refused' },
      );
    }
    await this.readModel(name, version);
    const problems = servingProblems(manifest);
    if (problems.length) {
      throw new ConflictError(`Model "${name}" v${version} cannot be promoted: the API serves "${name}" from the warehouse's features, and ${problems.join('; ')}`, {
        code: 'model_not_servable',
      });
    }
  }

  private async moveAlias(
    name: string,
    alias: string,
    pick: (current: AliasRecord | null) => Promise<number>,
    action: AliasEvent['action'],
    reason: string | null,
  ): Promise<AliasRecord> {
    const key = aliasKey(name, alias);
    return casUpdate(
      this.store,
      key,
      async (stored): Promise<CasChange<AliasRecord>> => {
        const current = stored ? parseAlias(stored.body, `${name}@${alias}`) : null;
        const version = await pick(current);
        if (current && current.version === version) return { keep: true, result: current };
        const at = this.now().toISOString();
        const next: AliasRecord = {
          schema_version: 1,
          name,
          alias,
          version,
          updated_at: at,
          updated_by: this.options.actor,
          history: [...(current?.history ?? []), { at, by: this.options.actor, action, from: current?.version ?? null, to: version, reason }],
        };
        return { write: encodeJson(next), result: next };
      },
      { contention: `Alias "${alias}" of "${name}" kept changing (or the store keeps refusing If-Match); the alias was not moved, try again` },
    );
  }

  /**
   * Refuses to write to a store that ignores conditional writes: there, racing publishers would
   * get the same version number and overwrite each other, and alias history would lose entries.
   */
  private async assertSafeStore(what: string): Promise<void> {
    const support = await this.store.checkConditionalWrites('models/');
    if (support.ok) return;
    throw new UnsafeStoreError(
      `Refusing to ${what} on ${this.store.location}: this store ${support.problems.join('; it ')}. ` +
        'Concurrent writers would silently replace each other there. Use Amazon S3, or an S3-compatible store that honours If-None-Match and If-Match.',
    );
  }

  /**
   * Version numbers present. `complete` keeps only versions whose manifest exists; otherwise any
   * number with any object counts as taken (a crashed publish's orphan is never reused).
   */
  private async versionNumbers(name: string, complete: boolean): Promise<number[]> {
    const base = `models/${name}/versions/`;
    const numbers = new Set<number>();
    const { keys } = await this.store.list(base);
    for (const key of keys) {
      const m = /^(\d+)\/(.+)$/.exec(key.slice(base.length));
      if (m && (!complete || m[2] === 'manifest.json')) numbers.add(Number(m[1]));
    }
    return [...numbers].sort((a, b) => a - b);
  }

  private noVersions(name: string): NotFoundError {
    return new NotFoundError(`Model "${name}" has no published versions`, { code: 'model_not_found' });
  }

  private now(): Date {
    return this.options.now ? this.options.now() : new Date();
  }
}

/** The version an alias pointed at before its current one, skipping versions rolled back from. */
export function previousVersion(record: AliasRecord): number | null {
  const skip = new Set<number>([record.version]);
  for (let i = record.history.length - 1; i >= 0; i--) {
    const event = record.history[i]!;
    if (event.action === 'rollback' && event.from !== null) skip.add(event.from);
    if (event.from !== null && !skip.has(event.from)) return event.from;
  }
  return null;
}

export function modelKey(name: string, version: number): string {
  return `models/${name}/versions/${version}/model.onnx`;
}

export function manifestKey(name: string, version: number): string {
  return `models/${name}/versions/${version}/manifest.json`;
}

export function aliasKey(name: string, alias: string): string {
  return `models/${name}/aliases/${alias}.json`;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
}

function parseManifest(body: Uint8Array, what: string): ModelManifest {
  return parseDocument(body, ManifestSchema, `The manifest of ${what}`);
}

function parseAlias(body: Uint8Array, what: string): AliasRecord {
  return parseDocument(body, AliasRecordSchema, `The alias record ${what}`);
}

function parseDocument<T>(body: Uint8Array, schema: z.ZodType<T>, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new IntegrityError(`${what} is not valid JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new IntegrityError(`${what} is malformed (${problems})`);
  }
  return parsed.data;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
