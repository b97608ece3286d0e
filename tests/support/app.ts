import type { Context } from 'aws-lambda';
import { createScoringApp, type ScoringApp } from '../../lib/app/scoring';
import { RefreshingValue } from '../../lib/cache';
import { loadConfig } from '../../lib/config';
import type { ModelRegistry } from '../../lib/registry/index';
import type { FeatureSource } from '../../lib/scoring/service';
import type { BaseProfile, CustomerFeatureRow } from '../../lib/warehouse/index';
import { FEATURES } from '../../lib/catalog';
import type { ObjectStore } from '../../lib/storage/index';
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

/** An app over an in-memory warehouse and local-folder stores, for handler and service tests. */
export async function testApp(options: { features: FeatureSource; registry?: ModelRegistry; results?: ObjectStore; mockMode?: 'auto' | 'on' | 'off'; env?: Record<string, string> }): Promise<ScoringApp> {
  const registryStore = options.registry?.store ?? tempFsStore();
  // Nothing here should open a warehouse: a connection would be refused at once.
  const config = loadConfig({ STAGE: 'test', ML_MOCK_MODE: options.mockMode ?? 'off', MODEL_REGISTRY_URI: registryStore.location, WAREHOUSE_URL: 'postgres://127.0.0.1:9/none', ...options.env });
  return createScoringApp(config, {
    registryStore,
    resultsStore: options.results ?? tempFsStore(),
    features: options.features,
    profile: new RefreshingValue(async () => PROFILE, 60_000),
  });
}

/** A Lambda context for calling a handler in process. */
export function lambdaContext(overrides: Partial<Context> = {}): Context {
  return {
    awsRequestId: `req-${Math.random().toString(16).slice(2, 10)}`,
    functionName: 'loyalty-ml-test-fn',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:loyalty-ml-test-fn',
    memoryLimitInMB: '1024',
    logGroupName: '/aws/lambda/loyalty-ml-test-fn',
    logStreamName: 'test',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
    ...overrides,
  } as Context;
}
