import { createHash } from 'node:crypto';
import trainingDefaults from '../../models/training.json';
import { NotFoundError, ValidationError } from '../errors';
import { encodedNames, type ColumnEncoding } from '../inference/encoding';
import { ModelRunner } from '../inference/runner';
import { prepareModel } from '../inference/validate';
import type { AliasRecord, GateResult, ModelManifest, ModelRegistry } from '../registry/index';
import { evaluateGates, type GateThresholds } from './gates';
import { binaryMetrics, multiclassMetrics, scoreFingerprint } from './metrics';
import { initNet, predict, train, type TrainReport } from './nn';
import { exportNet, netProbabilities, toFloat32, verifyExport, type NetModel } from './export';
import { describePreprocessor, fitPreprocessor, transform } from './preprocess';

export type Family = 'logistic' | 'mlp';
export const FAMILIES: Family[] = ['logistic', 'mlp'];

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
  task: 'binary' | 'multiclass';
  /** Class labels in output order; binary: [negative, positive]. */
  classes: string[];
  /** Feature names of the matrix columns (the model's inputs). */
  featureNames: string[];
  /** Encoding from raw columns, for CSV data; null when the features are raw numbers already. */
  encodings: ColumnEncoding[] | null;
  X: Float64Array;
  y: Int32Array;
  rows: number;
  splits: Splits;
  lineage: { data_source: string; time_window: { from: string | null; to: string | null } | null; notes: string | null };
}

export interface TrainingOptions {
  families?: Family[];
  seed?: number;
  maxEpochs?: number;
  promote?: string | null;
  thresholds?: Partial<GateThresholds>;
  codeVersion?: string;
  onProgress?: (message: string) => void;
}

export interface CandidateReport {
  family: Family;
  epochs: number;
  best_epoch: number;
  validation_loss: number;
  validation_metric: { name: string; value: number };
  seconds: number;
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
  const cols = spec.featureNames.length;
  checkSplits(spec);

  const pick = (idx: Uint32Array) => {
    const X = new Float64Array(idx.length * cols);
    const y = new Int32Array(idx.length);
    idx.forEach((r, i) => {
      X.set(spec.X.subarray(r * cols, (r + 1) * cols), i * cols);
      y[i] = spec.y[r]!;
    });
    return { X, y, rows: idx.length };
  };
  const trainSet = pick(spec.splits.train);
  const valSet = pick(spec.splits.validation);
  const testSet = pick(spec.splits.test);
  log(`splits: ${trainSet.rows} train, ${valSet.rows} validation, ${testSet.rows} holdout (${spec.splits.description})`);

  const preprocessor = fitPreprocessor(trainSet.X, trainSet.rows, cols, spec.featureNames);
  const Xtrain = transform(preprocessor, trainSet.X, trainSet.rows);
  const Xval = transform(preprocessor, valSet.X, valSet.rows);
  const width = Xtrain.length / Math.max(1, trainSet.rows);
  const counts = new Array<number>(k).fill(0);
  for (const label of trainSet.y) counts[label]!++;
  const classWeight = counts.map((c) => (c > 0 ? trainSet.rows / (k * c) : 0));
  const weightsOf = (y: Int32Array) => Float64Array.from(y, (label) => classWeight[label]!);

