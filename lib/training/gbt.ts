import { Rng } from '../random';
import { KernelRuntime, type KernelExports } from './kernels';

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
  /** Threads for histogram building (1 or 2); both cores by default. */
  threads?: number;
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
  /** Validation loss after each round (empty without validation rows). */
  history: number[];
}

export interface GbtRunOptions {
  onRound?: (r: { round: number; validationLoss: number; best: boolean }) => void;
  /** Keep every tree grown (through the early-stopping window), not only up to the best round. */
  keepAllTrees?: boolean;
}

/** Bin edges per feature: float32 thresholds between consecutive bins (bin 0 is "missing"). */
export interface Binning {
  thresholds: Float32Array[];
}

/** Bin edges of every feature, from the training rows. */
export function fitBinning(X: Float64Array, rows: number, cols: number, maxBins: number): Binning {
  return binTraining(X, rows, cols, maxBins).binning;
}

/**
 * Bin edges of every feature and the bins of the training rows, in one pass per feature: the
 * feature's float32 values are radix-sorted with their row numbers, the cuts are read off the
 * sorted run (every distinct value its own bin when there are few, quantiles otherwise, never
 * splitting a run of equal values), and a walk along the sorted run hands every row its bin.
 * Linear in the rows, without the mispredicted branches of a binary search per value.
 */
export function binTraining(X: Float64Array, rows: number, cols: number, maxBins: number): { binning: Binning; bins: Uint8Array } {
  const thresholds: Float32Array[] = [];
  const bins = new Uint8Array(rows * cols);
  const sorter = new RadixSorter(rows);
  for (let c = 0; c < cols; c++) {
    const { values, index, count } = sorter.sortColumn(X, rows, cols, c);
    const cuts = cutsOf(values, count, maxBins);
    thresholds.push(cuts);
    let b = 0;
    for (let i = 0; i < count; i++) {
      const v = values[i]!;
      while (b < cuts.length && v > cuts[b]!) b++;
      bins[index[i]! * cols + c] = b + 1;
    }
  }
  return { binning: { thresholds }, bins };
}

/** Float32 cuts between the sorted values' bins. */
function cutsOf(values: Float32Array, count: number, maxBins: number): Float32Array {
  let distinct = count > 0 ? 1 : 0;
  for (let i = 1; i < count && distinct <= maxBins; i++) if (values[i] !== values[i - 1]) distinct++;
  const cuts: number[] = [];
  if (distinct <= maxBins) {
    for (let i = 1; i < count; i++) if (values[i] !== values[i - 1]) cuts.push(midpoint(values[i - 1]!, values[i]!));
  } else {
    // Quantile cuts over the sorted values, never splitting a run of equal values: the cut after
    // the quantile's value falls between it and the next larger value.
    let last = -Infinity;
    for (let b = 1; b < maxBins; b++) {
      const v = values[Math.floor((b * count) / maxBins)]!;
      const next = firstAbove(values, count, v);
      if (next >= count) break;
      const cut = midpoint(v, values[next]!);
      if (cut > last) {
        cuts.push(cut);
        last = cut;
      }
    }
  }
  return Float32Array.from(cuts);
}

