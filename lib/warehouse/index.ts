import pg from 'pg';
import { redactUrl } from '../config';
import { NotFoundError, ValidationError, WarehouseUnavailableError } from '../errors';
import { openEmbeddedWarehouse } from './embedded';
import { FEATURES } from '../catalog';
import { parseNumberList } from './numbers';
import { loadWarehouseConfig, q, table, type WarehouseConfig } from './schema';

export { loadWarehouseConfig, type WarehouseConfig } from './schema';

/** What loyalty-ml needs from a SQL connection: pg's Pool and Client both fit. */
export interface SqlClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * A slice of a segment scan: the members in id order with their features as one row-major
 * matrix (FEATURES order, NaN where the warehouse has no value). `found[i]` is 0 for a member the
 * features table lacks (its row is all NaN).
 */
export interface FeatureBatch {
  ids: string[];
  features: Float64Array;
  found: Uint8Array;
  asOf: (string | null)[];
}

/** Rows per FETCH of a segment scan by default (a single-node Amazon Redshift cluster allows at most 1,000: `SEGMENT_FETCH_ROWS`). */
export const SCAN_FETCH_ROWS = 10_000;

/** Every column as the server's text: numbers are parsed once, straight into the matrix. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/** One customer's current features, in FEATURES order; null where the warehouse has no value. */
export interface CustomerFeatureRow {
  customerId: string;
  features: (number | null)[];
  /** The date the features were valid for (the table's updated_at), when the warehouse records it. */
  asOf?: string | null;
}

export interface Segment {
  id: string;
  name: string;
  description: string | null;
}

/** The most ids one IN (...) list carries; larger requests are split. */
const IN_LIST_LIMIT = 1000;

/**
 * Customer features, segments and history over SQL. Queries stay within what PostgreSQL and
 * Amazon Redshift both accept (`IN (...)` lists, no array parameters), and every table and column
 * name comes from the warehouse configuration.
 */
export class Warehouse {
  private readonly featureSelect: string;

  constructor(
    readonly db: SqlClient,
    readonly cfg: WarehouseConfig,
    readonly location = 'warehouse',
    /** Connections the pool may open: with one, a cursor's scan and any other query take turns. */
    readonly connections = 1,
  ) {
    this.featureSelect = FEATURES.map((f) => q(cfg.features[f]!)).join(', ');
  }

  /** Features of the given customers; ids the warehouse does not know are simply absent. */
  async getFeatures(customerIds: readonly string[]): Promise<Map<string, CustomerFeatureRow>> {
    const cf = this.cfg.customer_features;
    const out = new Map<string, CustomerFeatureRow>();
    for (let start = 0; start < customerIds.length; start += IN_LIST_LIMIT) {
      const ids = customerIds.slice(start, start + IN_LIST_LIMIT);
      const placeholders = ids.map((_, i) => `$${i + 1}`).join(', ');
      const result = await this.run<Record<string, unknown>>(
        `SELECT ${q(cf.customer_id)} AS customer_id, ${this.featureSelect}, ${q(cf.updated_at)} AS loyalty_ml_as_of
         FROM ${table(this.cfg, cf.table)} WHERE ${q(cf.customer_id)} IN (${placeholders})`,
        ids,
      );
      for (const row of result.rows) {
        const id = String(row.customer_id);
        out.set(id, {
          customerId: id,
          features: FEATURES.map((f) => toNumber(row[this.cfg.features[f]!])),
          asOf: toIsoDateOrNull(row.loyalty_ml_as_of),
        });
      }
    }
    return out;
  }

  async listSegments(): Promise<Segment[]> {
    const s = this.cfg.segments;
    const result = await this.run<{ id: string; name: string; description: string | null }>(
      `SELECT ${q(s.segment_id)} AS id, ${q(s.name)} AS name, ${q(s.description)} AS description
       FROM ${table(this.cfg, s.table)} ORDER BY ${q(s.segment_id)}`,
    );
    return result.rows;
  }

