import { config, type Config } from './config';
import { ModelRegistry } from './registry/index';
import { SegmentRunStore } from './segments/runs';
import { openObjectStore } from './storage/index';
import { openWarehouse, type WarehouseHandle } from './warehouse/index';


/**
 * What every function needs, built once per Lambda instance (cold start) and reused: the registry,
 * the warehouse and the segment run store. Nothing here loads onnxruntime, so functions that do no
 * inference (segment planning, run status, statistics) ship without it; scoring is added by
 * lib/scoring-app.ts.
 */
export interface CoreApp {
  config: Config;
  registry: ModelRegistry;
  warehouse: WarehouseHandle;
  runs: SegmentRunStore;
}

export async function createCoreApp(cfg: Config = config()): Promise<CoreApp> {
  const [store, resultsStore, warehouseUrl] = await Promise.all([
    openObjectStore(cfg.modelRegistryUri),
    openObjectStore(cfg.resultsUri),
    resolveWarehouseUrl(cfg),
  ]);
  const warehouse = await openWarehouse(warehouseUrl, { configPath: cfg.warehouseConfigPath, ssl: cfg.warehouseSecretArn !== undefined });
  return { config: cfg, registry: new ModelRegistry(store, { actor: cfg.actor }), warehouse, runs: new SegmentRunStore(resultsStore) };
}

/** WAREHOUSE_URL, or (deployed) the connection held in the Secrets Manager secret WAREHOUSE_SECRET_ARN. */
async function resolveWarehouseUrl(cfg: Config): Promise<string> {
  if (cfg.warehouseSecretArn === undefined) return cfg.warehouseUrl;
  const { warehouseUrlFromSecret } = await import('./warehouse/secret');
  return warehouseUrlFromSecret(cfg.warehouseSecretArn);
}

let core: Promise<CoreApp> | undefined;

/** The instance's core app, created on first use. A failed creation is retried on the next call. */
export function coreApp(): Promise<CoreApp> {
  core ??= createCoreApp().catch((error: unknown) => {
    core = undefined;
    throw error;
  });
  return core;
}
