import { describe, expect, it } from 'vitest';
import { parseCsv } from '../../lib/csv';
import { explainAdditiveLogit } from '../../lib/explain/additive';
import { BACKGROUND_ROWS, drawBackground, parseBackgroundCsv } from '../../lib/explain/background';
import { coalitionValues, exactShapley, explainBatch, shapleyFromValues } from '../../lib/explain/exact';
import { sentence, toReasons, typicalValues } from '../../lib/explain/reasons';
import { addExplanations, addReasons, emptySums, mergeSums, summarizeSums, type ContributionSums, type FeatureContribution } from '../../lib/explain/summary';
import { inReasonsSample, reasonsRate, REASONS_SAMPLE } from '../../lib/segments/worker';

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

describe('explaining a batch', () => {
  // A two-output model with interactions that reads NaN as its own case.
  const d = 6;
  const model = (X: Float64Array, n: number) => {
    const out = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const a = (j: number) => (Number.isNaN(X[i * d + j]!) ? -0.5 : X[i * d + j]!);
      out[i * 2] = sigmoid(a(0) * a(1) - 0.8 * a(2) + Math.max(0, a(3) - 1) * a(4));
      out[i * 2 + 1] = sigmoid(0.3 * a(0) * a(2) * a(5) - a(4));
    }
    return out;
  };
  const column = (c: number) => (X: Float64Array, n: number) => {
    const P = model(X, n);
    return Float64Array.from({ length: n }, (_, i) => P[i * 2 + c]!);
  };

  it('is linear in the background: the values against the whole background are the mean of those against equal disjoint parts of it (why segment drivers may use a random part)', async () => {
    const r = rng(9);
    const draw = () => (r() < 0.1 ? NaN : Math.floor(r() * 4));
    const rows = 20;
    const backgroundX = Float64Array.from({ length: rows * d }, draw);
    const whole = { X: backgroundX, rows, weights: new Float64Array(rows).fill(1) };
    const x = Float64Array.from({ length: d }, draw);
    const [full] = await explainBatch(x, 1, whole, model, 2, [1]);
    const parts = await Promise.all([0, 1, 2, 3].map(async (p) => (await explainBatch(x, 1, { X: backgroundX.slice(p * 5 * d, (p + 1) * 5 * d), rows: 5, weights: new Float64Array(5).fill(1) }, model, 2, [1]))[0]!));
    expect(parts.reduce((a, e) => a + e.base, 0) / 4).toBeCloseTo(full!.base, 12);
    for (let j = 0; j < d; j++) expect(parts.reduce((a, e) => a + e.contributions[j]!, 0) / 4).toBeCloseTo(full!.contributions[j]!, 12);
  });

  it('gives every record the exact values of its own output, skipping only features equal to the background row', async () => {
    const r = rng(5);
    // Small integer values: many features agree between a record and a background row, as counts do.
    const draw = () => (r() < 0.15 ? NaN : Math.floor(r() * 3));
    const background = { X: Float64Array.from({ length: 12 * d }, draw), rows: 12, weights: Float64Array.from({ length: 12 }, () => 0.2 + r()) };
    const X = Float64Array.from({ length: 7 * d }, draw);
    const columns = [0, 1, 1, 0, 1, 0, 0];
    let rows = 0;
    const batch = await explainBatch(X, 7, background, (Z, n) => ((rows += n), model(Z, n)), 2, columns);
    for (let i = 0; i < 7; i++) {
      const reference = await exactShapley(X.subarray(i * d, (i + 1) * d), background, column(columns[i]!));
      expect(batch[i]!.base).toBeCloseTo(reference.base, 12);
      expect(batch[i]!.output).toBeCloseTo(reference.output, 12);
      for (let j = 0; j < d; j++) expect(batch[i]!.contributions[j]).toBeCloseTo(reference.contributions[j]!, 12);
    }
    // Fewer model rows than the full enumeration's 2^d per background row.
    expect(rows).toBeLessThan(7 * 12 * 2 ** d * 0.5);
  });

  it('gives an additive logit the same values by its closed form, from a handful of model rows', async () => {
    const r = rng(9);
    const w = Array.from({ length: d }, () => r() * 2 - 1);
    // Per-feature terms with a hinge and a missing-value case, summed, then a sigmoid.
    const term = (j: number, v: number) => (Number.isNaN(v) ? 0.4 * j - 1 : w[j]! * v + 0.5 * Math.max(0, v - 1));
    const logistic = (X: Float64Array, n: number) => {
      const out = new Float64Array(n * 2);
      for (let i = 0; i < n; i++) {
        let z = -0.3;
        for (let j = 0; j < d; j++) z += term(j, X[i * d + j]!);
        out[i * 2 + 1] = sigmoid(z);
        out[i * 2] = 1 - out[i * 2 + 1]!;
      }
      return out;
    };
    const draw = () => (r() < 0.1 ? NaN : Math.round(r() * 40) / 10);
    const background = { X: Float64Array.from({ length: 30 * d }, draw), rows: 30 };
    const X = Float64Array.from({ length: 5 * d }, draw);
    let rows = 0;
    const closed = await explainAdditiveLogit(X, 5, background, (Z, n) => ((rows += n), logistic(Z, n)), 2, new Array(5).fill(1));
    expect(rows).toBe(30 + 5 + 1 + d * (5 + 30));
    const enumerated = await explainBatch(X, 5, background, logistic, 2, new Array(5).fill(1));
    for (let i = 0; i < 5; i++) {
      expect(closed[i]!.base).toBeCloseTo(enumerated[i]!.base, 12);
      for (let j = 0; j < d; j++) expect(closed[i]!.contributions[j]).toBeCloseTo(enumerated[i]!.contributions[j]!, 12);
    }
  });

  it('falls back to enumeration when the model answers exactly 0 or 1, where the logit is infinite', async () => {
    const saturated = (X: Float64Array, n: number) => Float64Array.from({ length: n * 2 }, (_, k) => (k % 2 ? (X[Math.floor(k / 2) * d]! > 1 ? 1 : 0.25) : 0));
    const background = { X: Float64Array.from({ length: 4 * d }, (_, k) => k % 3), rows: 4 };
    const X = Float64Array.from({ length: d }, (_, j) => j);
    const closed = await explainAdditiveLogit(X, 1, background, saturated, 2, [1]);
    const enumerated = await explainBatch(X, 1, background, saturated, 2, [1]);
    expect(Array.from(closed[0]!.contributions)).toEqual(Array.from(enumerated[0]!.contributions));
    expect(closed[0]!.contributions.every(Number.isFinite)).toBe(true);
  });
});

