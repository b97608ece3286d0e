/**
 * Off-policy evaluation of offer policies: what acceptance rate a policy that chooses one offer per
 * customer would have reached on logged offers it did not choose. Pure: logged rows, the policy's
 * choices and a reward model in, estimates with their intervals out.
 *
 * The logged rows are offers made (the context x_i, the offer a_i sent, whether it was accepted r_i,
 * and p_i, the chance the logging policy had of sending a_i to x_i). A deterministic policy π picks
 * π(x_i). With a reward model q(x, k) (the probability the customer accepts offer k):
 *
 * - IPS: mean of 1[a_i = π(x_i)] r_i / p_i: unbiased when p_i is right, noisy when p_i is small.
 * - SNIPS: the same divided by the mean of 1[a_i = π(x_i)] / p_i: a little biased, far less noisy.
 * - DR (doubly robust): mean of q(x_i, π(x_i)) + 1[a_i = π(x_i)] / p_i · (r_i − q(x_i, a_i)): the
 *   model's answer, corrected by what happened where the logged offer is the one π would send;
 *   unbiased when either the propensities or the model are right (Dudík, Langford and Li, 2011).
 *
 * Each is a mean of per-row terms, so its 95% interval is the mean ± 1.96 standard errors of the
 * terms (SNIPS: by the delta method). The estimand is the policy's expected acceptance per send on
 * the window's customers.
 */

export interface LoggedOffers {
  /** Offers in the catalog (the width of q). */
  offers: number;
  /** Index of the offer sent, per row. */
  action: ArrayLike<number>;
  /** 1 when the offer sent was accepted. */
  reward: ArrayLike<number>;
  /** P(the logging policy sends action[i] | x_i), in (0, 1]. */
  propensity: ArrayLike<number>;
}

export interface Estimate {
  estimate: number;
  ci_low: number;
  ci_high: number;
  se: number;
}

export interface PolicyEstimates {
  rows: number;
  dr: Estimate | null;
  ips: Estimate;
  snips: Estimate | null;
  /** Rows where the logged offer is the one the policy would send. */
  matched: number;
  /** Effective sample size of the policy's importance weights, (Σw)² / Σw². */
  effective_rows: number;
}

/** The normal quantile of a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/**
 * IPS, SNIPS and (with a reward model q, rows x offers) DR estimates of a deterministic policy's
 * value on the logged rows, each with its 95% interval.
 */
export function estimatePolicyValue(logged: LoggedOffers, policy: ArrayLike<number>, q: ArrayLike<number> | null): PolicyEstimates {
  const n = logged.action.length;
  checkLogged(logged, policy, q);
  const dr = new Float64Array(n);
  const ips = new Float64Array(n);
  const w = new Float64Array(n);
  let matched = 0;
  for (let i = 0; i < n; i++) {
    const a = logged.action[i]!;
    const pi = policy[i]!;
    const hit = a === pi ? 1 / logged.propensity[i]! : 0;
    if (hit) matched++;
    w[i] = hit;
    ips[i] = hit * logged.reward[i]!;
    if (q) dr[i] = q[i * logged.offers + pi]! + hit * (logged.reward[i]! - q[i * logged.offers + a]!);
  }
  return { rows: n, dr: q ? meanEstimate(dr) : null, ips: meanEstimate(ips), snips: ratioEstimate(ips, w), matched, effective_rows: effectiveRows(w) };
}

/**
 * Policy B's value minus policy A's on the same rows and reward model (DR terms, paired by row):
 * the difference with its 95% interval, for "is the candidate significantly worse?".
 */
export function pairedDifference(logged: LoggedOffers, a: ArrayLike<number>, b: ArrayLike<number>, q: ArrayLike<number>): Estimate {
  checkLogged(logged, a, q);
  checkLogged(logged, b, q);
  const n = logged.action.length;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = drTerm(logged, b, q, i) - drTerm(logged, a, q, i);
  return meanEstimate(d);
}

function drTerm(logged: LoggedOffers, policy: ArrayLike<number>, q: ArrayLike<number>, i: number): number {
  const a = logged.action[i]!;
  const pi = policy[i]!;
  const k = logged.offers;
  return q[i * k + pi]! + (a === pi ? (logged.reward[i]! - q[i * k + a]!) / logged.propensity[i]! : 0);
}

/** The policy "send each customer the offer with the highest score" (ties: the first in catalog order). */
export function argmaxPolicy(scores: ArrayLike<number>, offers: number): Int32Array {
  const n = scores.length / offers;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < offers; k++) if (scores[i * offers + k]! > scores[i * offers + best]!) best = k;
    out[i] = best;
  }
  return out;
}

/** Mean of per-row terms with its standard error and 95% interval. */
export function meanEstimate(terms: ArrayLike<number>): Estimate {
  const n = terms.length;
  if (n === 0) return { estimate: NaN, ci_low: NaN, ci_high: NaN, se: NaN };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += terms[i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (terms[i]! - mean) ** 2;
  const se = n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN;
  return { estimate: mean, ci_low: mean - Z95 * se, ci_high: mean + Z95 * se, se };
}

/** Σ num / Σ den with the delta method's standard error (num_i − V den_i as the terms). */
function ratioEstimate(num: ArrayLike<number>, den: ArrayLike<number>): Estimate | null {
  const n = num.length;
  let sn = 0;
  let sd = 0;
  for (let i = 0; i < n; i++) {
    sn += num[i]!;
    sd += den[i]!;
  }
  if (!(sd > 0)) return null;
  const v = sn / sd;
  const meanDen = sd / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (num[i]! - v * den[i]!) ** 2;
  const se = n > 1 ? Math.sqrt(ss / (n - 1) / n) / meanDen : NaN;
  return { estimate: v, ci_low: v - Z95 * se, ci_high: v + Z95 * se, se };
}

/** (Σw)² / Σw²: how many rows weights this unequal are worth. */
export function effectiveRows(w: ArrayLike<number>): number {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < w.length; i++) {
    s += w[i]!;
    s2 += w[i]! * w[i]!;
  }
  return s2 > 0 ? (s * s) / s2 : 0;
}

function checkLogged(logged: LoggedOffers, policy: ArrayLike<number>, q: ArrayLike<number> | null): void {
  const n = logged.action.length;
  if (logged.reward.length !== n || logged.propensity.length !== n || policy.length !== n) throw new RangeError('logged rows, rewards, propensities and the policy must have one entry per row');
  if (q && q.length !== n * logged.offers) throw new RangeError(`the reward model needs ${n} x ${logged.offers} values, got ${q.length}`);
}
