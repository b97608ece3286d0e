import { z } from 'zod';
import { TrainingProfileSchema } from '../drift';
import { ContributionSummarySchema } from '../explain/summary';

/**
 * The manifest written beside every model version. It is the version's identity card: what the
 * bytes are (sha256, size), how to feed them (features in order, encoding), what they answer
 * (binary probability or classes), where they came from (lineage), how good they were on data they
 * never saw (metrics, a fingerprint of the holdout predictions) and whether they passed the gates.
 * `docs/manifest.schema.json` is generated from this schema.
 */

const dim = z.union([z.number().int().nonnegative(), z.string(), z.null()]);

export const TensorSpecSchema = z.object({
  name: z.string().min(1),
  type: z.string().min(1).describe('onnxruntime element type: float32, int64, string, ...'),
  shape: z.array(dim).describe('null or a name for a dynamic dimension'),
});

export const FeatureSpecSchema = z.object({
  name: z.string().min(1),
  type: z.string().min(1).describe('element type the model takes for this feature'),
  tensor: z.string().min(1).describe('input tensor that carries the feature'),
  column: z.number().int().nonnegative().describe('column of the feature within that tensor'),
});

export const PreprocessingSchema = z.object({
  applied_in: z
    .enum(['graph', 'serving', 'none'])
    .describe('graph: the ONNX graph takes raw features; serving: the serving code applies `steps` first'),
  steps: z.array(z.record(z.string(), z.unknown())).describe('encoders, imputers and scalers, in order'),
});

export const InputSchemaSchema = z.object({
  tensors: z.array(TensorSpecSchema).min(1),
  features: z.array(FeatureSpecSchema).min(1),
  preprocessing: PreprocessingSchema,
});

/**
 * binary: P(positive); multiclass: one distribution over the classes (rows sum to 1); multilabel:
 * one independent probability per class (an NBO acceptance model: P(accept | x, offer) per offer,
 * rows do not sum to 1).
 */
export const OUTPUT_KINDS = ['binary', 'multiclass', 'multilabel'] as const;
export type OutputKind = (typeof OUTPUT_KINDS)[number];

export const OutputSchemaSchema = z.object({
  kind: z.enum(OUTPUT_KINDS).describe('binary: P(positive); multiclass: one distribution over the classes (rows sum to 1); multilabel: an independent probability per class (NBO acceptance: P(accept | x, offer) per offer, rows do not sum to 1)'),
  probability_tensor: z.string().min(1),
  /** `matrix`: [N, classes]; `positive_column`: [N, 1] or [N] holding P(positive class). */
  probability_layout: z.enum(['matrix', 'positive_column']),
  label_tensor: z.string().nullable(),
  classes: z.array(z.string()).min(2).describe('class labels in probability-column order (offer ids for NBO)'),
  positive_class: z.string().nullable().describe('binary models: the class whose probability is reported'),
});

export const GateResultSchema = z.object({
  gate: z.string(),
  passed: z.boolean(),
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  reason: z.string(),
});

/** JSON has no NaN: a metric that is undefined on the data (AUC of one class) is stored as null. */
const metric = z.number().nullable();

export const CalibrationBinSchema = z.object({
  lower: z.number(),
  upper: z.number(),
  count: z.number().int().nonnegative(),
  mean_predicted: metric,
  observed_rate: metric,
});

export const BinaryMetricsSchema = z.object({
  rows: z.number().int().nonnegative(),
  positives: z.number().int().nonnegative(),
  auc: metric,
  pr_auc: metric,
  log_loss: metric,
  brier: metric,
  top_decile_lift: metric,
  captured: z
    .array(z.object({ share: z.number(), rows: z.number().int().nonnegative(), positives: z.number().nonnegative() }))
    .optional()
    .describe('positives among the top shares of rows by score (ties counted in proportion)'),
  ece: metric,
  calibration: z.array(CalibrationBinSchema),
  curves: z
    .object({
      roc: z.object({ fpr: z.array(z.number()), tpr: z.array(z.number()) }),
      gain: z.object({ share: z.array(z.number()), captured: z.array(z.number()) }),
      histogram: z.object({ edges: z.array(z.number()), positives: z.array(z.number().int()), negatives: z.array(z.number().int()) }),
    })
    .optional()
    .describe('the data of the report charts: ROC points, cumulative gain by share of rows, score histogram by class (versions trained before they were recorded lack it)'),
});

