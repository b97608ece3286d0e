import type pg from 'pg';
import { ValidationError, WarehouseUnavailableError } from '../errors';
import { OFFER_IDS } from '../catalog';
import { rocAuc } from '../metrics';
import {
  DEMO_AS_OF,
  DEMO_SEGMENTS,
  generateDemoBatch,
  type ChurnSnapshotRow,
  type DemoBatch,
  type OfferPolicy,
  type OfferRow,
} from './demo';
import { describePgError } from './index';
import { FEATURES } from '../catalog';
import { createTablesSql, q, table, truncateTablesSql, type WarehouseConfig } from './schema';

export const DEMO_METADATA_TABLE = 'loyalty_ml_demo_metadata';
const CHUNK = 1000;
const ROWS_PER_INSERT = 500;

export interface DemoSummary {
  customers: number;
  seed: number;
  as_of: string;
  churn_history_rows: number;
  offer_history_rows: number;
  accepted_offers: number;
  /** How the programme chose the offers it sent (loads before targeting existed sent them uniformly). */
  offer_policy?: OfferPolicy;
  segments: Record<string, number>;
  /** Months the demo has moved forward past its first as-of date (`demo-data --advance`). */
  months_advanced?: number;
  /** Per month moved forward: the snapshot written for it and the best achievable churn AUC on it. */
  advanced?: AdvancedMonth[];
  /** Best achievable scores: the generating process's own probabilities on the data it generated. */
  oracle: {
    churn_rate: number;
    churn_auc_all_snapshots: number;
    churn_auc_latest_snapshot: number;
    latest_snapshot: string;
    /** Acceptance rates of offer policies on the offered rows, from the process's own acceptance probabilities. */
    nbo?: NboOracle;
  };
}

/** What sending policies achieve on the demo's offered rows (expected acceptance per send). */
export interface NboPolicyRates {
  rows: number;
  /** Every customer gets the offer the process says they are likeliest to accept: the best possible. */
  oracle: number;
  /** The campaign rules alone. */
  rules: number;
  /** An offer drawn at random. */
  uniform: number;
  /** What the logging policy sent (expected), and what was observed. */
  logging: number;
  observed: number;
}

export interface NboOracle extends NboPolicyRates {
  policy: OfferPolicy;
  /** The same on the last two calendar months of offers (the trainer's evaluation window). */
  window: NboPolicyRates & { from: string };
}

export interface AdvancedMonth {
  snapshot: string;
  snapshot_rows: number;
  churn_rate: number;
  /** The process's own probabilities against the outcomes it drew: what a perfect model would reach. */
  achievable_churn_auc: number;
  offers: number;
  accepted_offers: number;
}

export interface DemoProgress {
  (done: number, total: number): void;
}

/**
 * Replaces the warehouse's contents with the demo customer base, in one transaction: a failure
 * part-way leaves the previous contents as they were. Reports progress per chunk of customers.
 */
