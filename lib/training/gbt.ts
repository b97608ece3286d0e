import { Rng } from '../random';

/**
 * Histogram-based gradient-boosted trees (in the spirit of LightGBM and scikit-learn's
 * HistGradientBoosting): features binned once into at most 255 bins plus one bin for missing
 * values, leaf-wise growth with split finding on gradient histograms (the larger child's histogram
 * is its parent's minus its sibling's), shrinkage, L2 regularisation, minimum samples and hessian
 * per leaf, maximum depth and leaves, row and feature subsampling, early stopping on a validation
 * split. Each split learns which side missing values go to. Binary (logistic loss) and multiclass
 * (softmax, one tree per class per round). Thresholds are float32, like the ONNX graph that serves
 * the trees, so the trainer's own forward pass and onnxruntime walk the same paths.
 */
export interface GbtParams {
  maxRounds: number;
  learningRate: number;
  maxLeaves: number;
  maxDepth: number;
  minSamplesLeaf: number;
  minHessianLeaf: number;
  l2: number;
  rowSubsample: number;
  featureSubsample: number;
  maxBins: number;
  earlyStoppingRounds: number;
  seed: number;
}

export const DEFAULT_GBT: GbtParams = {
  maxRounds: 300,
  learningRate: 0.1,
  maxLeaves: 31,
  maxDepth: 8,
  minSamplesLeaf: 20,
  minHessianLeaf: 1e-3,
  l2: 1,
  rowSubsample: 0.8,
  featureSubsample: 0.9,
  maxBins: 255,
  earlyStoppingRounds: 20,
  seed: 42,
};

export interface TreeNode {
  /** -1 for a leaf. */
  feature: number;
  /** float32 threshold: value <= threshold goes left. */
  threshold: number;
  missingLeft: boolean;
  left: number;
  right: number;
  /** Leaf value (already multiplied by the learning rate). */
  value: number;
  /** Training only: the last bin that goes left (bins are the binned form of the threshold). */
  bin: number;
}

export interface Tree {
  /** Which output the tree adds to (0 for binary). */
  output: number;
  nodes: TreeNode[];
}

export interface GbtModel {
  kind: 'gbt';
  classes: number;
  /** Raw-score offsets: one for binary, one per class for multiclass. */
  base: number[];
  trees: Tree[];
  features: number;
  params: GbtParams;
}

export interface GbtData {
  /** Row-major raw features, NaN = missing. */
  X: Float64Array;
  rows: number;
  cols: number;
  y: Int32Array;
  weights?: Float64Array;
}

export interface GbtReport {
  rounds: number;
  bestRound: number;
  bestValidationLoss: number;
}

/** Bin edges per feature: float32 thresholds between consecutive bins (bin 0 is "missing"). */
export interface Binning {
  thresholds: Float32Array[];
}

export function fitBinning(X: Float64Array, rows: number, cols: number, maxBins: number): Binning {
  const thresholds: Float32Array[] = [];
  for (let c = 0; c < cols; c++) {
    const values: number[] = [];
    for (let r = 0; r < rows; r++) {
      const v = X[r * cols + c]!;
      if (!Number.isNaN(v)) values.push(Math.fround(v));
    }
    values.sort((a, b) => a - b);
    const distinct: number[] = [];
    for (const v of values) if (distinct.length === 0 || distinct[distinct.length - 1] !== v) distinct.push(v);
    const cuts: number[] = [];
    if (distinct.length <= maxBins) {
      for (let i = 0; i + 1 < distinct.length; i++) cuts.push(midpoint(distinct[i]!, distinct[i + 1]!));
    } else {
      // Quantile cuts over the sorted values, never splitting a run of equal values.
      let last = -Infinity;
      for (let b = 1; b < maxBins; b++) {
        const v = values[Math.floor((b * values.length) / maxBins)]!;
        const i = upperIndex(distinct, v);
        if (i + 1 >= distinct.length) break;
        const cut = midpoint(distinct[i]!, distinct[i + 1]!);
        if (cut > last) {
          cuts.push(cut);
          last = cut;
        }
      }
    }
    thresholds.push(Float32Array.from(cuts));
  }
  return { thresholds };
}