export const MulticlassMetricsSchema = z.object({
  rows: z.number().int().nonnegative(),
  top1_accuracy: metric,
  top3_accuracy: metric,
  log_loss: metric,
  per_class_recall: z.record(z.string(), metric),
  top_class_share: z.record(z.string(), z.number()),
});

export const MetricSetSchema = z.union([BinaryMetricsSchema, MulticlassMetricsSchema]);

const EstimateSchema = z.object({ estimate: metric, ci_low: metric, ci_high: metric, se: metric });

/** A next-best-offer version's top-1 policy, estimated off-policy on the evaluation window (the last two months of offers). */
export const PolicyValueSchema = z
  .object({
    estimate: metric.describe('the acceptance rate of sending each customer its top offer: doubly robust (self-normalised IPS where there is no reward model)'),
    ci_low: metric.describe('95% interval'),
    ci_high: metric,
    method: z.enum(['doubly robust', 'self-normalised IPS']),
    logging: metric.describe('the acceptance rate the offers actually sent reached on the same rows (the logging policy, observed)'),
    rows: z.number().int().nonnegative().describe('offers made in the window'),
    from: z.string().describe('the first offer date of the window (ISO)'),
    to: z.string().describe('the last offer date of the window (ISO)'),
    dr: EstimateSchema.nullable(),
    ips: EstimateSchema,
    snips: EstimateSchema.nullable(),
    matched: z.number().int().nonnegative().describe('window rows where the offer sent is the one the policy would send'),
    effective_rows: z.number().nonnegative().describe('effective sample size of the importance weights'),
    propensity: z.enum(['logged', 'estimated']),
    reward_model: z.string().describe("whose P(accept) the doubly-robust estimate uses"),
    low_support_share: metric.describe('share of the window where the policy\'s offer had estimated propensity below 1% (estimated propensities only)'),
    production: z
      .object({ version: z.number().int().positive(), estimate: metric, ci_low: metric, ci_high: metric, difference: EstimateSchema.describe('this version minus production, paired by row') })
      .nullable(),
    true_value: metric.optional().describe('demo data only: the policy\'s true acceptance rate from the generating process'),
  })
  .describe("the off-policy estimate of the acceptance rate the version's top offer would reach");
export type PolicyValue = z.infer<typeof PolicyValueSchema>;

const QuantilesSchema = z.object({ p01: metric, p05: metric, p50: metric, p95: metric });

/** Whether the history can tell what each offer does for every kind of customer. */
export const OverlapSchema = z.object({
  propensity_source: z.enum(['logged', 'estimated']),
  rows: z.number().int().nonnegative(),
  propensity: QuantilesSchema.extend({ min: metric, max: metric }).describe('propensities of the offers sent'),
  offers: z.array(z.object({ offer_id: z.string(), sent: z.number().int().nonnegative(), accepted: z.number().int().nonnegative(), propensity: QuantilesSchema, effective_sends: z.number().nonnegative() })),
  unsupported: z
    .array(z.object({ offer_id: z.string(), feature: z.string(), customers: z.string(), rows: z.number().int().nonnegative(), share: z.number() }))
    .describe('kinds of customer an offer was never sent to: no model can know how they would answer it'),
});

/** How one offer's acceptance is modelled. */
export const HeadSchema = z.object({
  offer_id: z.string(),
  sent: z.number().int().nonnegative(),
  accepted: z.number().int().nonnegative(),
  kind: z.enum(['model', 'constant']),
  family: z.string().nullable(),
  log_loss: metric,
  settings: z.record(z.string(), z.unknown()),
  reason: z.string().nullable(),
  candidates: z.array(z.object({ family: z.string(), score: metric, seconds: z.number() })),
  seconds: z.number(),
});

