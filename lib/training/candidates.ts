import trainingDefaults from '../../models/training.json';
import { encodedNames, encodeRecords, type ColumnEncoding } from '../inference/encoding';
import { exportGbt, exportNet, netProbabilities, toFloat32, type NetModel } from './export';
import { DEFAULT_GBT, gbtProbabilities, trainGbt, type GbtModel, type GbtParams } from './gbt';
import { binaryMetrics, multiclassMetrics } from '../metrics';
import { initNet, train } from './nn';
import { describePreprocessor, fitPreprocessor, transform } from './preprocess';

/**
 * The model families the trainer tries, each behind one interface: train on the training rows with
 * early stopping on the validation rows, report, answer probabilities the way the exported graph
 * will, and export. Families may see the data through different encodings (trees take a category
 * as one ordinal column rather than one-hot columns).
 */
export type Family = 'logistic' | 'mlp' | 'gbt';
export const FAMILIES: Family[] = ['logistic', 'mlp', 'gbt'];

/** The matrix a family trains on: raw values (NaN = missing), and how raw columns became it. */
export interface Design {
  X: Float64Array;
  cols: number;
  featureNames: string[];
  encodings: ColumnEncoding[] | null;
}

export interface CandidateReport {
  family: Family;
  epochs: number;
  best_epoch: number;
  validation_loss: number;
  validation_metric: { name: string; value: number };
  seconds: number;
}

export interface TrainedCandidate {
  family: Family;
  design: Design;
  report: CandidateReport;
  /** Probabilities [rows][classes] (binary: [P(negative), P(positive)]) of the model as exported. */
  probabilities(X: Float64Array, rows: number): Float64Array;
  export(meta: { name: string; producerVersion: string; metadata?: Record<string, string> }): Uint8Array;
  preprocessing: { applied_in: 'graph' | 'serving'; steps: Record<string, unknown>[] };
  hyperparameters: Record<string, unknown>;
}

export interface CandidateInput {
  design: Design;
  y: Int32Array;
  train: Uint32Array;
  validation: Uint32Array;
  classes: string[];
  seed: number;
  maxEpochs?: number;
  log: (message: string) => void;
}

/** Rows of a design as a compact matrix. */
export function pickRows(design: Design, y: Int32Array, idx: Uint32Array): { X: Float64Array; y: Int32Array; rows: number } {
  const cols = design.cols;
  const X = new Float64Array(idx.length * cols);
  const labels = new Int32Array(idx.length);
  idx.forEach((r, i) => {
    X.set(design.X.subarray(r * cols, (r + 1) * cols), i * cols);
    labels[i] = y[r]!;
  });
  return { X, y: labels, rows: idx.length };
}

function validationMetric(P: Float64Array, y: Int32Array, classes: string[]): { name: string; value: number } {
  if (classes.length === 2) {
    const p = Float64Array.from({ length: y.length }, (_, r) => P[r * 2 + 1]!);
    return { name: 'auc', value: binaryMetrics(p, y).auc };
  }
  return { name: 'log_loss', value: multiclassMetrics(P, y, classes).log_loss };
}

function candidateReport(family: Family, epochs: number, best: number, loss: number, metric: { name: string; value: number }, started: number): CandidateReport {
  return { family, epochs, best_epoch: best, validation_loss: loss, validation_metric: metric, seconds: (Date.now() - started) / 1000 };
}

function encodingSteps(design: Design): Record<string, unknown>[] {
  return design.encodings ? [{ step: 'encode', columns: design.encodings }] : [];
}

