import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { csvField } from '../lib/csv';
import { rocAuc } from '../lib/metrics';
import { Rng } from '../lib/random';

/**
 * Tables for the model-quality benchmark and tests: a synthetic customer table whose churn
 * probabilities are known (so the best achievable AUC is known too), with the traits real tables
 * have and that trip trainers up, and the CDNOW churn table built from a real purchase log.
 */
export interface LabelledTable {
  name: string;
  columns: string[];
  rows: (string | number | null)[][];
  label: string;
  positive: string;
  /** The generating probability of each row, when it is known (synthetic tables). */
  truth?: Float64Array;
}

const AGE_BANDS = ['18-24 years', '25-34 years', '35-44 years', '45-54 years', '55-64 years', '65+ years'];
const AGE_EFFECT = [0.9, 0.4, 0, -0.2, -0.1, 0.5];
const DISCOUNT_BANDS = ['0%', '1 - 10%', '11 - 20%', '21 - 30%', '31 - 50%', '51 - 100%'];
const DISCOUNT_EFFECT = [0, -0.15, -0.35, -0.5, -0.6, -0.65];
const TIERS = ['bronze', 'silver', 'gold', 'platinum'];
const TIER_EFFECT = [0.3, 0, -0.3, -0.6];

/**
 * Customers of a made-up retailer with a known churn process:
 * - `store_code`: a 50-level text column (S01..S50) with Zipf-like frequencies and its own effect per level;
 * - `visits_90d`: a count whose effect jumps at 4 visits and more (a threshold effect);
 * - `age_band` and `discount_band`: coded, ordered bins ("25-34 years", "11 - 20%") with non-linear effects;
 * - `tenure_months`: a convex (U-shaped) effect; `spend_90d`: skewed, log-linear;
 * - `days_since_visit`: missing for 12% (never visited), saturating effect; `email_opt_in`: yes/no;
 * - `tier`: four unordered-looking text levels; three pure-noise columns.
 * The intercept is chosen so about `positiveRate` of customers churn (6% by default).
 */
export function syntheticChurnTable(rows: number, seed: number, options: { positiveRate?: number; name?: string } = {}): LabelledTable {
  const rng = new Rng(seed);
  // Level effects and Zipf weights of the store codes are fixed by a seed of their own, so tables of
  // any size and seed share one generating process.
  const levels = new Rng(20261122);
  const storeEffect = Array.from({ length: 50 }, () => levels.normal() * 0.7);
  const storeWeight = Array.from({ length: 50 }, (_, i) => 1 / (i + 1) ** 0.8);
  const storeTotal = storeWeight.reduce((a, b) => a + b, 0);
  const pick = (weights: number[], total: number) => {
    let u = rng.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u <= 0) return i;
    }
    return weights.length - 1;
  };
  const columns = ['customer_id', 'store_code', 'visits_90d', 'age_band', 'discount_band', 'tenure_months', 'spend_90d', 'days_since_visit', 'email_opt_in', 'tier', 'noise_a', 'noise_b', 'noise_c', 'churned'];
  const logits = new Float64Array(rows);
  const out: (string | number | null)[][] = [];
  for (let r = 0; r < rows; r++) {
    const store = pick(storeWeight, storeTotal);
    const engagement = rng.normal();
    const visits = rng.poisson(Math.exp(0.8 + 0.5 * engagement));
    const age = Math.min(5, Math.floor(rng.next() * 6));
    const discount = Math.min(5, Math.floor(Math.abs(rng.normal()) * 2));
    const tenure = Math.round(1 + rng.next() * 96);
    const spend = Math.round(Math.exp(3.5 + 0.8 * engagement + 0.6 * rng.normal()) * 100) / 100;
    const neverVisited = rng.next() < 0.12;
    const daysSince = neverVisited ? null : Math.round(Math.min(365, -Math.log(1 - rng.next()) * 40 * Math.exp(-0.4 * engagement)));
    const optIn = rng.next() < 0.55;
    const tier = pick([4, 3, 2, 1], 10);
    const noise = [rng.normal(), rng.next() * 100, Math.round(rng.next() * 10)];
    const t = (tenure - 48) / 30;
    const z =
      storeEffect[store]! +
      (visits >= 4 ? -1.3 : 0) -
      0.08 * Math.min(visits, 10) +
      AGE_EFFECT[age]! +
      DISCOUNT_EFFECT[discount]! +
      0.55 * t * t -
      0.35 * Math.log1p(spend) +
      (neverVisited ? 0.9 : 0.7 * (1 - Math.exp(-daysSince! / 60))) +
      (optIn ? -0.3 : 0) +
      TIER_EFFECT[tier]!;
    logits[r] = z; // the intercept comes once the table's logits are known
    out.push([
      `c${String(r + 1).padStart(7, '0')}`,
      `S${String(store + 1).padStart(2, '0')}`,
      visits,
      AGE_BANDS[age]!,
      DISCOUNT_BANDS[discount]!,
      tenure,
      spend,
      daysSince,
      optIn ? 'yes' : 'no',
      TIERS[tier]!,
      Math.round(noise[0]! * 1000) / 1000,
      Math.round(noise[1]! * 100) / 100,
      noise[2]!,
      null,
    ]);
  }
  const intercept = interceptFor(logits, options.positiveRate ?? 0.06);
  const truth = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const p = 1 / (1 + Math.exp(-(logits[r]! + intercept)));
    truth[r] = p;
    out[r]![columns.length - 1] = rng.next() < p ? 'yes' : 'no';
  }
  return { name: options.name ?? `synthetic-${rows}`, columns, rows: out, label: 'churned', positive: 'yes', truth };
}

