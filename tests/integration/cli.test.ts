import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { runCli } from '../support/cli';
import { FIXTURES_DIR } from '../support/fixtures';
import { testBucket } from '../support/s3';
import { createTestDatabase } from '../../devkit/postgres';
import { tempDir } from '../support/registry';
import { OFFER_IDS } from '../../lib/catalog';

const fixture = (name: string, file = 'model.onnx') => `${FIXTURES_DIR}/onnx/${name}/${file}`;

const ROOT = resolve(import.meta.dirname, '../..');

describe('loyalty-ml CLI', () => {
  it('shows only its own output through npx: no npm warnings about the project or the Node version', async () => {
    // As from a user's shell: none of the npm_config_* variables `npm test` sets for its children.
    const shell = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
    const result = spawnSync('npx', ['loyalty-ml', '--help'], { cwd: ROOT, encoding: 'utf8', env: shell });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^loyalty-ml: customer scoring/);
    expect(result.stderr).toBe('');
  });

  it('npm start checks its port before any first-run work', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as AddressInfo).port;
    const dataDir = tempDir();
    try {
      const result = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [join(ROOT, 'scripts/start.ts')], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, PORT: String(port), LOYALTY_ML_DATA_DIR: dataDir },
        timeout: 60_000,
      });
      expect(result.status).toBe(1);
      expect(result.stderr.trim()).toBe(`start: port ${port} is in use (another npm start?); free it or run PORT=3100 npm start`);
      expect(readdirSync(dataDir)).toEqual([]); // no warehouse opened, no demo data, nothing trained
    } finally {
      busy.close();
    }
  });

  it('prints help for every command and exits 2 on bad usage', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const verb of ['demo-data', 'publish', 'list', 'show', 'promote', 'rollback']) {
      expect(help.stdout).toContain(verb);
      const sub = await runCli([verb, '--help']);
      expect(sub.code).toBe(0);
      expect(sub.stdout).toContain(`loyalty-ml ${verb}`);
    }
    expect((await runCli([])).code).toBe(2);
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const badFlag = await runCli(['list', '--colour']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/Unknown option '--colour'/);
  });

  it('fills a PostgreSQL warehouse with demo data, showing progress', async () => {
    const WAREHOUSE_URL = await createTestDatabase(inject('postgresUrl'), 'cli');
    const result = await runCli(['demo-data', '--customers', '1500', '--seed', '5', '--json'], { WAREHOUSE_URL });

    expect(result.code).toBe(0);
    expect(result.json()).toMatchObject({ customers: 1500, seed: 5 });
    expect(result.stderr).toMatch(/customers: 1,500\/1,500 \(100%\)/);
    const bad = await runCli(['demo-data', '--customers', 'lots'], { WAREHOUSE_URL });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--customers must be a whole number');
    expect((await runCli(['demo-data', '--offer-policy', 'random'], { WAREHOUSE_URL })).stderr).toContain('--offer-policy must be targeted or uniform');

    // Next best offer on this history: trained, its top offer estimated off-policy, its acceptance probabilities written per offer.
    const env = { WAREHOUSE_URL, MODEL_REGISTRY_URI: join(tempDir(), 'registry') };
    const trained = await runCli(['train', 'nbo'], env);
    expect(trained.stdout).toMatch(/what it answers: for each offer, P\(the customer accepts it if it is sent\)/);
    expect(trained.stdout).toMatch(/^doubly robust \*\s+0\.\d{4}\s+0\.\d{4}-0\.\d{4}$/m);
    expect(trained.stdout).toMatch(/^true value \(demo process\)\s+0\.\d{4}/m);
    const evaluated = await runCli(['evaluate', 'nbo', 'latest', '--json'], env);
    expect(evaluated.code).toBe(0);
    const policy = evaluated.json().policy_value;
    expect(Object.keys(policy)).toEqual(expect.arrayContaining(['estimate', 'ci_low', 'ci_high', 'method', 'logging', 'rows', 'from', 'to']));
    expect(policy).toMatchObject({ method: 'doubly robust', propensity: 'logged', from: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/), to: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(policy.ci_low).toBeLessThanOrEqual(policy.estimate);
    expect(policy.estimate).toBeLessThanOrEqual(policy.ci_high);
    const input = join(tempDir(), 'customers.csv');
    const out = join(tempDir(), 'offers.csv');
    writeFileSync(input, 'customer_id,days_since_last_transaction,transaction_count_90d,total_revenue_90d,avg_transaction_value,tenure_days,points_balance,points_redeemed_90d,offers_accepted_180d,complaints_90d,usage_trend\nnew-1,3,9,420,46.7,40,120,0,1,0,\nlapsed-1,200,0,0,,2000,900,0,0,2,-1\n');
    expect((await runCli(['predict', 'nbo', 'latest', '--csv', input, '--out', out], env)).code).toBe(0);
    const [header, ...rows] = readFileSync(out, 'utf8').trim().split('\n');
    expect(header).toBe(`customer_id,predicted,confidence,${OFFER_IDS.map((o) => `p_${o}`).join(',')}`);
    for (const row of rows) {
      const p = row.split(',').slice(3).map(Number);
      expect(p.every((v) => v > 0 && v < 1)).toBe(true);
      expect(Number(row.split(',')[2])).toBe(Math.max(...p));
    }
  });

  it('publishes, lists, shows, promotes and rolls back in a local folder', async () => {
    const env = { MODEL_REGISTRY_URI: tempDir() };

    const v1 = await runCli(['publish', 'iris', '--model', fixture('sklearn_logreg_iris'), '--features', 'sepal_width,petal_width', '--json'], env);
    const v2 = await runCli(['publish', 'iris', '--model', fixture('sklearn_lightgbm_iris'), '--features', 'sepal_width,petal_width', '--promote', 'staging'], env);
    expect(v1.code).toBe(0);
    expect(v1.json().manifest).toMatchObject({ name: 'iris', version: 1, created_by: 'cli-test' });
    expect(v2.code).toBe(0);
    expect(v2.stdout).toContain('Published iris v2');
    expect(v2.stdout).toContain('Alias staging -> v2');

    expect((await runCli(['promote', 'iris', '1', 'production'], env)).stdout).toContain('iris@production: unset -> v1');
    expect((await runCli(['promote', 'iris', 'staging', 'production'], env)).stdout).toContain('v1 -> v2');
    const listed = (await runCli(['list', '--json'], env)).json();
    expect(listed.models).toEqual([{ name: 'iris', versions: 2, latest: 2, aliases: { production: 2, staging: 2 } }]);

    const rolled = await runCli(['rollback', 'iris', 'production'], env);
    expect(rolled.code).toBe(0);
    expect(rolled.stdout).toContain('v2 -> v1 (rolled back)');
    const shown = await runCli(['show', 'iris', 'production', '--json'], env);
    expect(shown.json().manifest.version).toBe(1);
    expect(shown.json().integrity.ok).toBe(true);
    expect(shown.json().aliases.find((a: { alias: string }) => a.alias === 'production').history).toHaveLength(3);

    const again = await runCli(['rollback', 'iris', 'production'], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('no earlier version');
  });

  it('refuses bad models and bad names with exit code 2 and writes nothing', async () => {
    const env = { MODEL_REGISTRY_URI: tempDir() };
    const cases: [string[], RegExp][] = [
      [['publish', 'legacy', '--model', fixture('pytorch_linear_legacy'), '--features', Array.from({ length: 10 }, (_, i) => `f${i}`).join(',')], /opset 6/],
      [['publish', 'iris', '--model', fixture('sklearn_logreg_iris'), '--features', 'a,b,c'], /takes 2 features/],
      [['publish', '../x', '--model', fixture('sklearn_logreg_iris'), '--features', 'a,b'], /Invalid model name "..\/x"/],
      [['publish', 'iris', '--model', '/nonexistent/model.onnx', '--features', 'a,b'], /no such file/],
      [['publish', 'iris', '--model', fixture('sklearn_logreg_iris', 'test_vectors.json'), '--features', 'a,b'], /not a valid ONNX file|could not load/],
      [['publish', 'iris', '--model', fixture('sklearn_logreg_iris'), '--features', 'a,b', '--output', 'sigmoid'], /--output must be multiclass or multilabel, got "sigmoid"/],
      [['show', 'iris'], /no published versions/],
      [['promote', 'iris', '1', 'a/b'], /Invalid alias name/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect((await runCli(['list', '--json'], env)).json().models).toEqual([]);
  });

  it('works against S3 with the usual credential chain, and says so plainly when S3 is down', async () => {
    const s3 = await testBucket({ versioned: true });
    const env = { MODEL_REGISTRY_URI: `s3://${s3.bucket}/registry`, ...s3.env };
    const published = await runCli(['publish', 'titanic', '--model', fixture('sklearn_titanic_pipeline_zipmap'), '--features', 'pclass,sex,age,fare,embarked', '--json'], env);
    expect(published.code).toBe(0);
    expect(published.json().manifest.model.rewrites[0]).toMatchObject({ kind: 'zipmap_removed', output: 'output_probability' });
    const shown = await runCli(['show', 'titanic', '1', '--json'], env);
    expect(shown.json().integrity.ok).toBe(true);
    const down = await runCli(['list'], {
      MODEL_REGISTRY_URI: 's3://cli-bucket/registry',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
      AWS_REGION: 'us-east-1',
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/error: S3 s3:\/\/cli-bucket\/registry\/: could not list/);
  });
});
