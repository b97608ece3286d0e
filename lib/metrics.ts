/**
 * Evaluation metrics over plain arrays. Pure functions: scores and labels in, numbers out.
 */

/** Rows sorted by score and grouped by equal score: each group's size and number of positives. */
function tieGroups(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>, descending: boolean): { size: number; positives: number }[] {
  const n = scores.length;
  if (labels.length !== n) throw new RangeError('scores and labels differ in length');
  // Native numeric sorts of the scores and of the positives' scores (no comparator, no index
  // array), walked together: each run of equal scores is a group, with the positives among it.
  const all = Float64Array.from(scores).sort();
  let count = 0;
  for (let i = 0; i < n; i++) if (labels[i]) count++;
  const positive = new Float64Array(count);
  for (let i = 0, at = 0; i < n; i++) if (labels[i]) positive[at++] = scores[i]!;
  positive.sort();
  const same = (a: number, b: number) => a === b || (a !== a && b !== b);
  const groups: { size: number; positives: number }[] = [];
  for (let i = 0, j = 0; i < n; ) {
    const v = all[i]!;
    let end = i + 1;
    while (end < n && same(all[end]!, v)) end++;
    let positives = 0;
    while (j < count && same(positive[j]!, v)) {
      positives++;
      j++;
    }
    groups.push({ size: end - i, positives });
    i = end;
  }
  return descending ? groups.reverse() : groups;
}

/**
 * Area under the ROC curve: the probability that a random positive scores above a random negative,
 * ties counting one half (the Mann-Whitney statistic, computed with mid-ranks). NaN when only one
 * class is present.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number {
  let positives = 0;
  let rankSum = 0;
  let before = 0;
  for (const g of tieGroups(scores, labels, false)) {
    // The group occupies ranks before+1 .. before+size; every member gets their mean.
    rankSum += g.positives * (before + (g.size + 1) / 2);
    positives += g.positives;
    before += g.size;
  }
  const negatives = scores.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

const EPS = 1e-15;

/**
 * Average precision (area under the precision-recall curve, step-wise as scikit-learn computes
 * it): precision at each distinct score threshold, weighted by the recall it adds. Tied scores
 * form one threshold.
 */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number {
  const groups = tieGroups(scores, labels, true);
  const positives = groups.reduce((n, g) => n + g.positives, 0);
  if (positives === 0) return NaN;
  let tp = 0;
  let seen = 0;
  let ap = 0;
  for (const g of groups) {
    tp += g.positives;
    seen += g.size;
    ap += (g.positives / positives) * (tp / seen);
  }
  return ap;
}

/** Mean negative log-likelihood of binary labels, probabilities clipped to [1e-15, 1 - 1e-15]. */
export function binaryLogLoss(p: ArrayLike<number>, y: ArrayLike<number | boolean>): number {
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const q = Math.min(1 - EPS, Math.max(EPS, p[i]!));
    sum -= y[i] ? Math.log(q) : Math.log(1 - q);
  }
  return sum / p.length;
}

/** Mean squared error of the probabilities against 0/1 outcomes. */
export function brierScore(p: ArrayLike<number>, y: ArrayLike<number | boolean>): number {
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += (p[i]! - (y[i] ? 1 : 0)) ** 2;
  return sum / p.length;
}

/**
 * Positives among the highest-scored `fraction` of rows (at least one row). Rows tied at the cut
 * count in proportion, so ties cannot flatter it (the count may then be fractional).
 */
export function capturedAt(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>, fraction: number): { rows: number; positives: number } {
  return capturedInGroups(tieGroups(scores, labels, true), scores.length, fraction);
}

/** capturedAt over groups already sorted by descending score (several shares, one sort). */
function capturedInGroups(groups: { size: number; positives: number }[], n: number, fraction: number): { rows: number; positives: number } {
  const k = Math.max(1, Math.round(n * fraction));
  let taken = 0;
  let hits = 0;
  for (const g of groups) {
    if (taken >= k) break;
    const share = Math.min(1, (k - taken) / g.size);
    hits += g.positives * share;
    taken += g.size * share;
  }
  return { rows: k, positives: hits };
}