/** What training measured: the holdout beside the class prior and the production version of the time. */
export const TrainingMetricsSchema = z.looseObject({
  holdout: MetricSetSchema,
  baseline_prior: MetricSetSchema,
  production: z
    .object({ version: z.number().int().positive(), comparable: z.boolean(), reason: z.string().nullable(), metrics: MetricSetSchema.nullable() })
    .nullable()
    .describe('the production version on the same holdout, when there was one'),
  validation: z.record(z.string(), z.object({ name: z.string(), value: metric })).describe('each candidate\'s out-of-fold score (older versions: its validation-split score)'),
  chosen_family: z.string(),
  export_max_abs_diff: z.number(),
  cross_validation: z
    .object({
      kind: z.enum(['k-fold', 'time', 'holdout']),
      description: z.string(),
      folds: z.array(z.object({ label: z.string(), fit_rows: z.number().int().nonnegative(), check_rows: z.number().int().nonnegative() })),
      out_of_fold: MetricSetSchema.describe('the chosen model\'s out-of-fold predictions, which the gates judge'),
      out_of_fold_baseline: MetricSetSchema.describe('the training class prior on the same rows'),
      candidates: z.array(
        z.object({
          family: z.string(),
          score: metric,
          settings: z.record(z.string(), z.unknown()),
          tried: z.array(z.object({ settings: z.record(z.string(), z.unknown()), score: metric })),
          seconds: z.number(),
        }),
      ),
      refit: z
        .object({ rows: z.number().int().nonnegative(), family: z.string(), kept_from_selection: z.boolean().optional().describe('large data: the search fitted it on the holdout plan\'s fit rows, and no refit followed') })
        .describe('the shipped model: the chosen settings refit on all training rows (or, on large data, kept from the search)'),
    })
    .optional()
    .describe('model selection on the training rows (versions trained before cross-validation lack it)'),
  output_kind: z.literal('acceptance').optional().describe('next best offer: the holdout metrics are of P(accept) of the offers made, against each offer\'s own acceptance rate'),
  heads: z.array(HeadSchema).optional().describe('next best offer: one acceptance model per offer'),
  distillation: z
    .object({
      served: z.enum(['student', 'heads']),
      student: z
        .object({ hidden: z.array(z.number().int()), epochs: z.number().int(), rows: z.number().int(), seconds: z.number(), mean_abs_diff: z.number(), same_top_offer: z.number() })
        .nullable(),
      reason: z.string().nullable(),
    })
    .optional()
    .describe("next best offer: the heads distilled into one network for serving, how closely it answers like them on the evaluation window's customers, and which is served"),
  per_offer: z
    .array(z.object({ offer_id: z.string(), sent: z.number().int().nonnegative(), accepted: z.number().int().nonnegative(), mean_predicted: metric, auc: metric, log_loss: metric }))
    .optional()
    .describe("next best offer: each offer's sends in the evaluation window, with the model's mean P(accept) and AUC on them"),
  policy_value: PolicyValueSchema.optional(),
  overlap: OverlapSchema.optional(),
  warnings: z.array(z.string()).optional().describe('problems with particular offers or kinds of customer, in words'),
});

/**
 * What a version's reasons are computed over: exact interventional Shapley values of the served
 * probability over `background` (the game v(S) = mean over b of f(x_S, b_rest)), by `method`.
 */
export const ExplanationSchema = z.object({
  method: z.enum(['additive-logit', 'coalitions']).describe('additive-logit: the closed form of a logistic regression (its logit is a sum of per-feature terms); coalitions: every coalition of the differing features run through the model'),
  background: z
    .array(z.array(z.number().nullable()))
    .nullable()
    .describe('the background set B: rows of feature values in the model\'s feature order, null for missing; null when none could be had'),
  source: z.string().describe('where the background came from (training rows, a file, the warehouse), or why there is none'),
  importance: ContributionSummarySchema.extend({ source: z.string().describe('which rows were explained, and for which output') })
    .nullable()
    .optional()
    .describe('global importance: mean |contribution| and mean contribution per feature over holdout rows, with 95% intervals (trained versions)'),
});

