import { describe, expect, it } from 'vitest';
import { createSession, ort } from '../../lib/inference/session';
import { prepareModel } from '../../lib/inference/validate';
import { Rng } from '../../lib/random';
import { exportGbt, verifyExport } from '../../lib/training/export';
import { bestSplit, binData, DEFAULT_GBT, fitBinning, gbtProbabilities, trainGbt, type GbtData } from '../../lib/training/gbt';
import { rocAuc } from '../../lib/metrics';

const params = { l2: 1, minSamplesLeaf: 1, minHessianLeaf: 0 };
/** A histogram of one feature: bins [missing, v1, v2, ...] of (gradient, hessian, count), 256 bins wide. */
const hist = (bins: [number, number, number][]) => {
  const out = new Float64Array(256 * 3);
  out.set(bins.flat());
  return out;
};

describe('split finding on histograms', () => {
  it('picks the threshold with the largest gain, computed by hand', () => {
    // Bins: missing (empty), then G/H = (-4, 2), (-2, 2), (6, 2). Parent G = 0, H = 6, lambda = 1.
    // After bin 1: 16/3 + 16/5 - 0 = 8.533; after bin 2: 36/5 + 36/3 = 19.2 (best).
    const h = hist([[0, 0, 0], [-4, 2, 2], [-2, 2, 2], [6, 2, 2]]);
    const split = bestSplit(h, [4], 0, 6, 6, params)!;
    expect(split.bin).toBe(2);
    expect(split.gain).toBeCloseTo(36 / 5 + 36 / 3, 12);
    expect(split).toMatchObject({ feature: 0, gl: -6, hl: 4, cl: 4 });
  });

  it('sends missing values to the side that gains more', () => {
    // Missing values have a large positive gradient, like bin 3: they should join the right side.
    const h = hist([[5, 1, 1], [-4, 2, 2], [-2, 2, 2], [6, 2, 2]]);
    const split = bestSplit(h, [4], 5, 7, 7, params)!;
    const gain = (gl: number, hl: number) => (gl * gl) / (hl + 1) + ((5 - gl) * (5 - gl)) / (7 - hl + 1) - 25 / 8;
    expect(split.missingLeft).toBe(false);
    expect(split.bin).toBe(2);
    expect(split.gain).toBeCloseTo(gain(-6, 4), 12);
    // With the signs reversed the missing values belong with the left side.
    const flipped = hist([[-5, 1, 1], [-4, 2, 2], [-2, 2, 2], [6, 2, 2]]);
    expect(bestSplit(flipped, [4], -5, 7, 7, params)!.missingLeft).toBe(true);
  });

  it('respects the minimum samples per leaf', () => {
    const h = hist([[0, 0, 0], [-4, 2, 2], [-2, 2, 2], [6, 2, 2]]);
    expect(bestSplit(h, [4], 0, 6, 6, { ...params, minSamplesLeaf: 2 })).toMatchObject({ bin: 2 });
    // Every split leaves a side of 2 customers.
    expect(bestSplit(h, [4], 0, 6, 6, { ...params, minSamplesLeaf: 3 })).toBeNull();
  });

  it('bins values by float32 thresholds, missing in bin 0', () => {
    const X = Float64Array.of(1, 2, 2, 3, NaN, 10);
    const binning = fitBinning(X, 6, 1, 255);
    expect(Array.from(binning.thresholds[0]!)).toEqual([1.5, 2.5, 6.5]);
    expect(Array.from(binData(X, 6, 1, binning))).toEqual([1, 2, 2, 3, 0, 4]);
  });
});

function dataset(rows: number, seed: number, classes = 2): GbtData {
  const rng = new Rng(seed);
  const cols = 4;
  const X = new Float64Array(rows * cols);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) X[r * cols + c] = rng.normal();
    if (rng.next() < 0.2) X[r * cols] = NaN;
    const a = X[r * cols]!;
    // Missing x0 means "likely positive"; otherwise an interaction of x0 and x1.
    const z = Number.isNaN(a) ? 2 : a * X[r * cols + 1]! * 2 - 0.5;
    y[r] = classes === 2 ? (rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0) : (X[r * cols + 2]! > 0 ? 1 : 0) + (z > 0 ? 1 : 0);
  }
  return { X, rows, cols, y };
}

