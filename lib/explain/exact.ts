/**
 * Exact interventional Shapley values (the definition issue 26 names, as shap's `Exact` explainer
 * with an `Independent` masker computes them): for a record x, a background set B with weights w,
 * and a model f, the game is v(S) = sum over b of w_b f(x_S, b_rest) / sum w, and feature j gets
 *   phi_j = sum over S not containing j of |S|! (d - |S| - 1)! / d! (v(S + j) - v(S)).
 * All 2^d coalitions are enumerated, so for d = 10 one record costs 1,024 x |B| model rows, given to
 * `predict` in batches. A missing value (NaN) is a value like any other: it is copied, never imputed.
 * Pure: `predict` is the only way out (an ONNX run, a closed form, anything batched).
 */

/** A batched model: `rows` rows of `d` values (row-major) in, one output per row out. */
export type BatchPredict = (X: Float64Array, rows: number) => Promise<Float64Array> | Float64Array;

export interface Background {
  /** Row-major, `rows` x d. */
  X: Float64Array;
  rows: number;
  /** One weight per row (a summarised background); equal weights when absent. */
  weights?: Float64Array;
}

export interface Explanation {
  /** v(empty set): the background's mean output. */
  base: number;
  /** v(all features): the record's own output. */
  output: number;
  /** One value per feature, in feature order; base + sum = output (efficiency). */
  contributions: Float64Array;
}

/** Each background row's share of the game (its weight over the total; equal when unweighted), checked. */
export function backgroundShares(background: Background): Float64Array {
  const n = background.rows;
  const weights = background.weights ?? new Float64Array(n).fill(1);
  if (weights.length !== n) throw new RangeError(`background weights: expected ${n}, got ${weights.length}`);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (!(weights[i]! >= 0)) throw new RangeError(`background weights must be non-negative, row ${i} has ${weights[i]}`);
    total += weights[i]!;
  }
  if (!(total > 0)) throw new RangeError('background weights sum to zero');
  return Float64Array.from(weights, (w) => w / total);
}

/** Model rows per predict call: enough for onnxruntime to batch well, while one call's input stays a few megabytes. */
const ROWS_PER_CALL = 65_536;

/** |S|! (d - |S| - 1)! / d! for |S| = 0 .. d - 1. */
function shapleyWeights(d: number): Float64Array {
  const w = new Float64Array(d);
  // w(s) = 1 / (d * C(d - 1, s))
  let binom = 1;
  for (let s = 0; s < d; s++) {
    w[s] = 1 / (d * binom);
    binom = (binom * (d - 1 - s)) / (s + 1);
  }
  return w;
}

function popcount(m: number): number {
  let c = 0;
  for (let v = m; v; v &= v - 1) c++;
  return c;
}

/** The game's value for every coalition (bit j of the index set: feature j taken from x). */
export async function coalitionValues(x: Float64Array, background: Background, predict: BatchPredict): Promise<Float64Array> {
  const d = x.length;
  if (d < 1 || d > 20) throw new RangeError(`exact Shapley values enumerate 2^d coalitions; d must be 1-20, got ${d}`);
  const n = background.rows;
  if (n < 1 || background.X.length !== n * d) throw new RangeError(`background must be rows x ${d} values with at least one row`);
  const shares = backgroundShares(background);

  const coalitions = 1 << d;
  const values = new Float64Array(coalitions);
  const perCall = Math.max(1, Math.floor(ROWS_PER_CALL / n));
  for (let first = 0; first < coalitions; first += perCall) {
    const count = Math.min(perCall, coalitions - first);
    const X = new Float64Array(count * n * d);
    for (let c = 0; c < count; c++) {
      const mask = first + c;
      for (let i = 0; i < n; i++) {
        const row = (c * n + i) * d;
        const b = i * d;
        for (let j = 0; j < d; j++) X[row + j] = mask & (1 << j) ? x[j]! : background.X[b + j]!;
      }
    }
    const out = await predict(X, count * n);
    if (out.length !== count * n) throw new RangeError(`predict returned ${out.length} outputs for ${count * n} rows`);
    for (let c = 0; c < count; c++) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += shares[i]! * out[c * n + i]!;
      values[first + c] = sum;
    }
  }
  return values;
}

/** Exact Shapley values of a game given by its value for every coalition (length 2^d). */
export function shapleyFromValues(values: Float64Array, d: number): Explanation {
  if (values.length !== 1 << d) throw new RangeError(`expected 2^${d} coalition values, got ${values.length}`);
  const w = shapleyWeights(d);
  const contributions = new Float64Array(d);
  for (let mask = 0; mask < values.length; mask++) {
    const ws = w[popcount(mask)];
    for (let j = 0; j < d; j++) {
      const bit = 1 << j;
      if (mask & bit) continue;
      contributions[j] = contributions[j]! + ws! * (values[mask | bit]! - values[mask]!);
    }
  }
  return { base: values[0]!, output: values[values.length - 1]!, contributions };
}

/** Exact interventional Shapley values of `predict` at x over the background. */
export async function exactShapley(x: Float64Array, background: Background, predict: BatchPredict): Promise<Explanation> {
  return shapleyFromValues(await coalitionValues(x, background, predict), x.length);
}

