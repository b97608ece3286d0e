import { RefreshingValue } from './cache';
import { config, type Config } from './config';
import { ModelRegistry } from './registry/index';
import { ModelProvider } from './scoring/models';
import { ScoringService } from './scoring/service';
import { SegmentRunStore } from './segments/runs';
import { openObjectStore } from './storage/index';
import { computeBaseProfile, openWarehouse, type BaseProfile, type WarehouseHandle } from './warehouse/index';
import { FEATURES } from './warehouse/schema';

/** The models the API serves and the kind of output each must have. */
export const SERVED_MODELS = { churn: 'binary', nbo: 'multiclass' } as const;

/** Everything a function needs, built once per Lambda instance (cold start) and reused. */
export interface App {
  config: Config;
  registry: ModelRegistry;
  warehouse: WarehouseHandle;
  models: ModelProvider;
  profile: RefreshingValue<BaseProfile>;
  scoring: ScoringService;
  runs: SegmentRunStore;
}

export async function createApp(cfg: Config = config()): Promise<App> {
  const [store, resultsStore, warehouse] = await Promise.all([
    openObjectStore(cfg.modelRegistryUri),
    openObjectStore(cfg.resultsUri),
    openWarehouse(cfg.warehouseUrl, { configPath: cfg.warehouseConfigPath }),
  ]);
  const registry = new ModelRegistry(store, { actor: cfg.actor });
  const models = new ModelProvider(registry, {
    alias: cfg.servingAlias,
    ttlMs: cfg.aliasTtlMs,
    mockMode: cfg.mockMode,
    columns: FEATURES,
    expectedKind: SERVED_MODELS,
  });
  const profile = new RefreshingValue(() => computeBaseProfile(warehouse.warehouse), cfg.profileTtlMs);
  const scoring = new ScoringService({
    features: warehouse.warehouse,
    models,
    profile,
    settings: { churnRiskThresholds: cfg.churnRiskThresholds, rfmCutPoints: cfg.rfmCutPoints },
  });
  return { config: cfg, registry, warehouse, models, profile, scoring, runs: new SegmentRunStore(resultsStore) };
}

let instance: Promise<App> | undefined;

/** The instance's app, created on first use. A failed creation is retried on the next call. */
export function app(): Promise<App> {
  instance ??= createApp().catch((error: unknown) => {
    instance = undefined;
    throw error;
  });
  return instance;
}

/** Replaces the instance's app (tests inject one built on their own stores). */
export function setApp(value: App | undefined): void {
  instance = value ? Promise.resolve(value) : undefined;
}
