import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startOffline, type Offline } from '../../devkit/offline';
import { createTestDatabase } from '../../devkit/postgres';
import { startConsoleServer, type ConsoleServer } from '../../lib/console/server';
import { ModelRegistry } from '../../lib/registry/index';
import { FsObjectStore } from '../../lib/storage/fs';
import { TrainingService } from '../../lib/services/training';
import { advanceDemoData, loadDemoData } from '../../lib/warehouse/demo-load';
import { createCoreApp } from '../../lib/app/core';
import { loadConfig } from '../../lib/config';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { runCli } from '../support/cli';
import { tinyModel } from '../support/models';
import { tempDir } from '../support/registry';

/**
 * The console in a real browser (Debian's chromium, headless, driven by playwright-core) against
 * the local service: each view loaded, clicked through and read as a person would, failing on any
 * console error. Screenshots go to tests/output/.
 */
const SCREENSHOTS = resolve(import.meta.dirname, '../output');
let offline: Offline;
let front: ConsoleServer;
let warehouse: WarehouseHandle;
let registry: ModelRegistry;
let registryDir: string;
let warehouseUrl: string;
let browser: Browser;
let page: Page;
let problems: string[];

beforeAll(async () => {
  const url = await createTestDatabase(inject('postgresUrl'), 'e2e_console');
  warehouseUrl = url;
  warehouse = await openWarehouse(url);
  // Offers sent uniformly: a small targeted history cannot show the NBO policy beats what was sent (the gate refuses it).
  await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: 2000, seed: 5, offerPolicy: 'uniform' });
  registryDir = tempDir();
  registry = new ModelRegistry(new FsObjectStore(registryDir), { actor: 'e2e' });
  for (const model of ['churn', 'nbo'] as const) await TrainingService.over(registry, warehouse).train({ model, promote: 'production' });
  offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', MODEL_ALIAS_TTL_SECONDS: '1', SEGMENT_CHUNK_SIZE: '100' });
  front = await startConsoleServer({ port: 0, apiUrl: offline.apiUrl, registry, actor: 'console-test' });
  browser = await chromium.launch({ executablePath: execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim(), args: ['--no-sandbox', '--disable-background-networking'] });
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await front?.close();
  await offline?.stop();
  await warehouse?.close();
});

