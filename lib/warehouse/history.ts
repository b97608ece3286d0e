import type { Warehouse } from './index';
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
 * Reads the churn history one snapshot date at a time (no ORDER BY over the whole table, which a
 * large warehouse would have to sort), reporting progress per snapshot.
 */
export async function readChurnHistory(
  warehouse: Warehouse,
  onProgress?: (done: number, total: number, rows: number) => void,
): Promise<HistoryColumns> {
  const ch = warehouse.cfg.churn_history;
  const t = table(warehouse.cfg, ch.table);
  const dates = (
    await warehouse.run<{ d: string | Date }>(`SELECT DISTINCT ${q(ch.snapshot_date)} AS d FROM ${t}`)
  ).rows
    .map((r) => toIsoDate(r.d))
    .sort();
  const out = emptyColumns();
  for (let i = 0; i < dates.length; i++) {
    const result = await warehouse.run<Record<string, unknown>>(
      `SELECT ${q(ch.customer_id)} AS customer_id, ${featureSelect(warehouse)}, ${q(ch.churned)} AS label
       FROM ${t} WHERE ${q(ch.snapshot_date)} = $1`,
      [dates[i]],
    );
    append(out, result.rows, () => dates[i]!, (row) => (toBool(row.label) ? 1 : 0));
    onProgress?.(i + 1, dates.length, out.customerIds.length);
  }
  return finish(out);
}

/** Reads the accepted offers of the offer history, one calendar month at a time. */
export async function readOfferHistory(
  warehouse: Warehouse,
  options: { onProgress?: (done: number, total: number, rows: number) => void } = {},
): Promise<HistoryColumns> {
  const oh = warehouse.cfg.offer_history;
  const t = table(warehouse.cfg, oh.table);
  const range = (
    await warehouse.run<{ lo: Date | string | null; hi: Date | string | null }>(
      `SELECT MIN(${q(oh.offered_at)}) AS lo, MAX(${q(oh.offered_at)}) AS hi FROM ${t} WHERE ${q(oh.accepted)}`,
    )
  ).rows[0];
  const out = emptyColumns();
  if (!range?.lo || !range.hi) return finish(out);
  const months = monthStarts(new Date(range.lo), new Date(range.hi));
  for (let i = 0; i < months.length; i++) {
    const from = months[i]!;
    const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
    const result = await warehouse.run<Record<string, unknown>>(
      `SELECT ${q(oh.customer_id)} AS customer_id, ${featureSelect(warehouse)}, ${q(oh.offered_at)} AS at, ${q(oh.offer_id)} AS label
       FROM ${t} WHERE ${q(oh.accepted)} AND ${q(oh.offered_at)} >= $1 AND ${q(oh.offered_at)} < $2`,
      [from.toISOString(), to.toISOString()],
    );
    append(out, result.rows, (row) => new Date(row.at as string).toISOString(), (row) => String(row.label));
    options.onProgress?.(i + 1, months.length, out.customerIds.length);
  }
  return finish(out);
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

function toIsoDate(d: string | Date): string {
  if (d instanceof Date) {
    // pg returns DATE as a local-midnight Date; rebuild the calendar date from local parts.
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  }
  return String(d).slice(0, 10);
}

function toBool(v: unknown): boolean {
  return v === true || v === 't' || v === 'true' || v === 1 || v === '1';
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