export async function loadDemoData(
  pool: pg.Pool,
  cfg: WarehouseConfig,
  options: { customers: number; seed: number; history?: boolean; offerPolicy?: OfferPolicy; onProgress?: DemoProgress },
): Promise<DemoSummary> {
  const { customers, seed } = options;
  const offerPolicy = options.offerPolicy ?? 'targeted';
  if (!Number.isSafeInteger(customers) || customers < 1 || customers > 10_000_000) {
    throw new ValidationError(`--customers must be a whole number from 1 to 10000000, got ${customers}`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ValidationError(`--seed must be a whole number from 0 to 4294967295, got ${seed}`);
  }
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw new WarehouseUnavailableError(`Cannot connect to the warehouse: ${describePgError(error)}`, { cause: error });
  }
  const oracle = new OracleAccumulator();
  const segmentCounts: Record<string, number> = Object.fromEntries(DEMO_SEGMENTS.map((s) => [s.id, 0]));
  let churnRows = 0;
  let offerRows = 0;
  let accepted = 0;
  try {
    await client.query('BEGIN');
    for (const sql of createTablesSql(cfg)) await client.query(sql);
    await addPropensityColumn(client, cfg);
    await client.query(`CREATE TABLE IF NOT EXISTS ${q(DEMO_METADATA_TABLE)} (key VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(65535) NOT NULL)`);
    for (const sql of truncateTablesSql(cfg)) await client.query(sql);
    await client.query(`DELETE FROM ${q(DEMO_METADATA_TABLE)}`);

    const s = cfg.segments;
    await insertRows(
      client,
      `${table(cfg, s.table)} (${q(s.segment_id)}, ${q(s.name)}, ${q(s.description)})`,
      DEMO_SEGMENTS.map((seg) => [seg.id, seg.name, seg.description]),
    );

    for (let from = 1; from <= customers; from += CHUNK) {
      const to = Math.min(customers, from + CHUNK - 1);
      const batch = generateDemoBatch(seed, from, to, 0, offerPolicy);
      if (options.history === false) {
        batch.churn = [];
        batch.offers = [];
      }
      await insertBatch(client, cfg, batch);
      for (const c of batch.customers) for (const seg of c.segments) segmentCounts[seg] = (segmentCounts[seg] ?? 0) + 1;
      churnRows += batch.churn.length;
      offerRows += batch.offers.length;
      accepted += batch.offers.filter((o) => o.accepted).length;
      oracle.add(batch.churn, batch.offers);
      options.onProgress?.(to, customers);
    }

    const summary: DemoSummary = {
      customers,
      seed,
      as_of: DEMO_AS_OF,
      months_advanced: 0,
      churn_history_rows: churnRows,
      offer_history_rows: offerRows,
      accepted_offers: accepted,
      offer_policy: offerPolicy,
      segments: segmentCounts,
      oracle: oracle.result(offerPolicy),
    };
    await client.query(`INSERT INTO ${q(DEMO_METADATA_TABLE)} (key, value) VALUES ($1, $2)`, ['summary', JSON.stringify(summary)]);
    await client.query('COMMIT');
    return summary;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (error instanceof ValidationError) throw error;
    throw new WarehouseUnavailableError(`Loading demo data failed and was rolled back: ${describePgError(error)}`, { cause: error });
  } finally {
    client.release();
  }
}

/**
 * Moves the demo forward in time by whole months, in one transaction: for each month, the churn
 * outcome of every active customer at the current as-of date (a labelled snapshot), the offers
 * made during the month and their responses, then the customers' new features and segments as of
 * the next month. What the generating process implies, so predictions logged before the advance
 * meet their outcomes after it.
 */
export async function advanceDemoData(pool: pg.Pool, cfg: WarehouseConfig, options: { months: number; onProgress?: DemoProgress }): Promise<DemoSummary> {
  if (!Number.isSafeInteger(options.months) || options.months < 1 || options.months > 24) {
    throw new ValidationError(`--advance must be 1 to 24 months (30d, 60d, … or 1m, 2m, …), got ${options.months} months`);
  }
  const summary = await readDemoSummary(pool);
  if (!summary) throw new ValidationError('The warehouse holds no demo data to move forward: run loyalty-ml demo-data first', { code: 'no_demo_data' });
  if (summary.churn_history_rows === 0) throw new ValidationError('The demo data was loaded with --no-history; reload it with history before moving it forward', { code: 'no_demo_history' });
  const before = summary.months_advanced ?? 0;
  const ahead = before + options.months;
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw new WarehouseUnavailableError(`Cannot connect to the warehouse: ${describePgError(error)}`, { cause: error });
  }
  const months = new Map<string, { p: number[]; y: number[]; offers: number; accepted: number }>();
  const segmentCounts: Record<string, number> = Object.fromEntries(DEMO_SEGMENTS.map((s) => [s.id, 0]));
  let asOf = summary.as_of;
  let churnRows = 0;
  let offerRows = 0;
  let accepted = 0;
  try {
    await client.query('BEGIN');
    const cf = cfg.customer_features;
    const sm = cfg.segment_members;
    await addPropensityColumn(client, cfg);
    await client.query(`DELETE FROM ${table(cfg, cf.table)}`);
    await client.query(`DELETE FROM ${table(cfg, sm.table)}`);
    for (let from = 1; from <= summary.customers; from += CHUNK) {
      const to = Math.min(summary.customers, from + CHUNK - 1);
      const batch = generateDemoBatch(summary.seed, from, to, ahead, summary.offer_policy ?? 'uniform');
      asOf = batch.asOf;
      // Only what is new: the months up to the previous as-of date are already in the warehouse.
      batch.churn = batch.churn.filter((r) => r.snapshotDate >= summary.as_of);
      batch.offers = batch.offers.filter((o) => o.offeredAt >= summary.as_of);
      await insertBatch(client, cfg, batch);
      for (const r of batch.churn) {
        const m = months.get(r.snapshotDate) ?? { p: [], y: [], offers: 0, accepted: 0 };
        m.p.push(r.probability);
        m.y.push(r.churned ? 1 : 0);
        months.set(r.snapshotDate, m);
      }
      for (const o of batch.offers) {
        const m = months.get(monthStart(o.offeredAt))!;
        m.offers++;
        if (o.accepted) m.accepted++;
      }
      for (const c of batch.customers) for (const seg of c.segments) segmentCounts[seg] = (segmentCounts[seg] ?? 0) + 1;
      churnRows += batch.churn.length;
      offerRows += batch.offers.length;
      accepted += batch.offers.filter((o) => o.accepted).length;
      options.onProgress?.(to, summary.customers);
    }
    const round = (v: number) => Math.round(v * 10000) / 10000;
    const advanced: AdvancedMonth[] = [...months.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([snapshot, m]) => ({
      snapshot,
      snapshot_rows: m.y.length,
      churn_rate: round(m.y.reduce((a, b) => a + b, 0) / Math.max(1, m.y.length)),
      achievable_churn_auc: round(rocAuc(m.p, m.y)),
      offers: m.offers,
      accepted_offers: m.accepted,
    }));
    const next: DemoSummary = {
      ...summary,
      as_of: asOf,
      churn_history_rows: summary.churn_history_rows + churnRows,
      offer_history_rows: summary.offer_history_rows + offerRows,
      accepted_offers: summary.accepted_offers + accepted,
      segments: segmentCounts,
      months_advanced: ahead,
      advanced: [...(summary.advanced ?? []), ...advanced],
    };
    await client.query(`UPDATE ${q(DEMO_METADATA_TABLE)} SET value = $1 WHERE key = 'summary'`, [JSON.stringify(next)]);
    await client.query('COMMIT');
    return next;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (error instanceof ValidationError) throw error;
    throw new WarehouseUnavailableError(`Moving the demo data forward failed and was rolled back: ${describePgError(error)}`, { cause: error });
  } finally {
    client.release();
  }
}

