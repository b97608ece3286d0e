import { Rng, shuffledIndices } from '../random';

/**
 * Small dense networks trained with mini-batch Adam: logistic regression is a network with no
 * hidden layer, the MLP has ReLU hidden layers. Binary models have one output (a logit, sigmoid);
 * multiclass models one per class (softmax); `independent` models one sigmoid per output, each a
 * probability of its own, learnt from soft targets (a probability per output and row, such as
 * another model's). Plain typed arrays and loops: fast enough for a few hundred thousand rows on
 * one core, and exactly reproducible for a seed.
 */
export interface DenseLayer {
  inputs: number;
  outputs: number;
  /** Row-major [inputs][outputs]. */
  W: Float64Array;
  b: Float64Array;
}

export interface DenseNet {
  layers: DenseLayer[];
  output: 'sigmoid' | 'softmax' | 'independent';
}

/** A design matrix (row-major) with labels and optional per-row weights. */
export interface TrainingData {
  X: Float64Array;
  rows: number;
  cols: number;
  /** Binary: 0/1. Multiclass: class index. Independent outputs: unused (see targets). */
  y: Int32Array;
  weights?: Float64Array;
  /** Independent outputs: the target probability of every output per row, row-major [rows][outputs]. */
  targets?: Float64Array;
}

export interface TrainOptions {
  maxEpochs: number;
  batchSize: number;
  learningRate: number;
  /** L2 penalty in the loss (coupled, as in plain Adam). */
  l2: number;
  /** Decoupled weight decay per step, scaled by the learning rate (AdamW). */
  weightDecay?: number;
  /** The learning rate is multiplied by `factor` every `every` epochs. */
  decay?: { every: number; factor: number };
  /** Epochs without improvement of the validation loss before stopping. */
  patience: number;
  seed: number;
  onEpoch?: (e: { epoch: number; trainLoss: number; validationLoss: number; best: boolean }) => void;
}

export interface TrainReport {
  epochs: number;
  bestEpoch: number;
  bestValidationLoss: number;
  history: { epoch: number; trainLoss: number; validationLoss: number }[];
}

/** He-initialised hidden layers, Xavier-initialised output layer. */
export function initNet(inputs: number, hidden: number[], classes: number, seed: number): DenseNet {
  const rng = new Rng(seed);
  const sizes = [inputs, ...hidden, classes === 2 ? 1 : classes];
  const layers: DenseLayer[] = [];
  for (let l = 0; l < sizes.length - 1; l++) {
    const fanIn = sizes[l]!;
    const fanOut = sizes[l + 1]!;
    const last = l === sizes.length - 2;
    const scale = last ? Math.sqrt(2 / (fanIn + fanOut)) : Math.sqrt(2 / fanIn);
    const W = new Float64Array(fanIn * fanOut);
    for (let i = 0; i < W.length; i++) W[i] = rng.normal() * scale;
    layers.push({ inputs: fanIn, outputs: fanOut, W, b: new Float64Array(fanOut) });
  }
  return { layers, output: classes === 2 ? 'sigmoid' : 'softmax' };
}

/** Number of probability columns the net produces: 1 (P(positive)) or the number of classes. */
export function outputWidth(net: DenseNet): number {
  return net.layers[net.layers.length - 1]!.outputs;
}

/** Class probabilities for every row: [rows][1] for binary (P(positive)), [rows][classes] else. */
export function predict(net: DenseNet, X: Float64Array, rows: number): Float64Array {
  const width = outputWidth(net);
  const out = new Float64Array(rows * width);
  const scratch = makeScratch(net);
  const cols = net.layers[0]!.inputs;
  for (let r = 0; r < rows; r++) {
    const logits = forward(net, X, r * cols, scratch);
    writeProbabilities(net, logits, out, r * width);
  }
  return out;
}

/**
 * Trains in place with Adam (AdamW with weightDecay) and early stopping on the validation loss;
 * the net ends with the weights of its best epoch. Without validation rows (null) it trains
 * exactly maxEpochs epochs (a refit with epochs chosen by cross-validation).
 */
