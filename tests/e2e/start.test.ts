import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../devkit/postgres';
import { tempDir } from '../support/registry';

/**
 * `npm start` on a fresh data folder, as a new user runs it (a smaller demo base, so it starts in
 * about half a minute), then the console's landing page in a real browser: the served models with
 * their production versions, the segments' latest runs, the charts drawn with data, and a badge for
 * every open problem linking to its page.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const SCREENSHOTS = resolve(import.meta.dirname, '../output');
let start: ChildProcess;
let output = '';
let url: string;
let browser: Browser;
let page: Page;
let problems: string[] = [];
const workFolder = `.esbuild-start-${process.pid}`;

beforeAll(async () => {
  const port = await freePort();
  url = `http://localhost:${port}`;
  start = spawn(resolve(ROOT, 'node_modules/.bin/tsx'), [resolve(ROOT, 'scripts/start.ts')], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port), LOYALTY_ML_DATA_DIR: tempDir(), LOYALTY_ML_DEMO_CUSTOMERS: '3000', ESBUILD_WORK_FOLDER: workFolder },
  });
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`npm start was not ready in 180 s:\n${output}`)), 180_000);
    const watch = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('loyalty-ml is running')) {
        clearTimeout(timer);
        ready();
      }
    };
    start.stdout!.on('data', watch);
    start.stderr!.on('data', watch);
    start.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`npm start exited with ${code}:\n${output}`));
    });
  });
  browser = await chromium.launch({ executablePath: execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim(), args: ['--no-sandbox', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  mkdirSync(SCREENSHOTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  if (start?.exitCode === null) {
    const exited = new Promise((r) => start.once('exit', r));
    process.kill(-start.pid!, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  rmSync(resolve(ROOT, workFolder), { recursive: true, force: true });
});

describe('a fresh npm start', () => {
  it('says what its first run did', () => {
    expect(output).toMatch(/start: first run: loading the demo customer base \(3,000 customers\)/);
    expect(output).toMatch(/start: first run: 5 segments scored and realised quality measured, twice, a demo month apart/);
  });

  it("opens the console on an overview: models, segments' runs, charts drawn with data, and badges that link to the problem", async () => {
    await page.goto(`${url}/`);
    const models = page.locator('table[data-table="overview-models"] tbody tr');
    await expect.poll(() => models.count(), { timeout: 30_000 }).toBe(2);
    const churn = await page.locator('tr[data-model="churn"]').innerText();
    // Production version, family, holdout AUC and the realised AUC with its interval from the first run's reports.
    expect(churn).toMatch(/^churn\tmodel\tv1\tgbt\tAUC 0\.\d{3}\tAUC 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]\t\S/);
    const segments = await page.locator('table[data-table="overview-segments"] tbody tr').allInnerTexts();
    expect(segments.map((r) => r.split('\t')[0])).toEqual(['all', 'at-risk', 'dormant', 'high-value', 'new']);
    expect(segments[0]).toMatch(/^all\t\S+ \(completed\)\t.+\t3,000\t0\.\d{3}\t[a-z_0-9]+$/);

    const charts = page.locator('[data-charts="overview"] .chart');
    expect(await charts.locator('h4').allInnerTexts()).toEqual([
      'churn: realised AUC by report',
      'nbo: realised AUC by report (offers sent)',
      'Scoring volume: customers scored per week (one per customer and feature date)',
      'Segment runs: mean churn probability',
    ]);
    // Every chart draws values: two reports per model, a week's volume per model, two runs per segment.
    const points = await charts.evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-points"))));
    expect(points[0]).toBe(2);
    expect(points[1]).toBe(2);
    expect(points[2]).toBeGreaterThanOrEqual(2);
    expect(points[3]).toBe(10);
    expect(await charts.locator('canvas').count()).toBe(4);
    // The legend reads the values under the cursor.
    await page.locator('[data-chart="churn: realised AUC by report"] .u-over').hover({ position: { x: 5, y: 60 } });
    const legend = (await page.locator('[data-chart="churn: realised AUC by report"] .u-legend .u-series').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(legend).toEqual([expect.stringMatching(/^report ?\d.+$/), expect.stringMatching(/^v1 ?0\.\d{3}$/), expect.stringMatching(/^v1 holdout ?0\.\d{3}$/)]);

    // Badges: every badge links to a page of the console; the first-run data (a month apart) gives at least one.
    const badges = page.locator('[data-badges] a.badge');
    const hrefs = await badges.evaluateAll((els) => els.map((e) => e.getAttribute('href')));
    expect(hrefs.length).toBeGreaterThan(0);
    expect(hrefs.every((h) => /^#\/(models|segments)\/[^/]+(\/\d+)?$/.test(h ?? ''))).toBe(true);
    const texts = await badges.allInnerTexts();
    // On 3,000 demo customers NBO cannot show its top offer beats what was sent: refused, and answered in mock mode.
    expect((await page.locator('tr[data-model="nbo"]').innerText()).split('\t')[1]).toBe('mock');
    expect(texts).toContain('nbo answers in mock mode');
    expect(texts.some((t) => /^nbo v1 refused: cannot show that sending each customer its top offer beats what was sent/.test(t))).toBe(true);
    await page.screenshot({ path: resolve(SCREENSHOTS, 'start-overview.png'), fullPage: true });

    // A drift badge leads to the segment page, where the drift is shown.
    // (The demo month moves the "new" segment: its members are other customers a month later.)
    const drift = badges.filter({ hasText: /drift in/ });
    expect(await drift.count()).toBeGreaterThan(0);
    const target = (await drift.first().getAttribute('href'))!;
    await drift.first().click();
    await expect.poll(() => new URL(page.url()).hash).toBe(target);
    await expect.poll(() => page.locator('[data-drift-summary]').innerText(), { timeout: 20_000 }).toMatch(/comparisons moved: /);
    expect(problems).toEqual([]);
  });
});
