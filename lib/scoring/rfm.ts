import rfmConfig from '../../models/rfm.json';
import { ConfigError } from '../errors';
import { DEFAULTED_RECENCY } from '../catalog';

/**
 * RFM: recency, frequency and monetary value scored 1-5 against cut points (quintiles of the whole
 * customer base, or fixed values), and mapped to a named segment by ordered rules. Pure functions.
 */
export interface RfmCutPoints {
  /** Four increasing cut points per measure. */
  recency_days: number[];
  frequency: number[];
  monetary: number[];
  /** Where the cut points came from. */
  basis: 'quintiles' | 'fixed';
  /** Customers the quintiles were computed over (quintiles only). */
  customers?: number;
}

export interface RfmSegmentRule {
  name: string;
  r: [number, number];
  f: [number, number];
  m: [number, number];
}

export interface RfmScores {
  recency_days: number | null;
  frequency: number | null;
  monetary: number | null;
  r_score: number;
  f_score: number;
  m_score: number;
  rfm_score: string;
  segment: string;
}

export const RFM_SEGMENTS = rfmConfig.segments as RfmSegmentRule[];
export const FIXED_CUT_POINTS: RfmCutPoints = { ...rfmConfig.fixed_cut_points, basis: 'fixed' };

/** The segment of a score cell: the first rule that contains it. Throws if none does (a config error). */
export function segmentOf(r: number, f: number, m: number, rules: RfmSegmentRule[] = RFM_SEGMENTS): string {
  for (const rule of rules) {
    if (r >= rule.r[0] && r <= rule.r[1] && f >= rule.f[0] && f <= rule.f[1] && m >= rule.m[0] && m <= rule.m[1]) return rule.name;
  }
  throw new ConfigError(`No RFM segment rule covers R=${r} F=${f} M=${m}`);
}

/**
 * Score 1-5 against four cut points. Higher values score higher, unless `lowerIsBetter`
 * (recency: a recent purchase scores 5). A value equal to a cut point falls in the lower band.
 */
export function scoreAgainst(value: number, cuts: number[], lowerIsBetter: boolean): number {
  let above = 0;
  // An index loop: an iterator here allocated per customer in whole-chunk scoring.
  for (let i = 0; i < cuts.length; i++) if (value > cuts[i]!) above++;
  return lowerIsBetter ? 5 - above : 1 + above;
}

/**
 * Scores one customer. An unknown recency (empty, or the warehouse's 999 default) scores R=1, as a
 * customer with no recent purchase; a missing frequency or monetary value counts as zero.
 */
export function scoreRfm(
  measures: { recency_days: number | null; frequency: number | null; monetary: number | null },
  cuts: RfmCutPoints,
): RfmScores {
  return rfmScoresOfCell(rfmCell(measures.recency_days, measures.frequency, measures.monetary, cuts), measures);
}

/** A customer's RFM answer from the cell its measures fall in. */
export function rfmScoresOfCell(cell: number, measures: { recency_days: number | null; frequency: number | null; monetary: number | null }): RfmScores {
  const [r, f, m] = cellScores(cell);
  return {
    recency_days: measures.recency_days,
    frequency: measures.frequency,
    monetary: measures.monetary,
    r_score: r,
    f_score: f,
    m_score: m,
    rfm_score: RFM_CELLS[cell]!.score,
    segment: RFM_CELLS[cell]!.segment,
  };
}

/** The R, F and M scores of a cell index (see RFM_CELLS). */
function cellScores(cell: number): [number, number, number] {
  return [Math.floor(cell / 25) + 1, (Math.floor(cell / 5) % 5) + 1, (cell % 5) + 1];
}

/**
 * Every cell's score ("111" to "555") and segment, indexed (r-1)*25 + (f-1)*5 + (m-1): scoring
 * reads the table. Built when the module loads, so rules that leave a cell uncovered fail at once.
 */
export const RFM_CELLS: readonly { score: string; segment: string }[] = Array.from({ length: 125 }, (_, i) => {
  const [r, f, m] = cellScores(i);
  return { score: `${r}${f}${m}`, segment: segmentOf(r, f, m) };
});

/**
 * The cell index of a customer's measures (see RFM_CELLS). An unknown recency (empty, or the
 * warehouse's 999 default) scores R=1; a missing frequency or monetary value counts as zero.
 */
