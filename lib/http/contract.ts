import { ERROR_CODES } from '../errors';
import { z } from 'zod';
import { AliasRecordSchema, NAME_PATTERN } from '../registry/index';
import { ExplanationSchema, GateResultSchema, ManifestSchema, TrainingMetricsSchema } from '../registry/manifest';
import { BatchRequestSchema, LegacyRequestSchema, SingleRequestSchema } from '../scoring/api';
import { WarningSchema } from '../scoring/warnings';
import { SegmentStatisticsSchema } from '../segments/aggregates';
import { RUN_ID, RUN_STATUSES, SCORE_TYPES, SEGMENT_ID, SegmentRunSchema, StartRunSchema, StoredStatisticsSchema } from '../segments/runs';

/**
 * The HTTP API's contract: every route with its request and response schemas, the zod schemas the
 * handlers validate with and the services' answers are shaped by. `docs/openapi.json` is generated
 * from here (`npm run docs:openapi`), a test fails when the two differ, and the end-to-end tests
 * check every answer against the document.
 */

export const ErrorResponseSchema = z
  .object({ error: z.object({ code: z.enum(ERROR_CODES).describe('stable, machine-readable (lib/errors.ts ERROR_CODES)'), message: z.string().describe('for people; from 500 up a fixed sentence per code') }) })
  .meta({ id: 'Error' });

const OfferProbabilitiesSchema = z
  .enum(['acceptance', 'softmax'])
  .optional()
  .describe(
    'NBO answers: what the offer probabilities are. acceptance: P(the customer accepts the offer if it is sent), one per offer, independent (they do not sum to 1); softmax: one distribution over the offers (versions trained before acceptance models, or published so), which ranks offers but is not an acceptance rate',
  );

const SourceSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('model'), name: z.string(), version: z.number().int().positive(), alias: z.string(), probabilities: OfferProbabilitiesSchema }),
    z.object({ type: z.literal('rules'), name: z.literal('rfm'), cut_points: z.enum(['quintiles', 'fixed']) }),
    z.object({ type: z.literal('mock'), name: z.string(), probabilities: OfferProbabilitiesSchema }),
  ])
  .describe('where the answer came from: a registry version, the RFM rules, or the mock baseline (never silently)')
  .meta({ id: 'Source' });

const ReasonsSchema = z
  .object({
    base: z.number().describe('the background\'s mean probability: v(empty coalition)'),
    output: z.number().describe('the answer\'s probability, unrounded (churn: churn_probability; NBO: the top offer\'s)'),
    method: z.enum(['additive-logit', 'coalitions']).describe('additive-logit: the closed form of a logistic regression; coalitions: every coalition of the differing features through the model'),
    contributions: z
      .array(z.object({ feature: z.string(), value: z.number().nullable().describe('the customer\'s value (null: missing)'), contribution: z.number().describe('the feature\'s Shapley value, in probability') }))
      .describe('every feature, largest |contribution| first; base + their sum = output'),
    text: z.array(z.string()).max(3).describe('the largest three reasons as sentences'),
  })
  .nullable()
  .describe('exact interventional Shapley values of the probability over the version\'s background set (shap\'s Exact explainer with an Independent masker); null when the version has none (a reasons_unavailable warning says why). They describe the model, not cause.')
  .meta({ id: 'Reasons' });

const ChurnResultSchema = z
  .object({ customer_id: z.string(), churn_probability: z.number().min(0).max(1), churn_risk: z.enum(['low', 'medium', 'high']), source: SourceSchema, reasons: ReasonsSchema.optional().describe('with explain: true') })
  .meta({ id: 'ChurnResult' });

const RankedOfferSchema = z.object({
  rank: z.number().int().positive(),
  offer_id: z.string(),
  offer_name: z.string(),
  probability: z.number().min(0).max(1).describe('P(the customer accepts this offer if it is sent) (source.probabilities "acceptance"); independent of the other offers\' probabilities, so they do not sum to 1'),
});

const NboResultSchema = z
  .object({
    customer_id: z.string(),
    offer_id: z.string().describe('the offer the customer is likeliest to accept'),
    offer_name: z.string(),
    confidence: z.number().min(0).max(1).describe('the top offer\'s acceptance probability (its `probability` in `offers`)'),
    offers: z.array(RankedOfferSchema).describe('every offer, best first'),
    source: SourceSchema,
    reasons: ReasonsSchema.optional().describe('with explain: true: why the top offer\'s probability is what it is'),
  })
  .describe('Next best offer: every offer with P(accept if sent), ranked. The probabilities are independent acceptance rates, not shares of one distribution: they do not sum to 1 (source.probabilities says which kind a version gives).')
  .meta({ id: 'NboResult' });