export const ManifestSchema = z.object({
  schema_version: z.literal(1),
  name: z.string().min(1),
  version: z.number().int().positive(),
  created_at: z.string().datetime(),
  created_by: z.string().min(1),
  status: z.enum(['ready', 'refused']).describe('refused versions are kept for the record and never promoted'),
  refusal_reasons: z.array(z.string()),
  model: z.object({
    file: z.literal('model.onnx'),
    format: z.literal('onnx'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size_bytes: z.number().int().positive(),
    producer: z.string(),
    opsets: z.array(z.object({ domain: z.string(), version: z.number().int() })),
    rewrites: z
      .array(z.record(z.string(), z.unknown()))
      .describe('changes made to the uploaded graph at publish time, e.g. a removed ZipMap'),
  }),
  input: InputSchemaSchema,
  output: OutputSchemaSchema,
  lineage: z.object({
    origin: z.enum(['trained', 'external']),
    data_source: z.string().nullable(),
    rows: z.number().int().nonnegative().nullable(),
    time_window: z.object({ from: z.string().nullable(), to: z.string().nullable() }).nullable(),
    data_fingerprint: z.string().nullable(),
    seed: z.number().int().nullable(),
    family: z.string().nullable(),
    hyperparameters: z.record(z.string(), z.unknown()).nullable(),
    code_version: z.string().nullable(),
    notes: z.string().nullable(),
  }),
  metrics: TrainingMetricsSchema.nullable().describe('holdout metrics, beside their baselines (null for external models)'),
  holdout_fingerprint: z
    .object({
      rows: z.number().int().nonnegative(),
      bins: z.array(z.number()).describe('histogram edges of the primary score'),
      counts: z.array(z.number().int().nonnegative()),
      mean: z.number(),
      std: z.number(),
      top_class_share: z.record(z.string(), z.number()).nullable(),
    })
    .nullable()
    .describe('distribution of the holdout predictions, for drift checks'),
  gates: z.object({ passed: z.boolean(), results: z.array(GateResultSchema) }).nullable(),
  feature_profile: TrainingProfileSchema.nullable()
    .optional()
    .describe('the inputs of the population the version was trained for, for input drift (absent: versions before it was recorded)'),
  explanation: ExplanationSchema.nullable()
    .optional()
    .describe('how answers with explain: true get their reasons; absent or null background: reasons unavailable'),
});

export type ModelManifest = z.infer<typeof ManifestSchema>;
export type ExplanationSpec = z.infer<typeof ExplanationSchema>;
export type InputSchema = z.infer<typeof InputSchemaSchema>;
export type OutputSchema = z.infer<typeof OutputSchemaSchema>;
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;
export type Lineage = ModelManifest['lineage'];
export type GateResult = z.infer<typeof GateResultSchema>;
export type TrainingMetrics = z.infer<typeof TrainingMetricsSchema>;
export type MetricSet = z.infer<typeof MetricSetSchema>;
export type BinaryMetricSet = z.infer<typeof BinaryMetricsSchema>;

export type MulticlassMetricSet = z.infer<typeof MulticlassMetricsSchema>;

/** Narrows a metric set to the binary kind (it has an AUC). */
export function isBinaryMetrics(m: MetricSet): m is BinaryMetricSet {
  return 'auc' in m;
}

/** The metric set as binary metrics; a multiclass set here is a programming error. */
export function binaryMetricsOf(m: MetricSet): BinaryMetricSet {
  if (!isBinaryMetrics(m)) throw new TypeError('expected binary metrics, found multiclass ones');
  return m;
}

/** The metric set as multiclass metrics; a binary set here is a programming error. */
export function multiclassMetricsOf(m: MetricSet): MulticlassMetricSet {
  if (isBinaryMetrics(m)) throw new TypeError('expected multiclass metrics, found binary ones');
  return m;
}

/** What a publisher supplies; the registry fills in name, version, time, author and checksum. */
export type ManifestDraft = Omit<ModelManifest, 'schema_version' | 'name' | 'version' | 'created_at' | 'created_by' | 'model'> & {
  model: Omit<ModelManifest['model'], 'file' | 'format' | 'sha256' | 'size_bytes'>;
};

/** Lineage for a model trained outside loyalty-ml: only what the publisher tells us is known. */
export function externalLineage(notes: string | null = null): Lineage {
  return {
    origin: 'external',
    data_source: null,
    rows: null,
    time_window: null,
    data_fingerprint: null,
    seed: null,
    family: null,
    hyperparameters: null,
    code_version: null,
    notes,
  };
}

/** The JSON schema of the manifest, for docs and for other tools. */
export function manifestJsonSchema(): unknown {
  return z.toJSONSchema(ManifestSchema, { target: 'draft-2020-12' });
}