/** A float32 value strictly between a and b (or a, when they are adjacent floats). */
function midpoint(a: number, b: number): number {
  const m = Math.fround((a + b) / 2);
  return m >= b ? a : m;
}

function upperIndex(sorted: number[], v: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (sorted[mid]! <= v) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Bin index of each value: 0 for missing, 1 + (number of thresholds below the value) otherwise. */
export function binData(X: Float64Array, rows: number, cols: number, binning: Binning): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let c = 0; c < cols; c++) {
    const t = binning.thresholds[c]!;
    for (let r = 0; r < rows; r++) {
      const v = X[r * cols + c]!;
      if (Number.isNaN(v)) continue;
      const f = Math.fround(v);
      let lo = 0;
      let hi = t.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (f <= t[mid]!) hi = mid;
        else lo = mid + 1;
      }
      out[r * cols + c] = lo + 1;
    }
  }
  return out;
}

/** Trains a model; `onRound` reports progress. */
export function trainGbt(
  train: GbtData,
  validation: GbtData,
  classes: number,
  params: GbtParams = DEFAULT_GBT,
  onRound?: (r: { round: number; validationLoss: number; best: boolean }) => void,
): { model: GbtModel; report: GbtReport } {
  const rng = new Rng(params.seed ^ 0x2545f491);
  const cols = train.cols;
  const binning = fitBinning(train.X, train.rows, cols, params.maxBins);
  const bins = binData(train.X, train.rows, cols, binning);
  const valBins = binData(validation.X, validation.rows, cols, binning);
  const nBins = binning.thresholds.map((t) => t.length + 2);
  const outputs = classes === 2 ? 1 : classes;
  const w = train.weights ?? new Float64Array(train.rows).fill(1);
  const wv = validation.weights ?? new Float64Array(validation.rows).fill(1);

  // Initial raw scores: the weighted class prior.
  const base = initialScores(train.y, w, classes);
  const score = new Float64Array(train.rows * outputs);
  const valScore = new Float64Array(validation.rows * outputs);
  for (let r = 0; r < train.rows; r++) for (let k = 0; k < outputs; k++) score[r * outputs + k] = base[k]!;
  for (let r = 0; r < validation.rows; r++) for (let k = 0; k < outputs; k++) valScore[r * outputs + k] = base[k]!;

  const trees: Tree[] = [];
  const grad = new Float64Array(train.rows);
  const hess = new Float64Array(train.rows);
  const prob = new Float64Array(outputs);
  let best = { loss: lossOf(valScore, validation.y, wv, classes), round: 0, trees: 0 };
  let round = 0;
  for (round = 1; round <= params.maxRounds; round++) {
    const sample = subsample(train.rows, params.rowSubsample, rng);
    const featureMask = pickFeatures(cols, params.featureSubsample, rng);
    const roundTrees: Tree[] = [];
    const p = new Float64Array(train.rows * outputs);
    for (let r = 0; r < train.rows; r++) {
      probabilitiesInto(score, r * outputs, outputs, prob);
      for (let k = 0; k < outputs; k++) p[r * outputs + k] = prob[k]!;
    }
    for (let k = 0; k < outputs; k++) {
      for (let r = 0; r < train.rows; r++) {
        const pk = p[r * outputs + k]!;
        const target = outputs === 1 ? train.y[r]! : train.y[r] === k ? 1 : 0;
        grad[r] = w[r]! * (pk - target);
        hess[r] = w[r]! * Math.max(pk * (1 - pk), 1e-16);
      }
      const tree = growTree(bins, cols, nBins, binning, grad, hess, sample, featureMask, params, k);
      roundTrees.push(tree);
    }
    // Apply the round's trees to training and validation scores.
    for (const tree of roundTrees) {
      addTree(tree, bins, train.rows, cols, score, outputs);
      addTree(tree, valBins, validation.rows, cols, valScore, outputs);
    }
    trees.push(...roundTrees);
    const loss = lossOf(valScore, validation.y, wv, classes);
    const improved = loss < best.loss - 1e-7;
    if (improved) best = { loss, round, trees: trees.length };
    onRound?.({ round, validationLoss: loss, best: improved });
    if (round - best.round >= params.earlyStoppingRounds) break;
  }
  return {
    model: { kind: 'gbt', classes, base: Array.from(base, Math.fround), trees: trees.slice(0, best.trees), features: cols, params },
    report: { rounds: Math.min(round, params.maxRounds), bestRound: best.round, bestValidationLoss: best.loss },
  };
}