const RfmResultSchema = z
  .object({
    customer_id: z.string(),
    recency_days: z.number().nullable(),
    frequency: z.number().nullable(),
    monetary: z.number().nullable(),
    r_score: z.number().int().min(1).max(5),
    f_score: z.number().int().min(1).max(5),
    m_score: z.number().int().min(1).max(5),
    rfm_score: z.string(),
    segment: z.string(),
    source: SourceSchema,
  })
  .meta({ id: 'RfmResult' });

const AllResultSchema = z.object({ customer_id: z.string(), churn: ChurnResultSchema, nbo: NboResultSchema, rfm: RfmResultSchema }).meta({ id: 'AllResult' });

const CustomerResultSchema = z.union([AllResultSchema, ChurnResultSchema, NboResultSchema, RfmResultSchema]);
const Warnings = z.array(WarningSchema.meta({ id: 'Warning' }));
const PredictionType = z.enum(['churn', 'nbo', 'rfm', 'all']);

export const BatchResponseSchema = z
  .object({
    type: PredictionType,
    mode: z.literal('batch'),
    total: z.number().int().nonnegative().describe('distinct customers asked for'),
    successful: z.number().int().nonnegative(),
    failed: z.number().int().nonnegative(),
    warnings: Warnings,
    duplicates: z.array(z.string()).describe('ids listed more than once (answered once)'),
    results: z.array(z.object({ customer_id: z.string(), result: CustomerResultSchema })),
    errors: z.array(z.object({ customer_id: z.string(), error: z.string() })).describe('customers not scored: not found, or not in time'),
  })
  .meta({ id: 'BatchResponse' });

export const SingleResponseSchema = z
  .union([
    ChurnResultSchema.extend({ type: z.literal('churn'), mode: z.literal('single'), warnings: Warnings }),
    NboResultSchema.extend({ type: z.literal('nbo'), mode: z.literal('single'), warnings: Warnings }),
    RfmResultSchema.extend({ type: z.literal('rfm'), mode: z.literal('single'), warnings: Warnings }),
    AllResultSchema.extend({ type: z.literal('all'), mode: z.literal('single'), warnings: Warnings }),
  ])
  .meta({ id: 'SingleResponse' });

const AliasStatusSchema = z.object({
  version: z.number().int().positive(),
  created_at: z.string(),
  sha256: z.string(),
  file_exists: z.boolean(),
  checksum_verified: z.boolean(),
  problem: z.string().nullable(),
});

