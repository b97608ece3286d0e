import { describe, expect, it } from 'vitest';
import { coalitionValues, exactShapley, shapleyFromValues } from '../../lib/explain/exact';

/** A small deterministic generator, so the cases are the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Shapley values by their other definition: each feature's marginal contribution averaged over every ordering. */
function byPermutations(d: number, v: (coalition: number) => number): number[] {
  const phi = new Array<number>(d).fill(0);
  const orders: number[][] = [];
  const permute = (prefix: number[], rest: number[]) => {
    if (!rest.length) orders.push(prefix);
    for (let i = 0; i < rest.length; i++) permute([...prefix, rest[i]!], [...rest.slice(0, i), ...rest.slice(i + 1)]);
  };
  permute([], Array.from({ length: d }, (_, j) => j));
  for (const order of orders) {
    let mask = 0;
    for (const j of order) {
      phi[j]! += (v(mask | (1 << j)) - v(mask)) / orders.length;
      mask |= 1 << j;
    }
  }
  return phi;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe('exact interventional Shapley values', () => {
  it('give a linear model beta_j (x_j - mean of the background) per feature, whatever the background', async () => {
    const r = rng(7);
    const d = 10;
    const beta = Array.from({ length: d }, () => r() * 4 - 2);
    const background = { X: Float64Array.from({ length: 40 * d }, () => r() * 100), rows: 40 };
    const x = Float64Array.from({ length: d }, () => r() * 100);
    const linear = (X: Float64Array, rows: number) => Float64Array.from({ length: rows }, (_, i) => beta.reduce((s, b, j) => s + b * X[i * d + j]!, 0.5));
    const e = await exactShapley(x, background, linear);
    for (let j = 0; j < d; j++) {
      let mean = 0;
      for (let i = 0; i < 40; i++) mean += background.X[i * d + j]! / 40;
      expect(e.contributions[j]).toBeCloseTo(beta[j]! * (x[j]! - mean), 8);
    }
  });

  it('agree with the average over all orderings for a model with interactions, background weights and missing values', async () => {
    const r = rng(11);
    const d = 5;
    const rows = 9;
    const X = Float64Array.from({ length: rows * d }, () => (r() < 0.15 ? NaN : r() * 3 - 1));
    const weights = Float64Array.from({ length: rows }, () => 0.1 + r());
    const x = Float64Array.from([0.7, NaN, -0.4, 2.1, 0.3]);
    // Missing is a value: the model reads NaN as its own case, as tree models with a default direction do.
    const f = (X: Float64Array, n: number) =>
      Float64Array.from({ length: n }, (_, i) => {
        const a = (j: number) => (Number.isNaN(X[i * d + j]!) ? -0.5 : X[i * d + j]!);
        return sigmoid(a(0) * a(1) - 0.8 * a(2) + Math.max(0, a(3) - 1) * a(4) + 0.3 * a(0) * a(2) * a(4));
      });
    const values = await coalitionValues(x, { X, rows, weights }, f);
    const e = shapleyFromValues(values, d);
    const reference = byPermutations(d, (m) => values[m]!);
    for (let j = 0; j < d; j++) expect(e.contributions[j]).toBeCloseTo(reference[j]!, 12);
    // v(S) itself, for one coalition, straight from the definition.
    const mask = 0b10101;
    let sum = 0;
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const row = Float64Array.from({ length: d }, (_, j) => (mask & (1 << j) ? x[j]! : X[i * d + j]!));
      sum += weights[i]! * f(row, 1)[0]!;
      total += weights[i]!;
    }
    expect(values[mask]).toBeCloseTo(sum / total, 14);
    // Efficiency: base + contributions = the record's own output.
    expect(e.base + e.contributions.reduce((s, c) => s + c, 0)).toBeCloseTo(f(x, 1)[0]!, 12);
    expect(e.output).toBeCloseTo(f(x, 1)[0]!, 14);
  });

  it('gives a feature the model never reads nothing, and calls the model in batches', async () => {
    const d = 10;
    const background = { X: Float64Array.from({ length: 300 * d }, (_, k) => (k * 7919) % 101), rows: 300 };
    const x = Float64Array.from({ length: d }, (_, j) => j * 3.5);
    const calls: number[] = [];
    const f = (X: Float64Array, n: number) => {
      calls.push(n);
      return Float64Array.from({ length: n }, (_, i) => Math.tanh(X[i * d]! / 50 - X[i * d + 3]! / 80) * X[i * d + 9]!);
    };
    const e = await exactShapley(x, background, f);
    for (const j of [1, 2, 4, 5, 6, 7, 8]) expect(e.contributions[j]).toBe(0);
    expect(calls.reduce((s, n) => s + n, 0)).toBe(1024 * 300);
    expect(calls.length).toBeGreaterThan(1);
  });

  it('refuses inputs it cannot explain, saying why', async () => {
    const f = (_X: Float64Array, n: number) => new Float64Array(n);
    await expect(exactShapley(new Float64Array(3), { X: new Float64Array(5), rows: 2 }, f)).rejects.toThrow(/rows x 3 values/);
    await expect(exactShapley(new Float64Array(3), { X: new Float64Array(6), rows: 2, weights: Float64Array.from([1, -1]) }, f)).rejects.toThrow(/non-negative/);
    await expect(exactShapley(new Float64Array(21), { X: new Float64Array(21), rows: 1 }, f)).rejects.toThrow(/d must be 1-20/);
    await expect(exactShapley(new Float64Array(2), { X: new Float64Array(2), rows: 1 }, () => new Float64Array(1))).rejects.toThrow(/returned 1 outputs for 4 rows/);
  });
});
