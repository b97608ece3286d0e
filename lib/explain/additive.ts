import { accumulateGame, backgroundShares, differing, explainBatch, type BatchExplainer, type Explanation } from './exact';

/**
 * Exact interventional Shapley values of sigma(logit) for a model whose logit is a sum of one term
 * per feature (binary logistic regression, with hinge or log terms per column): f(x_S, b_rest) =
 * sigma(logit f(b) + sum over j in S of (g_j(x_j) - g_j(b_j))), so every coalition's value is a sum
 * of known terms. The terms g_j(v) = logit f(r with feature j set to v) - logit f(r) come from one
 * model run of d x (records + |B|) + 1 rows (and the records' and background's own scores), instead of
 * sum over b of 2^|D_b| rows per record. The same game as `explainBatch`, to float rounding of
 * the model's float32 outputs (tested against it): r is the background row with the median score,
 * a typical customer, whose terms are of typical size (float32 rounding in the graph's sum grows
 * with them; a row near p = 0 or 1 loses digits of the logit). Falls back to `explainBatch` when the model
 * answers exactly 0 or 1 somewhere, where the logit is not finite.
 */
export const explainAdditiveLogit: BatchExplainer = async (X, records, background, predict, outputs, column) => {
  const n = background.rows;
  const d = background.X.length / n;
  if (X.length !== records * d) throw new RangeError(`expected ${records} x ${d} values, got ${X.length}`);
  const scores = await predict(background.X, n);
  const c0 = column[0] ?? 0;
  const ranked = Array.from({ length: n }, (_, b) => b).sort((a, b) => scores[a * outputs + c0]! - scores[b * outputs + c0]!);
  const median = ranked[n >> 1]!;
  const ref = background.X.subarray(median * d, (median + 1) * d);
  const sources = records + n;
  const rows = 1 + d * sources;
  const Z = new Float64Array(rows * d);
  Z.set(ref, 0);
  for (let s = 0; s < sources; s++) {
    const src = s < records ? X.subarray(s * d, (s + 1) * d) : background.X.subarray((s - records) * d, (s - records + 1) * d);
    for (let j = 0; j < d; j++) {
      const at = (1 + s * d + j) * d;
      Z.set(ref, at);
      Z[at + j] = src[j]!;
    }
  }
  const out = await predict(Z, rows);
  const own = await predict(X, records);
  if (out.length !== rows * outputs) throw new RangeError(`predict returned ${out.length} values for ${rows} rows of ${outputs} outputs`);
  const finite = (P: Float64Array) => P.every((p) => p > 0 && p < 1);
  if (!finite(out) || !finite(own) || !finite(scores)) return explainBatch(X, records, background, predict, outputs, column);
  const logit = (p: number) => Math.log(p / (1 - p));
  const shares = backgroundShares(background);

  const result: Explanation[] = [];
  const values = new Float64Array(1 << d);
  const delta = new Float64Array(d);
  for (let r = 0; r < records; r++) {
    const c = column[r]!;
    const l0 = logit(out[c]!);
    // g(s, j): the term of source s's value of feature j, relative to the reference row.
    const g = (s: number, j: number) => logit(out[(1 + s * d + j) * outputs + c]!) - l0;
    const e: Explanation = { base: 0, output: 0, contributions: new Float64Array(d) };
    const x = X.subarray(r * d, (r + 1) * d);
    for (let b = 0; b < n; b++) {
      if (shares[b] === 0) continue;
      const row = background.X.subarray(b * d, (b + 1) * d);
      const D = differing(x, row);
      // The game's ends are the model's own answers for b and x; float32 rounding in the terms
      // (a few 1e-7 of logit) is spread evenly over the differing features, so the base is the
      // background's mean score and base + contributions is the record's score exactly.
      const margin = logit(scores[b * outputs + c]!);
      let sum = 0;
      D.forEach((j, t) => (sum += delta[t] = g(r, j) - g(records + b, j)));
      if (D.length) {
        const residual = (logit(own[r * outputs + c]!) - margin - sum) / D.length;
        for (let t = 0; t < D.length; t++) delta[t] = delta[t]! + residual;
      }
      // Each coalition's margin from the one without its highest bit.
      values[0] = margin;
      for (let mask = 1; mask < 1 << D.length; mask++) {
        const high = 31 - Math.clz32(mask);
        values[mask] = values[mask ^ (1 << high)]! + delta[high]!;
      }
      for (let mask = 0; mask < 1 << D.length; mask++) values[mask] = 1 / (1 + Math.exp(-values[mask]!));
      accumulateGame(e, D, shares[b]!, values);
    }
    result.push(e);
  }
  return result;
};
