import { z } from 'zod';
import { logContext, telemetry } from '../observability';
import { binaryMetricsOf, isBinaryMetrics, NAME_PATTERN, type ModelRegistry } from '../registry/index';
import type { TrainingOptions } from '../training/pipeline';
import { trainFromWarehouse, WAREHOUSE_MODELS, type WarehouseTrainingResult } from '../training/run';
import type { WarehouseHandle } from '../warehouse/index';

/** What the training function accepts: on a schedule (serverless.yml gives the input) or invoked directly. */
export const TrainRequestSchema = z.strictObject({
  model: z.enum(WAREHOUSE_MODELS, { error: `"model" must be one of ${WAREHOUSE_MODELS.join(', ')}` }),
  promote: z.string().regex(NAME_PATTERN, '"promote" must be an alias name such as staging or production (lowercase letters, digits, - or _)').nullable().optional(),
  seed: z.number({ error: '"seed" must be a whole number' }).int('"seed" must be a whole number').nonnegative('"seed" must be a whole number').optional(),
  sample: z.number({ error: '"sample" must be a share of customers above 0 and at most 1' }).gt(0, '"sample" must be a share of customers above 0 and at most 1').lte(1, '"sample" must be a share of customers above 0 and at most 1').optional(),
});
export type TrainRequest = z.infer<typeof TrainRequestSchema>;

/** The training function's answer: the outcome in a few fields (the manifest holds everything). */
export interface TrainSummary {
  model: string;
  version: number;
  status: 'ready' | 'refused';
  refusal_reasons: string[];
  family: string;
  promoted: { alias: string; version: number } | null;
  holdout: Record<string, number | null>;
  seconds: number;
}

/**
 * Trains churn or next best offer from the warehouse history and publishes the new version: the
 * one path the training function, `loyalty-ml train` and `npm start` share. The warehouse is the
 * app's (the configured secret or URL), so a deployed function trains from the same warehouse it
 * scores from.
 */
export class TrainingService {
  constructor(private readonly deps: { registry: ModelRegistry; warehouse: () => Promise<WarehouseHandle> }) {}

  async train(request: TrainRequest, options: Omit<TrainingOptions, 'promote' | 'seed'> = {}): Promise<WarehouseTrainingResult> {
    logContext({ model: request.model });
    const warehouse = await this.deps.warehouse();
    const outcome = await trainFromWarehouse(request.model, { registry: this.deps.registry, warehouse }, { ...options, promote: request.promote ?? null, seed: request.seed, sample: request.sample });
    logContext({ model_version: outcome.manifest.version });
    telemetry.count('TrainingRuns');
    if (outcome.manifest.status === 'refused') telemetry.count('ModelsRefused');
    return outcome;
  }

  /** The few fields a caller of the function needs. */
  static summary(outcome: WarehouseTrainingResult): TrainSummary {
    const m = outcome.manifest;
    const holdout = m.metrics?.holdout;
    const figures: Record<string, number | null> = {};
    if (holdout) {
      if (isBinaryMetrics(holdout)) {
        const b = binaryMetricsOf(holdout);
        Object.assign(figures, { rows: b.rows, auc: b.auc, pr_auc: b.pr_auc, log_loss: b.log_loss, brier: b.brier, top_decile_lift: b.top_decile_lift, ece: b.ece });
      } else Object.assign(figures, { rows: holdout.rows, top1_accuracy: holdout.top1_accuracy, top3_accuracy: holdout.top3_accuracy, log_loss: holdout.log_loss });
    }
    return {
      model: m.name,
      version: m.version,
      status: m.status,
      refusal_reasons: m.refusal_reasons,
      family: outcome.chosen,
      promoted: outcome.promoted ? { alias: outcome.promoted.alias, version: outcome.promoted.version } : null,
      holdout: figures,
      seconds: outcome.seconds,
    };
  }
}
