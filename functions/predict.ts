import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { scoringApp } from '../lib/app/scoring';
import { config } from '../lib/config';
import { callerDeadlineMs, httpHandler } from '../lib/http/index';
import { batchResponse, BatchRequestSchema, LegacyRequestSchema, serverTiming, singleResponse, SingleRequestSchema } from '../lib/scoring/api';

// Read at cold start: an invalid configuration fails the instance with the variable's name.
const { maxBodyBytes, batchDeadlineMs, httpApiDeadlineMs } = config();
const deadline = (event: APIGatewayProxyEventV2, context: Context) => callerDeadlineMs(event, context, { batchMs: batchDeadlineMs, httpApiMs: httpApiDeadlineMs });

/** POST /api/loyalty/v1/ml/predict: one customer. */
export const single = httpHandler({ schema: SingleRequestSchema, maxBodyBytes }, async ({ body, event, context }) => {
  const { predictions } = await scoringApp();
  const outcome = await predictions.predict({ customerIds: [body.customer_id], type: body.type, explain: body.explain === true, batch: false, deadlineMs: deadline(event, context), requestId: context.awsRequestId });
  return { body: singleResponse(outcome), headers: serverTiming(outcome) };
});

/** POST /api/loyalty/v1/ml/predict/batch (and its function URL): up to 100 customers, partial success. */
export const batch = httpHandler({ schema: BatchRequestSchema, maxBodyBytes }, async ({ body, event, context }) => {
  const { predictions } = await scoringApp();
  const outcome = await predictions.predict({ customerIds: body.customer_ids, type: body.type, explain: body.explain === true, batch: true, deadlineMs: deadline(event, context), requestId: context.awsRequestId });
  return { body: batchResponse(outcome), headers: serverTiming(outcome) };
});

/** POST /api/loyalty/v1/config/ml/test/: the old contract, one customer or a batch. */
export const legacy = httpHandler({ schema: LegacyRequestSchema, maxBodyBytes }, async ({ body, event, context }) => {
  const { predictions } = await scoringApp();
  const isBatch = body.customer_ids !== undefined;
  const outcome = await predictions.predict({ customerIds: body.customer_ids ?? [body.customer_id!], type: body.type, explain: body.explain === true, batch: isBatch, deadlineMs: deadline(event, context), requestId: context.awsRequestId });
  return { body: isBatch ? batchResponse(outcome) : singleResponse(outcome), headers: serverTiming(outcome) };
});
