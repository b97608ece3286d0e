import trainingDefaults from '../../../models/training.json';
import { buildDesign, describeDesign, designWidth, fitDesign, type DesignChoice } from '../design';
import { emitNet, netProbabilities, toFloat32, type NetModel } from '../export';
import { initNet, predict, train, type TrainOptions } from '../nn';
import { labelsOf, oofScore, scoreName, type Candidate, type FittedModel, type SelectionData } from '../selection';
import { SEARCH_MAX_ROWS, sampleRows } from './linear';

/**
 * The MLP (ReLU hidden layers from models/training.json) trained with AdamW on unweighted rows
 * (at most 50,000, a seeded sample, in the folds and the refit alike, so the epochs carry over):
 * patience counted in epochs on each fold's check rows, a learning rate that decays by a fixed
 * schedule (the same in the folds and the refit), weight decay. The epochs of the refit are the
 * folds' mean best epoch. Inputs: numbers standardised with missing indicators, categories
 * one-hot.
 */
export function searchMlp(data: SelectionData, options: { maxEpochs?: number } = {}): Candidate {
  const started = Date.now();
  const k = data.classes.length;
  const choice: DesignChoice = { knots: 0, log: false, categorical: Object.fromEntries(data.columns.filter((c) => c.kind === 'categorical').map((c) => [c.name, 'one_hot'])) };
  const schedule = scheduleOf(options.maxEpochs);
  const oof = new Float64Array((data.X.length / data.columns.length) * k);
  const bestEpochs: number[] = [];
  data.plan.folds.forEach((fold) => {
    const fit = sampleRows(fold.fit, SEARCH_MAX_ROWS, data.seed);
    const { design, Z } = fitDesign(data.columns, data.X, fit, data.y, choice, data.seed);
    const width = designWidth(design);
    const check = buildDesign(design, data.X, fold.check);
    const net = initNet(width, trainingDefaults.mlp_hidden, k, data.seed);
    const report = train(net, { X: Z, rows: fit.length, cols: width, y: labelsOf(data, fit) }, { X: check, rows: fold.check.length, cols: width, y: labelsOf(data, fold.check) }, { ...schedule, seed: data.seed });
    bestEpochs.push(report.bestEpoch);
    const P = toClasses(predict(net, check, fold.check.length), k);
    fold.check.forEach((row, j) => oof.set(P.subarray(j * k, (j + 1) * k), row * k));
    data.log(`mlp: ${fold.label}: best epoch ${report.bestEpoch} of ${report.epochs}, validation loss ${report.bestValidationLoss.toFixed(4)}`);
  });
  const epochs = Math.max(1, Math.round(bestEpochs.reduce((a, b) => a + b, 0) / bestEpochs.length));
  const score = oofScore(oof, data);
  const settings = { hidden_layers: trainingDefaults.mlp_hidden, epochs, fold_best_epochs: bestEpochs, ...describeSchedule(schedule) };
  data.log(`mlp: out-of-fold ${scoreName(data)} ${score.toFixed(4)}; refit for ${epochs} epochs`);
  return {
    family: 'mlp',
    oof,
    score,
    settings,
    tried: [{ settings, score }],
    seconds: (Date.now() - started) / 1000,
    refit: () => refitMlp(data, choice, { ...schedule, maxEpochs: epochs }, settings),
  };
}

function scheduleOf(maxEpochs?: number): TrainOptions {
  const m = trainingDefaults.mlp;
  return {
    maxEpochs: maxEpochs ?? m.max_epochs,
    batchSize: m.batch_size,
    learningRate: m.learning_rate,
    l2: 0,
    weightDecay: m.weight_decay,
    decay: { every: m.decay_every_epochs, factor: m.decay_factor },
    patience: m.patience_epochs,
    seed: 0,
  };
}

function describeSchedule(s: TrainOptions): Record<string, unknown> {
  return { optimizer: 'AdamW', batch_size: s.batchSize, learning_rate: s.learningRate, weight_decay: s.weightDecay, decay: s.decay, patience_epochs: s.patience, class_weight: 'none' };
}

function refitMlp(data: SelectionData, choice: DesignChoice, schedule: TrainOptions, settings: Record<string, unknown>): FittedModel {
  const k = data.classes.length;
  const rows = sampleRows(data.train, SEARCH_MAX_ROWS, data.seed);
  const { design, Z } = fitDesign(data.columns, data.X, rows, data.y, choice, data.seed);
  const width = designWidth(design);
  const net = initNet(width, trainingDefaults.mlp_hidden, k, data.seed);
  train(net, { X: Z, rows: rows.length, cols: width, y: labelsOf(data, rows) }, null, { ...schedule, seed: data.seed });
  const model: NetModel = toFloat32({ kind: 'net', design, net, classes: k });
  return {
    family: 'mlp',
    probabilities: (X, n) => netProbabilities(model, X, n),
    emit: (g, x, prefix) => emitNet(g, x, model, prefix),
    preprocessing: describeDesign(design, data.columns).map((step) => ({ ...step, in_graph: true })),
    hyperparameters: { ...settings, training_rows: rows.length },
  };
}

/** A net's output ([rows][1] P(positive), or [rows][classes]) as [rows][classes]. */
function toClasses(raw: Float64Array, k: number): Float64Array {
  if (k > 2) return raw;
  const out = new Float64Array(raw.length * 2);
  for (let r = 0; r < raw.length; r++) {
    out[2 * r] = 1 - raw[r]!;
    out[2 * r + 1] = raw[r]!;
  }
  return out;
}
