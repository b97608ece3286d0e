import { coreApp, createCoreApp, type CoreApp } from './app';
import { SERVED_MODELS } from './catalog';
import { RefreshingValue } from './cache';
import { config, type Config } from './config';
import { ModelProvider } from './scoring/models';
import { ScoringService } from './scoring/service';
import { computeBaseProfile, type BaseProfile } from './warehouse/index';
import { FEATURES } from './catalog';

/** The core app plus what scoring needs: served models (onnxruntime), the base profile, the service. */
export interface App extends CoreApp {
  models: ModelProvider;
  profile: RefreshingValue<BaseProfile>;
  scoring: ScoringService;
}

/** Adds scoring to a core app. */
export function withScoring(base: CoreApp): App {
  const cfg = base.config;
  const models = new ModelProvider(base.registry, {
    alias: cfg.servingAlias,
    ttlMs: cfg.aliasTtlMs,
    mockMode: cfg.mockMode,
    columns: FEATURES,
    expectedKind: SERVED_MODELS,
  });
  const profile = new RefreshingValue(() => computeBaseProfile(base.warehouse.warehouse), cfg.profileTtlMs);
  const scoring = new ScoringService({
    features: base.warehouse.warehouse,
    models,
    profile,
    settings: { churnRiskThresholds: cfg.churnRiskThresholds, rfmCutPoints: cfg.rfmCutPoints },
  });
  return { ...base, models, profile, scoring };
}

export async function createApp(cfg: Config = config()): Promise<App> {
  return withScoring(await createCoreApp(cfg));
}

let instance: Promise<App> | undefined;

/** The instance's scoring app, created on first use. A failed creation is retried on the next call. */
export function app(): Promise<App> {
  instance ??= coreApp()
    .then(withScoring)
    .catch((error: unknown) => {
      instance = undefined;
      throw error;
    });
  return instance;
}

/** Replaces the instance's app (tests inject one built on their own stores). */
export function setApp(value: App | undefined): void {
  instance = value ? Promise.resolve(value) : undefined;
}