function initialScores(y: Int32Array, w: Float64Array, classes: number): Float64Array {
  const totals = new Float64Array(classes);
  let sum = 0;
  for (let r = 0; r < y.length; r++) {
    totals[y[r]!] = totals[y[r]!]! + w[r]!;
    sum += w[r]!;
  }
  const prior = (c: number) => Math.min(1 - 1e-6, Math.max(1e-6, totals[c]! / sum));
  if (classes === 2) return Float64Array.of(Math.log(prior(1) / prior(0)));
  return Float64Array.from({ length: classes }, (_, c) => Math.log(prior(c)));
}

function probabilitiesInto(score: Float64Array, offset: number, outputs: number, out: Float64Array): void {
  if (outputs === 1) {
    out[0] = 1 / (1 + Math.exp(-score[offset]!));
    return;
  }
  let max = -Infinity;
  for (let k = 0; k < outputs; k++) max = Math.max(max, score[offset + k]!);
  let sum = 0;
  for (let k = 0; k < outputs; k++) {
    out[k] = Math.exp(score[offset + k]! - max);
    sum += out[k]!;
  }
  for (let k = 0; k < outputs; k++) out[k] = out[k]! / sum;
}

function lossOf(score: Float64Array, y: Int32Array, w: Float64Array, classes: number): number {
  const outputs = classes === 2 ? 1 : classes;
  const prob = new Float64Array(outputs);
  let total = 0;
  let weights = 0;
  for (let r = 0; r < y.length; r++) {
    probabilitiesInto(score, r * outputs, outputs, prob);
    const p = outputs === 1 ? (y[r] ? prob[0]! : 1 - prob[0]!) : prob[y[r]!]!;
    total -= w[r]! * Math.log(Math.max(p, 1e-15));
    weights += w[r]!;
  }
  return total / Math.max(weights, 1e-12);
}

function subsample(rows: number, fraction: number, rng: Rng): Uint32Array {
  if (fraction >= 1) return Uint32Array.from({ length: rows }, (_, i) => i);
  const picked: number[] = [];
  for (let r = 0; r < rows; r++) if (rng.next() < fraction) picked.push(r);
  return Uint32Array.from(picked);
}

function pickFeatures(cols: number, fraction: number, rng: Rng): Uint8Array {
  const mask = new Uint8Array(cols);
  let any = false;
  for (let c = 0; c < cols; c++) {
    if (fraction >= 1 || rng.next() < fraction) {
      mask[c] = 1;
      any = true;
    }
  }
  if (!any) mask[Math.floor(rng.next() * cols)] = 1;
  return mask;
}

interface Split {
  gain: number;
  feature: number;
  bin: number;
  missingLeft: boolean;
  gl: number;
  hl: number;
  cl: number;
}

interface Candidate {
  node: number;
  depth: number;
  start: number;
  end: number;
  hist: Float64Array;
  g: number;
  h: number;
  split: Split | null;
}

/** Histogram layout: per feature, per bin, (gradient, hessian, count). */
function histOffsets(nBins: number[]): Int32Array {
  const offsets = new Int32Array(nBins.length + 1);
  for (let c = 0; c < nBins.length; c++) offsets[c + 1] = offsets[c]! + nBins[c]! * 3;
  return offsets;
}

function buildHistogram(bins: Uint8Array, cols: number, offsets: Int32Array, rows: Uint32Array, start: number, end: number, grad: Float64Array, hess: Float64Array, mask: Uint8Array): Float64Array {
  const hist = new Float64Array(offsets[cols]!);
  for (let c = 0; c < cols; c++) {
    if (!mask[c]) continue;
    const base = offsets[c]!;
    for (let i = start; i < end; i++) {
      const r = rows[i]!;
      const b = base + bins[r * cols + c]! * 3;
      hist[b] = hist[b]! + grad[r]!;
      hist[b + 1] = hist[b + 1]! + hess[r]!;
      hist[b + 2] = hist[b + 2]! + 1;
    }
  }
  return hist;
}