/**
 * Exact interventional Shapley values for many records of a multi-output model, with the work
 * that cannot change the answer left out. The game is linear in the background, so
 * phi = sum over b of w_b phi(v_b) / sum w, where v_b(S) = f(x_S, b_rest) is the one-reference
 * game; in v_b a feature whose value in x equals its value in b (two missing values are equal)
 * changes nothing, so v_b is enumerated over the D_b features that differ only: 2^|D_b| model rows
 * instead of 2^d. Counts of zero, missing points and shared defaults make D_b small for most pairs.
 * `predict` returns `outputs` values per row; record r is explained for its output `column[r]`.
 */
/** Explains `records` rows of X (row-major) over a background; record r for output column `column[r]` of `outputs`. */
export type BatchExplainer = (X: Float64Array, records: number, background: Background, predict: BatchPredict, outputs: number, column: ArrayLike<number>) => Promise<Explanation[]>;

export const explainBatch: BatchExplainer = async (X, records, background, predict, outputs, column) => {
  const n = background.rows;
  const d = n > 0 ? background.X.length / n : 0;
  if (!Number.isInteger(d) || d < 1 || d > 20) throw new RangeError(`background must be rows x d values (d 1-20), got ${background.X.length} values for ${n} rows`);
  if (X.length !== records * d) throw new RangeError(`expected ${records} x ${d} values, got ${X.length}`);
  const shares = backgroundShares(background);

  const result: Explanation[] = Array.from({ length: records }, () => ({ base: 0, output: 0, contributions: new Float64Array(d) }));
  // Pending one-reference games: record, background row, the differing features, first row in the buffer.
  const games: { r: number; b: number; D: number[]; at: number }[] = [];
  let buffer = new Float64Array(ROWS_PER_CALL * d);
  let used = 0;
  const values = new Float64Array(1 << d);
  const flush = async () => {
    if (used === 0) return;
    const out = await predict(buffer.subarray(0, used * d), used);
    if (out.length !== used * outputs) throw new RangeError(`predict returned ${out.length} values for ${used} rows of ${outputs} outputs`);
    for (const g of games) {
      const c = column[g.r]!;
      const size = 1 << g.D.length;
      for (let mask = 0; mask < size; mask++) values[mask] = out[(g.at + mask) * outputs + c]!;
      accumulateGame(result[g.r]!, g.D, shares[g.b]!, values);
    }
    games.length = 0;
    used = 0;
  };
  const bg = background.X;
  for (let r = 0; r < records; r++) {
    const x = X.subarray(r * d, (r + 1) * d);
    for (let b = 0; b < n; b++) {
      if (shares[b] === 0) continue;
      const D = differing(x, bg.subarray(b * d, (b + 1) * d));
      const rows = 1 << D.length;
      if (used + rows > buffer.length / d) {
        await flush();
        if (rows > buffer.length / d) buffer = new Float64Array(rows * d);
      }
      // Row `mask` is row `mask` without its highest bit, with that bit's feature taken from x.
      const at = used * d;
      for (let j = 0; j < d; j++) buffer[at + j] = bg[b * d + j]!;
      for (let t = 0, high = 1; t < D.length; t++, high <<= 1) {
        const f = D[t]!;
        const v = x[f]!;
        for (let mask = high; mask < high << 1; mask++) {
          const row = at + mask * d;
          const from = at + (mask ^ high) * d;
          for (let j = 0; j < d; j++) buffer[row + j] = buffer[from + j]!;
          buffer[row + f] = v;
        }
      }
      games.push({ r, b, D, at: used });
      used += rows;
    }
  }
  await flush();
  return result;
};

const WEIGHTS = Array.from({ length: 21 }, (_, m) => shapleyWeights(Math.max(m, 1)));

/**
 * Adds `share` times the Shapley values of a one-reference game over the players D to an
 * explanation, with its base and output; `values[mask]` is the value of coalition `mask` (bit t
 * set: D[t] taken from x), for masks 0 .. 2^|D| - 1.
 */
export function accumulateGame(e: Explanation, D: readonly number[], share: number, values: Float64Array): void {
  const m = D.length;
  const full = (1 << m) - 1;
  e.base += share * values[0]!;
  e.output += share * values[full]!;
  const w = WEIGHTS[m]!;
  const sums = SUMS.subarray(0, m).fill(0);
  for (let mask = 0; mask < full; mask++) {
    const ws = w[popcount(mask)]!;
    const here = values[mask]!;
    for (let t = 0, bit = 1; t < m; t++, bit <<= 1) if (!(mask & bit)) sums[t] = sums[t]! + ws * (values[mask | bit]! - here);
  }
  for (let t = 0; t < m; t++) e.contributions[D[t]!] = e.contributions[D[t]!]! + share * sums[t]!;
}

const SUMS = new Float64Array(21);

/** The features whose values differ between x and a background row (two missing values are equal). */
export function differing(x: ArrayLike<number>, ref: ArrayLike<number>): number[] {
  const D: number[] = [];
  for (let j = 0; j < x.length; j++) if (x[j] !== ref[j] && !(Number.isNaN(x[j]!) && Number.isNaN(ref[j]!))) D.push(j);
  return D;
}