/** The intercept that makes the mean probability equal the wanted rate (bisection). */
function interceptFor(logits: Float64Array, rate: number): number {
  let lo = -20;
  let hi = 20;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    let mean = 0;
    for (const z of logits) mean += 1 / (1 + Math.exp(-(z + mid)));
    mean /= logits.length || 1;
    if (mean > rate) hi = mid;
    else lo = mid;
  }
  return (lo + hi) / 2;
}

/** The AUC of the generating probabilities on a table's own labels: the best any model can expect. */
export function achievableAuc(table: LabelledTable): number | null {
  if (!table.truth) return null;
  const labelIndex = table.columns.indexOf(table.label);
  const y = Int32Array.from(table.rows, (r) => (r[labelIndex] === table.positive ? 1 : 0));
  return rocAuc(table.truth, y);
}

/**
 * A churn table from the real CDNOW purchase log: RFM features over the calibration period (to
 * 1997-09-30, as in the published summary) and, as the label, whether the customer bought nothing
 * in the following nine months (1997-10-01 to 1998-06-30).
 */
export function cdnowChurnTable(fixturesDir = resolve(import.meta.dirname, '../tests/fixtures')): LabelledTable {
  const text = readFileSync(join(fixturesDir, 'cdnow', 'cdnow_master_transactions.csv'), 'utf8');
  const end = '1997-09-30';
  const perCustomer = new Map<string, { days: Map<string, number>; later: boolean }>();
  for (const line of text.split('\n').slice(1)) {
    if (!line) continue;
    const [id, date, , dollars] = line.split(',') as [string, string, string, string];
    const c = perCustomer.get(id) ?? { days: new Map(), later: false };
    if (date <= end) c.days.set(date, (c.days.get(date) ?? 0) + Number(dollars));
    else c.later = true;
    perCustomer.set(id, c);
  }
  const day = (d: string) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
  const rows: (string | number | null)[][] = [];
  for (const [id, c] of perCustomer) {
    const dates = [...c.days.keys()].sort();
    if (!dates.length) continue;
    const spend = dates.map((d) => c.days.get(d)!);
    const repeat = spend.slice(1);
    rows.push([
      id,
      dates.length - 1,
      day(end) - day(dates[dates.length - 1]!),
      day(end) - day(dates[0]!),
      repeat.length ? Number((repeat.reduce((a, b) => a + b, 0) / repeat.length).toFixed(2)) : null,
      Number(spend[0]!.toFixed(2)),
      c.later ? 'no' : 'yes',
    ]);
  }
  return { name: 'cdnow-churn', columns: ['customer_id', 'frequency', 'recency_days', 'age_days', 'monetary_mean', 'first_spend', 'churned'], rows, label: 'churned', positive: 'yes' };
}

/**
 * The numeric table the boosted-tree speed benchmarks train on: `cols` standard-normal columns
 * (every third a rounded count), six decimals, a logistic label of the first five with one
 * curvature; `csv` has the label first as `y`, then `f0`, `f1`, …
 */
export function speedTable(rows: number, cols = 10, seed = 1): { X: Float64Array; y: Int32Array; cols: number; csv: () => string } {
  const rng = new Rng(seed);
  const X = new Float64Array(rows * cols);
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let z = -1;
    for (let c = 0; c < cols; c++) {
      const v = rng.normal();
      X[r * cols + c] = c % 3 === 0 ? Math.round(v * 5) : Number(v.toFixed(6));
      z += (c < 5 ? 0.5 : 0) * v * (c % 2 ? 1 : -1) + (c === 1 ? v * v * 0.3 : 0);
    }
    y[r] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  const csv = () => {
    const lines = [`y,${Array.from({ length: cols }, (_, c) => `f${c}`).join(',')}`];
    for (let r = 0; r < rows; r++) lines.push(`${y[r]},${Array.from(X.subarray(r * cols, (r + 1) * cols)).join(',')}`);
    return `${lines.join('\n')}\n`;
  };
  return { X, y, cols, csv };
}

/** A table as CSV text. */
export function toCsv(table: Pick<LabelledTable, 'columns' | 'rows'>): string {
  return `${[table.columns.join(','), ...table.rows.map((r) => r.map(csvField).join(','))].join('\n')}\n`;
}

/** Splits a table's rows into two tables (seeded, stratified by the label). */
export function splitTable(table: LabelledTable, testShare: number, seed: number): { train: LabelledTable; test: LabelledTable } {
  const rng = new Rng(seed);
  const labelIndex = table.columns.indexOf(table.label);
  const train: number[] = [];
  const test: number[] = [];
  for (const cls of [true, false]) {
    const idx = table.rows.map((r, i) => [r, i] as const).filter(([r]) => (r[labelIndex] === table.positive) === cls).map(([, i]) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
    const cut = Math.round(idx.length * testShare);
    test.push(...idx.slice(0, cut));
    train.push(...idx.slice(cut));
  }
  const part = (rows: number[], suffix: string): LabelledTable => ({
    ...table,
    name: `${table.name}-${suffix}`,
    rows: rows.sort((a, b) => a - b).map((i) => table.rows[i]!),
    truth: table.truth ? Float64Array.from(rows, (i) => table.truth![i]!) : undefined,
  });
  return { train: part(train, 'train'), test: part(test, 'test') };
}
