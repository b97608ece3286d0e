import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WarehouseUnavailableError } from '../../lib/errors';
import { loadDemoData, readDemoSummary } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { FEATURES } from '../../lib/catalog';
import { createTestDatabase } from '../../devkit/postgres';
import { tempDir, tempFsStore } from '../support/registry';
import { createScoringApp } from '../../lib/app/scoring';
import { loadConfig } from '../../lib/config';
import { LocalWorkerInvoker } from '../../lib/segments/invokers';

const CUSTOMERS = 3000;
let handle: WarehouseHandle;
let url: string;

beforeAll(async () => {
  url = await createTestDatabase(inject('postgresUrl'), 'warehouse');
  handle = await openWarehouse(url);
  await loadDemoData(handle.pool, handle.warehouse.cfg, { customers: CUSTOMERS, seed: 7 });
});

afterAll(async () => {
  await handle?.close();
});

describe('warehouse on PostgreSQL with demo data', () => {
  it('answers features for known ids in one query and leaves unknown ids out', async () => {
    const rows = await handle.warehouse.getFeatures(['demo-000001', 'demo-002999', 'nobody']);

    expect([...rows.keys()].sort()).toEqual(['demo-000001', 'demo-002999']);
    const first = rows.get('demo-000001')!;
    expect(first.features).toHaveLength(FEATURES.length);
    expect(first.features[4]).toBeGreaterThan(0); // tenure_days
  });

  it('holds the quirks a real warehouse has', async () => {
    const q = (sql: string) => handle.pool.query<{ n: string }>(sql).then((r) => Number(r.rows[0]!.n));

    expect(await q(`SELECT COUNT(*) AS n FROM customer_features WHERE days_since_last_transaction = 999`)).toBeGreaterThan(0);
    expect(await q(`SELECT COUNT(*) AS n FROM customer_features WHERE transaction_count_90d = 0`)).toBeGreaterThan(CUSTOMERS / 10);
    expect(await q(`SELECT COUNT(*) AS n FROM customer_features WHERE points_balance IS NULL`)).toBeGreaterThan(0);
    expect(await q(`SELECT COUNT(*) AS n FROM customer_features WHERE avg_transaction_value IS NULL`)).toBeGreaterThan(0);
    // Skewed revenue: the mean well above the median.
    const { rows } = await handle.pool.query<{ mean: number; median: number }>(
      `SELECT AVG(total_revenue_90d) AS mean, PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY total_revenue_90d) AS median
       FROM customer_features WHERE total_revenue_90d > 0`,
    );
    expect(Number(rows[0]!.mean)).toBeGreaterThan(1.1 * Number(rows[0]!.median));
  });

  it('has the five segments and 12 monthly churn snapshots', async () => {
    expect((await handle.warehouse.listSegments()).map((s) => s.id)).toEqual(['all', 'at-risk', 'dormant', 'high-value', 'new']);
    expect(await handle.warehouse.countSegmentMembers('all')).toBe(CUSTOMERS);
    const snapshots = await handle.pool.query(`SELECT DISTINCT snapshot_date FROM customer_churn_history`);
    expect(snapshots.rowCount).toBe(12);
    const offers = await handle.pool.query<{ n: string }>(`SELECT COUNT(DISTINCT offer_id) AS n FROM customer_offer_history WHERE accepted`);
    expect(Number(offers.rows[0]!.n)).toBe(8);
  });

  it('pages through a segment with keyset pagination, each member once', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: string[] = await handle.warehouse.segmentMembersPage('dormant', after, 97);
      if (!page.length) break;
      seen.push(...page);
      after = page[page.length - 1]!;
    }
    expect(seen.length).toBe(await handle.warehouse.countSegmentMembers('dormant'));
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(seen);
  });

  it('scans a segment with its features in one cursor, in id order, whatever the fetch size, counting members without features', async () => {
    const members = await handle.warehouse.countSegmentMembers('dormant');
    // A member the features table lacks comes back unfound, its features all missing (its id holds
    // the scan's separator: read from the right, it stays whole).
    await handle.pool.query(`INSERT INTO segment_members (segment_id, customer_id) VALUES ('dormant', 'zz|no|features')`);
    // A value that is not a finite number is missing on both paths (the API's and the scan's).
    const [dormant, awkward] = (await handle.warehouse.segmentMembersPage('dormant', null, 2)) as [string, string];
    const saved = (await handle.pool.query<{ v: number | null }>(`SELECT total_revenue_90d AS v FROM customer_features WHERE customer_id = $1`, [dormant])).rows[0]!.v;
    const savedRow = (await handle.pool.query(`SELECT * FROM customer_features WHERE customer_id = $1`, [awkward])).rows[0]!;
    await handle.pool.query(`UPDATE customer_features SET total_revenue_90d = 'Infinity' WHERE customer_id = $1`, [dormant]);
    // Values the warehouse prints with 17 digits or an exponent, and a NULL, read as the API reads them.
    await handle.pool.query(
      `UPDATE customer_features SET avg_transaction_value = 0.1::float8 + 0.2::float8, usage_trend = -1e-300, tenure_days = 1.7976931348623157e308, points_balance = NULL, points_redeemed_90d = -123456.789 WHERE customer_id = $1`,
      [awkward],
    );
    try {
      const expected = await handle.warehouse.getFeatures(['demo-000001', 'demo-000002', dormant, awkward]);
      expect(expected.get(awkward)!.features.slice(3, 7)).toEqual([0.30000000000000004, 1.7976931348623157e308, null, -123456.789]);
      expect(expected.get(dormant)!.features[FEATURES.indexOf('total_revenue_90d')]).toBeNull();
      for (const fetchRows of [97, members + 1, 1000]) {
        const ids: string[] = [];
        const unfound: string[] = [];
        let batches = 0;
        for await (const batch of handle.warehouse.scanSegmentFeatures('dormant', { fetchRows })) {
          batches++;
          batch.ids.forEach((id, i) => {
            ids.push(id);
            if (!batch.found[i]) unfound.push(id);
            if (expected.has(id)) expect(Array.from(batch.features.subarray(i * FEATURES.length, (i + 1) * FEATURES.length))).toEqual(expected.get(id)!.features.map((v) => v ?? NaN));
            if (batch.found[i]) expect(batch.asOf[i]).toBe(expected.get('demo-000001')!.asOf);
          });
        }
        expect(ids.length, `fetch ${fetchRows}`).toBe(members + 1);
        expect([...ids].sort(), `fetch ${fetchRows}`).toEqual(ids);
        expect(unfound).toEqual(['zz|no|features']);
        expect(batches).toBe(Math.ceil((members + 1) / fetchRows));
      }
      // A consumer that stops early leaves no transaction open: the pool's next query works.
      for await (const _ of handle.warehouse.scanSegmentFeatures('dormant', { fetchRows: 10 })) break;
      expect(await handle.warehouse.countSegmentMembers('dormant')).toBe(members + 1);
    } finally {
      await handle.pool.query(`UPDATE customer_features SET total_revenue_90d = $2 WHERE customer_id = $1`, [dormant, saved]);
      await handle.pool.query(
        `UPDATE customer_features SET avg_transaction_value = $2, usage_trend = $3, tenure_days = $4, points_balance = $5, points_redeemed_90d = $6 WHERE customer_id = $1`,
        [awkward, savedRow.avg_transaction_value, savedRow.usage_trend, savedRow.tenure_days, savedRow.points_balance, savedRow.points_redeemed_90d],
      );
      await handle.pool.query(`DELETE FROM segment_members WHERE customer_id = 'zz|no|features'`);
    }
  });

  it('reads the RFM quintiles once per PROFILE_TTL_SECONDS for segment runs, as the API does', async () => {
    const quintileReads = async (ttlSeconds: string) => {
      const own = await openWarehouse(url);
      let reads = 0;
      const query = own.pool.query.bind(own.pool) as (...args: unknown[]) => unknown;
      own.pool.query = ((text: unknown, ...rest: unknown[]) => {
        if (typeof text === 'string' && text.includes('PERCENTILE_CONT')) reads++;
        return query(text, ...rest);
      }) as typeof own.pool.query;
      const app = await createScoringApp(loadConfig({ STAGE: 'test', ML_MOCK_MODE: 'on', WAREHOUSE_URL: url, PROFILE_TTL_SECONDS: ttlSeconds }), { registryStore: tempFsStore(), resultsStore: tempFsStore(), warehouse: own });
      try {
        const invoker = new LocalWorkerInvoker((p) => app.chunks.score(p));
        const settings = { chunkSize: 500, concurrency: 2, retries: 0 };
        const runs = [];
        for (let i = 0; i < 2; i++) runs.push(await app.segments.runHere('dormant', ['rfm'], { settings, invoker, owner: `t${i}` }));
        expect(runs.map((r) => r.run.status)).toEqual(['completed', 'completed']);
        expect(runs[1]!.stats!.rfm).toEqual(runs[0]!.stats!.rfm);
        return reads;
      } finally {
        await app.close();
      }
    };
    // Three sort-based aggregates per read (recency, frequency, monetary).
    expect(await quintileReads('3600')).toBe(3);
    expect(await quintileReads('0')).toBe(6);
  });

  it('records the achievable scores of the generating process', async () => {
    const summary = (await readDemoSummary(handle.pool))!;
    expect(summary.customers).toBe(CUSTOMERS);
    expect(summary.oracle.churn_auc_latest_snapshot).toBeGreaterThan(0.75);
    expect(summary.oracle.nbo!.oracle).toBeGreaterThan(summary.oracle.nbo!.rules);
    expect(summary.oracle.nbo!.rules).toBeGreaterThan(summary.oracle.nbo!.uniform);
  });

  it('is deterministic for a seed', async () => {
    const digest = async () =>
      (
        await handle.pool.query<{ d: string }>(
          `SELECT md5(string_agg(customer_id || ':' || coalesce(days_since_last_transaction::text, '-') || ':' || total_revenue_90d::text, ',' ORDER BY customer_id)) AS d FROM customer_features`,
        )
      ).rows[0]!.d;
    const before = await digest();
    await loadDemoData(handle.pool, handle.warehouse.cfg, { customers: CUSTOMERS, seed: 7 });
    expect(await digest()).toBe(before);
  });

  it('rolls a failed load back, keeping the previous contents', async () => {
    const count = await handle.warehouse.countCustomers();
    await handle.pool.query(`CREATE OR REPLACE FUNCTION fail_late() RETURNS trigger AS $$
      BEGIN IF NEW.customer_id = 'demo-000150' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await handle.pool.query(`CREATE TRIGGER fail_late BEFORE INSERT ON customer_offer_history FOR EACH ROW EXECUTE FUNCTION fail_late()`);
    try {
      await expect(loadDemoData(handle.pool, handle.warehouse.cfg, { customers: 500, seed: 1 })).rejects.toThrow(/rolled back.*disk full/);
      expect(await handle.warehouse.countCustomers()).toBe(count);
    } finally {
      await handle.pool.query(`DROP TRIGGER fail_late ON customer_offer_history`);
    }
  });

  it('reports an unreachable warehouse plainly', async () => {
    const dead = await openWarehouse('postgres://postgres@127.0.0.1:9/postgres', { connectTimeoutMs: 1000 });
    try {
      await expect(dead.warehouse.getFeatures(['demo-000001'])).rejects.toBeInstanceOf(WarehouseUnavailableError);
    } finally {
      await dead.close();
    }
  });
});

describe('embedded warehouse (PGlite through the same pg code)', () => {
  it('serves a local folder over the wire protocol, persists, and shares one server per folder', async () => {
    const dir = `${tempDir()}/warehouse`;
    const first = await openWarehouse(`pglite:${dir}`);
    try {
      await loadDemoData(first.pool, first.warehouse.cfg, { customers: 200, seed: 3 });
      const second = await openWarehouse(`pglite:${dir}`);
      try {
        expect(await second.warehouse.countCustomers()).toBe(200);
      } finally {
        await second.close();
      }
      expect((await first.warehouse.getFeatures(['demo-000200'])).size).toBe(1);
    } finally {
      await first.close();
    }
    const reopened = await openWarehouse(`pglite:${dir}`);
    try {
      expect(await reopened.warehouse.countCustomers()).toBe(200);
    } finally {
      await reopened.close();
    }
  });
});

