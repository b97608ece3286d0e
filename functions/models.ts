import { scoringApp } from '../lib/app/scoring';
import { config } from '../lib/config';
import { httpHandler } from '../lib/http/index';

/**
 * GET /api/loyalty/v1/ml/models: what is published and what this instance serves. Loading each
 * served model here makes `loaded` and `load_ms` a real readiness check.
 */
export const handler = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async () => {
  const { modelStatus } = await scoringApp();
  return { body: await modelStatus.report() };
});