describe('the background', () => {
  it('is a seeded draw of distinct training rows, in their order, with missing values as null', () => {
    const X = Float64Array.from({ length: 500 * 2 }, (_, k) => (k === 7 ? NaN : k));
    const train = Array.from({ length: 400 }, (_, i) => i + 100);
    const a = drawBackground(X, 2, { candidates: train, seed: 3 });
    expect(a).toHaveLength(BACKGROUND_ROWS);
    expect(drawBackground(X, 2, { candidates: train, seed: 3 })).toEqual(a);
    expect(drawBackground(X, 2, { candidates: train, seed: 4 })).not.toEqual(a);
    const rows = a.map((r) => r[0]! / 2);
    expect(new Set(rows).size).toBe(BACKGROUND_ROWS);
    expect(rows.every((r) => r >= 100)).toBe(true);
    expect([...rows].sort((x, y) => x - y)).toEqual(rows);
    expect(drawBackground(X, 2, { candidates: [3], seed: 1 })).toEqual([[6, null]]);
  });

  it('read from a CSV file must have exactly the model\'s features, and says which columns are wrong', () => {
    const table = parseCsv('b,a\n1,\n2,3.5\n');
    expect(parseBackgroundCsv(table, ['a', 'b'], 'bg.csv')).toEqual([[null, 1], [3.5, 2]]);
    expect(() => parseBackgroundCsv(parseCsv('a,c\n1,2\n'), ['a', 'b'], 'bg.csv')).toThrow(/bg.csv: .*missing b; unexpected c/);
    expect(() => parseBackgroundCsv(parseCsv('a,b\n1,x\n'), ['a', 'b'], 'bg.csv')).toThrow(/row 2, column b: "x" is not a number/);
  });
});

