import { app } from '../lib/scoring-app';
import { config } from '../lib/config';
import { httpHandler } from '../lib/http/index';
import type { BatchOutcome } from '../lib/scoring/service';
import { batchResponse, checkBatchSize, LegacyRequestSchema, singleResponse, SingleRequestSchema, BatchRequestSchema } from '../lib/scoring/api';

/** Where the time went, for clients and benchmarks (the standard Server-Timing header). */
function serverTiming(outcome: BatchOutcome): Record<string, string> {
  const parts = Object.entries(outcome.timings).map(([k, v]) => `${k.replace(/_ms$/, '')};dur=${v.toFixed(2)}`);
  return parts.length ? { 'server-timing': parts.join(', ') } : {};
}

/** The batch deadline: the configured one, never past the Lambda's remaining time. */
function deadline(remainingMs: number): number {
  return Math.max(100, Math.min(config().batchDeadlineMs, remainingMs - 1000));
}

/** POST /api/loyalty/v1/ml/predict: one customer. */
export const single = httpHandler({ schema: SingleRequestSchema, maxBodyBytes: config().maxBodyBytes }, async ({ body, context }) => {
  const { scoring } = await app();
  const outcome = await scoring.score([body.customer_id], body.type, deadline(context.getRemainingTimeInMillis()));
  return { body: singleResponse(outcome), headers: serverTiming(outcome) };
});

/** POST /api/loyalty/v1/ml/predict/batch: up to 100 customers, partial success. */
export const batch = httpHandler({ schema: BatchRequestSchema, maxBodyBytes: config().maxBodyBytes }, async ({ body, context }) => {
  const { scoring, config: cfg } = await app();
  checkBatchSize(body.customer_ids, cfg.batchMaxCustomers);
  const outcome = await scoring.score(body.customer_ids, body.type, deadline(context.getRemainingTimeInMillis()));
  return { body: batchResponse(outcome), headers: serverTiming(outcome) };
});

/** POST /api/loyalty/v1/config/ml/test/: the old contract, one customer or a batch. */
export const legacy = httpHandler({ schema: LegacyRequestSchema, maxBodyBytes: config().maxBodyBytes }, async ({ body, context }) => {
  const { scoring, config: cfg } = await app();
  if (body.customer_ids !== undefined) {
    checkBatchSize(body.customer_ids, cfg.batchMaxCustomers);
    const outcome = await scoring.score(body.customer_ids, body.type, deadline(context.getRemainingTimeInMillis()));
    return { body: batchResponse(outcome), headers: serverTiming(outcome) };
  }
  const outcome = await scoring.score([body.customer_id!], body.type, deadline(context.getRemainingTimeInMillis()));
  return { body: singleResponse(outcome), headers: serverTiming(outcome) };
});
