import type { App } from '../../lib/scoring-app';
import { SERVED_MODELS } from '../../lib/catalog';
import { RefreshingValue } from '../../lib/cache';
import { loadConfig } from '../../lib/config';
import { ModelRegistry } from '../../lib/registry/index';
import { ModelProvider } from '../../lib/scoring/models';
import { ScoringService, type FeatureSource } from '../../lib/scoring/service';
import { SegmentRunStore } from '../../lib/segments/runs';
import type { BaseProfile, CustomerFeatureRow, WarehouseHandle } from '../../lib/warehouse/index';
import { FEATURES } from '../../lib/catalog';
import { tempFsStore } from './registry';

/** An in-memory feature source that counts its queries. */
export class MemoryFeatures implements FeatureSource {
  queries = 0;
  constructor(readonly rows: Map<string, (number | null)[]>) {}
  async getFeatures(ids: readonly string[]): Promise<Map<string, CustomerFeatureRow>> {
    this.queries++;
    const out = new Map<string, CustomerFeatureRow>();
    for (const id of ids) {
      const f = this.rows.get(id);
      if (f) out.set(id, { customerId: id, features: f });
    }
    return out;
  }
}

/** A plausible feature vector that varies with n. */
export function customerFeatures(n: number): (number | null)[] {
  return [5 + ((n * 37) % 300), n % 7, ((n * 53) % 900) + 0.5, n % 7 ? 30 + (n % 40) : null, 20 + ((n * 11) % 2000), n % 9 ? 100 + n : null, n % 5, n % 3, n % 4 === 0 ? 1 : 0, n % 10 === 0 ? null : ((n % 13) - 6) / 10];
}

export const PROFILE: BaseProfile = {
  customers: 1000,
  quintiles: { recency_days: [10, 30, 60, 120], frequency: [0, 1, 2, 4], monetary: [0, 50, 150, 400] },
  commonValues: Object.fromEntries(FEATURES.map((f) => [f, [{ value: 0, share: 0.5 }]])),
  computedAt: '2026-01-01T00:00:00.000Z',
};

/** An App over an in-memory warehouse and a local-folder registry, for handler tests. */
export function testApp(options: { features: FeatureSource; registry?: ModelRegistry; mockMode?: 'auto' | 'on' | 'off'; env?: Record<string, string> }): App {
  const config = loadConfig({ STAGE: 'test', ML_MOCK_MODE: options.mockMode ?? 'off', ...options.env });
  const registry = options.registry ?? new ModelRegistry(tempFsStore(), { actor: 'test' });
  const models = new ModelProvider(registry, { alias: 'production', ttlMs: 60_000, mockMode: config.mockMode, columns: FEATURES, expectedKind: SERVED_MODELS });
  const profile = new RefreshingValue(async () => PROFILE, 60_000);
  const scoring = new ScoringService({ features: options.features, models, profile, settings: { churnRiskThresholds: config.churnRiskThresholds, rfmCutPoints: config.rfmCutPoints } });
  return { config, registry, models, profile, scoring, runs: new SegmentRunStore(tempFsStore()), warehouse: null as unknown as WarehouseHandle };
}