  async getSegment(segmentId: string): Promise<Segment> {
    const s = this.cfg.segments;
    const result = await this.run<Segment>(
      `SELECT ${q(s.segment_id)} AS id, ${q(s.name)} AS name, ${q(s.description)} AS description
       FROM ${table(this.cfg, s.table)} WHERE ${q(s.segment_id)} = $1`,
      [segmentId],
    );
    const row = result.rows[0];
    if (!row) throw new NotFoundError(`Segment "${segmentId}" does not exist`, { code: 'segment_not_found' });
    return row;
  }

  async countSegmentMembers(segmentId: string): Promise<number> {
    const m = this.cfg.segment_members;
    const result = await this.run<{ n: string }>(
      `SELECT COUNT(*) AS n FROM ${table(this.cfg, m.table)} WHERE ${q(m.segment_id)} = $1`,
      [segmentId],
    );
    return Number(result.rows[0]?.n ?? 0);
  }

  /** One page of a segment's members in id order, after `afterId` (keyset pagination). */
  async segmentMembersPage(segmentId: string, afterId: string | null, limit: number): Promise<string[]> {
    if (!Number.isInteger(limit) || limit < 1) throw new ValidationError(`Invalid page size ${limit}`);
    const m = this.cfg.segment_members;
    const result = await this.run<{ id: string }>(
      `SELECT ${q(m.customer_id)} AS id FROM ${table(this.cfg, m.table)}
       WHERE ${q(m.segment_id)} = $1 ${afterId === null ? '' : `AND ${q(m.customer_id)} > $2`}
       ORDER BY ${q(m.customer_id)} LIMIT ${limit}`,
      afterId === null ? [segmentId] : [segmentId, afterId],
    );
    return result.rows.map((r) => r.id);
  }

  /**
   * A segment's members with their features, in customer id order, as ONE query: the members
   * table LEFT JOINed to the features table behind a cursor (`DECLARE … CURSOR` and `FETCH FORWARD`
   * inside a transaction, which PostgreSQL and Amazon Redshift both accept), fetched `fetchRows`
   * at a time with the next FETCH already on its way while the caller works on the current batch.
   * Warehouse load per run is this one statement whatever the segment's size.
   */
  async *scanSegmentFeatures(segmentId: string, options: { fetchRows?: number } = {}): AsyncGenerator<FeatureBatch> {
    const fetchRows = options.fetchRows ?? SCAN_FETCH_ROWS;
    if (!Number.isInteger(fetchRows) || fetchRows < 1) throw new ValidationError(`Invalid fetch size ${fetchRows}`);
    const m = this.cfg.segment_members;
    const cf = this.cfg.customer_features;
    // A row travels as ONE text field, "id|as-of|v1,v2,…" (an empty value is NULL; nothing after the
    // last "|" when the features table has no row for the member): a string per column cost Node
    // more than the warehouse spent on the scan.
    const features = FEATURES.map((f) => `COALESCE(CAST(f.${q(this.cfg.features[f]!)} AS VARCHAR), '')`).join(` || ',' || `);
    const sql =
      `DECLARE loyalty_ml_scan NO SCROLL CURSOR FOR ` +
      `SELECT m.${q(m.customer_id)} || '|' || COALESCE(CAST(f.${q(cf.updated_at)} AS VARCHAR), '') || '|' || ` +
      `CASE WHEN f.${q(cf.customer_id)} IS NULL THEN '' ELSE ${features} END ` +
      `FROM ${table(this.cfg, m.table)} m LEFT JOIN ${table(this.cfg, cf.table)} f ON f.${q(cf.customer_id)} = m.${q(m.customer_id)} ` +
      `WHERE m.${q(m.segment_id)} = ${literal(segmentId)} ORDER BY m.${q(m.customer_id)}`;
    // A cursor lives in one connection's transaction: a pool lends one; a single client is used as it is.
    let client: pg.ClientBase & { release?: (error?: Error) => void };
    try {
      client = this.db instanceof pg.Pool ? await this.db.connect() : (this.db as pg.ClientBase);
    } catch (error) {
      throw new WarehouseUnavailableError(`Warehouse query failed (${this.location}): ${describePgError(error)}`, { cause: error });
    }
    const fetch = () =>
      client.query({ text: `FETCH FORWARD ${fetchRows} FROM loyalty_ml_scan`, rowMode: 'array', types: RAW_TEXT }) as Promise<pg.QueryResult<unknown[]>>;
    let broken: Error | undefined;
    let committed = false;
    let pending: Promise<pg.QueryResult<unknown[]>> | undefined;
    try {
      await client.query('BEGIN');
      await client.query(sql);
      pending = fetch();
      while (pending) {
        const result: pg.QueryResult<unknown[]> = await pending;
        pending = undefined;
        if (result.rows.length === 0) break;
        // A full batch may have more behind it: the server prepares the next one while this one is
        // parsed and handed on. A short batch was the last.
        if (result.rows.length === fetchRows) pending = fetch();
        yield toFeatureBatch(result.rows, FEATURES.length);
      }
      await client.query('COMMIT');
      committed = true;
    } catch (error) {
      broken = error as Error;
      await pending?.catch(() => undefined);
      if (error instanceof WarehouseUnavailableError) throw error;
      throw new WarehouseUnavailableError(`Warehouse scan of segment ${segmentId} failed (${this.location}): ${describePgError(error)}`, { cause: error });
    } finally {
      if (pending) await pending.catch(() => undefined);
      // A consumer that stopped early (or an error) leaves the transaction open: roll it back.
      if (!broken && !committed) await client.query('ROLLBACK').catch(() => undefined);
      client.release?.(broken);
    }
  }

