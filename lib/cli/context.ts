import { createCoreApp, type CoreApp } from '../app/core';
import { config, type Config } from '../config';
import type { ModelRegistry } from '../registry/index';
import { UsageError } from './runtime';

/** Options every command that touches the registry accepts. */
export const registryOption = {
  registry: { type: 'string' as const, description: 'registry location (default: MODEL_REGISTRY_URI or .data/registry)' },
};

/** Options every command that touches the warehouse accepts. */
export const warehouseOption = {
  warehouse: { type: 'string' as const, description: 'warehouse URL (default: WAREHOUSE_URL, WAREHOUSE_SECRET_ARN or the embedded one)' },
};

/**
 * The Config a command works with: the process's (environment variables), with --registry and
 * --warehouse applied. Commands build their app from it through the one composition root.
 */
export function commandConfig(values: { registry?: string; warehouse?: string }): Config {
  const base = config();
  let warehouse = base.warehouse;
  if (values.warehouse !== undefined) {
    if (!/^(postgres|postgresql):\/\//.test(values.warehouse) && !values.warehouse.startsWith('pglite:')) {
      throw new UsageError(`--warehouse must be postgres://… or pglite:<folder>, got "${values.warehouse.slice(0, 80)}"`);
    }
    warehouse = { kind: 'url', url: values.warehouse };
  }
  return {
    ...base,
    modelRegistryUri: values.registry ?? base.modelRegistryUri,
    resultsUri: values.registry ?? base.resultsUri,
    warehouse,
  };
}

/** The app a command works on. Close it when done if it used the warehouse. */
export function commandApp(values: { registry?: string; warehouse?: string }): Promise<CoreApp> {
  return createCoreApp(commandConfig(values));
}

/** The registry a command works on: --registry, else MODEL_REGISTRY_URI, else the local folder. */
export async function commandRegistry(values: { registry?: string }): Promise<ModelRegistry> {
  return (await commandApp(values)).registry;
}