describe('reasons in words', () => {
  it('sort every feature by size and say the largest three in the catalog\'s units', () => {
    const features = ['days_since_last_transaction', 'total_revenue_90d', 'avg_transaction_value', 'complaints_90d'];
    const e = { base: 0.2, output: 0.35, contributions: Float64Array.from([0.21, -0.05, -0.02, 0.01]) };
    const reasons = toReasons(e, [74, 1234.5, NaN, 0], features, 'coalitions', { kind: 'churn' }, [12, 300, 41.2, 0]);
    expect(reasons.contributions.map((c) => c.feature)).toEqual(features);
    expect(reasons.contributions[2]).toEqual({ feature: 'avg_transaction_value', value: null, contribution: -0.02 });
    expect(reasons.text).toEqual([
      'No purchase for 74 days (typical: 12) raises churn risk by 21 points.',
      'Revenue of 1,234.50 in the last 90 days (typical: 300.00) lowers churn risk by 5 points.',
      'Average purchase unknown (no purchases) lowers churn risk by 2 points.',
    ]);
    expect(sentence('complaints_90d', 1, 0, 0.004, { kind: 'offer', name: 'Service recovery credit' })).toBe('1 complaint in the last 90 days (typical: 0) raises the chance of accepting Service recovery credit by 0.4 points.');
    expect(typicalValues([[1, null], [3, 2], [2, null], [10, 4]])).toEqual([2.5, 3]);
  });
});

describe('reasons summed over many customers', () => {
  it('give each feature its mean and mean |contribution| with 95% intervals, the same whether summed at once or in parts', () => {
    const next = rng(11);
    const features = ['a', 'b', 'c'];
    const explanations = Array.from({ length: 500 }, () => ({ base: 0.2, output: 0, contributions: Float64Array.from([0.1 + (next() - 0.5) * 0.02, -0.05 + (next() - 0.5) * 0.2, 0]) }));
    const whole = emptySums(features);
    addExplanations(whole, explanations);
    const parts = [0, 170, 340].map((from) => {
      const s = emptySums(features);
      addExplanations(s, explanations.slice(from, from + 170));
      return s;
    });
    const merged = parts.reduce<ContributionSums | null>((acc, p) => mergeSums(acc, p), null)!;
    const summary = summarizeSums(whole)!;
    const fromParts = summarizeSums(merged)!;
    expect(fromParts.customers).toBe(500);
    fromParts.features.forEach((f, i) => {
      expect(f.feature).toBe(summary.features[i]!.feature);
      expect(f.mean).toBeCloseTo(summary.features[i]!.mean, 12);
      expect(f.mean_ci95[1]).toBeCloseTo(summary.features[i]!.mean_ci95[1], 12);
    });
    // By mean |contribution|: a (0.1 every time, a narrow interval), then b (signed, wide), then c (never).
    expect(summary.features.map((f) => f.feature)).toEqual(['a', 'b', 'c']);
    const [a, b, c] = summary.features as [FeatureContribution, FeatureContribution, FeatureContribution];
    expect(a.mean).toBeCloseTo(0.1, 3);
    expect(a.mean_ci95[1] - a.mean_ci95[0]).toBeLessThan(0.002);
    expect(b.mean_ci95[0]).toBeLessThan(-0.05);
    expect(b.mean_ci95[1]).toBeGreaterThan(-0.05);
    expect(b.mean_abs).toBeGreaterThan(Math.abs(b.mean));
    expect(c).toMatchObject({ mean: 0, mean_abs: 0, mean_ci95: [0, 0] });
    expect(summary.base).toBeCloseTo(0.2, 12);
    // Answers' reasons (by name, sorted by size) add up the same as explanations in feature order.
    const byName = emptySums(features);
    addReasons(byName, explanations.map((e) => ({ base: e.base, contributions: [2, 0, 1].map((j) => ({ feature: features[j]!, contribution: e.contributions[j]! })) })));
    expect(summarizeSums(byName)).toEqual(summary);
    // Parts that explain other features (a model change mid-run) are not mixed.
    expect(mergeSums(whole, emptySums(['a', 'b']))).toBeNull();
    expect(summarizeSums(emptySums(features))).toBeNull();
  });

  it("draw a segment's sample by id: the same customers whichever chunk holds them, at the rate asked", () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `c-${i}`);
    const rate = reasonsRate(4000);
    expect(rate).toBeCloseTo(REASONS_SAMPLE / 4000, 12);
    expect(reasonsRate(50)).toBe(1);
    const picked = ids.filter((id) => inReasonsSample(id, rate));
    // Binomial(20,000, rate): within four standard deviations of its mean.
    const mean = ids.length * rate;
    const sd = Math.sqrt(mean * (1 - rate));
    expect(Math.abs(picked.length - mean)).toBeLessThan(4 * sd);
    expect(ids.filter((id) => inReasonsSample(id, 1))).toHaveLength(ids.length);
    expect(ids.filter((id) => inReasonsSample(id, 0))).toHaveLength(0);
    expect(ids.slice(5000, 6000).filter((id) => inReasonsSample(id, rate))).toEqual(picked.filter((id) => Number(id.slice(2)) >= 5000 && Number(id.slice(2)) < 6000));
  });
});
