import { SERVED_MODELS } from '../lib/catalog';
import { config } from '../lib/config';
import { reportableMessage } from '../lib/errors';
import { httpHandler } from '../lib/http/index';
import { app } from '../lib/scoring-app';
import { modelStatus } from '../lib/scoring/status';

/**
 * GET /api/loyalty/v1/ml/models: what is published and what this instance serves. The function
 * loads each served model itself (cached like everywhere else), so `loaded` and `load_ms` prove
 * that the version loads, checksum and all, in a Lambda instance, and errors say why not.
 */
export const handler = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async () => {
  const { registry, models, config: cfg } = await app();
  const names = Object.keys(SERVED_MODELS);
  const errors: Record<string, string> = {};
  await Promise.all(
    names.map((name) =>
      models.get(name).catch((error: unknown) => {
        errors[name] = reportableMessage(error);
      }),
    ),
  );
  const report = await modelStatus(registry, models, names, { mockMode: cfg.mockMode, ttlMs: cfg.aliasTtlMs });
  return { body: { serving_alias: cfg.servingAlias, mock_mode: cfg.mockMode, models: report.map((m) => ({ ...m, error: errors[m.name] ?? null })) } };
});
