import { createHash } from 'node:crypto';
import packageJson from '../../package.json';
import trainingDefaults from '../../models/training.json';
import { ValidationError } from '../errors';
import type { ColumnEncoding } from '../inference/encoding';
import { ModelRunner } from '../inference/runner';
import { prepareModel } from '../inference/validate';
import { binaryMetricsOf, isBinaryMetrics, multiclassMetricsOf, type AliasRecord, type ManifestDraft, type MetricSet, type ModelManifest, type TrainingMetrics } from '../registry/index';
import { evaluateGates, type GateThresholds } from './gates';
import { binaryMetrics, multiclassMetrics, scoreFingerprint } from '../metrics';
import type { InputColumn } from './design';
import { exportGraph, float32Rows, OUTPUT_NAME, verifyExport } from './export';
import { selectModel } from './families/index';
import type { GbtParams } from './gbt';
import type { HeadReport } from './acceptance';
import type { OverlapReport } from '../decisions/overlap';
import { explanationMethod, trainedExplanation } from '../explain/background';
import { holdoutImportance } from './importance';
import { featureProfile } from '../drift';
import type { ComparedModel, PolicyValue } from './nbo';
import { coveredRows, stratifiedPlan, timePlan, type Candidate, type Family, type FoldPlan, type SelectionData } from './selection';

export { FAMILIES, type Family } from './selection';

/** The rows the model learns from and the rows it is reported on. */
export interface Splits {
  train: Uint32Array;
  /** Report rows: `--test-csv`, or the warehouse's latest snapshot. No model or setting sees them. */
  test: Uint32Array;
  /** How the split was made, for the manifest. */
  description: string;
}

/** Everything the trainer needs: data, labels, splits and what to record about them. */
export interface TrainingSpec {
  name: string;
  /** Class labels in output order; binary: [negative, positive]. Two classes make a binary model. */
  classes: string[];
  /** The model's input features, in order (their names are the model's feature names). */
  columns: InputColumn[];
  /** How raw CSV columns become the input features (applied when serving); null for warehouse features. */
  encodings: ColumnEncoding[] | null;
  /** Input rows [rows][columns]: numbers, NaN for missing, categories as their index. */
  X: Float64Array;
  y: Int32Array;
  rows: number;
  /** CSV data: the raw records behind the rows (to score production's model on the report rows). */
  records?: Record<string, unknown>[];
  splits: Splits;
  /** Warehouse snapshots: each row's snapshot date; cross-validation folds then follow time. */
  times?: string[];
  lineage: { data_source: string; time_window: { from: string | null; to: string | null } | null; notes: string | null };
}

export interface TrainingOptions {
  families?: Family[];
  /** Overrides of the boosted-trees parameters (models/training.json holds the defaults). */
  gbt?: Partial<GbtParams>;
  seed?: number;
  maxEpochs?: number;
  thresholds?: Partial<GateThresholds>;
  codeVersion?: string;
  onProgress?: (message: string) => void;
}

/** One family's (or blend's) result of the search. */
export interface CandidateReport {
  family: string;
  score: number;
  settings: Record<string, unknown>;
  tried: { settings: Record<string, unknown>; score: number }[];
  seconds: number;
}

/** A trained, gated and exported model, ready to publish: what lib/training hands the training service. */
export interface TrainedModel {
  name: string;
  bytes: Uint8Array;
  draft: ManifestDraft;
  candidates: CandidateReport[];
  chosen: string;
  exportCheck: { maxAbsDiff: number; rows: number };
  /** Next best offer: the heads, the policy's off-policy estimate, overlap and warnings about offers. */
  nbo?: { heads: HeadReport[]; policy: PolicyValue; overlap: OverlapReport; warnings: string[] };
}

/** A published training run. */
export interface TrainingOutcome extends Omit<TrainedModel, 'bytes' | 'draft' | 'name'> {
  manifest: ModelManifest;
  promoted: AliasRecord | null;
  seconds: number;
  /** For demo data: what the generating process says is achievable. */
  achievable: string | null;
}

