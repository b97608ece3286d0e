import { trainingApp } from '../lib/app/training';
import { ValidationError } from '../lib/errors';
import { logger, observed } from '../lib/observability';
import { TrainingService, TrainRequestSchema, type TrainSummary } from '../lib/services/training';

/**
 * The training function: runs on a schedule (one event per model, from serverless.yml) and on
 * direct invocation with `{"model": "churn"|"nbo", "promote": "staging"|null, "seed": 42}`. It
 * trains from the warehouse history (the stage's warehouse, through its secret), gates, exports and
 * publishes a new version, promoting it only when asked and every gate passed.
 */
export const handler = observed(async (event: unknown): Promise<TrainSummary> => {
  const parsed = TrainRequestSchema.safeParse(event);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ValidationError(`Invalid training event: ${issue.path.join('.') || 'event'}: ${issue.message}`);
  }
  const { training } = await trainingApp();
  const outcome = await training.train(parsed.data, { onProgress: (message) => logger.info(message) });
  const summary = TrainingService.summary(outcome);
  logger.info('training finished', { ...summary });
  return summary;
});
