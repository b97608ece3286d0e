import { RefreshingValue } from '../cache';
import { IntegrityError, LoyaltyError, ModelUnavailableError, NotFoundError, reportableMessage } from '../errors';
import { ModelRunner } from '../inference/runner';
import type { ModelManifest, ModelRegistry } from '../registry/index';
import type { WarningCode } from './warnings';

/** A served model version, loaded and verified in this instance. */
export interface ServedModel {
  kind: 'model';
  runner: ModelRunner;
  manifest: ModelManifest;
  alias: string;
  loadedAt: string;
  loadMs: number;
}

/** No model is published: answers come from the rule-based baseline, labelled mock. */
export interface MockModel {
  kind: 'mock';
  reason: string;
}

export type ModelHandle = ServedModel | MockModel;

/** A model version loaded into this instance; `previous` is the version it replaced, if any. */
export interface ModelLoadEvent {
  name: string;
  version: number;
  alias: string;
  previous: number | null;
  loadMs: number;
}

export interface ModelWarning {
  code: Extract<WarningCode, 'mock_predictions' | 'stale_model'>;
  message: string;
  model: string;
}

export interface ModelStatus {
  name: string;
  mode: 'model' | 'mock' | 'unavailable';
  serving: { version: number; alias: string; loaded_at: string; load_ms: number; sha256: string } | null;
}

/**
 * Serves registry models to the API. On first use a model's alias is resolved, its bytes fetched
 * once and checked against the manifest's sha256, and an onnxruntime session built; the session is
 * kept per version. The alias is checked again after a TTL, so a promotion takes effect without a
 * redeploy. If a refresh fails after a good load (registry down, corrupt new version), the last
 * good version keeps serving and a warning says so. Without any good version: 503, or, in mock
 * mode `auto`, a rule-based baseline when nothing is published at all.
 */
export class ModelProvider {
  private readonly entries = new Map<string, RefreshingValue<ModelHandle>>();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly options: {
      alias: string;
      ttlMs: number;
      mockMode: 'auto' | 'on' | 'off';
      /** Columns the caller can supply; a model needing others cannot be served. */
      columns?: readonly string[];
      /** The kinds of output each model may have (churn binary, nbo acceptance or softmax). */
      expectedKind?: Readonly<Record<string, readonly string[]>>;
      now?: () => number;
      /** Told of every version this instance loads (the first, and each swap after a promotion). */
      onLoad?: (event: ModelLoadEvent) => void;
    },
  ) {}

  /** The handle to score with, and warnings to show with its answers. */
  async get(name: string): Promise<{ handle: ModelHandle; warnings: ModelWarning[] }> {
    if (this.options.mockMode === 'on') {
      return { handle: { kind: 'mock', reason: 'ML_MOCK_MODE=on' }, warnings: [mockWarning(name, 'ML_MOCK_MODE=on')] };
    }
    let entry = this.entries.get(name);
    if (!entry) {
      entry = new RefreshingValue((previous) => this.load(name, previous), this.options.ttlMs, { now: this.options.now });
      this.entries.set(name, entry);
    }
    let result;
    try {
      result = await entry.get();
    } catch (error) {
      throw this.unavailable(name, error);
    }
    const warnings: ModelWarning[] = [];
    if (result.value.kind === 'mock') warnings.push(mockWarning(name, result.value.reason));
    if (result.staleBecause && result.value.kind === 'model') {
      warnings.push({
        code: 'stale_model',
        model: name,
        message: `Could not refresh model ${name} (${describe(result.staleBecause)}); still serving v${result.value.manifest.version} loaded at ${result.value.loadedAt}`,
      });
    }
    return { handle: result.value, warnings };
  }

  /** What this instance serves for a model, without loading anything. */
  status(name: string): ModelStatus {
    const held = this.entries.get(name)?.peek() ?? null;
    if (!held) return { name, mode: this.options.mockMode === 'on' ? 'mock' : 'unavailable', serving: null };
    if (held.kind === 'mock') return { name, mode: 'mock', serving: null };
    return {
      name,
      mode: 'model',
      serving: { version: held.manifest.version, alias: held.alias, loaded_at: held.loadedAt, load_ms: held.loadMs, sha256: held.manifest.model.sha256 },
    };
  }

  private async load(name: string, previous: ModelHandle | null): Promise<ModelHandle> {
    let version: number;
    try {
      version = await this.registry.resolveVersion(name, this.options.alias);
    } catch (error) {
      if (error instanceof NotFoundError && this.options.mockMode === 'auto' && previous?.kind !== 'model') {
        return { kind: 'mock', reason: `model ${name} has no ${this.options.alias} version` };
      }
      throw error;
    }
    if (previous?.kind === 'model' && previous.manifest.version === version) return previous;
    const started = performance.now();
    const { manifest, bytes } = await this.registry.readModel(name, version);
    if (manifest.status !== 'ready') throw new IntegrityError(`Model ${name} v${version} is marked ${manifest.status}`);
    const kinds = this.options.expectedKind?.[name];
    if (kinds && !kinds.includes(manifest.output.kind)) throw new IntegrityError(`Model ${name} v${version} is ${manifest.output.kind}; ${name} needs a ${kinds.join(' or ')} model`);
    const runner = await ModelRunner.create(manifest, bytes);
    const lacking = this.options.columns ? runner.rawColumns.filter((c) => !this.options.columns!.includes(c)) : [];
    if (lacking.length) {
      await runner.release();
      throw new IntegrityError(`Model ${name} v${version} needs columns the warehouse does not provide: ${lacking.join(', ')}`);
    }
    const loaded: ServedModel = {
      kind: 'model',
      runner,
      manifest,
      alias: this.options.alias,
      loadedAt: new Date().toISOString(),
      loadMs: Math.round((performance.now() - started) * 10) / 10,
    };
    // The previous session may still be running a request; release it a little later.
    if (previous?.kind === 'model') setTimeout(() => void previous.runner.release().catch(() => undefined), 30_000).unref();
    this.options.onLoad?.({ name, version, alias: this.options.alias, previous: previous?.kind === 'model' ? previous.manifest.version : null, loadMs: loaded.loadMs });
    return loaded;
  }

  private unavailable(name: string, error: unknown): LoyaltyError {
    if (error instanceof NotFoundError && error.code === 'version_not_found') {
      return new ModelUnavailableError(`Model ${name}: its ${this.options.alias} alias points at a version that does not exist (${describe(error)}); promote an existing version`, { cause: error });
    }
    if (error instanceof NotFoundError) {
      return new ModelUnavailableError(
        `Model ${name} has no ${this.options.alias} version. Publish one: loyalty-ml train ${name} --promote ${this.options.alias} ` +
          `(or loyalty-ml publish ${name} ... then loyalty-ml promote ${name} VERSION ${this.options.alias})`,
        { cause: error },
      );
    }
    return new ModelUnavailableError(`Model ${name} is unavailable: ${describe(error)}`, { cause: error });
  }
}

function mockWarning(name: string, reason: string): ModelWarning {
  return {
    code: 'mock_predictions',
    model: name,
    message: `${name} answers come from a rule-based baseline, not a trained model (${reason}); they are labelled "mock"`,
  };
}

function describe(error: unknown): string {
  if (error instanceof LoyaltyError) return reportableMessage(error);
  return 'unexpected error';
}
