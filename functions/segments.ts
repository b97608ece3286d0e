import type { ScheduledEvent } from 'aws-lambda';
import { z } from 'zod';
import { coreApp as app } from '../lib/app';
import { config } from '../lib/config';
import { NotFoundError, ServiceUnavailableError, ValidationError } from '../lib/errors';
import { httpHandler } from '../lib/http/index';
import { invokeAsync, LambdaWorkerInvoker } from '../lib/segments/invokers';
import { newRun, runSegment } from '../lib/segments/planner';
import { assertSegmentId, newRunId, SCORE_TYPES, type ScoreType, type StoredStatistics } from '../lib/segments/runs';

const StartSchema = z.object({ types: z.array(z.enum(SCORE_TYPES, { error: 'types may hold churn, nbo and rfm' })).min(1).max(3).optional() });
const PlannerEventSchema = z.object({ segment_id: z.string(), run_id: z.string() });

function pathParam(event: { pathParameters?: Record<string, string | undefined> }, name: string): string {
  const value = event.pathParameters?.[name];
  if (!value) throw new ValidationError(`Missing path parameter ${name}`);
  return decodeURIComponent(value);
}

/** Creates a queued run and starts the planner for it asynchronously. */
async function startRun(segmentId: string, types: ScoreType[], trigger: 'api' | 'schedule') {
  const { warehouse, runs, config: cfg } = await app();
  assertSegmentId(segmentId);
  await warehouse.warehouse.getSegment(segmentId);
  const run = newRun(newRunId(), segmentId, [...new Set(types)], trigger, cfg.segments);
  await runs.createRun(run);
  try {
    await invokeAsync(cfg.segments.plannerFunction, { segment_id: segmentId, run_id: run.run_id });
  } catch (error) {
    run.status = 'failed';
    run.error = 'the planner could not be started';
    run.finished_at = new Date().toISOString();
    await runs.saveRun(run);
    throw new ServiceUnavailableError(`Could not start the segment run: the planner function did not accept the invocation`, { cause: error });
  }
  return run;
}

/** POST /api/loyalty/v1/segments/{id}/ml/predict/: starts a run; 202 with its id and status URL. */
export const start = httpHandler({ schema: StartSchema, maxBodyBytes: config().maxBodyBytes, optionalBody: true }, async ({ body, event }) => {
  const segmentId = pathParam(event, 'id');
  const run = await startRun(segmentId, body.types ?? [...SCORE_TYPES], 'api');
  const statusUrl = `/api/loyalty/v1/segments/${encodeURIComponent(segmentId)}/ml/runs/${run.run_id}`;
  return { status: 202, body: { run_id: run.run_id, segment_id: segmentId, status: run.status, types: run.types, status_url: statusUrl }, headers: { location: statusUrl } };
});

/** GET /api/loyalty/v1/segments/{id}/ml/runs/{run_id}: progress and final status. */
export const status = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async ({ event }) => {
  const { runs } = await app();
  const run = await runs.getRun(pathParam(event, 'id'), pathParam(event, 'run_id'));
  const { failed_chunks, ...rest } = run;
  return {
    body: {
      ...rest,
      failed_chunks: failed_chunks.map((c) => ({ chunk: c.chunk, attempts: c.attempts, error: c.error, customers: c.customer_ids.length, customer_ids: c.customer_ids.slice(0, 1000) })),
    },
  };
});

/** GET /api/loyalty/v1/segments/{id}/ml/stats/: the latest completed run's statistics and the history. */
export const stats = httpHandler({ maxBodyBytes: config().maxBodyBytes }, async ({ event }) => {
  const { runs, warehouse } = await app();
  const segmentId = pathParam(event, 'id');
  assertSegmentId(segmentId);
  const runId = event.queryStringParameters?.run_id;
  if (runId) return { body: { ...(await runs.getStatistics(segmentId, runId)), history: [] } };
  const history = await runs.history(segmentId);
  if (!history.length) {
    const segment = await warehouse.warehouse.getSegment(segmentId);
    throw new NotFoundError(`Segment ${segment.id} (${segment.name}) has never been scored; start a run with POST /api/loyalty/v1/segments/${segment.id}/ml/predict/`, { code: 'segment_not_scored' });
  }
  const [latest, ...earlier] = history;
  return { body: { ...latest, history: earlier.map(trend) } };
});

/** The figures of an earlier run that a trend needs. */
function trend(s: StoredStatistics) {
  return {
    run_id: s.run_id,
    finished_at: s.finished_at,
    status: s.status,
    customers: s.customers,
    churn: s.churn && { mean: s.churn.mean, median: s.churn.median, p90: s.churn.p90, risk_bands: s.churn.risk_bands },
    nbo: s.nbo && { mean_confidence: s.nbo.mean_confidence, top_offers: s.nbo.top_offers.map((o) => ({ offer_id: o.offer_id, share: o.share })) },
    rfm: s.rfm && { segments: s.rfm.segments.map((x) => ({ segment: x.segment, share: x.share })) },
    models: s.models,
    drift: s.drift,
  };
}

/** The planner function: runs one queued segment run to the end (asynchronous invocation). */
export async function planner(event: unknown): Promise<{ run_id: string; status: string }> {
  const { segment_id, run_id } = PlannerEventSchema.parse(event);
  const { runs, warehouse, registry, config: cfg } = await app();
  const run = await runs.getRun(segment_id, run_id);
  if (run.status !== 'queued') return { run_id, status: run.status };
  const result = await runSegment(run, {
    members: warehouse.warehouse,
    runs,
    registry,
    invoker: new LambdaWorkerInvoker(cfg.segments.workerFunction),
    settings: cfg.segments,
  });
  // CloudWatch embedded metric format: the FailedSegmentChunks alarm watches this metric.
  console.log(
    JSON.stringify({
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: 'loyalty-ml',
            Dimensions: [['Stage']],
            Metrics: [
              { Name: 'FailedSegmentChunks', Unit: 'Count' },
              { Name: 'SegmentCustomersScored', Unit: 'Count' },
            ],
          },
        ],
      },
      Stage: cfg.stage,
      FailedSegmentChunks: result.run.progress.chunks_failed,
      SegmentCustomersScored: result.run.progress.customers_scored,
      segment_id,
      run_id,
      status: result.run.status,
    }),
  );
  return { run_id, status: result.run.status };
}

/** The nightly schedule: starts a run for every configured segment. */
export async function nightly(_event: ScheduledEvent): Promise<{ started: { segment_id: string; run_id: string }[]; failed: { segment_id: string; error: string }[] }> {
  const started: { segment_id: string; run_id: string }[] = [];
  const failed: { segment_id: string; error: string }[] = [];
  for (const segmentId of config().segments.scheduled) {
    try {
      const run = await startRun(segmentId, [...SCORE_TYPES], 'schedule');
      started.push({ segment_id: segmentId, run_id: run.run_id });
    } catch (error) {
      failed.push({ segment_id: segmentId, error: error instanceof Error ? error.message : String(error) });
    }
  }
  console.log(JSON.stringify({ level: 'info', message: 'nightly segment scoring', started, failed }));
  if (failed.length) throw new Error(`Could not start ${failed.length} scheduled segment runs: ${failed.map((f) => f.segment_id).join(', ')}`);
  return { started, failed };
}