export function rfmCell(recency: number | null, frequency: number | null, monetary: number | null, cuts: RfmCutPoints): number {
  return cellOf(recency ?? NaN, frequency ?? NaN, monetary ?? NaN, cuts);
}

/**
 * `rfmCell` for every row of a feature matrix (row-major, `width` values per row, NaN for a missing
 * value), into `cells`: the segment worker's path, with no value boxed or object made per customer.
 */
export function rfmCells(X: Float64Array, n: number, width: number, columns: { recency: number; frequency: number; monetary: number }, cuts: RfmCutPoints, cells: Uint8Array): void {
  for (let i = 0; i < n; i++) cells[i] = cellOf(X[i * width + columns.recency]!, X[i * width + columns.frequency]!, X[i * width + columns.monetary]!, cuts);
}

/** The cell of measures given as numbers, NaN for missing. */
function cellOf(recency: number, frequency: number, monetary: number, cuts: RfmCutPoints): number {
  const r = recency !== DEFAULTED_RECENCY && Number.isFinite(recency) ? scoreAgainst(recency, cuts.recency_days, true) : 1;
  const f = scoreAgainst(Number.isNaN(frequency) ? 0 : frequency, cuts.frequency, false);
  const m = scoreAgainst(Number.isNaN(monetary) ? 0 : monetary, cuts.monetary, false);
  return (r - 1) * 25 + (f - 1) * 5 + (m - 1);
}

/** The 20/40/60/80% quantiles (linear interpolation, as PERCENTILE_CONT) of sorted values. */
export function quintileCuts(sorted: ArrayLike<number>): number[] {
  return [0.2, 0.4, 0.6, 0.8].map((q) => percentileCont(sorted, q));
}

export function percentileCont(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Transaction {
  customerId: string;
  /** ISO date, YYYY-MM-DD. */
  date: string;
  amount: number;
}

export interface TransactionSummary {
  customerId: string;
  firstPurchase: string;
  lastPurchase: string;
  /** Distinct purchase days. */
  purchaseDays: number;
  /** Repeat purchase days: purchaseDays - 1. */
  repeatPurchases: number;
  /** Days from the last purchase to the as-of date. */
  recencyDays: number;
  /** Days from the first purchase to the as-of date. */
  ageDays: number;
  /** Days from first to last purchase. */
  activeSpanDays: number;
  monetaryTotal: number;
  /** Mean spend per repeat purchase day (0 without repeats). */
  monetaryMeanRepeat: number;
}

/**
 * RFM measures from a raw purchase log, up to and including `asOf`: purchases on the same day
 * count as one purchase (their amounts summed), as the RFM literature and the CDNOW summary do.
 */
export function summarizeTransactions(transactions: Iterable<Transaction>, asOf: string): Map<string, TransactionSummary> {
  const days = new Map<string, Map<string, number>>();
  for (const t of transactions) {
    if (t.date > asOf) continue;
    const perDay = days.get(t.customerId) ?? new Map<string, number>();
    perDay.set(t.date, (perDay.get(t.date) ?? 0) + t.amount);
    days.set(t.customerId, perDay);
  }
  const dayNumber = (d: string) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
  const out = new Map<string, TransactionSummary>();
  for (const [customerId, perDay] of days) {
    const dates = [...perDay.keys()].sort();
    const spend = dates.map((d) => perDay.get(d)!);
    const repeat = spend.slice(1);
    out.set(customerId, {
      customerId,
      firstPurchase: dates[0]!,
      lastPurchase: dates[dates.length - 1]!,
      purchaseDays: dates.length,
      repeatPurchases: dates.length - 1,
      recencyDays: dayNumber(asOf) - dayNumber(dates[dates.length - 1]!),
      ageDays: dayNumber(asOf) - dayNumber(dates[0]!),
      activeSpanDays: dayNumber(dates[dates.length - 1]!) - dayNumber(dates[0]!),
      monetaryTotal: spend.reduce((a, b) => a + b, 0),
      monetaryMeanRepeat: repeat.length ? repeat.reduce((a, b) => a + b, 0) / repeat.length : 0,
    });
  }
  return out;
}
