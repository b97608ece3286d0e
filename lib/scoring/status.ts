import { IntegrityError, NotFoundError, reportableMessage } from '../errors';
import type { ModelRegistry } from '../registry/index';
import type { ModelProvider } from './models';

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
}

const verified = new Map<string, { at: number; status: AliasStatus }>();

/**
 * Per model: the production and staging versions, whether each version's file exists and matches
 * its checksum (checked against the registry, cached for `ttlMs` since versions are immutable),
 * and what this instance has loaded.
 */
export async function modelStatus(
  registry: ModelRegistry,
  provider: ModelProvider,
  names: string[],
  options: { mockMode: 'auto' | 'on' | 'off'; ttlMs: number },
): Promise<ModelStatusReport[]> {
  return Promise.all(
    names.map(async (name) => {
      const [production, staging] = await Promise.all([aliasStatus(registry, name, 'production', options.ttlMs), aliasStatus(registry, name, 'staging', options.ttlMs)]);
      const held = provider.status(name);
      const servable = production?.checksum_verified ?? false;
      const mode =
        options.mockMode === 'on' || held.mode === 'mock'
          ? 'mock'
          : held.mode === 'model' || servable
            ? 'model'
            : options.mockMode === 'auto' && !production
              ? 'mock'
              : 'unavailable';
      return {
        name,
        mode,
        production,
        staging,
        loaded: held.serving !== null,
        loaded_version: held.serving?.version ?? null,
        loaded_at: held.serving?.loaded_at ?? null,
        load_ms: held.serving?.load_ms ?? null,
      };
    }),
  );
}

async function aliasStatus(registry: ModelRegistry, name: string, alias: string, ttlMs: number): Promise<AliasStatus | null> {
  const record = await registry.getAlias(name, alias);
  if (!record) return null;
  const key = `${registry.location}|${name}|${record.version}`;
  const cached = verified.get(key);
  if (cached && Date.now() - cached.at < ttlMs) return cached.status;
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
  verified.set(key, { at: Date.now(), status });
  return status;
}
