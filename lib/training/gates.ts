import type { GateResult } from '../registry/index';

/**
 * Quality gates: pure checks on a model's out-of-fold predictions and metrics that decide whether a
 * version may be promoted. Each gate reports its value, threshold and a reason in plain words.
 */
export interface GateThresholds {
  /** Binary: the standard deviation of the probabilities must reach this (no collapse). */
  min_probability_std: number;
  /** Multiclass: no single class may be ranked first for more than this share of rows. */
  max_top_class_share: number;
  /** "Confident" means the top probability is at least this. */
  confidence_level: number;
  /** At most this share of rows may be confident (near-100% answers for almost everyone). */
  max_confident_share: number;
  /** Binary: AUC must reach this (the class prior scores 0.5). */
  min_auc: number;
  /**
   * Binary: the positive rate among the top-scored 10% of rows, over the overall rate, must reach
   * this (1 = no better than picking at random). Raise it for offer-response style targeting.
   */
  min_top_decile_lift: number;
  /** Multiclass: top-1 accuracy must beat always answering the most frequent class by this. */
  min_top1_gain_over_prior: number;
  /** Binary: worst allowed AUC drop against production on the same report rows. */
  max_auc_drop_vs_production: number;
  /** Multiclass: worst allowed top-1 drop against production on the same report rows. */
  max_top1_drop_vs_production: number;
}

export interface BinaryGateInput {
  kind: 'binary';
  /** Holdout P(positive). */
  probabilities: ArrayLike<number>;
  auc: number;
  topDecileLift: number;
  logLoss: number;
  baselineLogLoss: number;
  /** Production's AUC and this model's on the same report rows. */
  production: { version: number; auc: number; ownAuc: number } | null;
}

export interface MulticlassGateInput {
  kind: 'multiclass';
  /** Holdout probability matrix [rows][classes]. */
  probabilities: ArrayLike<number>;
  classes: string[];
  top1: number;
  baselineTop1: number;
  logLoss: number;
  baselineLogLoss: number;
  /** Production's top-1 accuracy and this model's on the same report rows. */
  production: { version: number; top1: number; ownTop1: number } | null;
}

/**
 * Next best offer as acceptance probabilities: the binary gates on the pooled out-of-fold
 * P(accept) of the offers made (against each offer's own acceptance rate), then the policy's: its
 * off-policy estimate on the evaluation window must be above what the logging policy reached
 * there (the interval's lower bound, so noise cannot pass it), and not significantly below
 * production's on the same rows.
 */
export interface AcceptanceGateInput {
  kind: 'acceptance';
  probabilities: ArrayLike<number>;
  auc: number;
  topDecileLift: number;
  logLoss: number;
  /** Log loss of each offer's training acceptance rate as the prediction, on the same rows. */
  baselineLogLoss: number;
  policy: { estimate: number; ciLow: number; ciHigh: number; method: string; rows: number; from: string; to: string; logging: number };
  /** Production's estimate on the same rows and reward model, and this policy's value minus it. */
  production: { version: number; estimate: number; difference: { estimate: number; ci_low: number; ci_high: number } } | null;
}

export function evaluateGates(input: BinaryGateInput | MulticlassGateInput | AcceptanceGateInput, t: GateThresholds): { passed: boolean; results: GateResult[] } {
  const results = input.kind === 'binary' ? binaryGates(input, t) : input.kind === 'multiclass' ? multiclassGates(input, t) : acceptanceGates(input, t);
  return { passed: results.every((r) => r.passed), results };
}

