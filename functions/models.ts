import { scoringApp } from '../lib/app/scoring';
import { config } from '../lib/config';
import { httpHandler, pathParam } from '../lib/http/index';

/**
 * GET /api/loyalty/v1/ml/models: what is published and what this instance serves. Loading each
 * served model here makes `loaded` and `load_ms` a real readiness check.
 * GET /api/loyalty/v1/ml/models/{name}: every version of one model with its metrics, gates and
 * report curves, and its aliases with their history (the console's model view).
 * GET /api/loyalty/v1/ml/models/{name}/performance: realised quality (the latest stored report of
 * `loyalty-ml monitor` or the daily check) with the overall figures of earlier reports.
 */
export const handler = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async ({ event }) => {
  const { modelStatus, monitoring } = await scoringApp();
  // The route key, not the path: a model could be named "performance".
  if (event.routeKey?.endsWith('/{name}/performance')) return { body: await monitoring.performance(pathParam(event, 'name')) };
  if (event.pathParameters?.name !== undefined) return { body: await modelStatus.detail(pathParam(event, 'name')) };
  return { body: await modelStatus.report() };
});
