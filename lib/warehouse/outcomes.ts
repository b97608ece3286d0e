import { toBool, toIsoDate, type Warehouse } from './index';
import { q, table } from './schema';

/** A churn snapshot's label: whether the customer churned in the window the snapshot opens. */
export interface ChurnOutcome {
  date: string;
  churned: boolean;
}

/** An offer made to a customer and whether it was accepted. */
export interface OfferOutcome {
  offeredAt: string;
  offerId: string;
  accepted: boolean;
}

/**
 * Churn labels of the snapshots dated from `from` to `to` (inclusive), by customer, oldest first:
 * one range scan of the history table (no list of ids, so a month of a large programme is one query).
 */
export async function readChurnOutcomes(warehouse: Warehouse, range: { from: string; to: string }): Promise<Map<string, ChurnOutcome[]>> {
  const ch = warehouse.cfg.churn_history;
  const result = await warehouse.run<{ customer_id: string; d: string | Date; churned: unknown }>(
    `SELECT ${q(ch.customer_id)} AS customer_id, ${q(ch.snapshot_date)} AS d, ${q(ch.churned)} AS churned
     FROM ${table(warehouse.cfg, ch.table)}
     WHERE ${q(ch.snapshot_date)} >= CAST($1 AS DATE) AND ${q(ch.snapshot_date)} <= CAST($2 AS DATE)
     ORDER BY ${q(ch.customer_id)}, ${q(ch.snapshot_date)}`,
    [range.from, range.to],
  );
  return byCustomer(result.rows, (row) => ({ date: toIsoDate(row.d), churned: toBool(row.churned) }));
}

/** Offers made from `from` (inclusive) to `to` (exclusive), by customer, oldest first. */
export async function readOfferOutcomes(warehouse: Warehouse, range: { from: string; to: string }): Promise<Map<string, OfferOutcome[]>> {
  const oh = warehouse.cfg.offer_history;
  const result = await warehouse.run<{ customer_id: string; t: string | Date; offer_id: string; accepted: unknown }>(
    `SELECT ${q(oh.customer_id)} AS customer_id, ${q(oh.offered_at)} AS t, ${q(oh.offer_id)} AS offer_id, ${q(oh.accepted)} AS accepted
     FROM ${table(warehouse.cfg, oh.table)}
     WHERE ${q(oh.offered_at)} >= CAST($1 AS TIMESTAMP) AND ${q(oh.offered_at)} < CAST($2 AS TIMESTAMP)
     ORDER BY ${q(oh.customer_id)}, ${q(oh.offered_at)}`,
    [range.from, range.to],
  );
  return byCustomer(result.rows, (row) => ({ offeredAt: toIsoDate(row.t), offerId: String(row.offer_id), accepted: toBool(row.accepted) }));
}

/** Rows grouped by customer, in query order. */
function byCustomer<R extends { customer_id: string }, O>(rows: R[], outcome: (row: R) => O): Map<string, O[]> {
  const out = new Map<string, O[]>();
  for (const row of rows) {
    const id = String(row.customer_id);
    const list = out.get(id) ?? [];
    list.push(outcome(row));
    out.set(id, list);
  }
  return out;
}