function acceptanceGates(input: AcceptanceGateInput, t: GateThresholds): GateResult[] {
  const results = binaryGates({ ...input, kind: 'binary', production: null }, t, "each offer's own acceptance rate");
  const p = input.policy;
  const interval = `${fmt(p.estimate)} (95% interval ${fmt(p.ciLow)}-${fmt(p.ciHigh)}, ${p.method}, ${p.rows} offers of ${p.from} to ${p.to})`;
  const beats = p.ciLow >= p.logging;
  results.push(gate('policy_beats_logging', beats, p.ciLow, p.logging,
    beats
      ? `sending each customer its top offer is estimated to reach an acceptance rate of ${interval}, above the ${fmt(p.logging)} the offers actually sent reached`
      : `cannot show that sending each customer its top offer beats what was sent: estimated acceptance ${interval}, whose lower bound is below the ${fmt(p.logging)} the offers actually sent reached`));
  if (input.production) {
    const { version, estimate, difference: d } = input.production;
    const ok = d.ci_high >= 0;
    results.push(gate('policy_not_worse_than_production', ok, d.estimate, 0,
      ok
        ? `estimated acceptance ${fmt(p.estimate)} against production v${version}'s ${fmt(estimate)} on the same offers (difference ${signed(d.estimate)}, 95% interval ${signed(d.ci_low)} to ${signed(d.ci_high)})`
        : `significantly worse than production v${version}: estimated acceptance ${fmt(p.estimate)} against ${fmt(estimate)} on the same offers (difference ${signed(d.estimate)}, 95% interval ${signed(d.ci_low)} to ${signed(d.ci_high)})`));
  }
  return results;
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : ''}${fmt(v)}`;
}

function binaryGates(input: BinaryGateInput, t: GateThresholds, baseline = 'the class prior'): GateResult[] {
  const p = input.probabilities;
  const n = p.length;
  let sum = 0;
  let squares = 0;
  let confident = 0;
  for (let i = 0; i < n; i++) {
    sum += p[i]!;
    squares += p[i]! * p[i]!;
    if (Math.max(p[i]!, 1 - p[i]!) >= t.confidence_level) confident++;
  }
  const mean = sum / n;
  const std = Math.sqrt(Math.max(0, squares / n - mean * mean));
  const confidentShare = confident / n;
  const results: GateResult[] = [
    gate('prediction_spread', std >= t.min_probability_std, std, t.min_probability_std,
      std >= t.min_probability_std
        ? `out-of-fold probabilities spread (standard deviation ${fmt(std)})`
        : `out-of-fold probabilities have collapsed: standard deviation ${fmt(std)} across ${n} rows, below ${t.min_probability_std}; the model answers nearly the same for everyone`),
    gate('confidence', confidentShare <= t.max_confident_share, confidentShare, t.max_confident_share,
      confidentShare <= t.max_confident_share
        ? `${pct(confidentShare)} of out-of-fold rows are answered with ${pct(t.confidence_level)}+ confidence`
        : `${pct(confidentShare)} of out-of-fold rows get ${pct(t.confidence_level)}+ confidence (limit ${pct(t.max_confident_share)}): near-certain answers for almost everyone`),
    gate('beats_baseline', input.auc >= t.min_auc && input.logLoss < input.baselineLogLoss, input.auc, t.min_auc,
      input.auc >= t.min_auc && input.logLoss < input.baselineLogLoss
        ? `out-of-fold AUC ${fmt(input.auc)} (needs ${t.min_auc}) and log loss ${fmt(input.logLoss)} beat ${baseline} (log loss ${fmt(input.baselineLogLoss)})`
        : `does not beat ${baseline}: out-of-fold AUC ${fmt(input.auc)} (needs ${t.min_auc}), log loss ${fmt(input.logLoss)} against ${fmt(input.baselineLogLoss)}`),
    gate('top_decile_lift', input.topDecileLift >= t.min_top_decile_lift, input.topDecileLift, t.min_top_decile_lift,
      input.topDecileLift >= t.min_top_decile_lift
        ? `the top-scored 10% of rows hold ${fmt(input.topDecileLift)}x the overall positive rate`
        : `the top-scored 10% of rows hold only ${fmt(input.topDecileLift)}x the overall positive rate (needs ${t.min_top_decile_lift}x): the ranking does not find the positives`),
  ];
  if (input.production) {
    const { version, auc, ownAuc } = input.production;
    const ok = auc - ownAuc <= t.max_auc_drop_vs_production;
    results.push(gate('not_worse_than_production', ok, ownAuc, auc - t.max_auc_drop_vs_production,
      ok
        ? `report-row AUC ${fmt(ownAuc)} against production v${version}'s ${fmt(auc)} on the same rows`
        : `worse than production v${version}: report-row AUC ${fmt(ownAuc)} against ${fmt(auc)} on the same rows (tolerance ${t.max_auc_drop_vs_production})`));
  }
  return results;
}

