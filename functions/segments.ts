import type { ScheduledEvent } from 'aws-lambda';
import { z } from 'zod';
import { coreApp } from '../lib/app/core';
import { config } from '../lib/config';
import { httpHandler, pathParam } from '../lib/http/index';
import { observed } from '../lib/observability';
import { SCORE_TYPES, StartRunSchema } from '../lib/segments/runs';

const PlannerEventSchema = z.object({ segment_id: z.string(), run_id: z.string() });
const { maxBodyBytes } = config();

/** POST /api/loyalty/v1/segments/{id}/ml/predict/: starts a run; 202 with its id and status URL. */
export const start = httpHandler({ schema: StartRunSchema, maxBodyBytes, optionalBody: true }, async ({ body, event }) => {
  const { segments } = await coreApp();
  const segmentId = pathParam(event, 'id');
  const run = await segments.start(segmentId, body.types ?? SCORE_TYPES, 'api');
  const statusUrl = `/api/loyalty/v1/segments/${encodeURIComponent(segmentId)}/ml/runs/${run.run_id}`;
  return { status: 202, body: { run_id: run.run_id, segment_id: segmentId, status: run.status, types: run.types, status_url: statusUrl }, headers: { location: statusUrl } };
});

/** GET /api/loyalty/v1/segments/{id}/ml/runs/{run_id}: progress and final status. */
export const status = httpHandler({ maxBodyBytes }, async ({ event }) => {
  const { segments } = await coreApp();
  return { body: await segments.status(pathParam(event, 'id'), pathParam(event, 'run_id')) };
});

/** GET /api/loyalty/v1/segments/{id}/ml/stats/: the latest finished run's statistics and the history. */
export const stats = httpHandler({ maxBodyBytes }, async ({ event }) => {
  const { segments } = await coreApp();
  return { body: await segments.stats(pathParam(event, 'id'), event.queryStringParameters?.run_id) };
});

/** The planner function: claims one run and works on it (asynchronous invocation). */
export const planner = observed(async (event: unknown, context) => {
  const { segment_id, run_id } = PlannerEventSchema.parse(event);
  const { segments } = await coreApp();
  const outcome = await segments.plan(segment_id, run_id, { owner: context.awsRequestId, timeLeftMs: () => context.getRemainingTimeInMillis() });
  return { run_id, status: outcome.run.status, outcome: outcome.kind };
});

/**
 * The distributed map's last step (Step Functions invokes it after the map, also when the map
 * failed: `map_error` then holds the state's error): merges the parts and finishes the run.
 */
export const merge = observed(async (event: unknown) => {
  const { segments } = await coreApp();
  return segments.mergeStep(event);
});

/** The nightly schedule: a run for every configured segment, once per scheduled time. */
export const nightly = observed(async (event: Partial<ScheduledEvent>) => {
  const { segments } = await coreApp();
  const scheduledAt = event.time ? new Date(event.time) : new Date();
  return segments.nightly(Number.isNaN(scheduledAt.getTime()) ? new Date() : scheduledAt);
});

/** Every few minutes: resume runs whose planner died, fail runs that keep losing theirs. */
export const sweeper = observed(async () => {
  const { segments } = await coreApp();
  return segments.sweep();
});
