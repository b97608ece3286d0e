import './tracing-mode';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';

/**
 * Logs, metrics and traces the AWS way: Powertools for AWS Lambda, wired into every function as
 * middy middleware. Every log line is JSON with the request id, function name and cold start;
 * metrics are CloudWatch embedded metric format (EMF) lines in one namespace with the stage as a
 * dimension; traces go to X-Ray when the function has active tracing.
 *
 * Outside Lambda (the CLI, `npm start`'s setup, tests and benchmarks) logging is silent unless
 * POWERTOOLS_LOG_LEVEL asks otherwise, and metrics are not emitted: EMF lines mean something only in
 * a Lambda's log stream, and the CLI's own output must stay readable.
 */
export const SERVICE_NAME = 'loyalty-ml';
export const METRICS_NAMESPACE = 'loyalty-ml';

// The platform tells whether this is a Lambda (or serverless-offline's emulation of one).
const inLambda = Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME);

export const logger = new Logger({ serviceName: SERVICE_NAME, ...(inLambda || process.env.POWERTOOLS_LOG_LEVEL ? {} : { logLevel: 'SILENT' }) });
export const tracer = new Tracer({ serviceName: SERVICE_NAME, enabled: inLambda && process.env.POWERTOOLS_TRACE_ENABLED !== 'false' });
const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });
let emitting = inLambda && process.env.POWERTOOLS_METRICS_DISABLED !== 'true';

/** Every metric loyalty-ml emits; alarms in infra/monitoring.cjs watch some of them. */
export type MetricName =
  | 'Predictions'
  | 'MockPredictions'
  | 'StaleModelAnswers'
  | 'PredictionWarnings'
  | 'BatchSize'
  | 'DeadlineHits'
  | 'ModelLoads'
  | 'ModelVersionSwaps'
  | 'SegmentChunksDone'
  | 'SegmentChunksFailed'
  | 'SegmentChunksRetried'
  | 'SegmentChunksResumed'
  | 'SegmentCustomersScored'
  | 'SegmentRunsCompleted'
  | 'SegmentRunsPartial'
  | 'SegmentRunsFailed'
  | 'SegmentRunsHandedOff'
  | 'SegmentRunsMapped'
  | 'SegmentRunsPastLease'
  | 'SegmentRunsResumed'
  | 'TrainingRuns'
  | 'ModelsRefused'
  | 'PredictionLogWriteFailures'
  | 'PredictionLogRecordsLost'
  | 'ShadowPredictions'
  | 'ShadowFailures'
  | 'RealisedQualityAlarms';

/** Records loyalty-ml's metrics (a no-op outside Lambda). */
export const telemetry = {
  /**
   * Adds to a metric of this invocation. With dimensions, the value is emitted at once as its own
   * EMF line (a breakdown: by type, source, warning code); without, it joins the invocation's line.
   */
  count(name: MetricName, value = 1, dimensions?: Record<string, string>): void {
    if (!emitting || value === 0) return;
    if (!dimensions) {
      metrics.addMetric(name, MetricUnit.Count, value);
      return;
    }
    const single = metrics.singleMetric();
    for (const [k, v] of Object.entries(dimensions)) single.addDimension(k, v);
    single.addMetric(name, MetricUnit.Count, value);
  },
};

/** Sets what every log line and metric of this process carries: the stage. Called by the composition root. */
let configuredStage: string | undefined;

export function configureObservability(options: { stage: string; metrics?: boolean }): void {
  if (options.metrics === false) emitting = false;
  if (configuredStage === options.stage) return;
  configuredStage = options.stage;
  logger.appendPersistentKeys({ stage: options.stage });
  metrics.setDefaultDimensions({ Stage: options.stage });
}

/** Adds keys (model name and version, segment and run) to the log lines of the current invocation. */
export function logContext(keys: Record<string, string | number | null | undefined>): void {
  logger.appendKeys(Object.fromEntries(Object.entries(keys).filter(([, v]) => v !== undefined && v !== null)) as Record<string, string | number>);
}

/**
 * The middleware every function starts with: an X-Ray segment, the invocation's context on every
 * log line (request id, function, cold start), a log line for a failed invocation, and the
 * invocation's metrics flushed at its end.
 */
export function observed<E, R>(handler: (event: E, context: Context) => Promise<R>) {
  return middy<E, R>(handler)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(flushMetrics<E, R>())
    .use(logFailures<E, R>());
}

let coldStart = true;

/**
 * Publishes the invocation's metrics at its end, and a ColdStart metric on an instance's first
 * invocation. (Powertools' own middleware prints a plain-text warning for every invocation that
 * recorded nothing; most record nothing, so that warning would be most of the log.)
 */
function flushMetrics<E, R>(): MiddlewareObj<E, R> {
  const flush = () => {
    if (emitting && metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
  };
  return {
    before: (request) => {
      if (!coldStart) return;
      coldStart = false;
      if (emitting) metrics.captureColdStartMetric((request.context as Context).functionName);
    },
    after: flush,
    onError: flush,
  };
}

/**
 * Logs an invocation that throws (the error then reaches Lambda, which counts it and retries per
 * its settings). An HTTP function's error handler has answered by then, and logged it itself.
 */
function logFailures<E, R>(): MiddlewareObj<E, R> {
  return {
    onError: (request) => {
      if (request.response === undefined) logger.error('invocation failed', { error: request.error });
    },
  };
}
