import { coreApp } from '../lib/app/core';
import { logger, observed } from '../lib/observability';

/**
 * The daily quality check (a schedule in serverless.yml): measures churn and NBO on realised
 * outcomes from the prediction log and the warehouse, stores the reports (served at
 * /ml/models/{name}/performance), raises the RealisedQualityAlarms metric when realised AUC falls
 * more than MONITOR_AUC_MARGIN below the holdout AUC or drift is major, and with
 * MONITOR_RETRAIN_FUNCTION set starts training (its gates still apply; the result lands in staging).
 */
export const handler = observed(async () => {
  const { monitoring } = await coreApp();
  const checks = await monitoring.check();
  for (const c of checks) logger.info('quality check', { model: c.model, model_version: c.version, realised_auc: c.realised_auc, holdout_auc: c.holdout_auc, alarms: c.alarms, retraining: c.retraining });
  return checks;
});