/**
 * Lift in a top fraction: the positive rate among the highest-scored `fraction` of rows divided by
 * the overall positive rate. Rows tied at the cut count in proportion, so ties cannot flatter it.
 */
export function liftAt(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>, fraction = 0.1): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) total++;
  if (total === 0) return NaN;
  const { rows, positives } = capturedAt(scores, labels, fraction);
  return positives / rows / (total / scores.length);
}

/** The top shares of rows whose captured positives every binary metric set reports. */
export const CAPTURE_SHARES = [0.01, 0.05, 0.1, 0.2];

export interface CalibrationBin {
  lower: number;
  upper: number;
  count: number;
  mean_predicted: number | null;
  observed_rate: number | null;
}

/** Reliability table over equal-width probability bins ([0, 0.1), …, [0.9, 1.0]). */
export function calibrationTable(p: ArrayLike<number>, y: ArrayLike<number | boolean>, bins = 10): CalibrationBin[] {
  const count = new Array<number>(bins).fill(0);
  const sumP = new Array<number>(bins).fill(0);
  const sumY = new Array<number>(bins).fill(0);
  for (let i = 0; i < p.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(p[i]! * bins)));
    count[b]!++;
    sumP[b]! += p[i]!;
    sumY[b]! += y[i] ? 1 : 0;
  }
  return count.map((c, b) => ({
    lower: b / bins,
    upper: (b + 1) / bins,
    count: c,
    mean_predicted: c ? sumP[b]! / c : null,
    observed_rate: c ? sumY[b]! / c : null,
  }));
}

/** Expected calibration error: the count-weighted gap between predicted and observed rates. */
export function expectedCalibrationError(table: CalibrationBin[]): number {
  const n = table.reduce((a, b) => a + b.count, 0);
  return table.reduce((a, b) => a + (b.count ? (b.count / n) * Math.abs(b.mean_predicted! - b.observed_rate!) : 0), 0);
}

export interface BinaryMetrics {
  rows: number;
  positives: number;
  auc: number;
  pr_auc: number;
  log_loss: number;
  brier: number;
  top_decile_lift: number;
  /** Positives among the top 1%, 5%, 10% and 20% of rows by score (offer-response style targeting). */
  captured: { share: number; rows: number; positives: number }[];
  ece: number;
  calibration: CalibrationBin[];
  /** The charts' data: ROC and cumulative gain points and the score histogram by class. */
  curves: ScoreCurves;
}

export interface ScoreCurves {
  /** ROC points from (0, 0) to (1, 1), one per distinct score (thinned to at most 101). */
  roc: { fpr: number[]; tpr: number[] };
  /** Cumulative gain: of the rows ranked highest by score, the share of all positives they hold. */
  gain: { share: number[]; captured: number[] };
  /** Scores in 20 equal-width bins over [0, 1], counted separately for positives and negatives. */
  histogram: { edges: number[]; positives: number[]; negatives: number[] };
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** The data behind the ROC, gain and histogram charts of a model's report (rounded to 4 digits). */
export function scoreCurves(p: ArrayLike<number>, y: ArrayLike<number | boolean>): ScoreCurves {
  const groups = tieGroups(p, y, true);
  const positives = groups.reduce((a, g) => a + g.positives, 0);
  const negatives = p.length - positives;
  const fpr = [0];
  const tpr = [0];
  let tp = 0;
  let fp = 0;
  for (const g of groups) {
    tp += g.positives;
    fp += g.size - g.positives;
    fpr.push(negatives ? fp / negatives : 0);
    tpr.push(positives ? tp / positives : 0);
  }
  const keep = thinned(fpr.length, 101);
  const gainShares = Array.from({ length: 21 }, (_, i) => i / 20);
  const gainAt = (share: number): number => (share === 0 || !positives ? 0 : round4(capturedInGroups(groups, p.length, share).positives / positives));
  const edges = Array.from({ length: 21 }, (_, i) => i / 20);
  const histPos = new Array<number>(20).fill(0);
  const histNeg = new Array<number>(20).fill(0);
  for (let i = 0; i < p.length; i++) {
    const b = Math.min(19, Math.max(0, Math.floor(p[i]! * 20)));
    if (y[i]) histPos[b]!++;
    else histNeg[b]!++;
  }
  return {
    roc: { fpr: keep.map((i) => round4(fpr[i]!)), tpr: keep.map((i) => round4(tpr[i]!)) },
    gain: {
      share: gainShares,
      captured: gainShares.map(gainAt),
    },
    histogram: { edges, positives: histPos, negatives: histNeg },
  };
}

/** At most `max` indices of 0..n-1, evenly spread, always keeping the first and the last. */
function thinned(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: max }, (_, i) => Math.round((i * (n - 1)) / (max - 1)));
}