  /**
   * Features of up to `size` customers (of one segment, when given) in a seeded pseudo-random
   * order (by a hash of the id and the seed, so the same seed draws the same customers): a
   * background for reasons, the inputs a version is trained for.
   */
  async sampleFeatures(size: number, seed: number, segmentId?: string): Promise<(number | null)[][]> {
    const cf = this.cfg.customer_features;
    const m = this.cfg.segment_members;
    const from = segmentId === undefined
      ? `${table(this.cfg, cf.table)} f`
      : `${table(this.cfg, m.table)} sm JOIN ${table(this.cfg, cf.table)} f ON f.${q(cf.customer_id)} = sm.${q(m.customer_id)} AND sm.${q(m.segment_id)} = $2`;
    const select = FEATURES.map((name) => `f.${q(this.cfg.features[name]!)}`).join(', ');
    const result = await this.run<Record<string, unknown>>(
      `SELECT ${select} FROM ${from} ORDER BY md5(CAST(f.${q(cf.customer_id)} AS VARCHAR) || $1), f.${q(cf.customer_id)} LIMIT ${Math.max(0, Math.floor(size))}`,
      segmentId === undefined ? [String(seed)] : [String(seed), segmentId],
    );
    return result.rows.map((row) =>
      FEATURES.map((f) => {
        const v = toNumber(row[this.cfg.features[f]!]);
        return v === null || Number.isNaN(v) ? null : v;
      }),
    );
  }

  /** Number of customers with features. */
  async countCustomers(): Promise<number> {
    const cf = this.cfg.customer_features;
    const result = await this.run<{ n: string }>(`SELECT COUNT(*) AS n FROM ${table(this.cfg, cf.table)}`);
    return Number(result.rows[0]?.n ?? 0);
  }

  /**
   * Runs a read, turning connection and SQL failures into WarehouseUnavailableError. A read whose
   * connection broke (a pooled connection the server closed, a failover) is tried once more on a
   * fresh connection: reads are safe to repeat.
   */
  async run<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.query<R>(text, values);
      } catch (error) {
        if (attempt === 1 && isConnectionLost(error)) continue;
        throw new WarehouseUnavailableError(`Warehouse query failed (${this.location}): ${describePgError(error)}`, { cause: error });
      }
    }
  }
}

/**
 * A text value as an SQL string literal, where a cursor's statement takes no parameters. Backslashes
 * are refused: PostgreSQL and Redshift read them differently (segment ids never hold one).
 */