  const candidates: { report: CandidateReport; model: NetModel }[] = [];
  for (const family of families) {
    const t0 = Date.now();
    const net = initNet(width, family === 'mlp' ? trainingDefaults.mlp_hidden : [], k, seed);
    const report: TrainReport = train(
      net,
      { X: Xtrain, rows: trainSet.rows, cols: width, y: trainSet.y, weights: weightsOf(trainSet.y) },
      { X: Xval, rows: valSet.rows, cols: width, y: valSet.y, weights: weightsOf(valSet.y) },
      {
        maxEpochs: options.maxEpochs ?? trainingDefaults.max_epochs,
        batchSize: trainingDefaults.batch_size,
        learningRate: trainingDefaults.learning_rate[family],
        l2: trainingDefaults.l2,
        patience: trainingDefaults.patience,
        seed,
        onEpoch: (e) =>
          log(`${family}: epoch ${e.epoch} train loss ${e.trainLoss.toFixed(4)} validation loss ${e.validationLoss.toFixed(4)}${e.best ? ' (best)' : ''}`),
      },
    );
    correctForClassWeights(net, classWeight);
    const model: NetModel = { kind: 'net', preprocessor, net, classes: k };
    const valProbs = predict(net, Xval, valSet.rows);
    const metric =
      k === 2
        ? { name: 'auc', value: binaryMetrics(valProbs, valSet.y).auc }
        : { name: 'log_loss', value: multiclassMetrics(valProbs, valSet.y, spec.classes).log_loss };
    candidates.push({
      model,
      report: {
        family,
        epochs: report.epochs,
        best_epoch: report.bestEpoch,
        validation_loss: report.bestValidationLoss,
        validation_metric: metric,
        seconds: (Date.now() - t0) / 1000,
      },
    });
    log(`${family}: validation ${metric.name} ${metric.value.toFixed(4)} after ${report.epochs} epochs (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  }
  const better = (a: CandidateReport, b: CandidateReport) =>
    a.validation_metric.name === 'auc' ? a.validation_metric.value > b.validation_metric.value : a.validation_metric.value < b.validation_metric.value;
  const chosen = candidates.reduce((best, c) => (better(c.report, best.report) ? c : best));
  log(`chose ${chosen.report.family}`);

  // Everything from here on uses the float32 model: the one that is exported and served.
  const model = toFloat32(chosen.model);
  const Xtest = Float64Array.from(testSet.X, Math.fround);
  const testProbs = netProbabilities(model, Xtest, testSet.rows);
  const prior = counts.map((c) => c / trainSet.rows);
  const evaluation = await evaluateHoldout(registry, spec, testProbs, testSet, prior);
  const gates = evaluateGates(
    k === 2
      ? {
          kind: 'binary',
          probabilities: column(testProbs, 2, 1),
          auc: evaluation.metrics.auc as number,
          logLoss: evaluation.metrics.log_loss as number,
          baselineLogLoss: evaluation.baseline.log_loss as number,
          production: evaluation.production?.comparable ? { version: evaluation.production.version, auc: evaluation.production.metrics!.auc as number } : null,
        }
      : {
          kind: 'multiclass',
          probabilities: testProbs,
          classes: spec.classes,
          top1: evaluation.metrics.top1_accuracy as number,
          baselineTop1: evaluation.baseline.top1_accuracy as number,
          logLoss: evaluation.metrics.log_loss as number,
          baselineLogLoss: evaluation.baseline.log_loss as number,
          production: evaluation.production?.comparable
            ? { version: evaluation.production.version, top1: evaluation.production.metrics!.top1_accuracy as number }
            : null,
        },
    thresholds,
  );
  for (const g of gates.results) log(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'}: ${g.reason}`);

  const codeVersion = options.codeVersion ?? `loyalty-ml ${process.env.npm_package_version ?? '0.1.0'}`;
  const bytes = exportNet(model, { name: spec.name, producerVersion: codeVersion, metadata: { family: chosen.report.family } });
  const exportCheck = await verifyExport(bytes, Xtest, testSet.rows, cols, testProbs);
  log(`export verified: onnxruntime matches the trainer within ${exportCheck.maxAbsDiff.toExponential(2)} on ${exportCheck.rows} holdout rows`);
  const prepared = await prepareModel(bytes, spec.featureNames, { classes: spec.classes, positiveClass: k === 2 ? spec.classes[1] : undefined });

  const refusal = gates.results.filter((g) => !g.passed).map((g) => g.reason);
  const manifest = await registry.publish(spec.name, prepared.bytes, {
    status: refusal.length ? 'refused' : 'ready',
    refusal_reasons: refusal,
    model: { producer: prepared.producer, opsets: prepared.opsets, rewrites: [] },
    input: {
      ...prepared.input,
      preprocessing: {
        applied_in: spec.encodings ? 'serving' : 'graph',
        steps: [...(spec.encodings ? [{ step: 'encode', columns: spec.encodings }] : []), ...describePreprocessor(model.preprocessor).map((s) => ({ ...s, in_graph: true }))],
      },
    },
    output: prepared.output,
    lineage: {
      origin: 'trained',
      data_source: spec.lineage.data_source,
      rows: spec.rows,
      time_window: spec.lineage.time_window,
      data_fingerprint: fingerprint(spec),
      seed,
      family: chosen.report.family,
      hyperparameters: {
        hidden_layers: chosen.report.family === 'mlp' ? trainingDefaults.mlp_hidden : [],
        learning_rate: trainingDefaults.learning_rate[chosen.report.family],
        l2: trainingDefaults.l2,
        batch_size: trainingDefaults.batch_size,
        max_epochs: options.maxEpochs ?? trainingDefaults.max_epochs,
        patience: trainingDefaults.patience,
        class_weight: Object.fromEntries(spec.classes.map((c, i) => [c, classWeight[i]])),
        split: spec.splits.description,
        candidates: candidates.map((c) => c.report),
      },
      code_version: codeVersion,
      notes: spec.lineage.notes,
    },
    metrics: {
      holdout: evaluation.metrics,
      baseline_prior: evaluation.baseline,
      production: evaluation.production,
      validation: Object.fromEntries(candidates.map((c) => [c.report.family, c.report.validation_metric])),
      export_max_abs_diff: exportCheck.maxAbsDiff,
    },
    holdout_fingerprint: {
      rows: testSet.rows,
      ...scoreFingerprint(k === 2 ? column(testProbs, 2, 1) : rowMax(testProbs, k)),
      top_class_share: k === 2 ? null : (evaluation.metrics.top_class_share as Record<string, number>),
    },
    gates,
  });
  log(`published ${spec.name} v${manifest.version} (${manifest.status})`);

  let promoted: AliasRecord | null = null;
  if (options.promote && manifest.status === 'ready') {
    promoted = await registry.promote(spec.name, options.promote, manifest.version, `trained; gates passed`);
    log(`promoted ${spec.name}@${options.promote} -> v${manifest.version}`);
  }
  return { manifest, candidates: candidates.map((c) => c.report), chosen: chosen.report.family, promoted, exportCheck, seconds: (Date.now() - started) / 1000 };
}

interface HoldoutEvaluation {
  metrics: Record<string, unknown>;
  baseline: Record<string, unknown>;
  production: { version: number; comparable: boolean; reason: string | null; metrics: Record<string, unknown> | null } | null;
}

async function evaluateHoldout(
  registry: ModelRegistry,
  spec: TrainingSpec,
  probs: Float64Array,
  test: { X: Float64Array; y: Int32Array; rows: number },
  prior: number[],
): Promise<HoldoutEvaluation> {
  const k = spec.classes.length;
  const metricsOf = (P: Float64Array): Record<string, unknown> =>
    k === 2 ? { ...binaryMetrics(column(P, 2, 1), test.y) } : { ...multiclassMetrics(P, test.y, spec.classes) };
  const priorMatrix = new Float64Array(test.rows * k);
  for (let r = 0; r < test.rows; r++) priorMatrix.set(prior, r * k);
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
    const comparable = sameInputs(loaded.manifest, spec) && JSON.stringify(loaded.manifest.output.classes) === JSON.stringify(spec.classes);
    if (!comparable) {
      production = { version: current.version, comparable: false, reason: 'production takes other inputs or classes', metrics: null };
    } else {
      const runner = await ModelRunner.create(loaded.manifest, loaded.bytes);
      try {
        production = { version: current.version, comparable: true, reason: null, metrics: metricsOf(await runner.predictEncoded(test.X, test.rows)) };
      } finally {
        await runner.release();
      }
    }
  }
  return { metrics, baseline, production };
}

function sameInputs(manifest: ModelManifest, spec: TrainingSpec): boolean {
  const names = manifest.input.features.map((f) => f.name);
  if (JSON.stringify(names) !== JSON.stringify(spec.featureNames)) return false;
  const encode = manifest.input.preprocessing.steps.find((s) => s.step === 'encode');
  return JSON.stringify(encode?.columns ?? null) === JSON.stringify(spec.encodings);
}

/**
 * Class weighting shifts the learned log-odds by log(weight); subtracting it from the output bias
 * restores probabilities calibrated to the real class frequencies (exact for a well-fitted model).
 */
function correctForClassWeights(net: NetModel['net'], classWeight: number[]): void {
  const out = net.layers[net.layers.length - 1]!;
  if (net.output === 'sigmoid') out.b[0] = out.b[0]! - Math.log(classWeight[1]! / classWeight[0]!);
  else for (let c = 0; c < out.outputs; c++) out.b[c] = out.b[c]! - Math.log(classWeight[c]!);
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

/** Names of the encoded features for a set of encodings (re-exported for CLI messages). */
export { encodedNames };
export type { GateResult };