export function train(net: DenseNet, data: TrainingData, validation: TrainingData | null, options: TrainOptions): TrainReport {
  const rng = new Rng(options.seed ^ 0x5bd1e995);
  const params = net.layers.flatMap((l) => [l.W, l.b]);
  const grads = params.map((p) => new Float64Array(p.length));
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const scratch = makeScratch(net);
  const deltas = net.layers.map((l) => new Float64Array(l.outputs));
  const beta1 = 0.9;
  const beta2 = 0.999;
  let step = 0;
  let best = { loss: Infinity, epoch: 0, weights: params.map((p) => p.slice()) };
  const history: TrainReport['history'] = [];

  for (let epoch = 1; epoch <= options.maxEpochs; epoch++) {
    const order = shuffledIndices(data.rows, rng);
    let lossSum = 0;
    let weightSum = 0;
    for (let start = 0; start < data.rows; start += options.batchSize) {
      const end = Math.min(data.rows, start + options.batchSize);
      for (const g of grads) g.fill(0);
      let batchWeight = 0;
      for (let k = start; k < end; k++) {
        const r = order[k]!;
        const w = data.weights ? data.weights[r]! : 1;
        batchWeight += w;
        lossSum += w * backward(net, data.X, r * data.cols, data.y[r]!, w, scratch, deltas, grads, data.targets ? data.targets.subarray(r * outputWidth(net), (r + 1) * outputWidth(net)) : null);
      }
      weightSum += batchWeight;
      step++;
      const rate = options.decay ? options.learningRate * options.decay.factor ** Math.floor((epoch - 1) / options.decay.every) : options.learningRate;
      const lrT = (rate * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step);
      const shrink = 1 - rate * (options.weightDecay ?? 0);
      for (let p = 0; p < params.length; p++) {
        const param = params[p]!;
        const grad = grads[p]!;
        const mp = m[p]!;
        const vp = v[p]!;
        const isWeight = p % 2 === 0;
        for (let i = 0; i < param.length; i++) {
          const g = grad[i]! / batchWeight + (isWeight ? options.l2 * param[i]! : 0);
          mp[i] = beta1 * mp[i]! + (1 - beta1) * g;
          vp[i] = beta2 * vp[i]! + (1 - beta2) * g * g;
          param[i] = (isWeight ? param[i]! * shrink : param[i]!) - (lrT * mp[i]!) / (Math.sqrt(vp[i]!) + 1e-8);
        }
      }
    }
    const validationLoss = validation ? loss(net, validation) : NaN;
    const improved = validation ? validationLoss < best.loss - 1e-6 : true;
    if (improved) best = { loss: validationLoss, epoch, weights: params.map((p) => p.slice()) };
    const trainLoss = lossSum / weightSum;
    history.push({ epoch, trainLoss, validationLoss });
    options.onEpoch?.({ epoch, trainLoss, validationLoss, best: improved });
    if (epoch - best.epoch >= options.patience) break;
  }
  params.forEach((p, i) => p.set(best.weights[i]!));
  return { epochs: history.length, bestEpoch: best.epoch, bestValidationLoss: best.loss, history };
}

/** Mean weighted cross-entropy of the net on a dataset. */
export function loss(net: DenseNet, data: TrainingData): number {
  const scratch = makeScratch(net);
  let sum = 0;
  let weights = 0;
  for (let r = 0; r < data.rows; r++) {
    const w = data.weights ? data.weights[r]! : 1;
    const logits = forward(net, data.X, r * data.cols, scratch);
    const K = logits.length;
    sum += w * (net.output === 'independent' ? softCrossEntropy(logits, data.targets!.subarray(r * K, (r + 1) * K)) : crossEntropy(net, logits, data.y[r]!));
    weights += w;
  }
  return sum / weights;
}

interface Scratch {
  /** Activations per layer; acts[0] is unused (the input row is read in place). */
  acts: Float64Array[];
}

function makeScratch(net: DenseNet): Scratch {
  return { acts: [new Float64Array(0), ...net.layers.map((l) => new Float64Array(l.outputs))] };
}

/** Forward pass for one row; returns the output logits (a view into scratch). */
function forward(net: DenseNet, X: Float64Array, offset: number, scratch: Scratch): Float64Array {
  const last = net.layers.length - 1;
  for (let l = 0; l <= last; l++) {
    const layer = net.layers[l]!;
    const out = scratch.acts[l + 1]!;
    const n = layer.outputs;
    out.set(layer.b);
    const W = layer.W;
    if (l === 0) {
      for (let i = 0; i < layer.inputs; i++) {
        const x = X[offset + i]!;
        if (x === 0) continue;
        const row = i * n;
        for (let j = 0; j < n; j++) out[j] = out[j]! + x * W[row + j]!;
      }
    } else {
      const input = scratch.acts[l]!;
      for (let i = 0; i < layer.inputs; i++) {
        const x = input[i]!;
        if (x === 0) continue;
        const row = i * n;
        for (let j = 0; j < n; j++) out[j] = out[j]! + x * W[row + j]!;
      }
    }
    if (l < last) for (let j = 0; j < n; j++) if (out[j]! < 0) out[j] = 0;
  }
  return scratch.acts[last + 1]!;
}

