import { z } from 'zod';
import { DeadlineExceededError, NotFoundError, ValidationError } from '../errors';
import { plainResult } from './results';
import type { BatchOutcome } from './service';
import { NOT_FOUND } from './service';

/**
 * The prediction API's request schemas and response shapes, including the old system's contract
 * (seed 001) that the admin UI still calls: `{"customer_id", "type"}` for one customer and
 * `{"customer_ids": [...], "type"}` for a batch answered as type, mode, total, successful, failed,
 * results and errors.
 */
const CustomerId = z
  .string()
  .min(1, 'customer ids must not be empty')
  .max(128, 'customer ids are at most 128 characters')
  .regex(/^[\x21-\x7e]+$/, 'customer ids are printable ASCII without spaces');

const Explain = z
  .boolean({ error: 'explain must be true or false' })
  .optional()
  .describe('true: each churn and NBO answer carries `reasons`, the exact Shapley values of its probability over the version\'s background; absent or false: answers as without it');

const PredictionTypeSchema = z.enum(['churn', 'nbo', 'rfm', 'all'], { error: 'type must be one of churn, nbo, rfm, all' });

/**
 * The most ids a batch may list, duplicates included (the seed's 100 customers per request;
 * BATCH_MAX_CUSTOMERS may lower it). Listed entries rather than distinct ids are counted, so the
 * API document's `maxItems` is exactly what is enforced.
 */
export const MAX_LISTED_IDS = 100;
const CustomerIds = z
  .array(CustomerId, { error: 'customer_ids must be an array of customer ids (strings)' })
  .min(1, 'customer_ids is empty; send 1 to 100 customer ids')
  .max(MAX_LISTED_IDS, `customer_ids lists more than ${MAX_LISTED_IDS} ids; at most ${MAX_LISTED_IDS} are allowed per request (duplicates count)`);

export const LegacyRequestSchema = z
  .object({
    customer_id: CustomerId.optional(),
    customer_ids: CustomerIds.optional(),
    type: PredictionTypeSchema,
    explain: Explain,
  })
  .refine((b) => (b.customer_id === undefined) !== (b.customer_ids === undefined), {
    message: 'send exactly one of customer_id (one customer) or customer_ids (a batch)',
  })
  .meta({ openapi: { oneOf: [{ required: ['customer_id'] }, { required: ['customer_ids'] }] } });

export const SingleRequestSchema = z.object({ customer_id: CustomerId, type: PredictionTypeSchema, explain: Explain });

export const BatchRequestSchema = z.object({
  customer_ids: CustomerIds,
  type: PredictionTypeSchema,
  explain: Explain,
});

/** Refuses an empty batch or one listing more ids than allowed (BATCH_MAX_CUSTOMERS; duplicates count). */
export function checkBatchSize(ids: string[], max: number): void {
  if (ids.length === 0) throw new ValidationError(`customer_ids is empty; send 1 to ${max} customer ids`, { code: 'invalid_batch_size' });
  if (ids.length > max) {
    throw new ValidationError(`customer_ids lists ${ids.length} ids; at most ${max} are allowed per request (duplicates count)`, { code: 'invalid_batch_size' });
  }
}

/** The seed's batch format, plus warnings and duplicates at the top. */
export function batchResponse(outcome: BatchOutcome): Record<string, unknown> {
  return {
    type: outcome.type,
    mode: 'batch',
    total: outcome.ids.length,
    successful: outcome.results.length,
    failed: outcome.errors.length,
    warnings: outcome.warnings,
    duplicates: outcome.duplicates,
    results: outcome.results,
    errors: outcome.errors,
  };
}

/** One customer: the result's fields at the top level, or a 404/504 when it could not be scored. */
export function singleResponse(outcome: BatchOutcome): Record<string, unknown> {
  const result = outcome.results[0];
  if (!result) {
    const id = outcome.ids[0]!;
    if (outcome.timedOut.includes(id)) throw new DeadlineExceededError(outcome.errors[0]?.error ?? `Customer ${id} was not scored in time`);
    throw new NotFoundError(`${NOT_FOUND}: ${id}`, { code: 'customer_not_found' });
  }
  return { type: outcome.type, mode: 'single', ...plainResult(result.result), warnings: outcome.warnings };
}

/** Where the time went, for clients and benchmarks (the standard Server-Timing header). */
export function serverTiming(outcome: BatchOutcome): Record<string, string> {
  const parts = Object.entries(outcome.timings).map(([k, v]) => `${k.replace(/_ms$/, '')};dur=${v.toFixed(2)}`);
  return parts.length ? { 'server-timing': parts.join(', ') } : {};
}
