import { aucWithInterval, brierScore, delongTest, liftAt, normalCdf, rocAuc } from '../metrics';
import type { ChurnOutcome, OfferOutcome } from '../warehouse/outcomes';
import type { PredictionRecord } from './log';

/**
 * Realised quality: logged predictions joined with what happened afterwards. Pure functions:
 * records and outcomes in, figures out.
 *
 * A prediction's reference date is the date its features were valid for (`as_of`), or the day it
 * was made when the warehouse does not say. Its churn outcome is the customer's first churn
 * snapshot dated from the reference date to `horizonDays` later; its offer outcomes are the offers
 * made to the customer in that window. A customer predicted several times by the same version for
 * the same reference date counts once (the latest prediction).
 */

export interface CalibrationDecile {
  decile: number;
  customers: number;
  mean_predicted: number;
  observed_rate: number;
}

export interface ChurnQuality {
  customers: number;
  churned: number;
  observed_rate: number;
  mean_predicted: number;
  auc: number | null;
  /** 95% confidence interval of the AUC (DeLong). */
  auc_ci95: [number, number] | null;
  brier: number;
  top_decile_lift: number | null;
  calibration: CalibrationDecile[];
}

export interface NboQuality {
  /**
   * Every offer made to the customers in their window, judged by what happened to it: the model's
   * probability for the offer actually sent against whether it was accepted (for acceptance models,
   * predicted against realised acceptance).
   */
  offers_made: {
    offers: number;
    accepted: number;
    observed_rate: number;
    mean_predicted: number;
    auc: number | null;
    auc_ci95: [number, number] | null;
    brier: number;
    calibration: CalibrationDecile[];
  } | null;
  /** Offers made to customers in their window, split by whether the made offer was the recommended one. */
  recommended: { offers: number; accepted: number; rate: number | null };
  other: { offers: number; accepted: number; rate: number | null };
  /** Acceptance of recommended offers divided by acceptance of the others. */
  lift: number | null;
  /** Two-sided p-value of the two-proportion z-test (recommended against other). */
  p_value: number | null;
}

export interface PeriodQuality<Q> {
  /** ISO week of the predictions (e.g. 2026-W47), or "all". */
  period: string;
  predictions: number;
  /** Predictions that met an outcome. */
  matched: number;
  quality: Q | null;
}

export interface VersionQuality<Q> {
  /** Registry version, or null for mock answers. */
  version: number | null;
  aliases: string[];
  /** Whether this version's predictions were shadow ones (a challenger's, never returned). */
  shadow: boolean;
  /** The version's holdout AUC from training, for comparison (churn). */
  holdout_auc?: number | null;
  overall: PeriodQuality<Q>;
  weeks: PeriodQuality<Q>[];
}

export interface QualityReport<Q = ChurnQuality | NboQuality> {
  model: string;
  computed_at: string;
  since: string | null;
  horizon_days: number;
  predictions_read: number;
  /** Log files read, of those in the window (days with more than MONITOR_MAX_FILES_PER_DAY are sampled). */
  log_files: { read: number; total: number };
  outcome_range: { from: string; to: string } | null;
  versions: VersionQuality<Q>[];
}

/** A deduplicated prediction with its reference date. */
interface Reference {
  record: PredictionRecord;
  ref: string;
}

export interface ReportOptions {
  horizonDays: number;
  since: string | null;
  computedAt: string;
  range: { from: string; to: string } | null;
  files?: { read: number; total: number };
}

export function referenceDate(record: PredictionRecord): string {
  return record.as_of ?? record.t.slice(0, 10);
}

