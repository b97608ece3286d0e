import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../../devkit/postgres';
import { generateDemoBatch } from '../../lib/warehouse/demo';
import { FEATURES } from '../../lib/catalog';
import { runCli } from '../support/cli';
import { tempDir } from '../support/registry';

/**
 * The whole loop on demo data, as an operator runs it: serve and score a segment with a challenger
 * in shadow, move time forward, measure realised quality, compare champion and challenger, and
 * gate a promotion on the realised outcomes.
 */
describe('realised quality: prediction log, outcomes, champion and challenger', () => {
  it('measures the served model on realised outcomes, and a weaker challenger loses while a stronger one wins', async () => {
    const dir = tempDir();
    const env = { WAREHOUSE_URL: await createTestDatabase(inject('postgresUrl'), 'loop'), MODEL_REGISTRY_URI: join(dir, 'registry') };
    const cli = async (args: string[], expectCode = 0) => {
      const r = await runCli(args, env);
      if (r.code !== expectCode) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r;
    };
    await cli(['demo-data', '--customers', '20000', '--seed', '7']);
    // The champion: the usual training on the warehouse history.
    await cli(['train', 'churn', '--family', 'gbt', '--promote', 'production']);
    // A designed weaker challenger: logistic regression on tenure and complaints only.
    const weak = join(dir, 'weak.csv');
    const rows = generateDemoBatch(7, 1, 6000).churn;
    const cols = ['tenure_days', 'complaints_90d'].map((f) => FEATURES.indexOf(f as (typeof FEATURES)[number]));
    writeFileSync(weak, ['tenure_days,complaints_90d,churned', ...rows.map((r) => `${cols.map((c) => r.features[c]).join(',')},${r.churned ? 1 : 0}`)].join('\n'));
    await cli(['train', 'churn', '--csv', weak, '--label', 'churned', '--positive', '1', '--family', 'logistic', '--promote', 'staging']);

    // Score the whole base: every answer is logged, and the challenger's beside it in shadow.
    await cli(['score-segment', 'all', '--types', 'churn', '--threads', '1']); // on a worker thread, as the CLI offers
    const days = readdirSync(join(dir, 'registry', 'predictions'));
    expect(days).toHaveLength(1);
    expect(days[0]).toMatch(/^dt=\d{4}-\d{2}-\d{2}$/);

    // Nothing has happened yet: no outcomes to measure against.
    const early = (await cli(['monitor', 'churn', '--json'])).json();
    expect(early.versions.find((v: { shadow: boolean }) => !v.shadow).overall.matched).toBe(0);

    const advanced = (await cli(['demo-data', '--advance', '30d', '--json'])).json();
    const achievable = advanced.advanced[0].achievable_churn_auc as number;
    expect(advanced.as_of).toBe('2026-12-01');

    const report = (await cli(['monitor', 'churn', '--json'])).json();
    const served = report.versions.find((v: { shadow: boolean }) => !v.shadow);
    const shadow = report.versions.find((v: { shadow: boolean }) => v.shadow);
    expect(served).toMatchObject({ version: 1, aliases: ['production'] });
    expect(served.overall.matched).toBe(advanced.advanced[0].snapshot_rows);
    expect(Math.abs(served.overall.quality.auc - achievable)).toBeLessThan(0.02);
    expect(served.overall.quality.auc_ci95[0]).toBeLessThan(served.overall.quality.auc);
    expect(served.overall.quality.calibration).toHaveLength(10);
    expect(shadow).toMatchObject({ version: 2, aliases: ['staging'] });
    expect(shadow.overall.quality.auc).toBeLessThan(served.overall.quality.auc - 0.05);

    // The weaker challenger loses (exit 1), the stronger side wins (exit 0).
    const loses = await cli(['compare', 'churn', 'production', 'staging'], 1);
    expect(loses.stdout).toMatch(/staging loses/);
    const wins = (await cli(['compare', 'churn', '2', '1', '--json'])).json();
    expect(wins).toMatchObject({ winner: 'b', a: { versions: [2] }, b: { versions: [1] } });
    expect(wins.p_value).toBeLessThan(0.05);
    expect(wins.customers).toBe(served.overall.matched);

    // The realised-outcome gate refuses the weaker challenger and lets the stronger model back in.
    const refused = await cli(['promote', 'churn', 'staging', 'production', '--require-win'], 2);
    expect(refused.stderr).toMatch(/realised-outcome gate/);
    expect((await cli(['show', 'churn', 'production', '--json'])).json().manifest.version).toBe(1);
    await cli(['promote', 'churn', '2', 'production']);
    const back = await cli(['promote', 'churn', '1', 'production', '--require-win']);
    expect(back.stdout).toContain('churn@production: v2 -> v1');

    // The report is kept, and bad input gets a clear error.
    expect(readdirSync(join(dir, 'registry', 'monitoring', 'churn', 'reports')).length).toBe(2);
    const bad = await cli(['monitor', 'churn', '--since', 'yesterday'], 2);
    expect(bad.stderr).toContain('--since must be a date as YYYY-MM-DD');
    expect((await cli(['demo-data', '--advance', '45d'], 2)).stderr).toContain('--advance must be whole months');
  }, 240_000);
});