/** Index of the first sorted value above v (count when none is). */
function firstAbove(values: Float32Array, count: number, v: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Sorts one feature's present (non-NaN) float32 values with their row numbers: least-significant
 * digit first, two 16-bit digits of the value's bits mapped so that unsigned order is numeric order.
 */
class RadixSorter {
  private readonly keys: Uint32Array;
  private readonly keysOut: Uint32Array;
  private readonly rowsIn: Uint32Array;
  private readonly rowsOut: Uint32Array;
  private readonly counts = new Uint32Array(65_536);
  private readonly bits = new Float32Array(1);
  private readonly word = new Uint32Array(this.bits.buffer);

  constructor(rows: number) {
    this.keys = new Uint32Array(rows);
    this.keysOut = new Uint32Array(rows);
    this.rowsIn = new Uint32Array(rows);
    this.rowsOut = new Uint32Array(rows);
  }

  sortColumn(X: Float64Array, rows: number, cols: number, c: number): { values: Float32Array; index: Uint32Array; count: number } {
    const { keys, rowsIn, bits, word } = this;
    let n = 0;
    for (let r = 0, i = c; r < rows; r++, i += cols) {
      const v = X[i]!;
      if (v !== v) continue;
      bits[0] = v;
      const u = word[0]!;
      // Negative floats: all bits flipped (larger magnitude sorts first); positive: sign bit set.
      keys[n] = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0;
      rowsIn[n++] = r;
    }
    this.pass(keys, rowsIn, this.keysOut, this.rowsOut, n, 0);
    this.pass(this.keysOut, this.rowsOut, keys, rowsIn, n, 16);
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      keys[i] = k & 0x80000000 ? k & 0x7fffffff : ~k >>> 0;
    }
    return { values: new Float32Array(keys.buffer, 0, n), index: rowsIn, count: n };
  }

  private pass(keys: Uint32Array, rows: Uint32Array, keysOut: Uint32Array, rowsOut: Uint32Array, n: number, shift: number): void {
    const counts = this.counts;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(keys[i]! >>> shift) & 0xffff]!++;
    let total = 0;
    for (let d = 0; d < 65_536; d++) {
      const k = counts[d]!;
      counts[d] = total;
      total += k;
    }
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      const at = counts[(k >>> shift) & 0xffff]!++;
      keysOut[at] = k;
      rowsOut[at] = rows[i]!;
    }
  }
}

