import { SERVED_MODELS } from '../lib/app';
import { app } from '../lib/scoring-app';
import { config } from '../lib/config';
import { httpHandler } from '../lib/http/index';
import { modelStatus } from '../lib/scoring/status';

/** GET /api/loyalty/v1/ml/models: what is published and what this instance serves. */
export const handler = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async () => {
  const { registry, models, config: cfg } = await app();
  const report = await modelStatus(registry, models, Object.keys(SERVED_MODELS), { mockMode: cfg.mockMode, ttlMs: cfg.aliasTtlMs });
  return { body: { serving_alias: cfg.servingAlias, mock_mode: cfg.mockMode, models: report } };
});