/** Logistic regression (no hidden layer) or the MLP (inputs -> 32 -> 16 -> outputs). */
export function trainNetCandidate(family: 'logistic' | 'mlp', input: CandidateInput): TrainedCandidate {
  const t0 = Date.now();
  const { design, classes } = input;
  const k = classes.length;
  const tr = pickRows(design, input.y, input.train);
  const va = pickRows(design, input.y, input.validation);
  const preprocessor = fitPreprocessor(tr.X, tr.rows, design.cols, design.featureNames);
  const Xtrain = transform(preprocessor, tr.X, tr.rows);
  const Xval = transform(preprocessor, va.X, va.rows);
  const width = Xtrain.length / Math.max(1, tr.rows);
  const counts = new Array<number>(k).fill(0);
  for (const label of tr.y) counts[label]!++;
  const classWeight = counts.map((c) => (c > 0 ? tr.rows / (k * c) : 0));
  const weightsOf = (y: Int32Array) => Float64Array.from(y, (label) => classWeight[label]!);
  const net = initNet(width, family === 'mlp' ? trainingDefaults.mlp_hidden : [], k, input.seed);
  const report = train(
    net,
    { X: Xtrain, rows: tr.rows, cols: width, y: tr.y, weights: weightsOf(tr.y) },
    { X: Xval, rows: va.rows, cols: width, y: va.y, weights: weightsOf(va.y) },
    {
      maxEpochs: input.maxEpochs ?? trainingDefaults.max_epochs,
      batchSize: trainingDefaults.batch_size,
      learningRate: trainingDefaults.learning_rate[family],
      l2: trainingDefaults.l2,
      patience: trainingDefaults.patience,
      seed: input.seed,
      onEpoch: (e) => input.log(`${family}: epoch ${e.epoch} train loss ${e.trainLoss.toFixed(4)} validation loss ${e.validationLoss.toFixed(4)}${e.best ? ' (best)' : ''}`),
    },
  );
  // Class weighting shifts the learned log-odds by log(weight); removing that from the output bias
  // restores probabilities calibrated to the real class frequencies.
  const out = net.layers[net.layers.length - 1]!;
  if (net.output === 'sigmoid') out.b[0] = out.b[0]! - Math.log(classWeight[1]! / classWeight[0]!);
  else for (let c = 0; c < out.outputs; c++) out.b[c] = out.b[c]! - Math.log(classWeight[c]!);
  const model: NetModel = toFloat32({ kind: 'net', preprocessor, net, classes: k });
  const probabilities = (X: Float64Array, rows: number) => netProbabilities(model, Float64Array.from(X, Math.fround), rows);
  return {
    family,
    design,
    report: candidateReport(family, report.epochs, report.bestEpoch, report.bestValidationLoss, validationMetric(probabilities(va.X, va.rows), va.y, classes), t0),
    probabilities,
    export: (meta) => exportNet(model, meta),
    preprocessing: {
      applied_in: design.encodings ? 'serving' : 'graph',
      steps: [...encodingSteps(design), ...describePreprocessor(model.preprocessor).map((s) => ({ ...s, in_graph: true }))],
    },
    hyperparameters: {
      hidden_layers: family === 'mlp' ? trainingDefaults.mlp_hidden : [],
      learning_rate: trainingDefaults.learning_rate[family],
      l2: trainingDefaults.l2,
      batch_size: trainingDefaults.batch_size,
      max_epochs: input.maxEpochs ?? trainingDefaults.max_epochs,
      patience: trainingDefaults.patience,
      class_weight: Object.fromEntries(classes.map((c, i) => [c, classWeight[i]])),
    },
  };
}

/** Gradient-boosted trees on the raw values (no scaling; missing values routed by each split). */
export function trainGbtCandidate(input: CandidateInput, overrides: Partial<GbtParams> = {}): TrainedCandidate {
  const t0 = Date.now();
  const { design, classes } = input;
  const params: GbtParams = { ...DEFAULT_GBT, ...(trainingDefaults.gbt as Partial<GbtParams>), ...overrides, seed: input.seed };
  const tr = pickRows(design, input.y, input.train);
  const va = pickRows(design, input.y, input.validation);
  const { model, report } = trainGbt({ ...tr, cols: design.cols }, { ...va, cols: design.cols }, classes.length, params, (r) => {
    if (r.round % 10 === 0 || r.best) input.log(`gbt: round ${r.round} validation loss ${r.validationLoss.toFixed(4)}${r.best ? ' (best)' : ''}`);
  });
  const probabilities = (X: Float64Array, rows: number) => gbtProbabilities(model, X, rows);
  return {
    family: 'gbt',
    design,
    report: candidateReport('gbt', report.rounds, report.bestRound, report.bestValidationLoss, validationMetric(probabilities(va.X, va.rows), va.y, classes), t0),
    probabilities,
    export: (meta) => exportGbt(model, classes, meta),
    preprocessing: {
      applied_in: design.encodings ? 'serving' : 'graph',
      steps: [...encodingSteps(design), { step: 'trees', missing_values: 'routed by each split (nodes_missing_value_tracks_true)', scaling: 'none', in_graph: true }],
    },
    hyperparameters: { ...params, trees: model.trees.length } as unknown as Record<string, unknown>,
  };
}

/**
 * The trees' view of CSV data: each one-hot encoded text column becomes one ordinal column, its
 * categories ordered by their positive rate in the training rows (the order in which a single
 * threshold separates them best, as LightGBM sorts categories by gradient statistics).
 */
export function treeDesign(base: Design, records: Record<string, unknown>[] | undefined, y: Int32Array, train: Uint32Array): Design {
  if (!base.encodings || !records || !base.encodings.some((e) => e.kind === 'one_hot')) return base;
  const encodings: ColumnEncoding[] = base.encodings.map((e) => {
    if (e.kind !== 'one_hot') return e;
    const stats = new Map<string, { n: number; pos: number }>();
    for (const r of train) {
      const value = String(records[r]![e.column] ?? '').trim();
      const s = stats.get(value) ?? { n: 0, pos: 0 };
      s.n++;
      s.pos += y[r]! > 0 ? 1 : 0;
      stats.set(value, s);
    }
    const prior = 0.5;
    const rate = (c: string) => {
      const s = stats.get(c) ?? { n: 0, pos: 0 };
      return (s.pos + prior) / (s.n + 1);
    };
    return { column: e.column, kind: 'ordinal', categories: [...e.categories].sort((a, b) => rate(a) - rate(b) || a.localeCompare(b)) };
  });
  return { X: encodeRecords(encodings, records), cols: encodings.length, featureNames: encodedNames(encodings), encodings };
}

export type { GbtModel };