function multiclassGates(input: MulticlassGateInput, t: GateThresholds): GateResult[] {
  const k = input.classes.length;
  const n = input.probabilities.length / k;
  const firsts = new Array<number>(k).fill(0);
  let confident = 0;
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (input.probabilities[r * k + c]! > input.probabilities[r * k + best]!) best = c;
    firsts[best]!++;
    if (input.probabilities[r * k + best]! >= t.confidence_level) confident++;
  }
  const topIndex = firsts.indexOf(Math.max(...firsts));
  const topShare = firsts[topIndex]! / n;
  const confidentShare = confident / n;
  const beats = input.top1 >= input.baselineTop1 + t.min_top1_gain_over_prior && input.logLoss < input.baselineLogLoss;
  const results: GateResult[] = [
    gate('top_class_spread', topShare <= t.max_top_class_share, topShare, t.max_top_class_share,
      topShare <= t.max_top_class_share
        ? `the most frequent first choice, ${input.classes[topIndex]}, is ranked first for ${pct(topShare)} of out-of-fold rows`
        : `one class, ${input.classes[topIndex]}, is ranked first for ${pct(topShare)} of out-of-fold rows (limit ${pct(t.max_top_class_share)}): the model gives almost everyone the same answer`),
    gate('confidence', confidentShare <= t.max_confident_share, confidentShare, t.max_confident_share,
      confidentShare <= t.max_confident_share
        ? `${pct(confidentShare)} of out-of-fold rows are answered with ${pct(t.confidence_level)}+ confidence`
        : `${pct(confidentShare)} of out-of-fold rows get ${pct(t.confidence_level)}+ confidence (limit ${pct(t.max_confident_share)}): near-certain answers for almost everyone`),
    gate('beats_baseline', beats, input.top1, input.baselineTop1 + t.min_top1_gain_over_prior,
      beats
        ? `out-of-fold top-1 accuracy ${fmt(input.top1)} and log loss ${fmt(input.logLoss)} beat the class prior (${fmt(input.baselineTop1)}, ${fmt(input.baselineLogLoss)})`
        : `does not beat the class prior: top-1 accuracy ${fmt(input.top1)} against ${fmt(input.baselineTop1)} (needs +${t.min_top1_gain_over_prior}), log loss ${fmt(input.logLoss)} against ${fmt(input.baselineLogLoss)}`),
  ];
  if (input.production) {
    const { version, top1, ownTop1 } = input.production;
    const ok = top1 - ownTop1 <= t.max_top1_drop_vs_production;
    results.push(gate('not_worse_than_production', ok, ownTop1, top1 - t.max_top1_drop_vs_production,
      ok
        ? `report-row top-1 accuracy ${fmt(ownTop1)} against production v${version}'s ${fmt(top1)}`
        : `worse than production v${version}: report-row top-1 accuracy ${fmt(ownTop1)} against ${fmt(top1)} on the same rows (tolerance ${t.max_top1_drop_vs_production})`));
  }
  return results;
}

function gate(name: string, passed: boolean, value: number, threshold: number, reason: string): GateResult {
  return { gate: name, passed, value: Number.isFinite(value) ? value : null, threshold, reason };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

function pct(v: number): string {
  return `${(v * 100).toFixed(1)}%`;
}
