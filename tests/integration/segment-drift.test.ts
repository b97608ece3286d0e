import { join } from 'node:path';
import { describe, expect, inject, it, vi } from 'vitest';
import { createTestDatabase } from '../../devkit/postgres';
import { openWarehouse } from '../../lib/warehouse/index';
import { runCli } from '../support/cli';
import { tempDir } from '../support/registry';

vi.setConfig({ testTimeout: 300_000 });

type Drift = { kind: string; model: string; feature?: string; psi: number; level: string; against: string; reference: string };

/**
 * Drift as an operator meets it on a fresh install: nothing moves when nothing changed, and a lapse
 * of 30% of a segment's customers is named. On both warehouses the CLI runs on.
 */
describe.each([
  ['PostgreSQL', async () => createTestDatabase(inject('postgresUrl'), 'segment_drift')],
  ['the embedded warehouse', async () => `pglite:${join(tempDir(), 'warehouse')}`],
])('segment drift on %s', (_name, warehouseUrl) => {
  it('reports nothing when unchanged data is scored twice, and major input drift naming recency when 30% of a segment lapse', async () => {
    const dir = tempDir();
    const url = await warehouseUrl();
    const env = { WAREHOUSE_URL: url, MODEL_REGISTRY_URI: join(dir, 'registry') };
    const cli = async (args: string[]) => {
      const r = await runCli(args, env);
      if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r;
    };
    await cli(['demo-data', '--customers', '4000', '--seed', '5']);
    await cli(['train', 'churn', '--family', 'gbt', '--promote', 'production']);
    await cli(['train', 'nbo', '--promote', 'production']);
    const run = async (segment: string) => (await cli(['score-segment', segment, '--types', 'churn,nbo', '--json'])).json().stats;
    const score = async (segment: string) => (await run(segment)).drift as Drift[];
    type Drivers = { customers: number; base: number; features: { feature: string; mean: number; mean_ci95: [number, number] }[] };
    const recencyDriver = (d: Drivers) => d.features.find((f) => f.feature === 'days_since_last_transaction')!;

    let before: Drivers | null = null;
    for (const segment of ['all', 'at-risk']) {
      const stats = await run(segment);
      const first = stats.drift as Drift[];
      // What drives the segment's risk: the mean reasons of a random sample of about 100 members (as
      // many as a chunk's time budget allows: boosted trees cost tens of milliseconds a customer).
      const drivers = stats.churn.contributions as Drivers;
      expect(drivers.customers).toBeGreaterThanOrEqual(5);
      expect(drivers.customers).toBeLessThan(140);
      expect(drivers.features).toHaveLength(10);
      if (segment === 'at-risk') before = drivers;
      // The first run has no earlier run: only the segment as it stood when each version was trained.
      expect(first.length).toBe(2 * 10);
      expect(first.every((d) => d.kind === 'feature' && d.against === 'training' && / members of /.test(d.reference))).toBe(true);
      const second = await score(segment);
      expect(second.filter((d) => d.kind === 'score').map((d) => d.model).sort()).toEqual(['churn', 'nbo']);
      expect(second.filter((d) => d.level !== 'stable'), `${segment}: ${JSON.stringify(second.filter((d) => d.level !== 'stable'))}`).toEqual([]);
    }

    // 30% of the at-risk customers lapse: their recency triples.
    const handle = await openWarehouse(url);
    try {
      await handle.pool.query(`UPDATE customer_features SET days_since_last_transaction = days_since_last_transaction * 3
        WHERE customer_id IN (SELECT customer_id FROM segment_members WHERE segment_id = 'at-risk' ORDER BY md5(customer_id)
        LIMIT (SELECT COUNT(*) * 3 / 10 FROM segment_members WHERE segment_id = 'at-risk'))`);
    } finally {
      await handle.close();
    }
    const afterStats = await run('at-risk');
    const after = afterStats.drift as Drift[];
    // The lapse shows in what drives the segment's risk: the sample is drawn by id, so the customers
    // explained are (up to the time budget's cut) the same, and recency's mean contribution rises.
    const lapsed = recencyDriver(afterStats.churn.contributions as Drivers);
    expect(lapsed.mean, JSON.stringify({ before: recencyDriver(before!), after: lapsed })).toBeGreaterThan(recencyDriver(before!).mean);
    const recency = after.filter((d) => d.feature === 'days_since_last_transaction' && d.against !== 'training');
    expect(recency.length).toBe(4);
    expect(recency.every((d) => d.level === 'major'), JSON.stringify(recency)).toBe(true);
    // Features nobody touched stay put against the earlier runs.
    const untouched = after.filter((d) => d.kind === 'feature' && d.feature !== 'days_since_last_transaction' && d.against !== 'training');
    expect(untouched.every((d) => d.level === 'stable')).toBe(true);
  });
});