/** Every binary metric loyalty-ml reports, for P(positive) scores and 0/1 labels. */
export function binaryMetrics(p: ArrayLike<number>, y: ArrayLike<number>): BinaryMetrics {
  const calibration = calibrationTable(p, y);
  let positives = 0;
  for (let i = 0; i < y.length; i++) if (y[i]) positives++;
  return {
    rows: p.length,
    positives,
    auc: rocAuc(p, y),
    pr_auc: averagePrecision(p, y),
    log_loss: binaryLogLoss(p, y),
    brier: brierScore(p, y),
    top_decile_lift: liftAt(p, y, 0.1),
    captured: CAPTURE_SHARES.map((share) => ({ share, ...capturedAt(p, y, share) })),
    ece: expectedCalibrationError(calibration),
    calibration,
    curves: scoreCurves(p, y),
  };
}

export interface MulticlassMetrics {
  rows: number;
  top1_accuracy: number;
  top3_accuracy: number;
  log_loss: number;
  /** Per class: of the rows whose label is this class, the share where it was ranked first. */
  per_class_recall: Record<string, number | null>;
  /** Share of rows where each class was ranked first. */
  top_class_share: Record<string, number>;
}

/** Multiclass metrics for a row-major probability matrix [rows][classes] and class-index labels. */
export function multiclassMetrics(P: ArrayLike<number>, y: ArrayLike<number>, classes: string[]): MulticlassMetrics {
  const k = classes.length;
  const n = y.length;
  let top1 = 0;
  let top3 = 0;
  let logLoss = 0;
  const hits = new Array<number>(k).fill(0);
  const support = new Array<number>(k).fill(0);
  const firsts = new Array<number>(k).fill(0);
  const rank = new Array<number>(k);
  for (let r = 0; r < n; r++) {
    const label = y[r]!;
    const row = r * k;
    for (let c = 0; c < k; c++) rank[c] = c;
    rank.sort((a, b) => P[row + b]! - P[row + a]! || a - b);
    support[label]!++;
    firsts[rank[0]!]!++;
    if (rank[0] === label) {
      top1++;
      hits[label]!++;
    }
    if (rank.slice(0, 3).includes(label)) top3++;
    logLoss -= Math.log(Math.min(1 - EPS, Math.max(EPS, P[row + label]!)));
  }
  return {
    rows: n,
    top1_accuracy: top1 / n,
    top3_accuracy: top3 / n,
    log_loss: logLoss / n,
    per_class_recall: Object.fromEntries(classes.map((c, i) => [c, support[i] ? hits[i]! / support[i]! : null])),
    top_class_share: Object.fromEntries(classes.map((c, i) => [c, firsts[i]! / n])),
  };
}

/** Summary of a score distribution, stored in manifests to detect drift later. */
export function scoreFingerprint(scores: ArrayLike<number>, bins = 10): { bins: number[]; counts: number[]; mean: number; std: number } {
  const edges = Array.from({ length: bins + 1 }, (_, i) => i / bins);
  const counts = new Array<number>(bins).fill(0);
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    counts[Math.min(bins - 1, Math.max(0, Math.floor(s * bins)))]!++;
    sum += s;
    squares += s * s;
  }
  const n = Math.max(1, scores.length);
  const mean = sum / n;
  return { bins: edges, counts, mean, std: Math.sqrt(Math.max(0, squares / n - mean * mean)) };
}

