import { createHash } from 'node:crypto';
import packageJson from '../../package.json';
import trainingDefaults from '../../models/training.json';
import { NotFoundError, ValidationError } from '../errors';
import type { ColumnEncoding } from '../inference/encoding';
import { ModelRunner } from '../inference/runner';
import { prepareModel } from '../inference/validate';
import { binaryMetricsOf, isBinaryMetrics, multiclassMetricsOf, type AliasRecord, type MetricSet, type ModelManifest, type ModelRegistry, type TrainingMetrics } from '../registry/index';
import { evaluateGates, type GateThresholds } from './gates';
import { binaryMetrics, multiclassMetrics, scoreFingerprint } from '../metrics';
import { OUTPUT_NAME, verifyExport } from './export';
import type { GbtParams } from './gbt';
import { pickRows, trainGbtCandidate, trainNetCandidate, treeDesign, type CandidateReport, type Design, type Family, type TrainedCandidate } from './candidates';

export { FAMILIES, type CandidateReport, type Family } from './candidates';

/** Row indices of the three splits. */
export interface Splits {
  train: Uint32Array;
  validation: Uint32Array;
  test: Uint32Array;
  /** How the split was made, for the manifest. */
  description: string;
}

/** Everything the trainer needs: data, labels, splits and what to record about them. */
export interface TrainingSpec {
  name: string;
  /** Class labels in output order; binary: [negative, positive]. Two classes make a binary model. */
  classes: string[];
  /** Feature names of the matrix columns (the model's inputs). */
  featureNames: string[];
  /** Encoding from raw columns, for CSV data; null when the features are raw numbers already. */
  encodings: ColumnEncoding[] | null;
  X: Float64Array;
  y: Int32Array;
  rows: number;
  /** CSV data: the raw records behind the rows (trees encode text columns their own way). */
  records?: Record<string, unknown>[];
  splits: Splits;
  lineage: { data_source: string; time_window: { from: string | null; to: string | null } | null; notes: string | null };
}

export interface TrainingOptions {
  families?: Family[];
  /** Overrides of the boosted-trees parameters (models/training.json holds the defaults). */
  gbt?: Partial<GbtParams>;
  seed?: number;
  maxEpochs?: number;
  promote?: string | null;
  thresholds?: Partial<GateThresholds>;
  codeVersion?: string;
  onProgress?: (message: string) => void;
}

export interface TrainingOutcome {
  manifest: ModelManifest;
  candidates: CandidateReport[];
  chosen: Family;
  promoted: AliasRecord | null;
  exportCheck: { maxAbsDiff: number; rows: number };
  seconds: number;
}

export const DEFAULT_THRESHOLDS: GateThresholds = trainingDefaults.gates;

/**
 * Trains every requested family on the training split, keeps the one that does best on the
 * validation split, evaluates it on the holdout beside the class prior and the current production
 * version, applies the quality gates, exports ONNX, verifies the export against the trainer's own
 * forward pass, and publishes a new version (marked refused when a gate fails). Promotes only
 * when asked and every gate passed.
 */