function literal(value: string): string {
  if (value.includes('\\')) throw new ValidationError(`Invalid segment id "${value}"`, { code: 'invalid_segment_id' });
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Rows of one text field, "id|as-of|v1,v2,…", as a FeatureBatch. The id is what precedes the last two
 * "|" (an id may hold one); nothing after the last "|": the features table has no row for the member.
 */
function toFeatureBatch(rows: unknown[][], width: number): FeatureBatch {
  const n = rows.length;
  const ids = new Array<string>(n);
  const features = new Float64Array(n * width);
  const found = new Uint8Array(n);
  const asOf = new Array<string | null>(n);
  let lastRaw = '';
  let lastDate: string | null = null;
  for (let i = 0; i < n; i++) {
    const row = rows[i]![0] as string | null;
    // The whole text is NULL only when the member's customer id is.
    if (row === null) throw new ValidationError('a member of the segment has no customer id');
    const values = row.lastIndexOf('|');
    const date = row.lastIndexOf('|', values - 1);
    ids[i] = row.slice(0, date);
    // Consecutive rows usually share their date: compared in place, copied when it changes.
    if (values - date - 1 !== lastRaw.length || !row.startsWith(lastRaw, date + 1)) {
      lastRaw = row.slice(date + 1, values);
      lastDate = lastRaw === '' ? null : toIsoDate(lastRaw);
    }
    asOf[i] = lastDate;
    if (values === row.length - 1) features.fill(NaN, i * width, (i + 1) * width);
    else {
      // As getFeatures reads them: what is not a finite number ('NaN', 'Infinity') is missing. A
      // text column holding commas would shift every value after it: refused, not misread.
      if (!parseNumberList(row, features, i * width, width, values + 1)) {
        throw new ValidationError(`the features of customer ${ids[i]} do not read as ${width} numbers ("${row.slice(values + 1, values + 201)}"): every feature column must hold numbers`);
      }
      found[i] = 1;
    }
  }
  return { ids, features, found, asOf };
}

/** A DATE or TIMESTAMP column's calendar date (pg returns both as a local-midnight Date; rebuilt from local parts). */
export function toIsoDate(d: string | Date): string {
  if (d instanceof Date) {
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  }
  return String(d).slice(0, 10);
}

/** A BOOLEAN column's value, whatever form the driver returns it in. */
export function toBool(v: unknown): boolean {
  return v === true || v === 't' || v === 'true' || v === 1 || v === '1';
}

function toIsoDateOrNull(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return toIsoDate(value as string | Date);
}

function toNumber(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

function isConnectionLost(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  const message = error instanceof Error ? error.message : '';
  return code === 'ECONNRESET' || code === 'EPIPE' || /Connection terminated|connection.*closed/i.test(message);
}

export function describePgError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    return code ? `${code}: ${error.message}` : error.message || error.name;
  }
  return String(error);
}

