import { effectiveRows } from './policy-value';

/**
 * Overlap: whether the logged history can tell what an offer does for every kind of customer.
 * Importance weights (1 / propensity) say how far each logged row must stand in for the rows the
 * logging policy did not send; regions where an offer was never sent have no such rows at all, and
 * no model (nor estimate) can know how those customers would have answered it. Pure.
 */

export interface OfferOverlap {
  offer_id: string;
  sent: number;
  accepted: number;
  /** Propensities of this offer where it was sent: 1st, 5th, 50th, 95th percentile. */
  propensity: { p01: number; p05: number; p50: number; p95: number };
  /** (Σ 1/p)² / Σ 1/p² over its sends: the sends it is worth when they stand in for the whole base. */
  effective_sends: number;
}

export interface UnsupportedRegion {
  offer_id: string;
  feature: string;
  /** "tenure_days from 90 to 3650", "no points_balance", … */
  customers: string;
  /** Offered rows in the region (every one of them got another offer). */
  rows: number;
  share: number;
}

export interface OverlapReport {
  propensity_source: 'logged' | 'estimated';
  rows: number;
  /** Propensities of the offers sent, all offers together. */
  propensity: { min: number; p01: number; p05: number; p50: number; p95: number; max: number };
  offers: OfferOverlap[];
  unsupported: UnsupportedRegion[];
}

/** A region counts when it holds at least this share of the offered rows (and MIN_REGION_ROWS). */
const MIN_REGION_SHARE = 0.02;
const MIN_REGION_ROWS = 30;

export function overlapReport(input: {
  X: Float64Array;
  features: readonly string[];
  action: ArrayLike<number>;
  accepted: ArrayLike<number>;
  propensity: ArrayLike<number>;
  offerIds: readonly string[];
  source: 'logged' | 'estimated';
}): OverlapReport {
  const n = input.action.length;
  const K = input.offerIds.length;
  const all = Float64Array.from(input.propensity);
  const offers: OfferOverlap[] = input.offerIds.map((offer_id, k) => {
    const p: number[] = [];
    let accepted = 0;
    for (let i = 0; i < n; i++) {
      if (input.action[i] !== k) continue;
      p.push(input.propensity[i]!);
      accepted += input.accepted[i]!;
    }
    const sorted = Float64Array.from(p).sort();
    return {
      offer_id,
      sent: p.length,
      accepted,
      propensity: { p01: quantile(sorted, 0.01), p05: quantile(sorted, 0.05), p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95) },
      effective_sends: round(effectiveRows(p.map((v) => 1 / v)), 1),
    };
  });
  all.sort();
  return {
    propensity_source: input.source,
    rows: n,
    propensity: { min: round(all[0] ?? NaN), p01: quantile(all, 0.01), p05: quantile(all, 0.05), p50: quantile(all, 0.5), p95: quantile(all, 0.95), max: round(all[n - 1] ?? NaN) },
    offers,
    unsupported: unsupportedRegions(input.X, input.features, input.action, K, input.offerIds),
  };
}

/**
 * Where an offer was never sent: for each feature, the offered rows in order of its value; a run
 * of neighbouring values (whole groups of equal values) over which an offer never went out is a
 * region without support for that offer when it holds at least 2% of the rows and is long enough
 * that chance cannot explain it (at the offer's overall share s of sends, a run of L rows without
 * it happens with probability (1 − s)^L, kept below 1 in 1,000). Missing values are a region of
 * their own. One feature at a time: a rule on two features at once shows as its one-feature
 * shadows, or not at all. The largest regions first, at most three per offer.
 */
export function unsupportedRegions(X: Float64Array, features: readonly string[], action: ArrayLike<number>, offers: number, offerIds: readonly string[]): UnsupportedRegion[] {
  const n = action.length;
  const D = features.length;
  const found: UnsupportedRegion[] = [];
  const total = new Float64Array(offers);
  for (let i = 0; i < n; i++) total[action[i]!]!++;
  // An offer never sent at all has no support anywhere: one region, not one per feature.
  for (let k = 0; k < offers; k++) if (total[k] === 0 && n > 0) found.push({ offer_id: offerIds[k]!, feature: '*', customers: 'any features', rows: n, share: 1 });
  const minRows = Array.from(total, (t) => Math.max(MIN_REGION_ROWS, Math.ceil(MIN_REGION_SHARE * n), t > 0 ? Math.ceil(Math.log(1000) / -Math.log1p(-t / n)) : n + 1));
  for (let j = 0; j < D; j++) {
    const known: number[] = [];
    let missing = 0;
    const missingSends = new Float64Array(offers);
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(X[i * D + j]!)) {
        missing++;
        missingSends[action[i]!]!++;
      } else known.push(i);
    }
    known.sort((a, b) => X[a * D + j]! - X[b * D + j]!);
    // Groups of equal values, with each offer's sends in the group.
    const values: number[] = [];
    const sizes: number[] = [];
    const sends: number[] = [];
    for (let g = 0; g < known.length; ) {
      const v = X[known[g]! * D + j]!;
      const base = sends.length;
      for (let k = 0; k < offers; k++) sends.push(0);
      let h = g;
      while (h < known.length && X[known[h]! * D + j] === v) {
        sends[base + action[known[h]!]!]!++;
        h++;
      }
      values.push(v);
      sizes.push(h - g);
      g = h;
    }
    const G = values.length;
    for (let k = 0; k < offers; k++) {
      if (total[k] === 0) continue;
      if (missing >= minRows[k]! && missingSends[k] === 0) found.push({ offer_id: offerIds[k]!, feature: features[j]!, customers: `no ${features[j]}`, rows: missing, share: round(missing / n) });
      let start = -1;
      let rows = 0;
      for (let g = 0; g <= G; g++) {
        const empty = g < G && sends[g * offers + k] === 0;
        if (empty) {
          if (start < 0) {
            start = g;
            rows = 0;
          }
          rows += sizes[g]!;
          continue;
        }
        if (start >= 0 && rows >= minRows[k]!) {
          const lo = values[start]!;
          const hi = values[g - 1]!;
          const text = start === 0 && g === G ? `any ${features[j]}` : start === 0 ? `${features[j]} up to ${fmt(hi)}` : g === G ? `${features[j]} of ${fmt(lo)} or more` : `${features[j]} from ${fmt(lo)} to ${fmt(hi)}`;
          found.push({ offer_id: offerIds[k]!, feature: features[j]!, customers: text, rows, share: round(rows / n) });
        }
        start = -1;
      }
    }
  }
  const out: UnsupportedRegion[] = [];
  for (const id of offerIds) out.push(...found.filter((r) => r.offer_id === id).sort((a, b) => b.rows - a.rows).slice(0, 3));
  return out;
}

/** The sentence a training log and the console show for a region. */
export function describeUnsupported(r: UnsupportedRegion): string {
  return `offer ${r.offer_id} was never sent to customers with ${r.customers} (${r.rows.toLocaleString('en-US')} offered rows, ${(r.share * 100).toFixed(1)}%): no model can know how they would answer it, so its probabilities there are extrapolation`;
}

function quantileRaw(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function quantile(sorted: Float64Array, q: number): number {
  return round(quantileRaw(sorted, q));
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}

function round(v: number, digits = 4): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
