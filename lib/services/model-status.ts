import { IntegrityError, NotFoundError, reportableMessage } from '../errors';
import type { AliasRecord, ModelRegistry } from '../registry/index';
import type { ModelManifest } from '../registry/manifest';
import type { ModelProvider } from '../scoring/models';

export interface AliasStatus {
  version: number;
  created_at: string;
  sha256: string;
  file_exists: boolean;
  checksum_verified: boolean;
  problem: string | null;
}

export interface ModelStatusReport {
  name: string;
  mode: 'model' | 'mock' | 'unavailable';
  production: AliasStatus | null;
  staging: AliasStatus | null;
  loaded: boolean;
  loaded_version: number | null;
  loaded_at: string | null;
  load_ms: number | null;
  /** Why this instance could not load the model, if it could not. */
  error: string | null;
}

/** One version as the console and `GET /ml/models/{name}` show it: the manifest without its preprocessing tables. */
export type VersionSummary = Pick<ModelManifest, 'version' | 'created_at' | 'created_by' | 'status' | 'refusal_reasons' | 'lineage' | 'metrics' | 'gates'> & {
  model: Pick<ModelManifest['model'], 'sha256' | 'size_bytes' | 'producer'>;
  features: string[];
  output: ModelManifest['output'];
  importance: NonNullable<ModelManifest['explanation']>['importance'] | null;
};

/** What the console and the report show of a version. */
export function versionSummary(m: ModelManifest): VersionSummary {
  return {
    version: m.version,
    created_at: m.created_at,
    created_by: m.created_by,
    status: m.status,
    refusal_reasons: m.refusal_reasons,
    model: { sha256: m.model.sha256, size_bytes: m.model.size_bytes, producer: m.model.producer },
    features: m.input.features.map((f) => f.name),
    output: m.output,
    lineage: m.lineage,
    metrics: m.metrics,
    gates: m.gates,
    importance: m.explanation?.importance ?? null,
  };
}

/** A model's versions (newest first) and its aliases with their history. */
export interface ModelDetail {
  name: string;
  aliases: AliasRecord[];
  versions: VersionSummary[];
}

export interface ModelsReport {
  serving_alias: string;
  mock_mode: 'auto' | 'on' | 'off';
  models: ModelStatusReport[];
}

/**
 * What is published and what this instance serves (GET /ml/models). The service loads each served
 * model itself, cached like everywhere else, so `loaded` and `load_ms` prove the version loads,
 * checksum and all, in this instance; and for production and staging it says whether each
 * version's file exists and matches its checksum (checked against the registry, cached for the
 * alias TTL since versions are immutable).
 */
export class ModelStatusService {
  private readonly verified = new Map<string, { at: number; status: AliasStatus }>();

  constructor(
    private readonly deps: {
      registry: ModelRegistry;
      models: ModelProvider;
      names: readonly string[];
      servingAlias: string;
      mockMode: 'auto' | 'on' | 'off';
      ttlMs: number;
    },
  ) {}

  async report(): Promise<ModelsReport> {
    const { registry, models, mockMode } = this.deps;
    const models_ = await Promise.all(
      this.deps.names.map(async (name): Promise<ModelStatusReport> => {
        const loadError = await models.get(name).then(
          () => null,
          (error: unknown) => reportableMessage(error),
        );
        const [production, staging] = await Promise.all([this.aliasStatus(registry, name, 'production'), this.aliasStatus(registry, name, 'staging')]);
        const held = models.status(name);
        return {
          name,
          // models.get() above has just tried to load it: what this instance holds now is the answer.
          mode: held.mode,
          production,
          staging,
          loaded: held.serving !== null,
          loaded_version: held.serving?.version ?? null,
          loaded_at: held.serving?.loaded_at ?? null,
          load_ms: held.serving?.load_ms ?? null,
          error: loadError,
        };
      }),
    );
    return { serving_alias: this.deps.servingAlias, mock_mode: mockMode, models: models_ };
  }

  /** Every version of one model (newest first, at most `limit`) and its aliases with their history. */
  async detail(name: string, limit = 50): Promise<ModelDetail> {
    const { registry } = this.deps;
    const [manifests, aliases] = await Promise.all([registry.listVersions(name, { newest: limit }), registry.listAliases(name)]);
    if (!manifests.length && !aliases.length) throw new NotFoundError(`No model named ${name} in the registry`, { code: 'model_not_found' });
    const versions = manifests.reverse().map(versionSummary);
    return { name, aliases: aliases.sort((a, b) => a.alias.localeCompare(b.alias)), versions };
  }

  private async aliasStatus(registry: ModelRegistry, name: string, alias: string): Promise<AliasStatus | null> {
    const record = await registry.getAlias(name, alias);
    if (!record) return null;
    const key = `${name}|${record.version}`;
    const cached = this.verified.get(key);
    if (cached && Date.now() - cached.at < this.deps.ttlMs) return cached.status;
    let status: AliasStatus;
    try {
      const { manifest } = await registry.readModel(name, record.version);
      status = { version: record.version, created_at: manifest.created_at, sha256: manifest.model.sha256, file_exists: true, checksum_verified: true, problem: null };
    } catch (error) {
      // An unreachable registry is the caller's failure; a broken version is a finding to report.
      if (!(error instanceof IntegrityError || error instanceof NotFoundError)) throw error;
      const manifest = await registry.getManifest(name, record.version).catch(() => null);
      status = {
        version: record.version,
        created_at: manifest?.created_at ?? '',
        sha256: manifest?.model.sha256 ?? '',
        file_exists: error.code !== 'model_file_missing',
        checksum_verified: false,
        problem: reportableMessage(error),
      };
    }
    this.verified.set(key, { at: Date.now(), status });
    return status;
  }
}