/** An open warehouse and the means to close it (and the embedded server, if this process runs it). */
export interface WarehouseHandle {
  warehouse: Warehouse;
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * Opens the warehouse a URL names: `postgres://…` directly, or `pglite:<folder>` through the
 * embedded server. The pool is created here once; callers keep the handle for the process lifetime.
 */
export async function openWarehouse(
  url: string,
  options: { configPath?: string; maxConnections?: number; connectTimeoutMs?: number; tls?: { ca?: string } } = {},
): Promise<WarehouseHandle> {
  const cfg = loadWarehouseConfig(options.configPath);
  let connectionString = url;
  let stopEmbedded: () => Promise<void> = async () => undefined;
  if (url.startsWith('pglite:')) {
    const folder = url.slice('pglite:'.length) || '.data/warehouse';
    try {
      const server = await openEmbeddedWarehouse(folder);
      connectionString = server.url;
      stopEmbedded = server.stop;
    } catch (error) {
      throw new WarehouseUnavailableError(`Could not open the embedded warehouse in ${folder}: ${describePgError(error)}`, { cause: error });
    }
  }
  const maxConnections = options.maxConnections ?? (url.startsWith('pglite:') ? 1 : 4);
  const pool = new pg.Pool({
    connectionString,
    max: maxConnections,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    // Deployed warehouses (Redshift, RDS) are reached over TLS with certificate checks.
    ...(options.tls ? { ssl: { rejectUnauthorized: true, ...(options.tls.ca ? { ca: options.tls.ca } : {}) } } : {}),
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  const location = url.startsWith('pglite:') ? `embedded warehouse ${url.slice(7)}` : redactUrl(url);
  return {
    // The embedded warehouse runs one session's statements at a time: a scan's open cursor holds it.
    warehouse: new Warehouse(pool, cfg, location, url.startsWith('pglite:') ? 1 : maxConnections),
    pool,
    close: async () => {
      await pool.end().catch(() => undefined);
      await stopEmbedded();
    },
  };
}

/** Warehouse-wide statistics the API needs: RFM quintiles and how common each feature value is. */
export interface BaseProfile {
  customers: number;
  /** 20/40/60/80% cut points (PERCENTILE_CONT) of recency (known values only), frequency, monetary. */
  quintiles: { recency_days: number[]; frequency: number[]; monetary: number[] };
  /** Per feature: its most common values (null = missing) and their share of all customers. */
  commonValues: Record<string, { value: number | null; share: number }[]>;
  computedAt: string;
}

/**
 * Computes the base profile with one query per statistic (Redshift requires sort-based aggregates
 * in one statement to share their ORDER BY, so quantiles of different columns are separate).
 */
export async function computeBaseProfile(warehouse: Warehouse): Promise<BaseProfile> {
  const cf = warehouse.cfg.customer_features;
  const t = table(warehouse.cfg, cf.table);
  const col = (feature: string) => q(warehouse.cfg.features[feature]!);
  // Independent statements: run them side by side on the pool's connections.
  const [rfm, ...common] = await Promise.all([
    rfmQuintiles(warehouse),
    ...FEATURES.map((feature) =>
      warehouse.run<{ v: string | number | null; n: string }>(`SELECT ${col(feature)} AS v, COUNT(*) AS n FROM ${t} GROUP BY ${col(feature)} ORDER BY n DESC LIMIT 5`),
    ),
  ]);
  const { customers, quintiles } = rfm as Awaited<ReturnType<typeof rfmQuintiles>>;
  const commonValues: BaseProfile['commonValues'] = {};
  FEATURES.forEach((feature, i) => {
    const result = common[i] as pg.QueryResult<{ v: string | number | null; n: string }>;
    commonValues[feature] = result.rows.map((r) => ({ value: r.v === null ? null : Number(r.v), share: customers ? Number(r.n) / customers : 0 }));
  });
  return { customers, quintiles, commonValues, computedAt: new Date().toISOString() };
}

/**
 * The customer base's RFM quintiles and size (what a segment run hands its workers), one query per
 * measure side by side (Redshift requires sort-based aggregates in one statement to share their
 * ORDER BY, so quantiles of different columns are separate).
 */
export async function rfmQuintiles(warehouse: Warehouse): Promise<Pick<BaseProfile, 'customers' | 'quintiles'>> {
  const cf = warehouse.cfg.customer_features;
  const t = table(warehouse.cfg, cf.table);
  const col = (feature: string) => q(warehouse.cfg.features[feature]!);
  const quantiles = async (feature: string, where: string) => {
    const result = await warehouse.run<Record<string, string | number | null>>(
      `SELECT ${[0.2, 0.4, 0.6, 0.8].map((p, i) => `PERCENTILE_CONT(${p}) WITHIN GROUP (ORDER BY ${col(feature)}) AS q${i}`).join(', ')}
       FROM ${t} WHERE ${where}`,
    );
    const row = result.rows[0] ?? {};
    return [0, 1, 2, 3].map((i) => Number(row[`q${i}`] ?? 0));
  };
  const recency = col('days_since_last_transaction');
  const [customers, recencyCuts, frequencyCuts, monetaryCuts] = await Promise.all([
    warehouse.countCustomers(),
    quantiles('days_since_last_transaction', `${recency} IS NOT NULL AND ${recency} <> 999`),
    quantiles('transaction_count_90d', `${col('transaction_count_90d')} IS NOT NULL`),
    quantiles('total_revenue_90d', `${col('total_revenue_90d')} IS NOT NULL`),
  ]);
  return { customers, quintiles: { recency_days: recencyCuts, frequency: frequencyCuts, monetary: monetaryCuts } };
}