export const DEFAULT_THRESHOLDS: GateThresholds = trainingDefaults.gates;

/** Rows of the training set the export is also verified on, besides the report rows. */
const VERIFY_TRAINING_ROWS = 2000;

/**
 * Chooses a model by cross-validation on the training rows (every family's settings, then blends
 * of the trees with the others), refits the winner on all training rows, judges the gates on its
 * out-of-fold predictions, reports it on the untouched report rows beside the class prior and the
 * production version the caller read, exports ONNX and verifies the export against the trainer's
 * own forward pass. Returns the version to publish (marked refused when a gate fails); publishing
 * and promotion are the training service's.
 */
export async function trainModel(spec: TrainingSpec, options: TrainingOptions = {}, context: { production: ComparedModel | null } = { production: null }): Promise<TrainedModel> {
  const log = options.onProgress ?? (() => undefined);
  const seed = options.seed ?? trainingDefaults.seed;
  const families = options.families ?? (trainingDefaults.families as Family[]);
  const thresholds = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
  const k = spec.classes.length;
  const D = spec.columns.length;
  checkSplits(spec);
  const plan = spec.times ? timePlan(spec.times, spec.splits.train) : stratifiedPlan(spec.y, spec.splits.train, seed);
  checkPlan(spec, plan);
  log(`rows: ${spec.splits.train.length} to learn from, ${spec.splits.test.length} to report on (${spec.splits.description})`);
  log(`model selection: ${plan.description}`);

  const data: SelectionData = { columns: spec.columns, X: spec.X, y: spec.y, classes: spec.classes, train: spec.splits.train, plan, seed, log };
  const { chosen, candidates } = selectModel(data, { families, gbt: options.gbt, maxEpochs: options.maxEpochs });
  const chose = `chose ${chosen.family} (out-of-fold ${k === 2 ? 'AUC' : 'log loss'} ${(k === 2 ? chosen.score : -chosen.score).toFixed(4)})`;
  // Large data (a holdout plan): the search's own fit is shipped; a refit would cost as long again for a quarter more rows.
  const kept = chosen.kept;
  log(kept ? `${chose}; keeping its fit on the holdout plan's ${kept.rows} fit rows (no refit at this size)` : `${chose}; refitting on all ${spec.splits.train.length} training rows`);
  const fitted = kept ? kept.model() : chosen.refit();

  const covered = coveredRows(plan);
  const counts = new Array<number>(k).fill(0);
  for (const r of spec.splits.train) counts[spec.y[r]!]!++;
  const prior = counts.map((c) => c / spec.splits.train.length);
  const metricsOf = (P: Float64Array, y: Int32Array): MetricSet => (k === 2 ? binaryMetrics(column(P, 2, 1), y) : multiclassMetrics(P, y, spec.classes));
  const oofP = gather(chosen.oof, covered, k);
  const oofY = Int32Array.from(covered, (r) => spec.y[r]!);
  const oofMetrics = metricsOf(oofP, oofY);
  const oofBaseline = metricsOf(repeatRows(prior, covered.length), oofY);
  log(`out-of-fold: ${summary(oofMetrics)} on ${covered.length} rows`);

  const Xtest = float32Rows(spec.X, spec.splits.test, D);
  const testY = Int32Array.from(spec.splits.test, (r) => spec.y[r]!);
  const testProbs = fitted.probabilities(Xtest, spec.splits.test.length);
  const evaluation = await evaluateHoldout(context.production, spec, testProbs, testY, prior);
  log(`report rows: ${summary(evaluation.metrics)} on ${testY.length} rows (class prior: ${summary(evaluation.baseline)})`);
  const value = (v: number | null) => v ?? Number.NaN;
  const production = evaluation.production?.comparable ? evaluation.production : null;
  const shared = { logLoss: value(oofMetrics.log_loss), baselineLogLoss: value(oofBaseline.log_loss) };
  const gates = evaluateGates(
    k === 2
      ? {
          kind: 'binary',
          probabilities: column(oofP, 2, 1),
          auc: value(binaryMetricsOf(oofMetrics).auc),
          topDecileLift: value(binaryMetricsOf(oofMetrics).top_decile_lift),
          ...shared,
          production: production?.metrics
            ? { version: production.version, auc: value(binaryMetricsOf(production.metrics).auc), ownAuc: value(binaryMetricsOf(evaluation.metrics).auc) }
            : null,
        }
      : {
          kind: 'multiclass',
          probabilities: oofP,
          classes: spec.classes,
          top1: value(multiclassMetricsOf(oofMetrics).top1_accuracy),
          baselineTop1: value(multiclassMetricsOf(oofBaseline).top1_accuracy),
          ...shared,
          production: production?.metrics
            ? { version: production.version, top1: value(multiclassMetricsOf(production.metrics).top1_accuracy), ownTop1: value(multiclassMetricsOf(evaluation.metrics).top1_accuracy) }
            : null,
        },
    thresholds,
  );
  for (const g of gates.results) log(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'}: ${g.reason}`);

  const codeVersion = options.codeVersion ?? `loyalty-ml ${packageJson.version}`;
  const bytes = exportGraph(D, k, { name: spec.name, producerVersion: codeVersion, metadata: { family: chosen.family } }, (g, x) => fitted.emit(g, x, 'model'));
  // Verified on the report rows and on training rows (which cover every category and value range).
  const verifyRows = Uint32Array.from([...spec.splits.test, ...spec.splits.train.subarray(0, VERIFY_TRAINING_ROWS)]);
  const Xverify = float32Rows(spec.X, verifyRows, D);
  const exportCheck = await verifyExport(bytes, Xverify, verifyRows.length, D, fitted.probabilities(Xverify, verifyRows.length));
  log(`export verified: onnxruntime matches the trainer within ${exportCheck.maxAbsDiff.toExponential(2)} on ${exportCheck.rows} rows`);
  const featureNames = spec.columns.map((c) => c.name);
  const prepared = await prepareModel(bytes, featureNames, {
    classes: spec.classes,
    positiveClass: k === 2 ? spec.classes[1] : undefined,
    probabilityOutput: OUTPUT_NAME,
  });

  const explanation = trainedExplanation(spec.X, D, spec.splits.train, seed, explanationMethod(chosen.family, 'trained', k === 2 ? 'binary' : 'multiclass'));
  const importance = await holdoutImportance(bytes, spec.X, featureNames, spec.splits.test, explanation, seed, log);
  const reports = candidates.map(candidateReport);
  const refusal = gates.results.filter((g) => !g.passed).map((g) => g.reason);
  const draft: ManifestDraft = {
    status: refusal.length ? 'refused' : 'ready',
    refusal_reasons: refusal,
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
    input: {
      ...prepared.input,
      preprocessing: { applied_in: spec.encodings ? 'serving' : 'graph', steps: [...(spec.encodings ? [{ step: 'encode', columns: spec.encodings }] : []), ...fitted.preprocessing] },
    },
    output: prepared.output,
    lineage: {
      origin: 'trained',
      data_source: spec.lineage.data_source,
      rows: spec.rows,
      time_window: spec.lineage.time_window,
      data_fingerprint: fingerprint(spec),
      seed,
      family: chosen.family,
      hyperparameters: { ...fitted.hyperparameters, split: spec.splits.description, selection: plan.description },
      code_version: codeVersion,
      notes: spec.lineage.notes,
    },
    metrics: {
      holdout: evaluation.metrics,
      baseline_prior: evaluation.baseline,
      production: evaluation.production,
      validation: Object.fromEntries(candidates.map((c) => [c.family, { name: k === 2 ? 'auc' : 'log_loss', value: k === 2 ? c.score : -c.score }])),
      chosen_family: chosen.family,
      export_max_abs_diff: exportCheck.maxAbsDiff,
      cross_validation: {
        kind: plan.kind,
        description: plan.description,
        folds: plan.folds.map((f) => ({ label: f.label, fit_rows: f.fit.length, check_rows: f.check.length })),
        out_of_fold: oofMetrics,
        out_of_fold_baseline: oofBaseline,
        candidates: reports,
        refit: { rows: kept ? kept.rows : spec.splits.train.length, family: chosen.family, ...(kept ? { kept_from_selection: true } : {}) },
      },
    },
    holdout_fingerprint: {
      rows: testY.length,
      ...scoreFingerprint(k === 2 ? column(testProbs, 2, 1) : rowMax(testProbs, k)),
      top_class_share: isBinaryMetrics(evaluation.metrics) ? null : evaluation.metrics.top_class_share,
    },
    gates,
    explanation: { ...explanation, importance },
    feature_profile: featureProfile(spec.X, featureNames, `${spec.splits.train.length} training rows`, spec.splits.train),
  };
  return { name: spec.name, bytes: prepared.bytes, draft, candidates: reports, chosen: chosen.family, exportCheck };
}

function candidateReport(c: Candidate): CandidateReport {
  return { family: c.family, score: c.score, settings: c.settings, tried: c.tried, seconds: c.seconds };
}

function summary(m: MetricSet): string {
  return isBinaryMetrics(m) ? `AUC ${fmt(m.auc)}, log loss ${fmt(m.log_loss)}, top-decile lift ${fmt(m.top_decile_lift)}` : `top-1 ${fmt(m.top1_accuracy)}, log loss ${fmt(m.log_loss)}`;
}

function fmt(v: number | null): string {
  return v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(4);
}

function gather(P: Float64Array, rows: Uint32Array, k: number): Float64Array {
  const out = new Float64Array(rows.length * k);
  rows.forEach((r, i) => out.set(P.subarray(r * k, (r + 1) * k), i * k));
  return out;
}

function repeatRows(row: number[], n: number): Float64Array {
  const out = new Float64Array(n * row.length);
  for (let r = 0; r < n; r++) out.set(row, r * row.length);
  return out;
}

interface HoldoutEvaluation {
  metrics: MetricSet;
  baseline: MetricSet;
  production: TrainingMetrics['production'];
}

async function evaluateHoldout(
  current: ComparedModel | null,
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
  if (current) {
    const loaded = current;
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
  const cols = spec.columns.length;
  return Array.from(spec.splits.test, (r) => Object.fromEntries(spec.columns.map((c, j) => [c.name, spec.X[r * cols + j]])));
}


function checkSplits(spec: TrainingSpec): void {
  const k = spec.classes.length;
  if (spec.splits.train.length === 0) throw new ValidationError(`No rows to learn from (${spec.rows} rows)`);
  if (spec.splits.test.length === 0) throw new ValidationError(`No rows to report on (${spec.rows} rows)`);
  const seen = new Set<number>();
  for (const r of spec.splits.train) seen.add(spec.y[r]!);
  if (seen.size < Math.min(k, 2)) throw new ValidationError('The training rows hold only one class; a model cannot learn from it');
}

/** Every fold needs rows on both sides and both classes to learn from. */
function checkPlan(spec: TrainingSpec, plan: FoldPlan): void {
  if (plan.folds.length === 0) throw new ValidationError('Not enough training data to cross-validate: the time-ordered folds need at least two snapshot dates before the latest');
  for (const f of plan.folds) {
    if (f.fit.length === 0 || f.check.length === 0) throw new ValidationError(`Not enough training data to cross-validate: ${f.label} has ${f.fit.length} rows to fit and ${f.check.length} to check`);
    const seen = new Set<number>();
    for (const r of f.fit) seen.add(spec.y[r]!);
    if (seen.size < 2) throw new ValidationError(`Not enough training data to cross-validate: the rows before ${f.label} hold only one class`);
  }
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
  h.update(JSON.stringify({ features: spec.columns.map((c) => c.name), classes: spec.classes, rows: spec.rows }));
  h.update(new Uint8Array(spec.X.buffer, spec.X.byteOffset, spec.X.byteLength));
  h.update(new Uint8Array(spec.y.buffer, spec.y.byteOffset, spec.y.byteLength));
  return `sha256:${h.digest('hex')}`;
}