beforeEach(async () => {
  problems = [];
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on('console', (message) => {
    // The 404s the console expects and explains on the page: the statistics of a segment never
    // scored, and the realised quality of a model not measured yet.
    const expected = message.text().includes('status of 404') && /\/segments\/[^/]+\/ml\/stats\/$|\/ml\/models\/[^/]+\/performance$/.test(message.location().url);
    if (message.type() === 'error' && !expected) problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
});

afterEach(async (context) => {
  await page.screenshot({ path: resolve(SCREENSHOTS, `console-${context.task.name.replace(/\W+/g, '-').slice(0, 60)}.png`), fullPage: true });
  await page.close();
  expect(problems).toEqual([]);
});

const rowsOf = (table: string) => page.locator(`table[data-table="${table}"] tbody tr`);

describe('the console in a browser', () => {
  it('lists the served models, then shows churn with its ROC, calibration, gain and histogram charts', async () => {
    await page.goto(`${front.url}/console/#/models`);
    await expect.poll(() => rowsOf('models').allInnerTexts()).toEqual([expect.stringMatching(/^churn\tmodel\tv1\tnone/), expect.stringMatching(/^nbo\tmodel\tv1\tnone/)]);
    await page.getByRole('link', { name: 'churn' }).click();
    await page.locator('[data-version-detail="1"]').waitFor();
    const charts = await page.locator('.chart h4').allInnerTexts();
    expect(charts).toEqual(['Global importance (mean |contribution|, points)', expect.stringMatching(/^ROC \(AUC 0\.\d{3}\)$/), 'Calibration (reliability)', 'Cumulative gain (lift)', 'Holdout scores by outcome']);
    expect(await page.locator('.chart canvas').count()).toBe(4);
    // Legends name their axes and show the values under the cursor.
    await page.locator('[data-chart^="ROC"] .u-over').hover({ position: { x: 120, y: 90 } });
    const legend = (await page.locator('[data-chart^="ROC"] .u-legend .u-series').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(legend).toEqual([expect.stringMatching(/^false positive rate ?\d\.\d{3}$/), expect.stringMatching(/^model ?\d\.\d{3}$/), expect.stringMatching(/^chance ?\d\.\d{3}$/)]);
    // Global importance: a bar per feature, largest first, over the holdout rows the manifest names.
    const bars = page.locator('[data-bars="importance"] rect[data-feature]');
    expect(await bars.count()).toBe(10);
    const widths = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('width'))));
    expect(widths).toEqual([...widths].sort((a, b) => b - a));
    expect(widths[0]).toBeGreaterThan(widths[9]!);
    expect(await page.locator('[data-importance] p').innerText()).toMatch(/over \d+ holdout rows drawn at random .* 95% interval\. Association in the model, not cause\./);
    expect(await rowsOf('metrics').first().innerText()).toMatch(/^auc\t0\.\d{4}\t0\.5000\t0\.\d{4}/);
    expect(await rowsOf('candidates').count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('table[data-table="candidates"] tr.selected').innerText()).toContain('(shipped)');
    // Settings read as key value pairs, numbers rounded: no JSON, no float noise.
    const settings = await page.locator('table[data-table="candidates"] td.settings').allInnerTexts();
    expect(settings.length).toBeGreaterThanOrEqual(3);
    expect(settings.every((t) => !/"|\d\.\d{6,}/.test(t) && (t === '' || /^\w+ \S+/.test(t))), settings.join(' | ')).toBe(true);
    expect((await rowsOf('gates').allInnerTexts()).every((row) => row.includes('passed'))).toBe(true);
  });

  it('writes the same charts into one self-contained HTML report (loyalty-ml report)', async () => {
    const out = resolve(tempDir(), 'churn.html');
    const cli = await runCli(['report', 'churn', '1', '--out', out, '--registry', registryDir]);
    expect([cli.code, cli.stdout.trim()]).toEqual([0, `wrote ${out}: churn v1`]);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/(src|href)="(https?:|\/)/); // nothing loaded from elsewhere
    await page.goto(`file://${out}`);
    await page.locator('.chart canvas').nth(3).waitFor();
    expect(await page.locator('.chart h4').allInnerTexts()).toHaveLength(5);
    expect(await page.locator('[data-bars="importance"] rect[data-feature]').count()).toBe(10);
    expect(await page.locator('h1').innerText()).toBe('churn v1');
    // The console's own version view: the same tables as the model page.
    expect(await rowsOf('metrics').first().innerText()).toMatch(/^auc\t0\.\d{4}\t0\.5000\t0\.\d{4}/);
    expect(await page.locator('table[data-table="candidates"] tr.selected').innerText()).toContain('(shipped)');
    const missing = await runCli(['report', 'churn', '1', '--registry', registryDir]);
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining('--out')]);
  });

  it('shows the NBO model per offer', async () => {
    await page.goto(`${front.url}/console/#/models/nbo`);
    await page.locator('[data-version-detail="1"]').waitFor();
    expect(await page.locator('[data-output="acceptance"]').innerText()).toMatch(/P\(the customer accepts the offer if it is sent\).*do not sum to 1/);
    expect(await page.locator('.chart h4').allInnerTexts()).toEqual([
      'Global importance (mean |contribution|, points)',
      expect.stringMatching(/^ROC \(AUC 0\.\d{3}\)$/),
      'Calibration (reliability)',
      'Cumulative gain (lift)',
      'Holdout scores by outcome',
      'Per offer: predicted and observed acceptance (window)',
    ]);
    expect(await rowsOf('metrics').first().innerText()).toMatch(/^auc\t0\.\d{4}/);
    // The policy's estimate beside what was sent, and the truth of the demo process.
    const policy = await rowsOf('policy-value').allInnerTexts();
    expect(policy[0]).toMatch(/^doubly robust \(reported\)\t0\.\d{4}\t0\.\d{4} – 0\.\d{4}$/);
    expect(policy).toContainEqual(expect.stringMatching(/^offers as sent \(observed\)\t0\.\d{4}/));
    expect(policy).toContainEqual(expect.stringMatching(/^true value \(demo process\)\t0\.\d{4}/));
    expect(await rowsOf('heads').count()).toBe(8);
    expect(await page.locator('[data-section="overlap"]').innerText()).toMatch(/Overlap \(logged propensities/);
    expect(await page.locator('table[data-table="versions"] tbody tr').first().innerText()).toMatch(/0\.\d{4} \(0\.\d{4}–0\.\d{4}\) vs 0\.\d{4} sent/);
  });

  it('promotes a version to staging after a confirmation, and the registry follows', async () => {
    const { bytes, draft } = await tinyModel('churn', { seed: 3 });
    const published = await registry.publish('churn', bytes, draft);
    await page.goto(`${front.url}/console/#/models/churn/${published.version}`);
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.accept();
    });
    await page.getByRole('button', { name: `Promote v${published.version} to staging` }).click();
    await expect.poll(() => rowsOf('aliases').allInnerTexts()).toContainEqual(expect.stringMatching(new RegExp(`^staging\\tv${published.version}\\t`)));
    expect(dialogs).toEqual([`Promote churn v${published.version} to staging?`]);
    expect((await registry.getAlias('churn', 'staging'))?.version).toBe(published.version);

    await page.getByRole('button', { name: `Promote v${published.version} to production` }).click();
    await expect.poll(() => rowsOf('aliases').allInnerTexts()).toContainEqual(expect.stringMatching(new RegExp(`^production\\tv${published.version}\\t`)));
    await page.getByRole('button', { name: 'Roll production back' }).click();
    await expect.poll(() => rowsOf('aliases').allInnerTexts()).toContainEqual(expect.stringMatching(/^production\tv1\t[\s\S]*rollback v\d+ → v1 by e2e \(from the console by console-test\)/));
    expect(dialogs.slice(1)).toEqual([`Promote churn v${published.version} to production?`, `Roll churn production back from v${published.version} to its previous version?`]);
    expect((await registry.getAlias('churn', 'production'))?.version).toBe(1);
  });

  it('starts two segment runs, watches them finish, and draws the trend', async () => {
    await page.goto(`${front.url}/console/#/segments/high-value`);
    await expect.poll(() => page.locator('main').innerText()).toMatch(/never been scored/);
    for (let run = 1; run <= 2; run++) {
      await page.getByRole('button', { name: 'Start a run' }).click();
      await expect.poll(() => page.locator('[data-run]').innerText(), { timeout: 60_000 }).toMatch(/completed, [\d,]+ of [\d,]+ customers scored/);
    }
    await page.locator('[data-charts="trend"]').waitFor();
    expect(await page.locator('[data-charts="latest"] .chart h4').allInnerTexts()).toEqual([
      expect.stringMatching(/^Churn probability \(mean 0\.\d{3}\)$/),
      'Churn risk bands',
      expect.stringMatching(/^What drives this segment's churn risk \(mean contribution over \d+ customers\)$/),
      'Offer mix (best offer)',
      'Which offers work best: mean P(accept)',
      'RFM segments',
    ]);
    // Which offers work best for the segment: every offer's mean acceptance, the customers it is best for, and the expected acceptance of the best offers.
    const works = await rowsOf('offers-work').allInnerTexts();
    expect(works).toHaveLength(8);
    const means = works.map((r) => Number(/\t(\d+\.\d)%\t/.exec(r)![1]));
    expect(means).toEqual([...means].sort((a, b) => b - a));
    expect(await page.locator('[data-expected-acceptance]').innerText()).toMatch(/^If every customer got their best offer, the expected acceptance rate is \d+\.\d%\.$/);
    // The segment's drivers: a signed bar per feature with its interval.
    expect(await page.locator('[data-bars="segment-drivers"] rect[data-feature]').count()).toBe(10);
    // Drift of the second run against the segment's own first run and previous run, scores and inputs.
    expect(await page.locator('[data-drift-summary]').innerText()).toMatch(/^(All \d+ comparisons are stable\.|\d+ of \d+ comparisons moved: .+\.)$/);
    const drift = await rowsOf('drift').allInnerTexts();
    expect(drift).toContainEqual(expect.stringMatching(/^score\tchurn v1\tbaseline run \S+ \(the first under .+\)\t\d\.\d{4}\t(stable|moderate|major)$/));
    // Inputs that did not move are folded away, one click from view.
    await page.locator('[data-drift-stable] summary').click();
    expect(await rowsOf('drift-stable').allInnerTexts()).toContainEqual(expect.stringMatching(/^input days_since_last_transaction\tchurn v1\tbaseline run /));
    expect(await page.locator('[data-charts="trend"] .chart h4').allInnerTexts()).toEqual(['Churn', 'Offer shares', expect.stringMatching(/^Score drift against the baseline run/)]);
    await expect.poll(() => page.locator('main h3').allInnerTexts()).toContain('Trend over 2 runs');
  });

  it('scores customers from the page and shows answers, sources and errors', async () => {
    await page.goto(`${front.url}/console/#/try`);
    await page.getByLabel('customer ids').fill('demo-000001, demo-000002 nobody');
    await page.getByLabel('prediction type').selectOption('all');
    await page.getByRole('button', { name: 'Score' }).click();
    await page.locator('[data-answer]').waitFor();
    expect(await page.locator('[data-answer] > p').first().innerText()).toBe('2 scored, 1 failed.');
    const answers = await rowsOf('answers').allInnerTexts();
    expect(answers[0]).toMatch(/^demo-000001\tchurn 0\.\d{3} \((low|medium|high)\)\tchurn v1 \(production\)$/);
    expect(answers.some((a) => /offer [a-z_0-9]+ .+ at \d+\.\d% chance of acceptance\tnbo v1 \(production\)/.test(a))).toBe(true);
    expect(answers.some((a) => /RFM .+ \(\d{3}\)\trules \(/.test(a))).toBe(true);
    expect(await rowsOf('errors').allInnerTexts()).toEqual([expect.stringMatching(/^nobody\t/)]);
    // With reasons (the default): a waterfall per churn and NBO answer, from a typical customer to this one.
    const waterfalls = page.locator('[data-charts="reasons"] [data-waterfall]');
    expect(await waterfalls.count()).toBe(4);
    expect(await waterfalls.locator('h4').allInnerTexts()).toEqual([
      expect.stringMatching(/^demo-000001: churn risk \d+\.\d%$/),
      expect.stringMatching(/^demo-000001: chance of accepting .+ \d+\.\d%$/),
      expect.stringMatching(/^demo-000002: churn risk \d+\.\d%$/),
      expect.stringMatching(/^demo-000002: chance of accepting .+ \d+\.\d%$/),
    ]);
    // Base, the six largest contributions, the other four together, and the answer.
    expect(await waterfalls.first().locator('rect').count()).toBe(9);
    expect(await waterfalls.first().locator('li').first().innerText()).toMatch(/(raises|lowers) churn risk by [\d.]+ points?\.$/);
  });

  it('shows realised quality once outcomes have arrived: a table per version, the trend across reports and the calibration', async () => {
    await page.goto(`${front.url}/console/#/models/churn`);
    await expect.poll(() => page.locator('[data-section="performance"]').innerText()).toMatch(/Not measured yet: .*loyalty-ml monitor churn/);
    // The whole base is scored (every answer logged); a month passes and the quality is measured twice.
    const started = (await (await fetch(`${offline.baseUrl}/api/loyalty/v1/segments/all/ml/predict/`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).json()) as { status_url: string };
    await expect.poll(async () => ((await (await fetch(`${offline.baseUrl}${started.status_url}`)).json()) as { status: string }).status, { timeout: 60_000 }).toBe('completed');
    await advanceDemoData(warehouse.pool, warehouse.warehouse.cfg, { months: 1 });
    const app = await createCoreApp(loadConfig({ STAGE: 'test', MODEL_REGISTRY_URI: registryDir, WAREHOUSE_URL: warehouseUrl }), { warehouse });
    await app.monitoring.report('churn');
    await app.monitoring.report('churn');
    await page.reload();
    await expect.poll(async () => (await rowsOf('performance').allInnerTexts()).filter((r) => !r.includes('shadow'))).toEqual([expect.stringMatching(/^v1 \(production\)\t[\d,]+\t[\d,]+\t[\d.]+%\t0\.\d{3} \[0\.\d{3}, (0\.\d{3}|1\.000)\]\t0\.\d{3}\t/)]);
    const charts = await page.locator('[data-section="performance"] .chart h4').allInnerTexts();
    expect(charts).toEqual(['Realised AUC by report', 'Calibration (reliability)']);
    expect(await page.locator('[data-section="performance"] .chart canvas').count()).toBe(2);
  });

  it('serves the API reference from the generated OpenAPI document', async () => {
    await page.goto(`${front.url}/docs`);
    await page.getByText('Score up to 100 customers').first().waitFor();
    const operations = await page.locator('.opblock-summary-path').allInnerTexts();
    expect(operations.map((p) => p.replace(/\u200b/g, ''))).toContain('/api/loyalty/v1/ml/predict/batch');
    const document = (await (await fetch(`${front.url}/api/loyalty/v1/openapi.json`)).json()) as { openapi: string };
    expect(document.openapi).toBe('3.1.0');
  });
});