/** The best split of a node from its histogram, trying missing values on both sides. */
export function bestSplit(hist: Float64Array, offsets: Int32Array, nBins: number[], mask: Uint8Array, G: number, H: number, count: number, params: Pick<GbtParams, 'l2' | 'minSamplesLeaf' | 'minHessianLeaf'>): Split | null {
  const lambda = params.l2;
  const parentScore = (G * G) / (H + lambda);
  let best: Split | null = null;
  for (let c = 0; c < nBins.length; c++) {
    if (!mask[c]) continue;
    const base = offsets[c]!;
    const mg = hist[base]!;
    const mh = hist[base + 1]!;
    const mc = hist[base + 2]!;
    let gl = 0;
    let hl = 0;
    let cl = 0;
    // Split after value bin b (bins 1..b go left).
    for (let b = 1; b < nBins[c]! - 1; b++) {
      gl += hist[base + b * 3]!;
      hl += hist[base + b * 3 + 1]!;
      cl += hist[base + b * 3 + 2]!;
      for (const missingLeft of mc > 0 ? [false, true] : [false]) {
        const GL = gl + (missingLeft ? mg : 0);
        const HL = hl + (missingLeft ? mh : 0);
        const CL = cl + (missingLeft ? mc : 0);
        const GR = G - GL;
        const HR = H - HL;
        const CR = count - CL;
        if (CL < params.minSamplesLeaf || CR < params.minSamplesLeaf || HL < params.minHessianLeaf || HR < params.minHessianLeaf) continue;
        const gain = (GL * GL) / (HL + lambda) + (GR * GR) / (HR + lambda) - parentScore;
        if (gain > 1e-12 && (!best || gain > best.gain)) best = { gain, feature: c, bin: b, missingLeft, gl: GL, hl: HL, cl: CL };
      }
    }
  }
  return best;
}

function growTree(
  bins: Uint8Array,
  cols: number,
  nBins: number[],
  binning: Binning,
  grad: Float64Array,
  hess: Float64Array,
  sample: Uint32Array,
  mask: Uint8Array,
  params: GbtParams,
  output: number,
): Tree {
  const offsets = histOffsets(nBins);
  const rows = Uint32Array.from(sample);
  const nodes: TreeNode[] = [];
  let G = 0;
  let H = 0;
  for (const r of rows) {
    G += grad[r]!;
    H += hess[r]!;
  }
  const leafValue = (g: number, h: number) => (-g / (h + params.l2)) * params.learningRate;
  const makeLeaf = (g: number, h: number) => {
    nodes.push({ feature: -1, threshold: 0, missingLeft: false, left: -1, right: -1, value: leafValue(g, h), bin: 0 });
    return nodes.length - 1;
  };
  const rootHist = buildHistogram(bins, cols, offsets, rows, 0, rows.length, grad, hess, mask);
  const root: Candidate = { node: makeLeaf(G, H), depth: 0, start: 0, end: rows.length, hist: rootHist, g: G, h: H, split: null };
  root.split = bestSplit(rootHist, offsets, nBins, mask, G, H, rows.length, params);
  const open: Candidate[] = [root];
  let leaves = 1;
  while (leaves < params.maxLeaves) {
    // Leaf-wise: split the open leaf with the largest gain.
    let pick = -1;
    for (let i = 0; i < open.length; i++) {
      const s = open[i]!.split;
      if (s && open[i]!.depth < params.maxDepth && (pick < 0 || s.gain > open[pick]!.split!.gain)) pick = i;
    }
    if (pick < 0) break;
    const leaf = open.splice(pick, 1)[0]!;
    const s = leaf.split!;
    // Partition rows in place: left rows first.
    let i = leaf.start;
    let j = leaf.end - 1;
    while (i <= j) {
      const b = bins[rows[i]! * cols + s.feature]!;
      const goesLeft = b === 0 ? s.missingLeft : b <= s.bin;
      if (goesLeft) i++;
      else {
        const t = rows[i]!;
        rows[i] = rows[j]!;
        rows[j] = t;
        j--;
      }
    }
    const mid = i;
    const GL = s.gl;
    const HL = s.hl;
    const GR = leaf.g - GL;
    const HR = leaf.h - HL;
    const leftCount = mid - leaf.start;
    const rightCount = leaf.end - mid;
    // Histogram of the smaller child by scanning; the larger is the parent's minus it.
    const leftSmaller = leftCount <= rightCount;
    const small = leftSmaller
      ? buildHistogram(bins, cols, offsets, rows, leaf.start, mid, grad, hess, mask)
      : buildHistogram(bins, cols, offsets, rows, mid, leaf.end, grad, hess, mask);
    const large = new Float64Array(leaf.hist.length);
    for (let k = 0; k < large.length; k++) large[k] = leaf.hist[k]! - small[k]!;
    const leftHist = leftSmaller ? small : large;
    const rightHist = leftSmaller ? large : small;
    const node = nodes[leaf.node]!;
    node.feature = s.feature;
    node.threshold = binning.thresholds[s.feature]![s.bin - 1]!;
    node.missingLeft = s.missingLeft;
    node.bin = s.bin;
    node.left = makeLeaf(GL, HL);
    node.right = makeLeaf(GR, HR);
    node.value = 0;
    const depth = leaf.depth + 1;
    const left: Candidate = { node: node.left, depth, start: leaf.start, end: mid, hist: leftHist, g: GL, h: HL, split: null };
    const right: Candidate = { node: node.right, depth, start: mid, end: leaf.end, hist: rightHist, g: GR, h: HR, split: null };
    left.split = bestSplit(leftHist, offsets, nBins, mask, GL, HL, leftCount, params);
    right.split = bestSplit(rightHist, offsets, nBins, mask, GR, HR, rightCount, params);
    open.push(left, right);
    leaves++;
  }
  // Leaf values in float32, as the ONNX graph stores them.
  for (const n of nodes) n.value = Math.fround(n.value);
  return { output, nodes };
}

