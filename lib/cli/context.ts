import { config } from '../config';
import { ModelRegistry } from '../registry/index';
import { openObjectStore } from '../storage/index';
import { openWarehouse, type WarehouseHandle } from '../warehouse/index';

/** Options every command that touches the registry accepts. */
export const registryOption = {
  registry: { type: 'string' as const, description: 'registry location (default: MODEL_REGISTRY_URI or .data/registry)' },
};

/** Options every command that touches the warehouse accepts. */
export const warehouseOption = {
  warehouse: { type: 'string' as const, description: 'warehouse URL (default: WAREHOUSE_URL or the embedded one)' },
};

/** The registry a command works on: --registry, else MODEL_REGISTRY_URI, else the local folder. */
export async function openRegistry(override?: string): Promise<ModelRegistry> {
  const cfg = config();
  const store = await openObjectStore(override ?? cfg.modelRegistryUri);
  return new ModelRegistry(store, { actor: cfg.actor });
}

/** The warehouse a command works on: --warehouse, else WAREHOUSE_URL, else the embedded one. */
export async function openCommandWarehouse(override?: string): Promise<WarehouseHandle> {
  const cfg = config();
  return openWarehouse(override ?? cfg.warehouseUrl, { configPath: cfg.warehouseConfigPath });
}