/** Forward and backward for one row; adds weighted gradients, returns the row's loss. */
function backward(
  net: DenseNet,
  X: Float64Array,
  offset: number,
  label: number,
  weight: number,
  scratch: Scratch,
  deltas: Float64Array[],
  grads: Float64Array[],
  targets: Float64Array | null,
): number {
  const logits = forward(net, X, offset, scratch);
  const last = net.layers.length - 1;
  const top = deltas[last]!;
  let rowLoss: number;
  if (net.output === 'independent') {
    for (let j = 0; j < top.length; j++) top[j] = weight * (sigmoid(logits[j]!) - targets![j]!);
    rowLoss = softCrossEntropy(logits, targets!);
  } else if (net.output === 'sigmoid') {
    const p = sigmoid(logits[0]!);
    top[0] = weight * (p - label);
    rowLoss = crossEntropy(net, logits, label);
  } else {
    softmaxInto(logits, top);
    rowLoss = -Math.log(Math.max(top[label]!, 1e-15));
    for (let j = 0; j < top.length; j++) top[j] = weight * (top[j]! - (j === label ? 1 : 0));
  }
  for (let l = last; l >= 0; l--) {
    const layer = net.layers[l]!;
    const delta = deltas[l]!;
    const gW = grads[2 * l]!;
    const gb = grads[2 * l + 1]!;
    const n = layer.outputs;
    for (let j = 0; j < n; j++) gb[j] = gb[j]! + delta[j]!;
    const input = l === 0 ? null : scratch.acts[l]!;
    for (let i = 0; i < layer.inputs; i++) {
      const x = input ? input[i]! : X[offset + i]!;
      if (x === 0) continue;
      const row = i * n;
      for (let j = 0; j < n; j++) gW[row + j] = gW[row + j]! + x * delta[j]!;
    }
    if (l > 0) {
      const below = deltas[l - 1]!;
      const act = scratch.acts[l]!;
      const W = layer.W;
      for (let i = 0; i < layer.inputs; i++) {
        if (act[i]! <= 0) {
          below[i] = 0;
          continue;
        }
        let s = 0;
        const row = i * n;
        for (let j = 0; j < n; j++) s += W[row + j]! * delta[j]!;
        below[i] = s;
      }
    }
  }
  return rowLoss;
}

function crossEntropy(net: DenseNet, logits: Float64Array, label: number): number {
  if (net.output === 'sigmoid') {
    const z = logits[0]!;
    // log(1 + e^z) - y*z, computed stably.
    return Math.max(z, 0) - z * label + Math.log1p(Math.exp(-Math.abs(z)));
  }
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]!);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp(logits[j]! - max);
  return Math.log(sum) + max - logits[label]!;
}

/** Σ over outputs of the cross-entropy of sigmoid(z) against a target probability t, computed stably. */
function softCrossEntropy(logits: Float64Array, targets: Float64Array): number {
  let sum = 0;
  for (let j = 0; j < logits.length; j++) {
    const z = logits[j]!;
    sum += Math.max(z, 0) - z * targets[j]! + Math.log1p(Math.exp(-Math.abs(z)));
  }
  return sum;
}

function writeProbabilities(net: DenseNet, logits: Float64Array, out: Float64Array, offset: number): void {
  if (net.output === 'sigmoid') {
    out[offset] = sigmoid(logits[0]!);
    return;
  }
  if (net.output === 'independent') {
    for (let j = 0; j < logits.length; j++) out[offset + j] = sigmoid(logits[j]!);
    return;
  }
  softmaxInto(logits, out.subarray(offset, offset + logits.length));
}

function softmaxInto(logits: Float64Array, out: Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]!);
  let sum = 0;
  for (let j = 0; j < logits.length; j++) {
    out[j] = Math.exp(logits[j]! - max);
    sum += out[j]!;
  }
  for (let j = 0; j < logits.length; j++) out[j] = out[j]! / sum;
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}