/** A float32 value strictly between a and b (or a, when they are adjacent floats). */
function midpoint(a: number, b: number): number {
  const m = Math.fround((a + b) / 2);
  return m >= b ? a : m;
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

/**
 * Trains a model, stopping early on the validation rows; without validation rows (null), trains
 * exactly `maxRounds` rounds (a refit with rounds chosen by cross-validation).
 */
export function trainGbt(train: GbtData, validation: GbtData | null, classes: number, params: GbtParams = DEFAULT_GBT, options: GbtRunOptions = {}): { model: GbtModel; report: GbtReport } {
  validation ??= { X: new Float64Array(0), rows: 0, cols: train.cols, y: new Int32Array(0) };
  const rng = new Rng(params.seed ^ 0x2545f491);
  const cols = train.cols;
  const { binning, bins } = binTraining(train.X, train.rows, cols, params.maxBins);
  const valBins = binData(validation.X, validation.rows, cols, binning);
  const nBins = binning.thresholds.map((t) => t.length + 2);
  const n = train.rows;
  // Initial raw scores: the weighted class prior.
  const base = initialScores(train.y, train.weights ?? new Float64Array(n).fill(1), classes);

  const grower = new TreeGrower(bins, cols, nBins, binning, params, { rows: n, outputs: classes === 2 ? 1 : classes, y: train.y, w: train.weights });
  try {
    return boost(grower, { train, validation, classes, params, bins, valBins, base, options, rng });
  } finally {
    grower.close();
  }
}

function boost(
  grower: TreeGrower,
  run: {
    train: GbtData;
    validation: GbtData;
    classes: number;
    params: GbtParams;
    bins: Uint8Array;
    valBins: Uint8Array;
    base: Float64Array;
    options: GbtRunOptions;
    rng: Rng;
  },
): { model: GbtModel; report: GbtReport } {
  const { train, validation, classes, params, bins, valBins, base, options, rng } = run;
  const validating = validation.rows > 0;
  const history: number[] = [];
  const cols = train.cols;
  const n = train.rows;
  const outputs = classes === 2 ? 1 : classes;
  const w = grower.w;
  const wv = validation.weights ?? new Float64Array(validation.rows).fill(1);
  const score = grower.score;
  const valScore = new Float64Array(validation.rows * outputs);
  for (let r = 0; r < n; r++) for (let k = 0; k < outputs; k++) score[r * outputs + k] = base[k]!;
  for (let r = 0; r < validation.rows; r++) for (let k = 0; k < outputs; k++) valScore[r * outputs + k] = base[k]!;
  const trees: Tree[] = [];
  const { gh } = grower;
  const p = new Float64Array(n * outputs);
  const inBag = new Uint8Array(n);
  let best = { loss: validating ? lossOf(valScore, validation.y, wv, classes) : NaN, round: 0, trees: 0 };
  let round = 0;
  for (round = 1; round <= params.maxRounds; round++) {
    const sampled = grower.subsample(params.rowSubsample, rng, inBag);
    const featureMask = pickFeatures(cols, params.featureSubsample, rng);
    if (outputs > 1) softmaxAll(score, n, outputs, p);
    for (let k = 0; k < outputs; k++) {
      if (outputs === 1) grower.gradientsBinary();
      else {
        for (let r = 0; r < n; r++) {
          const pk = p[r * outputs + k]!;
          const target = train.y[r] === k ? 1 : 0;
          const wr = w[r]!;
          gh[2 * r] = wr * (pk - target);
          const hk = pk * (1 - pk);
          gh[2 * r + 1] = wr * (hk > 1e-16 ? hk : 1e-16);
        }
      }
      const tree = grower.grow(featureMask, k);
      // In-bag rows take their leaf's value from the partition; the others walk the tree.
      grower.addToScores(tree, outputs, k);
      if (sampled < n) for (let r = 0; r < n; r++) if (!inBag[r]) score[r * outputs + k] = score[r * outputs + k]! + leafOf(tree, bins, r, cols);
      addTree(tree, valBins, validation.rows, cols, valScore, outputs);
      trees.push(tree);
    }
    if (!validating) {
      best = { loss: NaN, round, trees: trees.length };
      options.onRound?.({ round, validationLoss: NaN, best: true });
      continue;
    }
    const loss = lossOf(valScore, validation.y, wv, classes);
    history.push(loss);
    const improved = loss < best.loss - 1e-7;
    if (improved) best = { loss, round, trees: trees.length };
    options.onRound?.({ round, validationLoss: loss, best: improved });
    if (round - best.round >= params.earlyStoppingRounds) break;
  }
  return {
    model: { kind: 'gbt', classes, base: Array.from(base, Math.fround), trees: options.keepAllTrees ? trees : trees.slice(0, best.trees), features: cols, params },
    report: { rounds: Math.min(round, params.maxRounds), bestRound: best.round, bestValidationLoss: best.loss, history },
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

/** Probabilities of every row from raw scores (sigmoid for one output, softmax for several). */
function softmaxAll(score: Float64Array, rows: number, outputs: number, out: Float64Array): void {
  if (outputs === 1) {
    for (let r = 0; r < rows; r++) out[r] = 1 / (1 + Math.exp(-score[r]!));
    return;
  }
  for (let r = 0; r < rows; r++) {
    const o = r * outputs;
    let max = -Infinity;
    for (let k = 0; k < outputs; k++) if (score[o + k]! > max) max = score[o + k]!;
    let sum = 0;
    for (let k = 0; k < outputs; k++) {
      const e = Math.exp(score[o + k]! - max);
      out[o + k] = e;
      sum += e;
    }
    for (let k = 0; k < outputs; k++) out[o + k] = out[o + k]! / sum;
  }
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

interface OpenLeaf {
  node: number;
  depth: number;
  start: number;
  end: number;
  /** Byte offset of the leaf's histogram in the kernels' memory. */
  hist: number;
  g: number;
  h: number;
  split: Split | null;
}

/** Values per feature in the trainer's histograms: 256 bins of (gradient, hessian, count). */
const FEATURE_STRIDE = 256 * 3;

/**
 * Grows trees over one binned training matrix. Everything the inner loops touch lives in the
 * memory of a WebAssembly instance (gbt-kernels.wat): the bins row-major (for histograms: a row's
 * bins are one contiguous run) and column-major (for partitions: one feature's bins for a run of
 * rows), the row order (each node's rows contiguous, as each split moves them into two ranges), the
 * gradients and hessians, and a pool of histograms. Histograms are built for the smaller child
 * only: the larger child's is its parent's minus its sibling's.
 */
class TreeGrower {
  private readonly runtime: KernelRuntime;
  private readonly k: KernelExports;
  private readonly at: { order: number; scratch: number; bins: number; columns: number; gh: number; score: number; y: number; w: number; active: number; nBins: number; split: number; hist: number };
  private readonly histBytes: number;
  private readonly free: number[] = [];
  private readonly views = new Map<number, Float64Array>();
  private readonly order: Uint32Array;
  private readonly active: Uint32Array;
  /** (gradient, hessian) of every row, interleaved, float32: written by the kernels or the trainer. */
  readonly gh: Float32Array;
  /** Raw scores (rows x outputs), labels and weights, where the gradient kernel reads them. */
  readonly score: Float64Array;
  readonly w: Float64Array;
  private rowCount = 0;
  private identity: Uint32Array | undefined;
  /** Per leaf of the last tree: its node index and the range of `order` holding its rows. */
  private leaves: { node: number; start: number; end: number }[] = [];

  constructor(
    bins: Uint8Array,
    private readonly cols: number,
    nBins: number[],
    private readonly binning: Binning,
    private readonly params: GbtParams,
    data: { rows: number; outputs: number; y: Int32Array; w?: Float64Array },
  ) {
    const { rows, outputs } = data;
    this.histBytes = cols * FEATURE_STRIDE * 8;
    const histograms = params.maxLeaves + 2;
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const needed =
      align(rows * 4) * 3 + align(rows * cols) * 2 + rows * 16 + align(rows * outputs * 8) + align(rows * 8) + align(cols * 4) * 2 + 48 + this.histBytes * histograms + 64;
    this.runtime = new KernelRuntime(needed, { threads: params.threads });
    this.k = this.runtime.k;
    let at = this.runtime.base;
    const take = (bytes: number) => {
      const start = at;
      at = align(at + bytes);
      return start;
    };
    this.at = {
      order: take(rows * 4),
      scratch: take(rows * 4),
      bins: take(rows * cols),
      columns: take(rows * cols),
      gh: take(rows * 8),
      score: take(rows * outputs * 8),
      y: take(rows * 4),
      w: take(rows * 8),
      active: take(cols * 4),
      nBins: take(cols * 4),
      split: take(48),
      hist: take(this.histBytes * histograms),
    };
    const buffer = this.runtime.memory.buffer;
    this.order = new Uint32Array(buffer, this.at.order, rows);
    this.active = new Uint32Array(buffer, this.at.active, cols);
    this.gh = new Float32Array(buffer, this.at.gh, rows * 2);
    this.score = new Float64Array(buffer, this.at.score, rows * outputs);
    new Int32Array(buffer, this.at.y, rows).set(data.y);
    this.w = new Float64Array(buffer, this.at.w, rows);
    if (data.w) this.w.set(data.w);
    else this.w.fill(1);
    new Uint8Array(buffer, this.at.bins, rows * cols).set(bins);
    const columns = new Uint8Array(buffer, this.at.columns, rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) columns[c * rows + r] = bins[r * cols + c]!;
    for (let i = 0; i < histograms; i++) {
      const offset = this.at.hist + i * this.histBytes;
      this.free.push(offset);
      this.views.set(offset, new Float64Array(buffer, offset, cols * FEATURE_STRIDE));
    }
    new Uint32Array(buffer, this.at.nBins, cols).set(nBins);
  }

  /** The rows a tree learns from; `inBag` marks them. Without subsampling, every row in order. */
  subsample(fraction: number, rng: Rng, inBag: Uint8Array): number {
    const order = this.order;
    const n = order.length;
    let k = 0;
    if (fraction >= 1) {
      this.identity ??= Uint32Array.from({ length: n }, (_, r) => r);
      order.set(this.identity);
      k = n;
      inBag.fill(1);
    } else {
      inBag.fill(0);
      for (let r = 0; r < n; r++) {
        if (rng.next() < fraction) {
          order[k++] = r;
          inBag[r] = 1;
        }
      }
    }
    this.rowCount = k;
    return k;
  }

  private build(start: number, end: number, features: number): number {
    const offset = this.free.pop()!;
    this.k.zero(offset, this.histBytes);
    this.runtime.histogram(this.at, this.cols, features, start, end, offset);
    return offset;
  }

  /** The best split of a node whose histogram is at `hist`, over the active features. */
  private split(hist: number, features: number, G: number, H: number, count: number): Split | null {
    const { params, at } = this;
    return readSplit(this.runtime, at.split, this.k.bestSplit(hist, at.nBins, at.active, features, G, H, count, params.l2, params.minSamplesLeaf, params.minHessianLeaf, at.split));
  }

  /** Logistic-loss gradients of every row from `score`. */
  gradientsBinary(): void {
    this.runtime.gradients(this.at, this.order.length);
  }

  /** Lets the helper thread go. */
  close(): void {
    this.runtime.close();
  }

  grow(mask: Uint8Array, output: number): Tree {
    const { params, cols, binning, k, at } = this;
    const rows = this.order.length;
    let features = 0;
    for (let c = 0; c < cols; c++) if (mask[c]) this.active[features++] = c;
    const nodes: TreeNode[] = [];
    const count = this.rowCount;
    const leafValue = (g: number, h: number) => (-g / (h + params.l2)) * params.learningRate;
    const makeLeaf = (g: number, h: number) => {
      nodes.push({ feature: -1, threshold: 0, missingLeft: false, left: -1, right: -1, value: leafValue(g, h), bin: 0 });
      return nodes.length - 1;
    };
    const hist = (offset: number) => this.views.get(offset)!;
    const rootHist = this.build(0, count, features);
    // The node's gradient and hessian sums: every row falls in one bin of any feature.
    let G = 0;
    let H = 0;
    const first = hist(rootHist);
    for (let b = 0, o = this.active[0]! * FEATURE_STRIDE; b < 256; b++, o += 3) {
      G += first[o]!;
      H += first[o + 1]!;
    }
    const root: OpenLeaf = { node: makeLeaf(G, H), depth: 0, start: 0, end: count, hist: rootHist, g: G, h: H, split: null };
    root.split = this.split(rootHist, features, G, H, count);
    const open: OpenLeaf[] = [root];
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
      const f = s.feature;
      const mid = k.partition(at.order, leaf.start, leaf.end, at.columns + f * rows, s.bin, s.missingLeft ? 1 : 0, at.scratch);
      const GL = s.gl;
      const HL = s.hl;
      const GR = leaf.g - GL;
      const HR = leaf.h - HL;
      const leftCount = mid - leaf.start;
      const rightCount = leaf.end - mid;
      const leftSmaller = leftCount <= rightCount;
      const small = leftSmaller ? this.build(leaf.start, mid, features) : this.build(mid, leaf.end, features);
      // The larger child's histogram: the parent's minus the smaller's, in the parent's buffer.
      k.subtract(leaf.hist, small, cols * FEATURE_STRIDE);
      const leftHist = leftSmaller ? small : leaf.hist;
      const rightHist = leftSmaller ? leaf.hist : small;
      const node = nodes[leaf.node]!;
      node.feature = f;
      node.threshold = binning.thresholds[f]![s.bin - 1]!;
      node.missingLeft = s.missingLeft;
      node.bin = s.bin;
      node.left = makeLeaf(GL, HL);
      node.right = makeLeaf(GR, HR);
      node.value = 0;
      const depth = leaf.depth + 1;
      const canSplit = depth < params.maxDepth;
      open.push(
        { node: node.left, depth, start: leaf.start, end: mid, hist: leftHist, g: GL, h: HL, split: canSplit ? this.split(leftHist, features, GL, HL, leftCount) : null },
        { node: node.right, depth, start: mid, end: leaf.end, hist: rightHist, g: GR, h: HR, split: canSplit ? this.split(rightHist, features, GR, HR, rightCount) : null },
      );
      leaves++;
    }
    for (const l of open) this.free.push(l.hist);
    this.leaves = open.map((l) => ({ node: l.node, start: l.start, end: l.end }));
    // Leaf values in float32, as the ONNX graph stores them.
    for (const nd of nodes) nd.value = Math.fround(nd.value);
    return { output, nodes };
  }

  /** Adds the last tree's leaf values to the scores of the rows it learnt from. */
  addToScores(tree: Tree, outputs: number, k: number): void {
    for (const leaf of this.leaves) this.k.addLeaf(this.at.order, leaf.start, leaf.end, this.at.score, outputs, k, tree.nodes[leaf.node]!.value);
  }
}

/** The leaf value a binned row reaches in a tree. */
function leafOf(tree: Tree, bins: Uint8Array, r: number, cols: number): number {
  const nodes = tree.nodes;
  let n = 0;
  while (nodes[n]!.feature >= 0) {
    const node = nodes[n]!;
    const b = bins[r * cols + node.feature]!;
    n = b === 0 ? (node.missingLeft ? node.left : node.right) : b <= node.bin ? node.left : node.right;
  }
  return nodes[n]!.value;
}

/**
 * The best split of one histogram (features laid out FEATURE_STRIDE values apart, every feature
 * considered): the split kernel on a runtime of its own. For tests and tools; training calls the
 * kernel on its own memory.
 */
export function bestSplit(hist: Float64Array, nBins: number[], G: number, H: number, count: number, params: Pick<GbtParams, 'l2' | 'minSamplesLeaf' | 'minHessianLeaf'>): Split | null {
  const cols = nBins.length;
  const runtime = new KernelRuntime(cols * FEATURE_STRIDE * 8 + cols * 8 + 64, { threads: 1 });
  try {
    const buffer = runtime.memory.buffer;
    const at = { hist: runtime.base, nBins: runtime.base + cols * FEATURE_STRIDE * 8, active: 0, split: 0 };
    at.active = at.nBins + cols * 4;
    at.split = at.active + cols * 4;
    new Float64Array(buffer, at.hist, cols * FEATURE_STRIDE).set(hist);
    new Uint32Array(buffer, at.nBins, cols).set(nBins);
    new Uint32Array(buffer, at.active, cols).set(nBins.map((_, c) => c));
    return readSplit(runtime, at.split, runtime.k.bestSplit(at.hist, at.nBins, at.active, cols, G, H, count, params.l2, params.minSamplesLeaf, params.minHessianLeaf, at.split));
  } finally {
    runtime.close();
  }
}

/** The split kernel's result at `out` (see gbt-kernels.wat), or null when it found none. */
function readSplit(runtime: KernelRuntime, out: number, found: number): Split | null {
  if (!found) return null;
  const f = new Float64Array(runtime.memory.buffer, out, 4);
  const i = new Int32Array(runtime.memory.buffer, out + 32, 3);
  return { gain: f[0]!, gl: f[1]!, hl: f[2]!, cl: f[3]!, feature: i[0]!, bin: i[1]!, missingLeft: i[2] === 1 };
}

/** Adds a tree's leaf values to raw scores, walking binned rows (bin b <= split bin goes left). */
function addTree(tree: Tree, bins: Uint8Array, rows: number, cols: number, score: Float64Array, outputs: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * outputs + tree.output;
    score[o] = score[o]! + leafOf(tree, bins, r, cols);
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
