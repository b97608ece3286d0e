import { toBool, toIsoDate, type Warehouse } from './index';
import { FEATURES } from '../catalog';
import { q, table } from './schema';

/** Rows of a history table as columns: raw features (NaN = missing), labels and timestamps. */
export interface HistoryColumns {
  rows: number;
  /** Row-major [rows][FEATURES.length]. */
  X: Float64Array;
  customerIds: string[];
  /** ISO date (churn snapshots) or timestamp (offers) of each row. */
  times: string[];
  /** Churn: 0/1. Offers: the offer id. */
  labels: (number | string)[];
}

/**
 * A seeded sample of customers, drawn in SQL: a customer is in when the first 8 hex digits of
 * md5(customer id, ':', seed) fall below share x 16^8. The same customers for the same seed and
 * share, on any engine with md5 (PostgreSQL, Redshift), whatever the physical row order.
 */
export interface CustomerSample {
  share: number;
  seed: number;
}

/** The SQL condition of a sample, on a customer id column. */
function sampleCondition(column: string, sample: CustomerSample): string {
  const threshold = Math.min(0xffffffff, Math.floor(sample.share * 0x100000000)).toString(16).padStart(8, '0');
  return `substr(md5(CAST(${column} AS VARCHAR) || ':${Math.trunc(sample.seed)}'), 1, 8) < '${threshold}'`;
}

/** Rows per snapshot date of the churn history, oldest first. */
export async function churnSnapshots(warehouse: Warehouse): Promise<{ date: string; rows: number }[]> {
  const ch = warehouse.cfg.churn_history;
  const t = table(warehouse.cfg, ch.table);
  const result = await warehouse.run<{ d: string | Date; n: string | number }>(`SELECT ${q(ch.snapshot_date)} AS d, COUNT(*) AS n FROM ${t} GROUP BY ${q(ch.snapshot_date)} ORDER BY ${q(ch.snapshot_date)}`);
  return result.rows.map((r) => ({ date: toIsoDate(r.d), rows: Number(r.n) }));
}

/**
 * Reads the churn history one snapshot date at a time (no ORDER BY over the whole table, which a
 * large warehouse would have to sort; each snapshot comes ordered by customer, so the same data
 * gives the same rows in the same order whatever its physical order), reporting progress per
 * snapshot. With `sample`, snapshots before the latest keep only the sampled customers; the latest
 * is read whole.
 */
export async function readChurnHistory(
  warehouse: Warehouse,
  options: { onProgress?: (done: number, total: number, rows: number) => void; sample?: CustomerSample | null } = {},
): Promise<HistoryColumns> {
  const ch = warehouse.cfg.churn_history;
  const t = table(warehouse.cfg, ch.table);
  const dates = (await churnSnapshots(warehouse)).map((s) => s.date);
  const out = emptyColumns();
  for (let i = 0; i < dates.length; i++) {
    const sampled = options.sample && i < dates.length - 1 ? ` AND ${sampleCondition(q(ch.customer_id), options.sample)}` : '';
    const result = await warehouse.run<Record<string, unknown>>(
      `SELECT ${q(ch.customer_id)} AS customer_id, ${featureSelect(warehouse)}, ${q(ch.churned)} AS label
       FROM ${t} WHERE ${q(ch.snapshot_date)} = $1${sampled} ORDER BY ${q(ch.customer_id)}`,
      [dates[i]],
    );
    append(out, result.rows, () => dates[i]!, (row) => (toBool(row.label) ? 1 : 0));
    options.onProgress?.(i + 1, dates.length, out.customerIds.length);
  }
  return finish(out);
}

/**
 * Every offer made, accepted or refused, as columns: what next-best-offer models learn acceptance
 * from. `propensity` is the logged chance of the choice where the warehouse has the column.
 */
export interface OfferLog {
  rows: number;
  /** Row-major [rows][FEATURES.length]: the features the customer had when the offer was made (NaN = missing). */
  X: Float64Array;
  customerIds: string[];
  /** ISO timestamp of each offer. */
  offeredAt: string[];
  offerIds: string[];
  accepted: Uint8Array;
  /** Logged P(this offer was chosen | the customer), or null when the warehouse has no such column. */
  propensity: Float64Array | null;
  /** Why there are no logged propensities (no column mapped, or the mapped column is missing). */
  propensityNote: string | null;
}

/**
 * Reads every offer of the offer history, one calendar month at a time, each in a fixed order, with
 * progress per month. A propensity column that is mapped but missing from the table is not an error:
 * the logging policy is then estimated from the history, and `propensityNote` says why.
 */