/** Mid-ranks (1-based, ties sharing their mean rank) of values. */
function midRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]!] === values[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]!] = rank;
    i = j + 1;
  }
  return ranks;
}

/**
 * DeLong's structural components of the AUC of each score vector on the same labels (the fast
 * algorithm of Sun and Xu, 2014): the AUCs and their covariance matrix.
 */
function delong(scoreSets: ArrayLike<number>[], labels: ArrayLike<number | boolean>): { aucs: number[]; cov: number[][] } {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < labels.length; i++) (labels[i] ? pos : neg).push(i);
  const m = pos.length;
  const n = neg.length;
  if (m < 2 || n < 2) return { aucs: scoreSets.map(() => NaN), cov: scoreSets.map(() => scoreSets.map(() => NaN)) };
  const v01: Float64Array[] = [];
  const v10: Float64Array[] = [];
  const aucs: number[] = [];
  for (const scores of scoreSets) {
    const tx = midRanks(pos.map((i) => scores[i]!));
    const ty = midRanks(neg.map((i) => scores[i]!));
    const tz = midRanks([...pos, ...neg].map((i) => scores[i]!));
    let sum = 0;
    const a = new Float64Array(m);
    const b = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      sum += tz[i]!;
      a[i] = (tz[i]! - tx[i]!) / n;
    }
    for (let j = 0; j < n; j++) b[j] = 1 - (tz[m + j]! - ty[j]!) / m;
    aucs.push((sum - (m * (m + 1)) / 2) / (m * n));
    v01.push(a);
    v10.push(b);
  }
  const covariance = (rows: Float64Array[], r: number, s: number): number => {
    const x = rows[r]!;
    const y = rows[s]!;
    let mx = 0;
    let my = 0;
    for (let i = 0; i < x.length; i++) {
      mx += x[i]!;
      my += y[i]!;
    }
    mx /= x.length;
    my /= y.length;
    let c = 0;
    for (let i = 0; i < x.length; i++) c += (x[i]! - mx) * (y[i]! - my);
    return c / (x.length - 1);
  };
  const cov = scoreSets.map((_, r) => scoreSets.map((__, s) => covariance(v01, r, s) / m + covariance(v10, r, s) / n));
  return { aucs, cov };
}

/** The standard normal distribution function (Abramowitz and Stegun 7.1.26, error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** AUC with its 95% confidence interval from DeLong's variance. NaN bounds without both classes. */
export function aucWithInterval(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): { auc: number; lower: number; upper: number; se: number } {
  const { aucs, cov } = delong([scores], labels);
  const auc = aucs[0]!;
  const se = Math.sqrt(Math.max(0, cov[0]![0]!));
  return { auc, se, lower: Math.max(0, auc - 1.959964 * se), upper: Math.min(1, auc + 1.959964 * se) };
}

/**
 * DeLong's test for two correlated AUCs (two models scored on the same rows): the difference
 * b - a, its standard error, the z statistic and the two-sided p-value.
 */
export function delongTest(a: ArrayLike<number>, b: ArrayLike<number>, labels: ArrayLike<number | boolean>): { auc_a: number; auc_b: number; difference: number; se: number; z: number; p_value: number } {
  const { aucs, cov } = delong([a, b], labels);
  const difference = aucs[1]! - aucs[0]!;
  const se = Math.sqrt(Math.max(0, cov[0]![0]! + cov[1]![1]! - 2 * cov[0]![1]!));
  const z = se > 0 ? difference / se : difference === 0 ? 0 : Math.sign(difference) * Infinity;
  return { auc_a: aucs[0]!, auc_b: aucs[1]!, difference, se, z, p_value: Number.isFinite(z) ? 2 * (1 - normalCdf(Math.abs(z))) : 0 };
}