/** Adds a tree's leaf values to raw scores, walking binned rows (bin b <= split bin goes left). */
function addTree(tree: Tree, bins: Uint8Array, rows: number, cols: number, score: Float64Array, outputs: number): void {
  const nodes = tree.nodes;
  for (let r = 0; r < rows; r++) {
    let n = 0;
    while (nodes[n]!.feature >= 0) {
      const node = nodes[n]!;
      const b = bins[r * cols + node.feature]!;
      n = b === 0 ? (node.missingLeft ? node.left : node.right) : b <= node.bin ? node.left : node.right;
    }
    score[r * outputs + tree.output] = score[r * outputs + tree.output]! + nodes[n]!.value;
  }
}

/** Raw scores from raw (unbinned) rows, comparing float32 values with float32 thresholds. */
export function gbtRawScores(model: GbtModel, X: Float64Array, rows: number): Float64Array {
  const outputs = model.classes === 2 ? 1 : model.classes;
  const cols = model.features;
  const score = new Float64Array(rows * outputs);
  for (let r = 0; r < rows; r++) for (let k = 0; k < outputs; k++) score[r * outputs + k] = model.base[k]!;
  for (const tree of model.trees) {
    const nodes = tree.nodes;
    for (let r = 0; r < rows; r++) {
      let n = 0;
      while (nodes[n]!.feature >= 0) {
        const node = nodes[n]!;
        const v = X[r * cols + node.feature]!;
        n = Number.isNaN(v) ? (node.missingLeft ? node.left : node.right) : Math.fround(v) <= node.threshold ? node.left : node.right;
      }
      score[r * outputs + tree.output] = score[r * outputs + tree.output]! + nodes[n]!.value;
    }
  }
  return score;
}

/** Class probabilities [rows][classes] (binary: [P(negative), P(positive)]). */
export function gbtProbabilities(model: GbtModel, X: Float64Array, rows: number): Float64Array {
  const outputs = model.classes === 2 ? 1 : model.classes;
  const score = gbtRawScores(model, X, rows);
  const out = new Float64Array(rows * model.classes);
  const prob = new Float64Array(outputs);
  for (let r = 0; r < rows; r++) {
    probabilitiesInto(score, r * outputs, outputs, prob);
    if (outputs === 1) {
      out[r * 2] = 1 - prob[0]!;
      out[r * 2 + 1] = prob[0]!;
    } else for (let k = 0; k < outputs; k++) out[r * outputs + k] = prob[k]!;
  }
  return out;
}
