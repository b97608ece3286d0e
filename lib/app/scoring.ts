import { RefreshingValue } from '../cache';
import { FEATURES, SERVED_MODELS } from '../catalog';
import { config as processConfig, type Config } from '../config';
import { PredictionLog } from '../monitoring/log';
import { ShadowScorer } from '../monitoring/shadow';
import { logger, telemetry } from '../observability';
import { ModelProvider } from '../scoring/models';
import { ScoringService, type FeatureSource } from '../scoring/service';
import { parseFaultPlan } from '../segments/worker';
import { ModelStatusService } from '../services/model-status';
import { PredictionService } from '../services/predictions';
import { ChunkScoringService } from '../services/segment-chunks';
import { computeBaseProfile, type BaseProfile } from '../warehouse/index';
import { createCoreApp, type CoreApp, type CoreParts } from './core';
import { perInstance } from './instance';

/** The core app plus inference: served models (onnxruntime), the base profile and the services that score. */
export interface ScoringApp extends CoreApp {
  models: ModelProvider;
  profile: RefreshingValue<BaseProfile>;
  scoring: ScoringService;
  predictions: PredictionService;
  modelStatus: ModelStatusService;
  chunks: ChunkScoringService;
}

export interface ScoringParts extends CoreParts {
  /** Customer features from somewhere other than the warehouse (tests). */
  features?: FeatureSource;
  profile?: RefreshingValue<BaseProfile>;
}

/** Adds scoring to a core app. */
export function withScoring(core: CoreApp, parts: Pick<ScoringParts, 'features' | 'profile'> = {}): ScoringApp {
  const cfg = core.config;
  const models = new ModelProvider(core.registry, {
    alias: cfg.servingAlias,
    ttlMs: cfg.aliasTtlMs,
    mockMode: cfg.mockMode,
    columns: FEATURES,
    expectedKind: SERVED_MODELS,
    onLoad: (event) => {
      telemetry.count('ModelLoads', 1, { Model: event.name });
      if (event.previous !== null) telemetry.count('ModelVersionSwaps', 1, { Model: event.name });
      logger.info(event.previous === null ? 'model loaded' : 'model version swapped', { model: event.name, model_version: event.version, alias: event.alias, previous_version: event.previous, load_ms: event.loadMs });
    },
  });
  const features: FeatureSource = parts.features ?? { getFeatures: async (ids) => (await core.warehouse()).warehouse.getFeatures(ids) };
  const profile = parts.profile ?? new RefreshingValue(async () => computeBaseProfile((await core.warehouse()).warehouse), cfg.profileTtlMs);
  const settings = { churnRiskThresholds: cfg.churnRiskThresholds, rfmCutPoints: cfg.rfmCutPoints };
  const scoring = new ScoringService({ features, models, profile, settings });
  const log = new PredictionLog(core.results, { enabled: cfg.predictionLog.enabled, singleSampleRate: cfg.predictionLog.singleSampleRate, attempts: 3, backoffMs: 100 });
  const challenger = cfg.predictionLog.shadowAlias
    ? new ModelProvider(core.registry, { alias: cfg.predictionLog.shadowAlias, ttlMs: cfg.aliasTtlMs, mockMode: 'off', columns: FEATURES, expectedKind: SERVED_MODELS })
    : undefined;
  const shadow = challenger && cfg.predictionLog.enabled ? new ShadowScorer(new ScoringService({ features, models: challenger, profile, settings })) : undefined;
  return {
    ...core,
    models,
    profile,
    scoring,
    predictions: new PredictionService({ scoring, maxCustomers: cfg.batchMaxCustomers, log, ...(shadow ? { shadow: { scorer: shadow, sampleRate: cfg.predictionLog.shadowSampleRate } } : {}) }),
    modelStatus: new ModelStatusService({ registry: core.registry, models, names: Object.keys(SERVED_MODELS), servingAlias: cfg.servingAlias, mockMode: cfg.mockMode, ttlMs: cfg.aliasTtlMs }),
    chunks: new ChunkScoringService({ scoring, runs: core.runs, deadlineMs: cfg.batchDeadlineMs, faults: parseFaultPlan(cfg.segments.faults), log, shadow }),
  };
}

export async function createScoringApp(cfg: Config = processConfig(), parts: ScoringParts = {}): Promise<ScoringApp> {
  return withScoring(await createCoreApp(cfg, parts), parts);
}

const instance = perInstance(() => createScoringApp());

/** This instance's scoring app, created on first use. */
export const scoringApp = (): Promise<ScoringApp> => instance.get();

/** Replaces this instance's scoring app (tests inject one built on their own stores). */
export const setScoringApp = (app: ScoringApp | undefined): void => instance.set(app);