describe('boosted trees', () => {
  it('learn an interaction and route missing values by what they mean', () => {
    const { model } = trainGbt(dataset(4000, 1), dataset(1000, 2), 2, { ...DEFAULT_GBT, maxRounds: 100 });
    const test = dataset(2000, 3);
    const P = gbtProbabilities(model, test.X, test.rows);
    expect(rocAuc(Array.from({ length: test.rows }, (_, r) => P[r * 2 + 1]!), test.y)).toBeGreaterThan(0.75);
    const missing = gbtProbabilities(model, Float64Array.of(NaN, 0, 0, 0), 1);
    expect(missing[1]).toBeGreaterThan(0.7);
  });

  it('give multiclass probabilities that sum to 1', () => {
    const { model } = trainGbt(dataset(3000, 4, 3), dataset(800, 5, 3), 3, { ...DEFAULT_GBT, maxRounds: 30 });
    const test = dataset(200, 6, 3);
    const P = gbtProbabilities(model, test.X, test.rows);
    for (let r = 0; r < test.rows; r++) expect(P[r * 3]! + P[r * 3 + 1]! + P[r * 3 + 2]!).toBeCloseTo(1, 12);
    expect(model.trees.length % 3).toBe(0);
  });

  it('are deterministic for a seed and differ across seeds', () => {
    const train = dataset(2000, 7);
    const val = dataset(500, 8);
    const a = trainGbt(train, val, 2, { ...DEFAULT_GBT, maxRounds: 20, seed: 1 }).model;
    const b = trainGbt(train, val, 2, { ...DEFAULT_GBT, maxRounds: 20, seed: 1 }).model;
    const c = trainGbt(train, val, 2, { ...DEFAULT_GBT, maxRounds: 20, seed: 2 }).model;
    expect(JSON.stringify(a.trees)).toBe(JSON.stringify(b.trees));
    expect(JSON.stringify(a.trees)).not.toBe(JSON.stringify(c.trees));
  });

  it('export to a TreeEnsembleClassifier that onnxruntime runs with the same probabilities', async () => {
    for (const classes of [2, 3]) {
      const { model } = trainGbt(dataset(3000, 9, classes), dataset(800, 10, classes), classes, { ...DEFAULT_GBT, maxRounds: 40 });
      const labels = classes === 2 ? ['stays', 'churns'] : ['a', 'b', 'c'];
      const bytes = exportGbt(model, labels, { name: 't', producerVersion: 'test' });
      const test = dataset(1000, 11, classes);
      const X = Float64Array.from(test.X, Math.fround);
      const check = await verifyExport(bytes, X, test.rows, 4, gbtProbabilities(model, X, test.rows));
      expect(check.maxAbsDiff).toBeLessThanOrEqual(1e-5);
      const prepared = await prepareModel(bytes, ['x0', 'x1', 'x2', 'x3'], { classes: labels, probabilityOutput: 'probabilities' });
      expect(prepared.output).toMatchObject({ kind: classes === 2 ? 'binary' : 'multiclass', classes: labels });
      // A row of missing values follows each split's learned side to a proper distribution.
      const session = await createSession(bytes);
      const out = await session.run({ features: new ort.Tensor('float32', Float32Array.of(NaN, NaN, NaN, NaN), [1, 4]) });
      const p = Array.from(out.probabilities!.data as Float32Array);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(p).toEqual(Array.from(gbtProbabilities(model, Float64Array.of(NaN, NaN, NaN, NaN), 1), Math.fround).map((v) => expect.closeTo(v, 5)));
      await session.release();
    }
  });
});
