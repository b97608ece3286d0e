import { config } from '../lib/config';
import { ValidationError } from '../lib/errors';
import { ModelRegistry } from '../lib/registry/index';
import { openObjectStore } from '../lib/storage/index';
import { trainFromWarehouse } from '../lib/training/run';
import { openWarehouse } from '../lib/warehouse/index';

/**
 * The training function: runs on a schedule (one event per model, from serverless.yml) and on
 * direct invocation with `{"model": "churn"|"nbo", "promote": "staging"|null, "seed": 42}`.
 * It trains from the warehouse history, gates, exports and publishes a new version, promoting it
 * only when asked and every gate passed; the answer summarises the outcome.
 */
export interface TrainEvent {
  model?: unknown;
  promote?: unknown;
  seed?: unknown;
}

export interface TrainResult {
  model: string;
  version: number;
  status: 'ready' | 'refused';
  refusal_reasons: string[];
  family: string;
  promoted: { alias: string; version: number } | null;
  holdout: Record<string, unknown>;
  seconds: number;
}

export async function handler(event: TrainEvent): Promise<TrainResult> {
  const model = typeof event.model === 'string' ? event.model : '';
  if (event.promote !== undefined && event.promote !== null && typeof event.promote !== 'string') {
    throw new ValidationError('"promote" must be an alias name or null');
  }
  if (event.seed !== undefined && !Number.isSafeInteger(event.seed)) throw new ValidationError('"seed" must be a whole number');
  const cfg = config();
  const registry = new ModelRegistry(await openObjectStore(cfg.modelRegistryUri), { actor: cfg.actor });
  const warehouse = await openWarehouse(cfg.warehouseUrl, { configPath: cfg.warehouseConfigPath });
  try {
    const outcome = await trainFromWarehouse(
      model,
      { registry, warehouse },
      {
        promote: (event.promote as string | null | undefined) ?? null,
        seed: event.seed as number | undefined,
        onProgress: (message) => console.log(JSON.stringify({ level: 'info', model, message })),
      },
    );
    const m = outcome.manifest;
    return {
      model,
      version: m.version,
      status: m.status,
      refusal_reasons: m.refusal_reasons,
      family: outcome.chosen,
      promoted: outcome.promoted ? { alias: outcome.promoted.alias, version: outcome.promoted.version } : null,
      holdout: Object.fromEntries(Object.entries((m.metrics as { holdout: Record<string, unknown> }).holdout).filter(([k]) => k !== 'calibration')),
      seconds: outcome.seconds,
    };
  } finally {
    await warehouse.close();
  }
}