export async function trainAndPublish(registry: ModelRegistry, spec: TrainingSpec, options: TrainingOptions = {}): Promise<TrainingOutcome> {
  const started = Date.now();
  const log = options.onProgress ?? (() => undefined);
  const seed = options.seed ?? trainingDefaults.seed;
  const families = options.families ?? (trainingDefaults.families as Family[]);
  const thresholds = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
  const k = spec.classes.length;
  checkSplits(spec);
  log(`splits: ${spec.splits.train.length} train, ${spec.splits.validation.length} validation, ${spec.splits.test.length} holdout (${spec.splits.description})`);

  const base: Design = { X: spec.X, cols: spec.featureNames.length, featureNames: spec.featureNames, encodings: spec.encodings };
  const input = (design: Design) => ({ design, y: spec.y, train: spec.splits.train, validation: spec.splits.validation, classes: spec.classes, seed, maxEpochs: options.maxEpochs, log });
  const candidates: TrainedCandidate[] = [];
  for (const family of families) {
    const candidate =
      family === 'gbt'
        ? trainGbtCandidate(input(treeDesign(base, spec.records, spec.y, spec.splits.train)), options.gbt)
        : trainNetCandidate(family, input(base));
    candidates.push(candidate);
    const r = candidate.report;
    log(`${family}: validation ${r.validation_metric.name} ${r.validation_metric.value.toFixed(4)} after ${r.epochs} ${family === 'gbt' ? 'rounds' : 'epochs'} (${r.seconds.toFixed(1)}s)`);
  }
  const better = (a: CandidateReport, b: CandidateReport) =>
    a.validation_metric.name === 'auc' ? a.validation_metric.value > b.validation_metric.value : a.validation_metric.value < b.validation_metric.value;
  const chosen = candidates.reduce((best, c) => (better(c.report, best.report) ? c : best));
  log(`chose ${chosen.family}`);

  const design = chosen.design;
  const testSet = pickRows(design, spec.y, spec.splits.test);
  const Xtest = Float64Array.from(testSet.X, Math.fround);
  const testProbs = chosen.probabilities(Xtest, testSet.rows);
  const counts = new Array<number>(k).fill(0);
  for (const r of spec.splits.train) counts[spec.y[r]!]!++;
  const prior = counts.map((c) => c / spec.splits.train.length);
  const evaluation = await evaluateHoldout(registry, spec, testProbs, testSet.y, prior);
  const value = (v: number | null) => v ?? Number.NaN;
  const production = evaluation.production?.comparable ? evaluation.production : null;
  const shared = { logLoss: value(evaluation.metrics.log_loss), baselineLogLoss: value(evaluation.baseline.log_loss) };
  const gates = evaluateGates(
    k === 2
      ? {
          kind: 'binary',
          probabilities: column(testProbs, 2, 1),
          auc: value(binaryMetricsOf(evaluation.metrics).auc),
          ...shared,
          production: production?.metrics ? { version: production.version, auc: value(binaryMetricsOf(production.metrics).auc) } : null,
        }
      : {
          kind: 'multiclass',
          probabilities: testProbs,
          classes: spec.classes,
          top1: value(multiclassMetricsOf(evaluation.metrics).top1_accuracy),
          baselineTop1: value(multiclassMetricsOf(evaluation.baseline).top1_accuracy),
          ...shared,
          production: production?.metrics ? { version: production.version, top1: value(multiclassMetricsOf(production.metrics).top1_accuracy) } : null,
        },
    thresholds,
  );
  for (const g of gates.results) log(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'}: ${g.reason}`);

  const codeVersion = options.codeVersion ?? `loyalty-ml ${packageJson.version}`;
  const bytes = chosen.export({ name: spec.name, producerVersion: codeVersion, metadata: { family: chosen.family } });
  const exportCheck = await verifyExport(bytes, Xtest, testSet.rows, design.cols, testProbs);
  log(`export verified: onnxruntime matches the trainer within ${exportCheck.maxAbsDiff.toExponential(2)} on ${exportCheck.rows} holdout rows`);
  const prepared = await prepareModel(bytes, design.featureNames, {
    classes: spec.classes,
    positiveClass: k === 2 ? spec.classes[1] : undefined,
    probabilityOutput: OUTPUT_NAME,
  });

  const refusal = gates.results.filter((g) => !g.passed).map((g) => g.reason);
  const manifest = await registry.publish(spec.name, prepared.bytes, {
    status: refusal.length ? 'refused' : 'ready',
    refusal_reasons: refusal,
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
    input: { ...prepared.input, preprocessing: chosen.preprocessing },
    output: prepared.output,
    lineage: {
      origin: 'trained',
      data_source: spec.lineage.data_source,
      rows: spec.rows,
      time_window: spec.lineage.time_window,
      data_fingerprint: fingerprint(spec),
      seed,
      family: chosen.family,
      hyperparameters: { ...chosen.hyperparameters, split: spec.splits.description, candidates: candidates.map((c) => c.report) },
      code_version: codeVersion,
      notes: spec.lineage.notes,
    },
    metrics: {
      holdout: evaluation.metrics,
      baseline_prior: evaluation.baseline,
      production: evaluation.production,
      validation: Object.fromEntries(candidates.map((c) => [c.family, c.report.validation_metric])),
      chosen_family: chosen.family,
      export_max_abs_diff: exportCheck.maxAbsDiff,
    },
    holdout_fingerprint: {
      rows: testSet.rows,
      ...scoreFingerprint(k === 2 ? column(testProbs, 2, 1) : rowMax(testProbs, k)),
      top_class_share: isBinaryMetrics(evaluation.metrics) ? null : evaluation.metrics.top_class_share,
    },
    gates,
  });
  log(`published ${spec.name} v${manifest.version} (${manifest.status})`);

  let promoted: AliasRecord | null = null;
  if (options.promote && manifest.status === 'ready') {
    promoted = await registry.promote(spec.name, options.promote, manifest.version, `trained; gates passed`);
    log(`promoted ${spec.name}@${options.promote} -> v${manifest.version}`);
  }
  return { manifest, candidates: candidates.map((c) => c.report), chosen: chosen.family, promoted, exportCheck, seconds: (Date.now() - started) / 1000 };
}

interface HoldoutEvaluation {
  metrics: MetricSet;
  baseline: MetricSet;
  production: TrainingMetrics['production'];
}

async function evaluateHoldout(
  registry: ModelRegistry,
  spec: TrainingSpec,
  probs: Float64Array,
  y: Int32Array,
  prior: number[],
): Promise<HoldoutEvaluation> {
  const k = spec.classes.length;
  const metricsOf = (P: Float64Array): MetricSet => (k === 2 ? binaryMetrics(column(P, 2, 1), y) : multiclassMetrics(P, y, spec.classes));
  const priorMatrix = new Float64Array(y.length * k);
  for (let r = 0; r < y.length; r++) priorMatrix.set(prior, r * k);
  // The prior ranks classes by training frequency, so its top-1 is "always the most frequent class".
  const baseline = metricsOf(priorMatrix);
  const metrics = metricsOf(probs);

  let production: HoldoutEvaluation['production'] = null;
  const current = await registry.getAlias(spec.name, 'production').catch((e: unknown) => {
    if (e instanceof NotFoundError) return null;
    throw e;
  });
  if (current) {
    const loaded = await registry.readModel(spec.name, current.version);
    const records = holdoutRecords(spec);
    const runner = await ModelRunner.create(loaded.manifest, loaded.bytes);
    try {
      const lacking = runner.rawColumns.filter((c) => !(c in (records[0] ?? {})));
      const sameClasses = JSON.stringify(loaded.manifest.output.classes) === JSON.stringify(spec.classes);
      production =
        lacking.length || !sameClasses
          ? { version: current.version, comparable: false, reason: lacking.length ? `production needs columns the holdout lacks: ${lacking.join(', ')}` : 'production predicts other classes', metrics: null }
          : { version: current.version, comparable: true, reason: null, metrics: metricsOf(await runner.predictRecords(records)) };
    } finally {
      await runner.release();
    }
  }
  return { metrics, baseline, production };
}

/** The holdout rows as raw records: the CSV's own, or the features by name. */
function holdoutRecords(spec: TrainingSpec): Record<string, unknown>[] {
  if (spec.records) return Array.from(spec.splits.test, (r) => spec.records![r]!);
  const cols = spec.featureNames.length;
  return Array.from(spec.splits.test, (r) => Object.fromEntries(spec.featureNames.map((f, j) => [f, spec.X[r * cols + j]])));
}


function checkSplits(spec: TrainingSpec): void {
  const k = spec.classes.length;
  for (const [name, idx] of Object.entries({ train: spec.splits.train, validation: spec.splits.validation, test: spec.splits.test })) {
    if (idx.length === 0) throw new ValidationError(`The ${name} split is empty: not enough data to train and evaluate (${spec.rows} rows)`);
  }
  const seen = new Set<number>();
  for (const r of spec.splits.train) seen.add(spec.y[r]!);
  if (seen.size < Math.min(k, 2)) throw new ValidationError('The training split holds only one class; a model cannot learn from it');
}

function column(P: Float64Array, width: number, c: number): Float64Array {
  const out = new Float64Array(P.length / width);
  for (let r = 0; r < out.length; r++) out[r] = P[r * width + c]!;
  return out;
}

function rowMax(P: Float64Array, width: number): Float64Array {
  const out = new Float64Array(P.length / width);
  for (let r = 0; r < out.length; r++) {
    let m = 0;
    for (let c = 0; c < width; c++) m = Math.max(m, P[r * width + c]!);
    out[r] = m;
  }
  return out;
}

function fingerprint(spec: TrainingSpec): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ features: spec.featureNames, classes: spec.classes, rows: spec.rows }));
  h.update(new Uint8Array(spec.X.buffer, spec.X.byteOffset, spec.X.byteLength));
  h.update(new Uint8Array(spec.y.buffer, spec.y.byteOffset, spec.y.byteLength));
  return `sha256:${h.digest('hex')}`;
}