export const ModelsReportSchema = z
  .object({
    serving_alias: z.string(),
    mock_mode: z.enum(['auto', 'on', 'off']),
    models: z.array(
      z.object({
        name: z.string(),
        mode: z.enum(['model', 'mock', 'unavailable']),
        production: AliasStatusSchema.nullable(),
        staging: AliasStatusSchema.nullable(),
        loaded: z.boolean(),
        loaded_version: z.number().int().positive().nullable(),
        loaded_at: z.string().nullable(),
        load_ms: z.number().nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'ModelsReport' });

export const ModelDetailSchema = z
  .object({
    name: z.string(),
    aliases: z.array(AliasRecordSchema.meta({ id: 'AliasRecord' })),
    versions: z.array(
      z
        .object({
          version: z.number().int().positive(),
          created_at: z.string(),
          created_by: z.string(),
          status: z.enum(['ready', 'refused']),
          refusal_reasons: z.array(z.string()),
          model: ManifestSchema.shape.model.pick({ sha256: true, size_bytes: true, producer: true }),
          features: z.array(z.string()),
          output: ManifestSchema.shape.output,
          lineage: ManifestSchema.shape.lineage,
          metrics: TrainingMetricsSchema.nullable(),
          gates: z.object({ passed: z.boolean(), results: z.array(GateResultSchema) }).nullable(),
          importance: ExplanationSchema.shape.importance.unwrap().describe('global importance over holdout rows (trained versions of this release on); null otherwise'),
        })
        .meta({ id: 'VersionSummary' }),
    ),
  })
  .meta({ id: 'ModelDetail' });

const ChurnQualitySchema = z
  .object({
    customers: z.number().int().nonnegative(),
    churned: z.number().int().nonnegative(),
    observed_rate: z.number(),
    mean_predicted: z.number(),
    auc: z.number().nullable(),
    auc_ci95: z.tuple([z.number(), z.number()]).nullable().describe('95% confidence interval of the AUC (DeLong)'),
    brier: z.number(),
    top_decile_lift: z.number().nullable(),
    calibration: z.array(z.object({ decile: z.number().int(), customers: z.number().int(), mean_predicted: z.number(), observed_rate: z.number() })),
  })
  .meta({ id: 'RealisedChurnQuality' });

const OfferTallySchema = z.object({ offers: z.number().int().nonnegative(), accepted: z.number().int().nonnegative(), rate: z.number().nullable() });
const NboQualitySchema = z
  .object({
    offers_made: z
      .object({
        offers: z.number().int().nonnegative(),
        accepted: z.number().int().nonnegative(),
        ...ChurnQualitySchema.pick({ observed_rate: true, mean_predicted: true, auc: true, auc_ci95: true, brier: true, calibration: true }).shape,
      })
      .nullable()
      .describe("every offer actually sent in the window, judged by what happened to it: the model's probability of that offer against whether it was accepted (calibration by decile counts offers in `customers`)"),
    recommended: OfferTallySchema.describe('offers made that were the recommended one'),
    other: OfferTallySchema.describe('offers made that were not'),
    lift: z.number().nullable(),
    p_value: z.number().nullable().describe('two-proportion z-test, recommended against other'),
  })
  .meta({ id: 'RealisedNboQuality' });

const RealisedQualitySchema = z.union([ChurnQualitySchema, NboQualitySchema]);
const PeriodQualitySchema = z.object({
  period: z.string().describe('ISO week of the predictions (2026-W47), or "all"'),
  predictions: z.number().int().nonnegative(),
  matched: z.number().int().nonnegative().describe('predictions that met an outcome'),
  quality: RealisedQualitySchema.nullable(),
});

export const PerformanceSchema = z
  .object({
    latest: z.object({
      model: z.string(),
      computed_at: z.string(),
      since: z.string().nullable(),
      horizon_days: z.number().int().positive(),
      predictions_read: z.number().int().nonnegative(),
      log_files: z.object({ read: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).describe('log files read, of those in the window (busy days are sampled)'),
      outcome_range: z.object({ from: z.string(), to: z.string() }).nullable(),
      versions: z.array(
        z.object({
          version: z.number().int().positive().nullable().describe('null for mock answers'),
          aliases: z.array(z.string()),
          shadow: z.boolean().describe("a challenger's predictions, scored beside the served model and never returned"),
          holdout_auc: z.number().nullable().optional(),
          overall: PeriodQualitySchema,
          weeks: z.array(PeriodQualitySchema),
        }),
      ),
    }),
    history: z
      .array(
        z.object({
          computed_at: z.string(),
          versions: z.array(z.object({ version: z.number().int().positive().nullable(), shadow: z.boolean(), matched: z.number().int().nonnegative(), quality: RealisedQualitySchema.nullable() })),
        }),
      )
      .describe('the overall figures of the stored reports, oldest first (at most 52)'),
  })
  .meta({ id: 'ModelPerformance' });

export const RunStartedSchema = z
  .object({ run_id: z.string(), segment_id: z.string(), status: z.enum(RUN_STATUSES), types: z.array(z.enum(SCORE_TYPES)), status_url: z.string() })
  .meta({ id: 'RunStarted' });

export const RunStatusSchema = SegmentRunSchema.extend({
  failed_chunks: z.array(
    z.object({ chunk: z.number().int().positive(), attempts: z.number().int().nonnegative(), error: z.string(), customers: z.number().int().nonnegative(), customer_ids: z.array(z.string()).max(1000) }),
  ),
}).meta({ id: 'SegmentRun' });

const TrendPointSchema = z.object({
  run_id: z.string(),
  finished_at: z.string().nullable(),
  status: z.enum(RUN_STATUSES),
  customers: SegmentStatisticsSchema.shape.customers,
  churn: z.object({ mean: z.number(), median: z.number(), p90: z.number(), risk_bands: z.record(z.string(), z.number().int()) }).nullable(),
  nbo: z.object({ mean_confidence: z.number(), top_offers: z.array(z.object({ offer_id: z.string(), share: z.number() })) }).nullable(),
  rfm: z.object({ segments: z.array(z.object({ segment: z.string(), share: z.number() })) }).nullable(),
  models: SegmentStatisticsSchema.shape.models,
  drift: SegmentStatisticsSchema.shape.drift,
});

export const SegmentStatsResponseSchema = StoredStatisticsSchema.extend({
  history: z.array(TrendPointSchema).describe('earlier finished runs, newest first (empty when one run is asked for)'),
}).meta({ id: 'SegmentStatistics' });

/** A path or query parameter: what it is, and the pattern the server checks it against (after percent-decoding). */
export interface Parameter {
  description: string;
  pattern: RegExp;
}

export interface Route {
  method: 'get' | 'post';
  path: string;
  /** The function serving it (serverless.yml), whose concurrency the local front door applies. */
  function: string;
  /** Served by the local console server only (promotion and rollback from the console), never deployed. */
  local?: true;
  summary: string;
  description: string;
  params?: Record<string, Parameter>;
  request?: z.ZodType;
  requestOptional?: boolean;
  query?: Record<string, Parameter>;
  responses: Record<string, { description: string; schema: z.ZodType }>;
}

const MODEL_NAME: Parameter = { description: 'a model name: churn, nbo, or one published under another name', pattern: NAME_PATTERN };
const SEGMENT: Parameter = { description: 'a segment id of the warehouse', pattern: SEGMENT_ID };
const RUN: Parameter = { description: 'a run id as the start route answered it', pattern: RUN_ID };

/** Beyond a function's concurrency and its bounded queue (the local front door), or API Gateway's throttle when deployed. */
const BUSY = {
  '429': {
    description: 'too many requests at once: the function\'s concurrency and its queue are full; `Retry-After` says when to try again (deployed, API Gateway\'s own throttle answers 429 with `{"message"}`)',
    schema: z.union([ErrorResponseSchema, z.object({ message: z.string() })]),
  },
};

const errors = (...codes: (400 | 403 | 404 | 409 | 413 | 500 | 503 | 504)[]) =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      {
        description: {
          400: 'the request is malformed or out of range (the message says which field and why)',
          403: 'not allowed here (the console is read-only against a deployed registry)',
          404: 'no such customer, model, segment or run',
          409: 'the change conflicts with the registry\'s state (a refused version, nothing to roll back to)',
          413: 'the body is larger than the limit',
          500: 'an unexpected fault (details in the log, under the request id)',
          503: 'a dependency (registry, warehouse) is unavailable, or the request waited too long for its function; retry later (`Retry-After` when it waited)',
          504: 'not scored within the deadline',
        }[c],
        schema: ErrorResponseSchema,
      },
    ]),
  );

/** What the console's promote and roll-back buttons send. */
export const AliasActionSchema = z
  .discriminatedUnion('action', [
    z.strictObject({
      action: z.literal('promote'),
      version: z.number({ error: 'promote needs the version to point the alias at (a whole number)' }).int().positive().describe('the version the alias points at next'),
      reason: z.string().max(500).optional(),
    }),
    z.strictObject({
      action: z.literal('rollback'),
      version: z.number().int().positive().optional().describe('an earlier version to go back to (default: the one before)'),
      reason: z.string().max(500).optional(),
    }),
  ])
  .meta({ id: 'AliasAction' });

/** Every route the stack deploys, as `serverless.yml` declares them, and the local console's own actions. */
export const ROUTES: Route[] = [
  {
    method: 'post',
    path: '/api/loyalty/v1/config/ml/test/',
    function: 'legacyTest',
    summary: 'Score one customer or a batch (the old system\'s contract)',
    description: 'The admin UI\'s route: `customer_id` answers one customer like POST /ml/predict; `customer_ids` answers a batch like POST /ml/predict/batch.',
    request: LegacyRequestSchema,
    responses: { '200': { description: 'one customer (`mode: single`) or a batch (`mode: batch`)', schema: z.union([SingleResponseSchema, BatchResponseSchema]) }, ...errors(400, 404, 413, 500, 503, 504), ...BUSY },
  },
  {
    method: 'post',
    path: '/api/loyalty/v1/ml/predict',
    function: 'predict',
    summary: 'Score one customer',
    description: 'Churn probability and risk band, the next best offer with every offer ranked, the RFM cell, or all three.',
    request: SingleRequestSchema,
    responses: { '200': { description: 'the customer\'s scores, their source and warnings', schema: SingleResponseSchema }, ...errors(400, 404, 413, 500, 503, 504), ...BUSY },
  },
  {
    method: 'post',
    path: '/api/loyalty/v1/ml/predict/batch',
    function: 'predictBatch',
    summary: 'Score up to 100 customers',
    description: 'Partial success: customers not found or not scored within the deadline are listed in `errors`; the others are answered.',
    request: BatchRequestSchema,
    responses: { '200': { description: 'results, errors and warnings', schema: BatchResponseSchema }, ...errors(400, 413, 500, 503), ...BUSY },
  },
  {
    method: 'get',
    path: '/api/loyalty/v1/ml/models',
    function: 'models',
    summary: 'Published and served model versions',
    description: 'For each served model: production and staging versions with their checksum verified, and whether this instance loaded it.',
    responses: { '200': { description: 'the models report', schema: ModelsReportSchema }, ...errors(500, 503), ...BUSY },
  },
  {
    method: 'get',
    path: '/api/loyalty/v1/ml/models/{name}',
    function: 'models',
    params: { name: MODEL_NAME },
    summary: 'One model\'s versions and aliases',
    description: 'Every version (newest first, at most 50) with its training metrics, the candidates compared, gates and report curves; every alias with its history.',
    responses: { '200': { description: 'the model', schema: ModelDetailSchema }, ...errors(400, 404, 500, 503), ...BUSY },
  },
  {
    method: 'get',
    path: '/api/loyalty/v1/ml/models/{name}/performance',
    function: 'models',
    params: { name: { description: 'a monitored model: churn or nbo', pattern: /^(churn|nbo)$/ } },
    summary: 'A model\'s realised quality',
    description:
      'Logged predictions against what happened (churn: AUC with its interval, Brier, lift, calibration by decile; NBO: acceptance of recommended offers against the others), per version and week, from the latest report of `loyalty-ml monitor` or the daily check, with the trend of earlier reports. 404 `performance_not_measured` before the first report.',
    responses: { '200': { description: 'the latest report and the trend', schema: PerformanceSchema }, ...errors(400, 404, 500, 503), ...BUSY },
  },
  {
    method: 'post',
    path: '/api/loyalty/v1/segments/{id}/ml/predict/',
    function: 'segmentStart',
    params: { id: SEGMENT },
    summary: 'Start scoring a segment',
    description: 'Starts a run (at most one active per segment) and answers at once; poll `status_url`.',
    request: StartRunSchema,
    requestOptional: true,
    responses: { '202': { description: 'the run started (or the active run)', schema: RunStartedSchema }, ...errors(400, 404, 413, 500, 503), ...BUSY },
  },
  {
    method: 'get',
    path: '/api/loyalty/v1/segments/{id}/ml/runs/{run_id}',
    function: 'segmentRunStatus',
    params: { id: SEGMENT, run_id: RUN },
    summary: 'A segment run\'s progress',
    description: 'Status, progress in chunks and customers, failed chunks with their customers.',
    responses: { '200': { description: 'the run', schema: RunStatusSchema }, ...errors(400, 404, 500, 503), ...BUSY },
  },
  {
    method: 'get',
    path: '/api/loyalty/v1/segments/{id}/ml/stats/',
    function: 'segmentStats',
    params: { id: SEGMENT },
    summary: 'A segment\'s latest statistics and their history',
    description: 'Churn distribution and risk bands, offer mix, RFM segments, models used, drift against each model\'s holdout, and the trend of earlier runs.',
    query: { run_id: { description: 'one run\'s statistics instead of the latest', pattern: RUN_ID } },
    responses: { '200': { description: 'the statistics', schema: SegmentStatsResponseSchema }, ...errors(400, 404, 500, 503), ...BUSY },
  },
  {
    method: 'post',
    path: '/console/actions/models/{name}/aliases/{alias}',
    function: 'console',
    local: true,
    summary: 'Promote or roll back an alias (the local console)',
    description:
      'What the console\'s buttons do: `npm start`\'s console server promotes a version to an alias, or rolls the alias back, in the local registry. Never deployed: against a deployed stage the console is read-only (403 `read_only`), and promotion goes through `loyalty-ml promote|rollback`.',
    params: { name: MODEL_NAME, alias: { description: 'an alias: staging, production, or another', pattern: NAME_PATTERN } },
    request: AliasActionSchema,
    responses: { '200': { description: 'the alias as it now is, with its history', schema: AliasRecordSchema }, ...errors(400, 403, 404, 409, 413, 500, 503), ...BUSY },
  },
];