export function addDays(day: string, days: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

/** The range of outcome dates the records need: from their first reference date to the last one's horizon. */
export function outcomeRange(records: readonly PredictionRecord[], horizonDays: number): { from: string; to: string } | null {
  if (records.length === 0) return null;
  let lo = '9999-12-31';
  let hi = '0000-01-01';
  for (const r of records) {
    const d = referenceDate(r);
    if (d < lo) lo = d;
    if (d > hi) hi = d;
  }
  return { from: lo, to: addDays(hi, horizonDays) };
}

/** ISO 8601 week of a timestamp, e.g. 2026-W47. */
export function isoWeek(t: string): string {
  const d = new Date(Date.UTC(Number(t.slice(0, 4)), Number(t.slice(5, 7)) - 1, Number(t.slice(8, 10))));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** The latest record (by answer time) for each key. */
function latestBy(records: readonly PredictionRecord[], key: (r: PredictionRecord) => string): Map<string, PredictionRecord> {
  const latest = new Map<string, PredictionRecord>();
  for (const r of records) {
    const k = key(r);
    const held = latest.get(k);
    if (!held || held.t < r.t) latest.set(k, r);
  }
  return latest;
}

/** Groups records by (version, shadow), one per customer and reference date (the latest). */
function byVersion(records: readonly PredictionRecord[]): Map<string, { version: number | null; shadow: boolean; aliases: Set<string>; refs: Reference[] }> {
  const latest = latestBy(records, (r) => `${r.version ?? 'mock'}|${r.shadow ? 1 : 0}|${r.customer_id}|${referenceDate(r)}`);
  const groups = new Map<string, { version: number | null; shadow: boolean; aliases: Set<string>; refs: Reference[] }>();
  for (const record of latest.values()) {
    const key = `${record.version ?? 'mock'}|${record.shadow ? 1 : 0}`;
    const group = groups.get(key) ?? { version: record.version, shadow: record.shadow, aliases: new Set<string>(), refs: [] };
    if (record.alias) group.aliases.add(record.alias);
    group.refs.push({ record, ref: referenceDate(record) });
    groups.set(key, group);
  }
  return groups;
}

/** The customer's first churn outcome within the horizon of a reference date. */
export function churnOutcomeFor(outcomes: readonly ChurnOutcome[] | undefined, ref: string, horizonDays: number): boolean | null {
  if (!outcomes) return null;
  const end = addDays(ref, horizonDays);
  for (const o of outcomes) if (o.date >= ref && o.date < end) return o.churned;
  return null;
}

/** What a report tallies for one version and period. */
interface Tally {
  predictions: number;
  matched: number;
}

/**
 * Per (version, shadow) group of the records: a tally per ISO week of the predictions and one
 * overall, each turned into the figures of its period.
 */
function qualityReport<T extends Tally, Q>(
  model: string,
  records: readonly PredictionRecord[],
  options: ReportOptions,
  measure: { empty: () => T; add: (tally: T, reference: Reference) => void; quality: (tally: T) => Q },
): QualityReport<Q> {
  const versions: VersionQuality<Q>[] = [];
  for (const group of byVersion(records).values()) {
    const weeks = new Map<string, T>();
    const all = measure.empty();
    for (const reference of group.refs) {
      const week = isoWeek(reference.record.t);
      const tally = weeks.get(week) ?? measure.empty();
      weeks.set(week, tally);
      for (const t of [tally, all]) {
        t.predictions++;
        measure.add(t, reference);
      }
    }
    const period = (name: string, t: T): PeriodQuality<Q> => ({ period: name, predictions: t.predictions, matched: t.matched, quality: t.matched ? measure.quality(t) : null });
    versions.push({
      version: group.version,
      aliases: [...group.aliases].sort(),
      shadow: group.shadow,
      overall: period('all', all),
      weeks: [...weeks.entries()].sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => period(k, v)),
    });
  }
  versions.sort((x, y) => (y.version ?? 0) - (x.version ?? 0) || Number(x.shadow) - Number(y.shadow));
  return {
    model,
    computed_at: options.computedAt,
    since: options.since,
    horizon_days: options.horizonDays,
    predictions_read: records.length,
    log_files: options.files ?? { read: 0, total: 0 },
    outcome_range: options.range,
    versions,
  };
}

/** Realised churn quality per version and week. */
export function churnQualityReport(records: readonly PredictionRecord[], outcomes: ReadonlyMap<string, readonly ChurnOutcome[]>, options: ReportOptions): QualityReport<ChurnQuality> {
  const churn = records.filter((r) => r.model === 'churn' && r.churn_probability !== undefined);
  return qualityReport('churn', churn, options, {
    empty: () => ({ predictions: 0, matched: 0, p: [] as number[], y: [] as number[] }),
    add: (t, { record, ref }) => {
      const y = churnOutcomeFor(outcomes.get(record.customer_id), ref, options.horizonDays);
      if (y === null) return;
      t.matched++;
      t.p.push(record.churn_probability!);
      t.y.push(y ? 1 : 0);
    },
    quality: (t) => churnQuality(t.p, t.y),
  });
}

/** AUC with its interval, Brier score, top-decile lift and calibration by decile of predicted probability. */
export function churnQuality(p: number[], y: number[]): ChurnQuality {
  const churned = y.reduce((a, b) => a + b, 0);
  const both = churned > 0 && churned < y.length;
  // DeLong's computation yields the AUC with its interval; with a single case of a class it has no
  // variance, and the AUC alone is taken from the ranks.
  const interval = both ? aucWithInterval(p, y) : null;
  const auc = interval === null ? null : Number.isFinite(interval.auc) ? interval.auc : rocAuc(p, y);
  return {
    customers: y.length,
    churned,
    observed_rate: round(churned / y.length),
    mean_predicted: round(p.reduce((a, b) => a + b, 0) / p.length),
    auc: auc === null ? null : round(auc),
    auc_ci95: interval && Number.isFinite(interval.se) && Number.isFinite(interval.lower) ? [round(interval.lower), round(interval.upper)] : null,
    brier: round(brierScore(p, y)),
    top_decile_lift: churned > 0 ? round(liftAt(p, y, 0.1)) : null,
    calibration: deciles(p, y),
  };
}

/** Predicted against observed rate in ten equal-count groups by predicted probability. */
function deciles(p: number[], y: number[]): CalibrationDecile[] {
  const order = p.map((_, i) => i).sort((a, b) => p[a]! - p[b]!);
  const out: CalibrationDecile[] = [];
  for (let d = 0; d < 10; d++) {
    const lo = Math.floor((d * order.length) / 10);
    const hi = Math.floor(((d + 1) * order.length) / 10);
    if (hi <= lo) continue;
    let sp = 0;
    let sy = 0;
    for (let k = lo; k < hi; k++) {
      sp += p[order[k]!]!;
      sy += y[order[k]!]!;
    }
    out.push({ decile: d + 1, customers: hi - lo, mean_predicted: round(sp / (hi - lo)), observed_rate: round(sy / (hi - lo)) });
  }
  return out;
}

/** Realised NBO quality per version and week: how often made offers were accepted when they were the recommended one. */
export function nboQualityReport(records: readonly PredictionRecord[], outcomes: ReadonlyMap<string, readonly OfferOutcome[]>, options: ReportOptions): QualityReport<NboQuality> {
  const nbo = records.filter((r) => r.model === 'nbo' && r.offer_id !== undefined);
  return qualityReport('nbo', nbo, options, {
    empty: emptyTally,
    add: (t, { record, ref }) => {
      const made = offersMadeFor(outcomes.get(record.customer_id), ref, options.horizonDays);
      if (made.length) t.matched++;
      for (const o of made) {
        const side = o.offerId === record.offer_id ? t.recommended : t.other;
        side.offers++;
        if (o.accepted) side.accepted++;
        const p = record.offer_probabilities?.[o.offerId];
        if (p !== undefined) {
          t.p.push(p);
          t.y.push(o.accepted ? 1 : 0);
        }
      }
    },
    quality: nboQuality,
  });
}

interface NboTally extends Tally {
  recommended: { offers: number; accepted: number };
  other: { offers: number; accepted: number };
  /** The model's probability of each offer made, and whether it was accepted. */
  p: number[];
  y: number[];
}

function emptyTally(): NboTally {
  return { predictions: 0, matched: 0, recommended: { offers: 0, accepted: 0 }, other: { offers: 0, accepted: 0 }, p: [], y: [] };
}

/** The offers made to a customer within the horizon of a reference date. */
export function offersMadeFor(outcomes: readonly OfferOutcome[] | undefined, ref: string, horizonDays: number): OfferOutcome[] {
  const end = addDays(ref, horizonDays);
  return (outcomes ?? []).filter((o) => o.offeredAt >= ref && o.offeredAt < end);
}

function nboQuality(t: NboTally): NboQuality {
  const rate = (s: { offers: number; accepted: number }) => (s.offers ? round(s.accepted / s.offers) : null);
  const r = t.recommended;
  const o = t.other;
  let pValue: number | null = null;
  if (r.offers && o.offers) {
    const pooled = (r.accepted + o.accepted) / (r.offers + o.offers);
    const se = Math.sqrt(pooled * (1 - pooled) * (1 / r.offers + 1 / o.offers));
    pValue = se > 0 ? round(2 * (1 - normalCdf(Math.abs(r.accepted / r.offers - o.accepted / o.offers) / se)), 6) : null;
  }
  const rr = rate(r);
  const ro = rate(o);
  let made: NboQuality['offers_made'] = null;
  if (t.p.length) {
    const q = churnQuality(t.p, t.y);
    made = { offers: q.customers, accepted: q.churned, observed_rate: q.observed_rate, mean_predicted: q.mean_predicted, auc: q.auc, auc_ci95: q.auc_ci95, brier: q.brier, calibration: q.calibration };
  }
  return { offers_made: made, recommended: { ...r, rate: rr }, other: { ...o, rate: ro }, lift: rr !== null && ro ? round(rr / ro) : null, p_value: pValue };
}

/** Which logged predictions a side of a comparison takes: an alias as logged, or a version number. */
export type Contender = { alias: string } | { version: number };

export function parseContender(value: string): Contender {
  return /^\d+$/.test(value) ? { version: Number(value) } : { alias: value };
}

function matches(record: PredictionRecord, c: Contender): boolean {
  return 'version' in c ? record.version === c.version : record.alias === c.alias;
}

export interface ModelComparison {
  model: 'churn' | 'nbo';
  a: { label: string; versions: number[]; auc: number | null };
  b: { label: string; versions: number[]; auc: number | null };
  /** Churn: customers both sides predicted for the same reference date, with an outcome. NBO: offers made to such customers. */
  customers: number;
  /** Churn: churned customers. NBO: accepted offers. */
  churned: number;
  /** AUC of b minus AUC of a, with DeLong's paired test. */
  difference: number | null;
  se: number | null;
  p_value: number | null;
  /** b wins when its AUC is higher and the difference is significant at `alpha`. */
  winner: 'a' | 'b' | null;
  alpha: number;
  verdict: string;
}

/** The earlier name, for churn comparisons. */
export type ChurnComparison = ModelComparison;

/**
 * Two sides on the same realised outcomes, compared by DeLong's paired test of their AUCs. Churn:
 * every customer both predicted for the same reference date whose churn outcome is known. NBO:
 * every offer made to such a customer in the window, each side's probability for the offer that was
 * actually sent against whether it was accepted.
 */
export function compareModels(
  model: 'churn' | 'nbo',
  records: readonly PredictionRecord[],
  outcomes: { churn?: ReadonlyMap<string, readonly ChurnOutcome[]>; offers?: ReadonlyMap<string, readonly OfferOutcome[]> },
  sides: { a: Contender; b: Contender; aLabel: string; bLabel: string },
  options: { horizonDays: number; alpha?: number },
): ModelComparison {
  const alpha = options.alpha ?? 0.05;
  const usable = (r: PredictionRecord) => r.model === model && r.source === 'model' && (model === 'churn' ? r.churn_probability !== undefined : r.offer_probabilities !== undefined);
  const pick = (c: Contender) => latestBy(records.filter((r) => usable(r) && matches(r, c)), (r) => `${r.customer_id}|${referenceDate(r)}`);
  const A = pick(sides.a);
  const B = pick(sides.b);
  const pa: number[] = [];
  const pb: number[] = [];
  const y: number[] = [];
  const versionsA = new Set<number>();
  const versionsB = new Set<number>();
  for (const [key, ra] of A) {
    const rb = B.get(key);
    if (!rb || ra.version === rb.version) continue;
    const before = y.length;
    if (model === 'churn') {
      const outcome = churnOutcomeFor(outcomes.churn?.get(ra.customer_id), referenceDate(ra), options.horizonDays);
      if (outcome === null) continue;
      pa.push(ra.churn_probability!);
      pb.push(rb.churn_probability!);
      y.push(outcome ? 1 : 0);
    } else {
      for (const o of offersMadeFor(outcomes.offers?.get(ra.customer_id), referenceDate(ra), options.horizonDays)) {
        const a = ra.offer_probabilities![o.offerId];
        const b = rb.offer_probabilities![o.offerId];
        if (a === undefined || b === undefined) continue;
        pa.push(a);
        pb.push(b);
        y.push(o.accepted ? 1 : 0);
      }
    }
    if (y.length === before) continue;
    versionsA.add(ra.version!);
    versionsB.add(rb.version!);
  }
  const positives = y.reduce((s, v) => s + v, 0);
  const side = (label: string, versions: Set<number>, auc: number | null) => ({ label, versions: [...versions].sort((p, q) => p - q), auc: auc === null ? null : round(auc) });
  const what = model === 'churn' ? { units: 'customers', positive: 'churned', negative: 'stayed', metric: 'realised AUC' } : { units: 'offers made', positive: 'accepted', negative: 'refused', metric: 'realised AUC of P(accept) of the offers made' };
  if (positives < 2 || y.length - positives < 2) {
    return {
      model,
      a: side(sides.aLabel, versionsA, null),
      b: side(sides.bLabel, versionsB, null),
      customers: y.length,
      churned: positives,
      difference: null,
      se: null,
      p_value: null,
      winner: null,
      alpha,
      verdict: `Not enough realised outcomes to compare: ${y.length} ${what.units} predicted by both with a known outcome, ${positives} ${what.positive} (at least 2 ${what.positive} and 2 ${what.negative} are needed).`,
    };
  }
  const test = delongTest(pa, pb, y);
  const winner = test.p_value < alpha ? (test.difference > 0 ? 'b' : 'a') : null;
  const verdict =
    winner === 'b'
      ? `${sides.bLabel} wins: ${what.metric} ${round(test.auc_b)} against ${round(test.auc_a)} (difference ${signed(test.difference)}, p = ${formatP(test.p_value)}).`
      : winner === 'a'
        ? `${sides.bLabel} loses: ${what.metric} ${round(test.auc_b)} against ${round(test.auc_a)} for ${sides.aLabel} (difference ${signed(test.difference)}, p = ${formatP(test.p_value)}).`
        : `No significant difference: ${what.metric} ${round(test.auc_b)} for ${sides.bLabel} against ${round(test.auc_a)} (difference ${signed(test.difference)}, p = ${formatP(test.p_value)} ≥ ${alpha}).`;
  return {
    model,
    a: side(sides.aLabel, versionsA, test.auc_a),
    b: side(sides.bLabel, versionsB, test.auc_b),
    customers: y.length,
    churned: positives,
    difference: round(test.difference),
    se: round(test.se, 6),
    p_value: round(test.p_value, 6),
    winner,
    alpha,
    verdict,
  };
}

/** Churn's comparison (compareModels for churn). */
export function compareChurn(
  records: readonly PredictionRecord[],
  outcomes: ReadonlyMap<string, readonly ChurnOutcome[]>,
  sides: { a: Contender; b: Contender; aLabel: string; bLabel: string },
  options: { horizonDays: number; alpha?: number },
): ModelComparison {
  return compareModels('churn', records, { churn: outcomes }, sides, options);
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : ''}${round(v)}`;
}

function formatP(p: number): string {
  return p < 0.0001 ? '< 0.0001' : String(round(p, 4));
}

function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