/** The first day of a timestamp's month (YYYY-MM-01): the demo's offers of a month follow its snapshot. */
function monthStart(iso: string): string {
  return `${iso.slice(0, 7)}-01`;
}

/** The summary the last demo-data load stored, or null when the warehouse holds no demo data. */
export async function readDemoSummary(db: { query: pg.Pool['query'] }): Promise<DemoSummary | null> {
  try {
    const result = await db.query<{ value: string }>(`SELECT value FROM ${q(DEMO_METADATA_TABLE)} WHERE key = 'summary'`);
    return result.rows[0] ? (JSON.parse(result.rows[0].value) as DemoSummary) : null;
  } catch {
    return null;
  }
}

async function insertBatch(client: pg.PoolClient, cfg: WarehouseConfig, batch: DemoBatch): Promise<void> {
  const featureCols = FEATURES.map((f) => q(cfg.features[f]!)).join(', ');
  const cf = cfg.customer_features;
  const now = new Date(`${batch.asOf}T00:00:00Z`);
  await insertRows(
    client,
    `${table(cfg, cf.table)} (${q(cf.customer_id)}, ${featureCols}, ${q(cf.updated_at)})`,
    batch.customers.map((c) => [c.customerId, ...c.features, now]),
  );
  const sm = cfg.segment_members;
  await insertRows(
    client,
    `${table(cfg, sm.table)} (${q(sm.segment_id)}, ${q(sm.customer_id)})`,
    batch.customers.flatMap((c) => c.segments.map((seg) => [seg, c.customerId])),
  );
  const ch = cfg.churn_history;
  await insertRows(
    client,
    `${table(cfg, ch.table)} (${q(ch.customer_id)}, ${q(ch.snapshot_date)}, ${featureCols}, ${q(ch.churned)})`,
    batch.churn.map((r) => [r.customerId, r.snapshotDate, ...r.features, r.churned]),
  );
  const oh = cfg.offer_history;
  const propensity = oh.propensity ? `, ${q(oh.propensity)}` : '';
  await insertRows(
    client,
    `${table(cfg, oh.table)} (${q(oh.customer_id)}, ${q(oh.offered_at)}, ${featureCols}, ${q(oh.offer_id)}, ${q(oh.accepted)}${propensity})`,
    batch.offers.map((r) => [r.customerId, r.offeredAt, ...r.features, r.offerId, r.accepted, ...(oh.propensity ? [r.propensity] : [])]),
  );
}