export async function readOfferLog(warehouse: Warehouse, options: { onProgress?: (done: number, total: number, rows: number) => void } = {}): Promise<OfferLog> {
  const oh = warehouse.cfg.offer_history;
  const t = table(warehouse.cfg, oh.table);
  const range = (
    await warehouse.run<{ lo: Date | string | null; hi: Date | string | null }>(`SELECT MIN(${q(oh.offered_at)}) AS lo, MAX(${q(oh.offered_at)}) AS hi FROM ${t}`)
  ).rows[0];
  let propensityColumn = oh.propensity ?? null;
  let propensityNote: string | null = propensityColumn ? null : 'no propensity column is mapped (models/warehouse.json offer_history.propensity)';
  const out = { values: [] as number[], customerIds: [] as string[], offeredAt: [] as string[], offerIds: [] as string[], accepted: [] as number[], propensity: [] as number[] };
  const months = range?.lo && range.hi ? monthStarts(new Date(range.lo), new Date(range.hi)) : [];
  for (let i = 0; i < months.length; i++) {
    const from = months[i]!;
    const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
    const query = (column: string | null) =>
      warehouse.run<Record<string, unknown>>(
        `SELECT ${q(oh.customer_id)} AS customer_id, ${featureSelect(warehouse)}, ${q(oh.offered_at)} AS at, ${q(oh.offer_id)} AS offer_id, ${q(oh.accepted)} AS accepted${column ? `, ${q(column)} AS propensity` : ''}
         FROM ${t} WHERE ${q(oh.offered_at)} >= $1 AND ${q(oh.offered_at)} < $2
         ORDER BY ${q(oh.offered_at)}, ${q(oh.customer_id)}, ${q(oh.offer_id)}`,
        [from.toISOString(), to.toISOString()],
      );
    let result;
    try {
      result = await query(propensityColumn);
    } catch (error) {
      if (!propensityColumn || !isUndefinedColumn(error)) throw error;
      propensityNote = `${oh.table} has no column "${propensityColumn}" (mapped as offer_history.propensity)`;
      propensityColumn = null;
      result = await query(null);
    }
    for (const row of result.rows) {
      for (let f = 0; f < FEATURES.length; f++) {
        const v = row[`f${f}`];
        out.values.push(v === null || v === undefined ? NaN : Number(v));
      }
      out.customerIds.push(String(row.customer_id));
      out.offeredAt.push(new Date(row.at as string).toISOString());
      out.offerIds.push(String(row.offer_id));
      out.accepted.push(toBool(row.accepted) ? 1 : 0);
      if (propensityColumn) out.propensity.push(row.propensity === null || row.propensity === undefined ? NaN : Number(row.propensity));
    }
    options.onProgress?.(i + 1, months.length, out.customerIds.length);
  }
  return {
    rows: out.customerIds.length,
    X: Float64Array.from(out.values),
    customerIds: out.customerIds,
    offeredAt: out.offeredAt,
    offerIds: out.offerIds,
    accepted: Uint8Array.from(out.accepted),
    propensity: propensityColumn ? Float64Array.from(out.propensity) : null,
    propensityNote,
  };
}

/** PostgreSQL's (and Redshift's) "undefined column", through the warehouse's error wrapping. */
function isUndefinedColumn(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) if ((e as { code?: string }).code === '42703') return true;
  return false;
}

interface Building {
  values: number[];
  customerIds: string[];
  times: string[];
  labels: (number | string)[];
}

function emptyColumns(): Building {
  return { values: [], customerIds: [], times: [], labels: [] };
}

function featureSelect(warehouse: Warehouse): string {
  return FEATURES.map((f, i) => `${q(warehouse.cfg.features[f]!)} AS f${i}`).join(', ');
}

function append(
  out: Building,
  rows: Record<string, unknown>[],
  time: (row: Record<string, unknown>) => string,
  label: (row: Record<string, unknown>) => number | string,
): void {
  for (const row of rows) {
    for (let i = 0; i < FEATURES.length; i++) {
      const v = row[`f${i}`];
      out.values.push(v === null || v === undefined ? NaN : Number(v));
    }
    out.customerIds.push(String(row.customer_id));
    out.times.push(time(row));
    out.labels.push(label(row));
  }
}

function finish(b: Building): HistoryColumns {
  return { rows: b.customerIds.length, X: Float64Array.from(b.values), customerIds: b.customerIds, times: b.times, labels: b.labels };
}

function monthStarts(lo: Date, hi: Date): Date[] {
  const out: Date[] = [];
  let d = new Date(Date.UTC(lo.getUTCFullYear(), lo.getUTCMonth(), 1));
  while (d <= hi) {
    out.push(d);
    d = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
  }
  return out;
}
