import trainingDefaults from '../../models/training.json';
import { ValidationError } from '../errors';
import type { ModelRegistry } from '../registry/index';
import { readDemoSummary } from '../warehouse/demo-load';
import type { WarehouseHandle } from '../warehouse/index';
import { churnTrainingSpec, nboTrainingSpec } from './datasets';
import { trainAndPublish, type TrainingOptions, type TrainingOutcome } from './pipeline';

export const WAREHOUSE_MODELS = ['churn', 'nbo'] as const;
export type WarehouseModel = (typeof WAREHOUSE_MODELS)[number];

export interface WarehouseTrainingResult extends TrainingOutcome {
  /** For demo data: the best achievable score the generating process implies. */
  achievable: string | null;
}

/**
 * Trains churn or NBO from the warehouse history and publishes it: the one path the CLI and the
 * training Lambda share.
 */
export async function trainFromWarehouse(
  model: string,
  deps: { registry: ModelRegistry; warehouse: WarehouseHandle },
  options: TrainingOptions & { sample?: number } = {},
): Promise<WarehouseTrainingResult> {
  if (!(WAREHOUSE_MODELS as readonly string[]).includes(model)) {
    throw new ValidationError(`"${model}" is not a warehouse model; use one of ${WAREHOUSE_MODELS.join(', ')}`);
  }
  const { warehouse } = deps.warehouse;
  const spec =
    model === 'churn'
      ? await churnTrainingSpec(warehouse, options.onProgress, { share: options.sample, seed: options.seed ?? trainingDefaults.seed })
      : await nboTrainingSpec(warehouse, options.onProgress);
  const demo = await readDemoSummary(deps.warehouse.pool);
  const achievable = !demo
    ? null
    : model === 'churn'
      ? `achievable AUC on this demo data (the generating process's own probabilities): ${demo.oracle.churn_auc_latest_snapshot}`
      : `achievable on this demo data: top-1 ${demo.oracle.nbo_top1_accuracy}, top-3 ${demo.oracle.nbo_top3_accuracy}`;
  const outcome = await trainAndPublish(deps.registry, spec, options);
  return { ...outcome, achievable };
}