/**
 * Adds the mapped propensity column to an offer history table created before it existed (a demo
 * warehouse of an earlier release). Plain ALTER TABLE after a catalog check: Redshift has no
 * ADD COLUMN IF NOT EXISTS.
 */
async function addPropensityColumn(client: pg.PoolClient, cfg: WarehouseConfig): Promise<void> {
  const oh = cfg.offer_history;
  if (!oh.propensity) return;
  const found = await client.query(
    `SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2${cfg.schema ? ' AND table_schema = $3' : ''}`,
    [oh.table, oh.propensity, ...(cfg.schema ? [cfg.schema] : [])],
  );
  if (found.rows.length === 0) await client.query(`ALTER TABLE ${table(cfg, oh.table)} ADD COLUMN ${q(oh.propensity)} DOUBLE PRECISION`);
}

/** Multi-row INSERTs of at most ROWS_PER_INSERT rows each. */
async function insertRows(client: pg.PoolClient, target: string, rows: unknown[][]): Promise<void> {
  for (let start = 0; start < rows.length; start += ROWS_PER_INSERT) {
    const slice = rows.slice(start, start + ROWS_PER_INSERT);
    const values: unknown[] = [];
    const tuples = slice.map((row) => {
      const marks = row.map((v) => {
        values.push(v);
        return `$${values.length}`;
      });
      return `(${marks.join(', ')})`;
    });
    await client.query(`INSERT INTO ${target} VALUES ${tuples.join(', ')}`, values);
  }
}

/** Collects the generating probabilities to report the best achievable scores. */
class OracleAccumulator {
  private churnP: number[] = [];
  private churnY: number[] = [];
  private churnDate: string[] = [];
  /** Per calendar month of offers: sums of each policy's acceptance probability. */
  private months = new Map<string, { rows: number; oracle: number; rules: number; uniform: number; logging: number; observed: number }>();

  add(churn: ChurnSnapshotRow[], offers: OfferRow[]): void {
    for (const r of churn) {
      this.churnP.push(r.probability);
      this.churnY.push(r.churned ? 1 : 0);
      this.churnDate.push(r.snapshotDate);
    }
    for (const o of offers) {
      const month = o.offeredAt.slice(0, 7);
      const m = this.months.get(month) ?? { rows: 0, oracle: 0, rules: 0, uniform: 0, logging: 0, observed: 0 };
      m.rows++;
      m.oracle += Math.max(...o.acceptance);
      m.rules += o.acceptance[OFFER_IDS.indexOf(o.ruleOffer)]!;
      m.uniform += o.acceptance.reduce((a, b) => a + b, 0) / o.acceptance.length;
      m.logging += o.acceptance[OFFER_IDS.indexOf(o.offerId)]!;
      if (o.accepted) m.observed++;
      this.months.set(month, m);
    }
  }

  result(policy: OfferPolicy): DemoSummary['oracle'] {
    const latest = this.churnDate.reduce((a, b) => (b > a ? b : a), '');
    const idx = this.churnDate.map((d, i) => (d === latest ? i : -1)).filter((i) => i >= 0);
    const round = (v: number) => Math.round(v * 10000) / 10000;
    const months = [...this.months.keys()].sort();
    const rates = (keys: string[]): NboPolicyRates => {
      const t = { rows: 0, oracle: 0, rules: 0, uniform: 0, logging: 0, observed: 0 };
      for (const k of keys) for (const f of Object.keys(t) as (keyof typeof t)[]) t[f] += this.months.get(k)![f];
      const n = Math.max(1, t.rows);
      return { rows: t.rows, oracle: round(t.oracle / n), rules: round(t.rules / n), uniform: round(t.uniform / n), logging: round(t.logging / n), observed: round(t.observed / n) };
    };
    const window = months.slice(-2);
    return {
      churn_rate: round(this.churnY.reduce((a, b) => a + b, 0) / Math.max(1, this.churnY.length)),
      churn_auc_all_snapshots: round(rocAuc(this.churnP, this.churnY)),
      churn_auc_latest_snapshot: round(rocAuc(idx.map((i) => this.churnP[i]!), idx.map((i) => this.churnY[i]!))),
      latest_snapshot: latest,
      ...(months.length ? { nbo: { policy, ...rates(months), window: { from: `${window[0]}-01`, ...rates(window) } } } : {}),
    };
  }
}
