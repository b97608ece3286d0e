/**
 * `npm run bench [-- --quick] [-- --only explain|cold]`: how fast loyalty-ml is, beside its peers and its
 * limits, measured in one run on this machine. Writes bench/results/latest.json and the tables of
 * BENCHMARKS.md; `--only explain` runs the reasons section alone (its training and service included)
 * and writes bench/results/explain.json; `--only cold` packages the functions and measures their
 * sizes and the predict artifact's cold start (bench/results/cold.json); `--only commands` times
 * `loyalty-ml train --csv` as whole commands beside scikit-learn and LightGBM scripts
 * (bench/results/commands.json).
 * Starts its own PostgreSQL (as the tests do) and its own serverless-offline.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../lib/config';
import { createSession, ort } from '../lib/inference/session';
import { ModelRegistry } from '../lib/registry/index';
import { createScoringApp, type ScoringApp } from '../lib/app/scoring';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startMoto, TEST_CREDENTIALS } from '../devkit/moto';
import { S3ObjectStore } from '../lib/storage/s3';
import { LocalWorkerInvoker } from '../lib/segments/invokers';
import type { MemberSource } from '../lib/segments/planner';
import { toInline } from '../lib/segments/chunks';
import { newRunId } from '../lib/segments/runs';
import { FsObjectStore } from '../lib/storage/fs';
import { TrainingService } from '../lib/services/training';
import { loadDemoData } from '../lib/warehouse/demo-load';
import { openWarehouse, rfmQuintiles, type WarehouseHandle } from '../lib/warehouse/index';
import { FEATURES } from '../lib/catalog';
import { speedTable, syntheticChurnTable, toCsv } from '../devkit/datasets';
import { startOffline, type Offline } from '../devkit/offline';
import { createTestDatabase, startTestPostgres } from '../devkit/postgres';
import { tempDir } from '../devkit/temp';
import { machine, markdown, measure, summarize, table, type BenchRow } from './harness';
import { qualitySection } from './quality';
import { nboSection } from './nbo';
import { explainSection } from './explain';

const ROOT = resolve(import.meta.dirname, '..');
const quick = process.argv.includes('--quick');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined;
if (only !== undefined && only !== 'explain' && only !== 'cold' && only !== 'commands') {
  process.stderr.write(`bench: --only takes "explain", "cold" or "commands", got ${only === undefined ? 'nothing' : JSON.stringify(only)}\n`);
  process.exit(2);
}
const rows: BenchRow[] = [];
/** Markdown blocks appended to BENCHMARKS.md after the summary tables. */
const details: string[] = [];
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
const S = {
  scoring: '1. Scoring path: in-process scoring of fetched features vs bare onnxruntime',
  batch: '2. One batch of 100 vs 100 single predictions',
  e2e: '3. End-to-end batch of 100 over HTTP, warehouse on PostgreSQL',
  cold: '4. Cold start: new process to first prediction (local registry)',
  segment: '5. Segment scoring throughput from PostgreSQL',
  training: '6. Training time',
  gbt: '8. Boosted trees: training speed, and serving beside the MLP',
  artifacts: '7. Function artifact sizes',
  log: '10. The prediction log: a batch of 100 with and without it',
  commands: '13. Training as whole commands, beside the peers as whole scripts',
};

async function main(): Promise<void> {
  const started = Date.now();
  const pg = await startTestPostgres();
  const cleanups: (() => Promise<void> | void)[] = [() => pg.stop()];
  try {
    const pgVersion = execFileSync('psql', ['--version'], { encoding: 'utf8' }).trim();
    const baseCustomers = quick ? 3000 : 50_000;
    const url = await createTestDatabase(pg.url, 'bench_main');
    const wh = await openWarehouse(url);
    cleanups.push(() => wh.close());
    log(`loading ${baseCustomers.toLocaleString('en-US')} demo customers with history into PostgreSQL`);
    // Quick mode's 3,000 customers: offers sent uniformly, or NBO's gate refuses what so small a
    // targeted history cannot show beats it, and the sections that serve NBO have nothing to serve.
    await loadDemoData(wh.pool, wh.warehouse.cfg, { customers: baseCustomers, seed: 42, ...(quick ? { offerPolicy: 'uniform' as const } : {}) });

    if (only === 'commands') {
      await commandSection();
      const result = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', machine: { ...machine(), postgres: pgVersion }, seconds: (Date.now() - started) / 1000, rows };
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(join(ROOT, 'bench/results/commands.json'), `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`\n${table(rows)}\n\n${rows.filter((r) => r.target && !r.target.met).length} targets missed; ${result.seconds.toFixed(0)} s\n`);
      return;
    }
    const registryDir = tempDir('loyalty-ml-bench-');
    const registry = new ModelRegistry(new FsObjectStore(registryDir), { actor: 'bench' });
    await trainingSection(registry, wh, baseCustomers);

    if (only === 'cold') {
      const packaged = artifactSection();
      await coldStartSection(packaged, registry, registryDir, url);
      const result = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', machine: { ...machine(), postgres: pgVersion }, seconds: (Date.now() - started) / 1000, rows };
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(join(ROOT, 'bench/results/cold.json'), `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`\n${table(rows)}\n\n${rows.filter((r) => r.target && !r.target.met).length} targets missed; ${result.seconds.toFixed(0)} s\n`);
      return;
    }
    if (only === 'explain') {
      const offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', ESBUILD_WORK_FOLDER: '.esbuild-bench' });
      cleanups.push(() => offline.stop());
      rows.push(...(await explainSection({ api: `${offline.apiUrl}/api/loyalty/v1`, registry, wh, quick, log })));
      const result = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', machine: { ...machine(), postgres: pgVersion }, seconds: (Date.now() - started) / 1000, rows };
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(join(ROOT, 'bench/results/explain.json'), `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`\n${table(rows)}\n\n${rows.filter((r) => r.target && !r.target.met).length} targets missed; ${result.seconds.toFixed(0)} s\n`);
      return;
    }
    const app = await createScoringApp(loadConfig({ STAGE: 'bench', MODEL_REGISTRY_URI: registryDir, WAREHOUSE_URL: url, ML_MOCK_MODE: 'off' }));
    cleanups.push(() => app.close());
    await scoringSection(app, wh, registry);
    await familyServingSection(wh, url);
    await gbtTrainingSection(wh, quick ? 5_000 : 50_000);
    await inProcessBatchSection(app);
    await predictionLogSection(url, registryDir);
    const quality = await qualitySection({ quick, warehouse: wh.warehouse, log });
    rows.push(...quality.rows);
    details.push(quality.markdown);
    const nbo = await nboSection({ serverUrl: pg.url, quick, log });
    rows.push(...nbo.rows);
    details.push(nbo.markdown);

    const offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', ESBUILD_WORK_FOLDER: '.esbuild-bench' });
    cleanups.push(() => offline.stop());
    await httpSections(offline);
    rows.push(...(await explainSection({ api: `${offline.apiUrl}/api/loyalty/v1`, registry, wh, quick, log })));
    const packaged = artifactSection();
    await coldStartSection(packaged, registry, registryDir, url);
    await segmentSection(pg.url, registryDir);
    if (!quick) await largeTrainingSection(pg.url);
    await commandSection();

    const result = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', machine: { ...machine(), postgres: pgVersion }, seconds: (Date.now() - started) / 1000, rows, quality: quality.results, nbo: nbo.programmes };
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, `bench/results/${quick ? 'quick' : 'latest'}.json`), `${JSON.stringify(result, null, 2)}\n`);
    if (!quick) writeBenchmarksMd(result);
    process.stdout.write(`\n${table(rows)}\n\n${rows.filter((r) => r.target && !r.target.met).length} targets missed; ${(result.seconds).toFixed(0)} s (${result.mode})\n`);
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}

/** 6 (part): churn and NBO training on the main demo base; also provides the served models. */
async function trainingSection(registry: ModelRegistry, wh: WarehouseHandle, customers: number): Promise<void> {
  for (const model of ['churn', 'nbo'] as const) {
    log(`training ${model} on ${customers.toLocaleString('en-US')} customers`);
    const t0 = performance.now();
    const outcome = await TrainingService.over(registry, wh).train({ model, promote: 'production' });
    const seconds = (performance.now() - t0) / 1000;
    const fit = outcome.candidates.reduce((a, c) => a + c.seconds, 0);
    rows.push({
      section: S.training,
      metric: `${model}, ${customers.toLocaleString('en-US')} customers (${outcome.manifest.lineage.rows?.toLocaleString('en-US')} rows, ${outcome.nbo ? outcome.chosen : outcome.candidates.map((c) => c.family).join(' + ')})`,
      ours: seconds,
      unit: 's',
      peer: { label: 'of which fitting', value: fit },
      ratio: null,
      // The targets: churn on any base; NBO on the 50,000-customer demo base.
      target: model === 'churn' || customers === 50_000 ? { text: '< 60 s end to end from PostgreSQL', met: seconds < 60 } : null,
    });
  }
}

/** 1: the scoring code on features already fetched, against a bare session.run on the same tensor. */
async function scoringSection(app: ScoringApp, wh: WarehouseHandle, registry: ModelRegistry): Promise<void> {
  const sizes = [1, 100, 10_000];
  const { ids: allIds, features: allFeatures } = await sampleCustomers(wh, 10_000);
  for (const model of ['churn', 'nbo'] as const) {
    const { bytes, manifest } = await registry.readModel(model, 'production');
    const session = await createSession(bytes);
    for (const n of sizes) {
      const reps = quick ? (n >= 10_000 ? 10 : 50) : n >= 10_000 ? 60 : n >= 100 ? 500 : 2000;
      const tensor = featureTensor(allFeatures.slice(0, n));
      const bare = await measure(() => session.run({ [manifest.input.tensors[0]!.name]: tensor }), { reps });
      const ours = await measure(() => app.scoring.scoreFeatures(allIds.slice(0, n), allFeatures.slice(0, n), model), { reps });
      const rate = (ms: number) => (n / ms) * 1000;
      rows.push({
        section: S.scoring,
        metric: `${model} (${manifest.lineage.family}), ${n.toLocaleString('en-US')} customers`,
        ours: rate(ours.median),
        unit: 'customers/s',
        peer: { label: 'bare session.run', value: rate(bare.median) },
        ratio: ours.median / bare.median,
        target: n === 10_000 ? { text: '>= 1,000,000/s and within 5x', met: rate(ours.median) >= 1_000_000 && ours.median / bare.median <= 5 } : null,
      });
      log(`scoring ${model} x${n}: ${rate(ours.median).toFixed(0)}/s vs bare ${rate(bare.median).toFixed(0)}/s`);
    }
    await session.release();
  }
}

/** 8 (serving): churn scoring of 10,000 customers with an MLP and with boosted trees. */
async function familyServingSection(wh: WarehouseHandle, url: string): Promise<void> {
  const n = 10_000;
  const { ids: allIds, features } = await sampleCustomers(wh, n);
  const tensor = featureTensor(features);
  const medians: Record<string, number> = {};
  for (const family of ['mlp', 'gbt'] as const) {
    const dir = tempDir('loyalty-ml-bench-family-');
    const registry = new ModelRegistry(new FsObjectStore(dir), { actor: 'bench' });
    log(`training churn with ${family} only, for serving`);
    await TrainingService.over(registry, wh).train({ model: 'churn', promote: 'production' }, { families: [family] });
    const app = await createScoringApp(loadConfig({ STAGE: 'bench', MODEL_REGISTRY_URI: dir, WAREHOUSE_URL: url, ML_MOCK_MODE: 'off' }));
    try {
      const { bytes } = await registry.readModel('churn', 'production');
      const session = await createSession(bytes);
      const reps = quick ? 10 : 60;
      const bare = await measure(() => session.run({ features: tensor }), { reps });
      const ours = await measure(() => app.scoring.scoreFeatures(allIds, features, 'churn'), { reps });
      medians[family] = ours.median;
      rows.push({
        section: S.gbt,
        metric: `serving churn (${family}), 10,000 customers`,
        ours: (n / ours.median) * 1000,
        unit: 'customers/s',
        peer: { label: 'bare session.run', value: (n / bare.median) * 1000 },
        ratio: ours.median / bare.median,
        target: null,
        note: family === 'gbt' && medians.mlp ? `${(medians.mlp / ours.median).toFixed(2)}x the MLP's rate` : undefined,
      });
      await session.release();
    } finally {
      await app.close();
    }
  }
}

/** 8 (training): the boosted-trees trainer alone, 300 rounds without early stopping, on churn history rows. */
async function gbtTrainingSection(wh: WarehouseHandle, rowsWanted: number): Promise<void> {
  const { readChurnHistory } = await import('../lib/warehouse/history');
  const { trainGbt, DEFAULT_GBT } = await import('../lib/training/gbt');
  const history = await readChurnHistory(wh.warehouse);
  const n = Math.min(rowsWanted, history.rows);
  const cols = FEATURES.length;
  const data = { X: history.X.subarray(0, n * cols), rows: n, cols, y: Int32Array.from(history.labels.slice(0, n) as number[]) };
  const valRows = Math.min(5000, history.rows - n);
  const val = { X: history.X.subarray(n * cols, (n + valRows) * cols), rows: valRows, cols, y: Int32Array.from(history.labels.slice(n, n + valRows) as number[]) };
  const rounds = quick ? 50 : 300;
  const t0 = performance.now();
  const { report } = trainGbt(data, val, 2, { ...DEFAULT_GBT, maxRounds: rounds, earlyStoppingRounds: rounds + 1 });
  const seconds = (performance.now() - t0) / 1000;
  const limit = n >= 500_000 ? 300 : 30;
  rows.push({
    section: S.gbt,
    metric: `training ${n.toLocaleString('en-US')} rows x ${cols} features, ${report.rounds} rounds`,
    ours: seconds,
    unit: 's',
    peer: { label: 'limit', value: limit },
    ratio: seconds / limit,
    target: n >= 50_000 ? { text: `< ${limit} s`, met: seconds < limit } : null,
  });
  log(`gbt training ${n} rows: ${seconds.toFixed(1)} s`);
}

/** n customers for the in-process measurements: the first 3,000 demo customers' real features, repeated. */
async function sampleCustomers(wh: WarehouseHandle, n: number): Promise<{ ids: string[]; features: (number | null)[][] }> {
  const demo = Array.from({ length: 3000 }, (_, i) => `demo-${String(i + 1).padStart(6, '0')}`);
  const fetched = await wh.warehouse.getFeatures(demo);
  const known = demo.filter((id) => fetched.has(id));
  const ids = Array.from({ length: n }, (_, i) => `c${i}`);
  return { ids, features: ids.map((_, i) => fetched.get(known[i % known.length]!)!.features) };
}

/** The float32 [rows, features] tensor a bare session.run gets (NaN for missing). */
function featureTensor(features: (number | null)[][]): ort.Tensor {
  const X = new Float32Array(features.length * FEATURES.length);
  features.forEach((f, r) => f.forEach((v, j) => (X[r * FEATURES.length + j] = v ?? NaN)));
  return new ort.Tensor('float32', X, [features.length, FEATURES.length]);
}

/** 2 (in process): one batch of 100 against 100 single predictions, warehouse on PostgreSQL. */
async function inProcessBatchSection(app: ScoringApp): Promise<void> {
  const ids = Array.from({ length: 100 }, (_, i) => `demo-${String(i * 7 + 1).padStart(6, '0')}`);
  const reps = quick ? 10 : 50;
  const batch = await measure(() => app.scoring.score(ids, 'churn', 60_000), { reps });
  const singles = await measure(async () => {
    for (const id of ids) await app.scoring.score([id], 'churn', 60_000);
  }, { reps: quick ? 3 : 10 });
  rows.push(batchVersusSingles('in process, churn, PostgreSQL', batch.median, '100 singles', singles.median));
}

/**
 * 10: the same batch of 100 answered with the prediction log off, written to a local folder, and
 * written to S3 (moto's server over HTTP on this machine), interleaved so noise hits all three.
 */
async function predictionLogSection(url: string, registryDir: string): Promise<void> {
  const moto = await startMoto();
  try {
    const client = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    await client.send(new CreateBucketCommand({ Bucket: 'bench-log' }));
    const env = { STAGE: 'bench', MODEL_REGISTRY_URI: registryDir, WAREHOUSE_URL: url, ML_MOCK_MODE: 'off', SHADOW_ALIAS: 'none' };
    const off = await createScoringApp(loadConfig({ ...env, PREDICTION_LOG: 'off' }));
    const folder = await createScoringApp(loadConfig({ ...env, RESULTS_URI: tempDir('loyalty-ml-bench-log-') }));
    const s3 = await createScoringApp(loadConfig(env), { resultsStore: new S3ObjectStore({ bucket: 'bench-log', client }) });
    const ids = Array.from({ length: 100 }, (_, i) => `demo-${String(i * 7 + 1).padStart(6, '0')}`);
    for (const type of ['churn', 'all'] as const) {
      const times: Record<'off' | 'folder' | 's3', number[]> = { off: [], folder: [], s3: [] };
      const apps = { off, folder, s3 };
      for (let i = 0; i < (quick ? 20 : 200) + 10; i++) {
        for (const which of ['off', 'folder', 's3'] as const) {
          const t0 = performance.now();
          await apps[which].predictions.predict({ customerIds: ids, type, batch: true, deadlineMs: 60_000 });
          if (i >= 10) times[which].push(performance.now() - t0);
        }
      }
      const base = summarize(times.off).median;
      for (const which of ['folder', 's3'] as const) {
        const median = summarize(times[which]).median;
        rows.push({
          section: S.log,
          metric: `type ${type}, log ${which === 'folder' ? 'to a local folder' : 'to S3 (moto, local HTTP)'}`,
          ours: median,
          unit: 'ms',
          peer: { label: 'log off', value: base },
          ratio: median / base,
          target: null,
          note: `adds ${(median - base).toFixed(2)} ms at the median; p99 ${summarize(times[which]).p99.toFixed(1)} ms against ${summarize(times.off).p99.toFixed(1)} ms`,
        });
      }
    }
    await Promise.all([off.close(), folder.close(), s3.close()]);
  } finally {
    await moto.stop();
  }
}

function batchVersusSingles(metric: string, batch: number, peer: string, singles: number): BenchRow {
  return {
    section: S.batch,
    metric,
    ours: batch,
    unit: 'ms',
    peer: { label: peer, value: singles },
    ratio: singles / batch,
    target: { text: 'batch >= 20x faster', met: singles / batch >= 20 },
    note: 'ratio = how many times faster the batch is',
  };
}

/** 2 (over HTTP) and 3: through serverless-offline, as a client sees it. */
async function httpSections(offline: Offline): Promise<void> {
  // serverless-offline itself, as in earlier runs (the front door npm start adds is measured in README).
  const api = `${offline.apiUrl}/api/loyalty/v1`;
  const ids = Array.from({ length: 100 }, (_, i) => `demo-${String(i * 7 + 1).padStart(6, '0')}`);
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
    return { text, timing: response.headers.get('server-timing') ?? '' };
  };
  const batch = await measure(() => post('/ml/predict/batch', { customer_ids: ids, type: 'churn' }), { reps: quick ? 10 : 50, warmup: 5 });
  const singles = await measure(async () => {
    for (const id of ids) await post('/ml/predict', { customer_id: id, type: 'churn' });
  }, { reps: quick ? 2 : 5, warmup: 1 });
  rows.push(batchVersusSingles('over HTTP (serverless-offline), churn', batch.median, '100 single requests', singles.median));

  for (const type of ['churn', 'all'] as const) {
    const latencies: number[] = [];
    const stages: Record<string, number[]> = {};
    const serialise: number[] = [];
    for (let i = 0; i < (quick ? 30 : 300) + 10; i++) {
      const t0 = performance.now();
      const { text, timing } = await post('/config/ml/test/', { customer_ids: ids, type });
      const elapsed = performance.now() - t0;
      if (i < 10) continue;
      latencies.push(elapsed);
      for (const part of timing.split(',')) {
        const m = /\s*(\w+);dur=([\d.]+)/.exec(part);
        if (m) (stages[m[1]!] ??= []).push(Number(m[2]));
      }
      const body = JSON.parse(text);
      const s0 = performance.now();
      JSON.stringify(body);
      serialise.push(performance.now() - s0);
    }
    const lat = summarize(latencies);
    const med = (k: string) => (stages[k] ? summarize(stages[k]!).median : 0);
    const inference = med('churn') + med('nbo') + med('rfm');
    const handler = med('total');
    const framework = Math.max(0, lat.median - handler - summarize(serialise).median);
    rows.push({
      section: S.e2e,
      metric: `p50, type ${type}`,
      ours: lat.median,
      unit: 'ms',
      peer: { label: 'scoring inside the handler', value: handler },
      ratio: lat.median / Math.max(handler, 1e-6),
      target: { text: 'p50 < 30 ms', met: lat.median < 30 },
      note: `p99 ${lat.p99.toFixed(1)} ms; warehouse ${med('warehouse').toFixed(2)} ms, inference ${inference.toFixed(2)} ms, serialisation ${summarize(serialise).median.toFixed(2)} ms, framework and HTTP ${framework.toFixed(2)} ms`,
    });
    rows.push({ section: S.e2e, metric: `p99, type ${type}`, ours: lat.p99, unit: 'ms', peer: null, ratio: null, target: null });
  }
}

/**
 * 4: a new process to its first prediction, as Lambda starts one: the packaged predict artifact
 * (unzipped, exactly what is deployed), against bare Node and a bare onnxruntime process loading
 * and running the same model.
 */
async function coldStartSection(packaged: string, registry: ModelRegistry, registryDir: string, warehouseUrl: string): Promise<void> {
  // Every model when NBO has a production version (a small quick base may refuse it), else churn.
  const type = (await registry.getAlias('nbo', 'production')) ? 'all' : 'churn';
  // Outside the repository, so nothing resolves from its node_modules: the function's zip, and the
  // onnxruntime layer where Lambda puts it (found through NODE_PATH, as the runtime sets it).
  const base = tempDir('loyalty-ml-bench-cold-');
  const dir = join(base, 'task');
  execFileSync('unzip', ['-q', join(packaged, 'predict.zip'), '-d', dir]);
  execFileSync('unzip', ['-q', join(packaged, 'onnxruntime.zip'), '-d', join(base, 'opt')]);
  const event = { version: '2.0', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer_id: 'demo-000001', type }), isBase64Encoded: false, requestContext: {} };
  const driver = join(dir, 'cold-start.cjs');
  writeFileSync(
    driver,
    `const t0 = performance.now();
const h = require('./functions/predict.cjs');
const loaded = performance.now();
h.single(${JSON.stringify(event)}, { getRemainingTimeInMillis: () => 29000, awsRequestId: 'cold' }).then((r) => {
  if (r.statusCode !== 200) { console.error(r.body); process.exit(1); }
  console.log(JSON.stringify({ import_ms: loaded - t0, first_prediction_ms: performance.now() - loaded, since_process_start_ms: performance.now() }));
  process.exit(0);
});`,
  );
  const bareOrt = join(dir, 'bare-ort.cjs');
  const model = join(registryDir, 'models/churn/versions/1/model.onnx');
  writeFileSync(
    bareOrt,
    `const ort = require('onnxruntime-node');
ort.InferenceSession.create(require('fs').readFileSync(${JSON.stringify(model)})).then(async (s) => {
  await s.run({ features: new ort.Tensor('float32', new Float32Array(10), [1, 10]) });
  process.exit(0);
});`,
  );
  const node = join(ROOT, 'node_modules/.bin/node');
  // The deployed function's environment: no NODE_OPTIONS (deployed bundles carry no source map).
  const env = { PATH: process.env.PATH, STAGE: 'bench', MODEL_REGISTRY_URI: registryDir, WAREHOUSE_URL: warehouseUrl, ML_MOCK_MODE: 'off', NODE_PATH: join(base, 'opt/nodejs/node_modules') };
  const wall = (args: string[]) => {
    const t0 = performance.now();
    const r = spawnSync(node, args, { cwd: dir, env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cold start failed: ${r.stderr}`);
    return { ms: performance.now() - t0, out: r.stdout };
  };
  const reps = quick ? 3 : 15;
  const ours: number[] = [];
  const inside: { import_ms: number; first_prediction_ms: number }[] = [];
  const bareNode: number[] = [];
  const bareOnnx: number[] = [];
  wall([driver]);
  for (let i = 0; i < reps; i++) {
    const r = wall([driver]);
    ours.push(r.ms);
    inside.push(JSON.parse(r.out.trim().split('\n').pop()!));
    bareNode.push(wall(['-e', '0']).ms);
    bareOnnx.push(wall([bareOrt]).ms);
  }
  const o = summarize(ours);
  const imp = summarize(inside.map((x) => x.import_ms)).median;
  const first = summarize(inside.map((x) => x.first_prediction_ms)).median;
  rows.push({
    section: S.cold,
    metric: `predict (type ${type}): process start to first answer`,
    ours: o.median,
    unit: 'ms',
    peer: { label: 'bare onnxruntime: process, load, one run', value: summarize(bareOnnx).median },
    ratio: o.median / summarize(bareOnnx).median,
    target: { text: '<= 1.5x bare onnxruntime', met: o.median / summarize(bareOnnx).median <= 1.5 },
    note: `Node itself starts in ${summarize(bareNode).median.toFixed(0)} ms; loading the bundle ${imp.toFixed(0)} ms; first prediction (registry, checksum, sessions, warehouse) ${first.toFixed(0)} ms`,
  });
}

/**
 * 5: segment throughput. The scan path (one warehouse query per run, features handed to the
 * workers) against the previous path's warehouse reads (members paged, then one IN query per chunk
 * of 1,000), both through the same planner and workers, beside reading the features alone with the
 * one scan. Merged statistics of the two paths must be identical.
 */
async function segmentSection(serverUrl: string, registryDir: string): Promise<void> {
  const customers = quick ? 20_000 : 1_000_000;
  const url = await createTestDatabase(serverUrl, `bench_segment_${customers}`);
  const loader = await openWarehouse(url);
  log(`segment: loading ${customers.toLocaleString('en-US')} customers (no history)`);
  await loadDemoData(loader.pool, loader.warehouse.cfg, { customers, seed: 7, history: false });
  await loader.pool.query('ANALYZE');
  await loader.close();
  const base = { STAGE: 'bench', MODEL_REGISTRY_URI: registryDir, WAREHOUSE_URL: url, ML_MOCK_MODE: 'off', SHADOW_ALIAS: 'none' };
  const settings = { chunkSize: 1000, concurrency: 4, retries: 2 };
  const label = customers.toLocaleString('en-US');
  const figures: Record<string, number[]> = {};
  const statistics: Record<string, unknown> = {};
  const apps: Record<string, Awaited<ReturnType<typeof createScoringApp>>> = {};
  let firstRate = 0;
  // Every run's parts and log files (about 0.6 GB per million customers): removed afterwards.
  const runFolders: string[] = [];
  try {
    for (const log of ['on', 'off']) {
      const results = tempDir('loyalty-ml-bench-runs-');
      runFolders.push(results);
      apps[log] = await createScoringApp(loadConfig({ ...base, PREDICTION_LOG: log, RESULTS_URI: results }));
    }
    const { warehouse } = await apps.on!.warehouse();
    // The previous path's reads: a page of member ids, then their features by IN lists of 1,000.
    const chunkQueries: MemberSource = {
      countSegmentMembers: (segment) => warehouse.countSegmentMembers(segment),
      async *scanSegmentFeatures(segment) {
        const width = FEATURES.length;
        for (let after: string | null = null; ; ) {
          const page: string[] = await warehouse.segmentMembersPage(segment, after, 1000);
          if (!page.length) return;
          after = page[page.length - 1]!;
          const rows = await warehouse.getFeatures(page);
          const features = new Float64Array(page.length * width).fill(NaN);
          const found = new Uint8Array(page.length);
          page.forEach((id, i) => {
            const row = rows.get(id);
            if (!row) return;
            found[i] = 1;
            row.features.forEach((v, j) => (features[i * width + j] = v ?? NaN));
          });
          yield { ids: page, features, found, asOf: page.map((id) => rows.get(id)?.asOf ?? null) };
        }
      },
    };
    const passes: { key: string; log: 'on' | 'off'; members?: MemberSource }[] = [
      { key: 'scan, log on', log: 'on' },
      { key: 'scan, log off', log: 'off' },
      { key: 'chunk queries, log on', log: 'on', members: chunkQueries },
    ];
    // Warm-up (models, JIT, and the base's RFM quintiles, which later runs reuse for
    // PROFILE_TTL_SECONDS as the service does), timed as a process's first run; then interleaved
    // repetitions, reading alone beside each round.
    const w0 = performance.now();
    const warm = await apps.on!.segments.runHere('all', ['churn', 'nbo', 'rfm'], { settings, invoker: new LocalWorkerInvoker((p) => apps.on!.chunks.score(p)), owner: 'bench' });
    firstRate = warm.run.progress.customers_scored / ((performance.now() - w0) / 1000);
    for (let round = 0; round < (quick ? 1 : 5); round++) {
      const t0 = performance.now();
      let read = 0;
      for await (const batch of warehouse.scanSegmentFeatures('all')) read += batch.ids.length;
      (figures['read'] ??= []).push(read / ((performance.now() - t0) / 1000));
      for (const pass of passes) {
        const app = apps[pass.log]!;
        const invoker = new LocalWorkerInvoker((p) => app.chunks.score(p));
        const t1 = performance.now();
        const { run, stats } = await app.segments.runHere('all', ['churn', 'nbo', 'rfm'], { settings, invoker, owner: 'bench', ...(pass.members ? { members: pass.members } : {}) });
        const seconds = (performance.now() - t1) / 1000;
        if (run.status !== 'completed' || !stats) throw new Error(`segment run ended ${run.status}`);
        (figures[pass.key] ??= []).push(run.progress.customers_scored / seconds);
        // Drift names the runs it compares with (each pass keeps its own history): the figures alone are compared.
        const { run_id: _r, started_at: _s, finished_at: _f, drift: _d, ...figuresOnly } = stats;
        statistics[pass.key] = figuresOnly;
        log(`segment ${label} (${pass.key}): ${(run.progress.customers_scored / seconds).toFixed(0)}/s`);
      }
    }
    // One worker chunk as a worker Lambda spends it (decode the inline payload, score, aggregate,
    // write the part and the log file), beside what the previous worker first spent on the
    // warehouse for the same 1,000 customers (one IN query).
    const chunkIds: string[] = [];
    const chunkFeatures: number[] = [];
    for await (const batch of warehouse.scanSegmentFeatures('all', { fetchRows: 1000 })) {
      chunkIds.push(...batch.ids);
      chunkFeatures.push(...batch.features);
      break;
    }
    const inline = toInline({ ids: chunkIds, features: Float64Array.from(chunkFeatures), found: new Uint8Array(chunkIds.length).fill(1), asOf: chunkIds.map(() => null) });
    const payloadBytes = JSON.stringify({ customers: { inline } }).length;
    const quintiles = await rfmQuintiles(warehouse);
    const chunkRun = newRunId();
    let chunkNumber = 0;
    const worker = await measure(() => apps.on!.chunks.score({ run_id: chunkRun, segment_id: 'all', chunk: ++chunkNumber, types: ['churn', 'nbo', 'rfm'], rfm_quintiles: { ...quintiles.quintiles, customers: quintiles.customers }, customers: { inline } }), { reps: quick ? 20 : 200 });
    const query = await measure(() => warehouse.getFeatures(chunkIds), { reps: quick ? 20 : 200 });
    rows.push({
      section: S.segment,
      metric: `one worker chunk of 1,000 customers: payload decoded, scored, aggregated, part and log written (local folder); payload ${(payloadBytes / 1024).toFixed(0)} KB`,
      ours: worker.median,
      unit: 'ms',
      peer: { label: "the previous worker's warehouse query for the same 1,000", value: query.median },
      ratio: worker.median / query.median,
      target: null,
    });
  } finally {
    for (const app of Object.values(apps)) await app.close();
    for (const folder of runFolders) rmSync(folder, { recursive: true, force: true });
  }
  const same = JSON.stringify(statistics['scan, log on']) === JSON.stringify(statistics['chunk queries, log on']) && JSON.stringify(statistics['scan, log on']) === JSON.stringify(statistics['scan, log off']);
  if (!same) throw new Error('the scan path and the chunk-query path merged different statistics');
  const median = (xs: number[]) => summarize(xs).median;
  const read = median(figures['read']!);
  const range = (xs: number[]) => `${Math.round(Math.min(...xs)).toLocaleString('en-US')}-${Math.round(Math.max(...xs)).toLocaleString('en-US')}/s over ${xs.length} runs`;
  for (const key of ['scan, log on', 'scan, log off']) {
    const rate = median(figures[key]!);
    rows.push({
      section: S.segment,
      metric: `${label} customers, one scan, churn + nbo + rfm, prediction log ${key.endsWith('on') ? 'on' : 'off'} (${range(figures[key]!)}; RFM quintiles reused from the process's first run)`,
      ours: rate,
      unit: 'customers/s',
      peer: { label: 'reading the features alone (the same scan)', value: read },
      ratio: read / rate,
      target: { text: '>= 300,000/s end to end', met: rate >= 300_000 },
      note: 'statistics identical to the chunk-query path',
    });
  }
  rows.push({
    section: S.segment,
    metric: `${label} customers, the process's first run (log on): code not yet warm, and the base's RFM quintiles read first (three sort-based queries beside the scan)`,
    ours: firstRate,
    unit: 'customers/s',
    peer: { label: 'one scan, log on (warm, quintiles reused)', value: median(figures['scan, log on']!) },
    ratio: median(figures['scan, log on']!) / firstRate,
    target: null,
  });
  const old = median(figures['chunk queries, log on']!);
  const scan = median(figures['scan, log on']!);
  rows.push({
    section: S.segment,
    metric: `${label} customers, members paged and features by one query per 1,000 (the previous path's reads), log on (${range(figures['chunk queries, log on']!)}; ratio = how many times faster the scan is)`,
    ours: old,
    unit: 'customers/s',
    peer: { label: 'one scan, log on', value: scan },
    ratio: scan / old,
    target: null,
  });
}

/** 6 (large): churn and NBO on 500,000 customers. */
async function largeTrainingSection(serverUrl: string): Promise<void> {
  const url = await createTestDatabase(serverUrl, 'bench_train_500k');
  const wh = await openWarehouse(url);
  try {
    log('training: loading 500,000 customers with history');
    await loadDemoData(wh.pool, wh.warehouse.cfg, { customers: 500_000, seed: 42 });
    await trainingSection(new ModelRegistry(new FsObjectStore(tempDir('loyalty-ml-bench-')), { actor: 'bench' }), wh, 500_000);
    await learningCurve(wh);
    await gbtTrainingSection(wh, 500_000);
  } finally {
    await wh.close();
  }
}

/**
 * 6 (part): churn on the 500,000-customer base learning from a growing share of customers, each
 * reported on the same whole latest snapshot: does the default sample lose anything?
 */
async function learningCurve(wh: WarehouseHandle): Promise<void> {
  const lines = ['### Churn learning curve (500,000 customers)', '', 'The default `train churn` on the 500,000-customer demo base, learning from a seeded share of customers (sampled in SQL; seed 42) and reported on the whole latest snapshot. `max_learning_rows` (models/training.json) sets the default share.', '', '| share of customers | learning rows | chosen | out-of-fold AUC | report-row AUC | report-row log loss | seconds, end to end |', '| --- | --- | --- | --- | --- | --- | --- |'];
  for (const share of [0.05, 0.1, 0.2, 0.5, 1]) {
    const registry = new ModelRegistry(new FsObjectStore(tempDir('loyalty-ml-bench-curve-')), { actor: 'bench' });
    const t0 = performance.now();
    const outcome = await TrainingService.over(registry, wh).train({ model: 'churn', sample: share });
    const seconds = (performance.now() - t0) / 1000;
    const m = outcome.manifest.metrics!;
    const oof = m.cross_validation ? (m.cross_validation.out_of_fold as { auc: number | null }).auc : null;
    const report = m.holdout as { auc: number | null; log_loss: number | null };
    lines.push(`| ${share * 100}% | ${m.cross_validation?.refit.rows.toLocaleString('en-US')} | ${outcome.chosen} | ${oof?.toFixed(4)} | ${report.auc?.toFixed(4)} | ${report.log_loss?.toFixed(4)} | ${seconds.toFixed(1)} |`);
    log(`learning curve: ${share * 100}% of customers: report AUC ${report.auc?.toFixed(4)} in ${seconds.toFixed(1)} s`);
  }
  details.push(`${lines.join('\n')}\n`);
}

/** 7: `osls package` zip sizes per function, against Lambda's limits and the 25 MB target. */
/**
 * 13: training as a user runs it, process start to published version: `loyalty-ml train --csv` on
 * a 3,000-row table (every family, chosen by cross-validation) beside scikit-learn's
 * HistGradientBoosting fit and predict as a Python script, and `--family gbt` on 300,000 x 10 beside
 * LightGBM's fit and predict (both with their libraries' defaults, all cores), medians of 3.
 */
async function commandSection(): Promise<void> {
  const dir = tempDir('loyalty-ml-bench-commands-');
  const small = syntheticChurnTable(3000, 11);
  writeFileSync(join(dir, 'small.csv'), toCsv(small));
  writeFileSync(join(dir, 'large.csv'), speedTable(300_000).csv());
  const python = [process.env.PYTHON, 'python3', '/usr/bin/python3'].find((py) => py && spawnSync(py, ['-c', 'import lightgbm, sklearn, pandas'], { stdio: 'ignore' }).status === 0);
  let runs = 0;
  const timed = (command: string, args: string[]) => {
    const times: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const t0 = performance.now();
      // A fresh registry each time: every run publishes its first version.
      const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, MODEL_REGISTRY_URI: join(dir, `registry-${++runs}`) } });
      if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr.slice(-2000)}`);
      times.push((performance.now() - t0) / 1000);
    }
    return summarize(times).median;
  };
  const cli = join(ROOT, 'node_modules/.bin/tsx');
  const entry = join(ROOT, 'bin/loyalty-ml.ts');
  for (const c of [
    { label: 'train --csv, 3,000 rows x 12 columns (every family)', args: ['train', 'small', '--csv', join(dir, 'small.csv'), '--label', 'churned'], peer: 'hgb', table: 'small.csv', peerArgs: ['--label', 'churned', '--positive', 'yes', '--id', 'customer_id'], peerLabel: "scikit-learn HistGradientBoosting, fit and predict (script)", target: (ours: number) => ({ text: '<= 3 s', met: ours <= 3 }) },
    { label: 'train --family gbt --csv, 300,000 x 10', args: ['train', 'large', '--csv', join(dir, 'large.csv'), '--label', 'y', '--family', 'gbt'], peer: 'lightgbm', table: 'large.csv', peerArgs: ['--label', 'y', '--positive', '1'], peerLabel: 'LightGBM, fit and predict (script)', target: (ours: number, peer: number | null) => (peer === null ? null : { text: 'at most the peer', met: ours <= peer }) },
  ]) {
    log(`commands: ${c.label}`);
    const ours = timed(cli, [entry, ...c.args]);
    const peer = python ? timed(python, [join(ROOT, 'bench/peers.py'), 'fit-predict', '--table', join(dir, c.table), '--model', c.peer, '--out', join(dir, 'p.txt'), ...c.peerArgs]) : null;
    rows.push({
      section: S.commands,
      metric: `${c.label}: process start to published version`,
      ours,
      unit: 's',
      peer: peer === null ? null : { label: c.peerLabel, value: peer },
      ratio: peer === null ? null : ours / peer,
      target: c.target(ours, peer),
      note: python ? undefined : 'Python with lightgbm and scikit-learn not installed',
    });
  }
}

/** 7: every function's zip (packaged as for a deployed stage); returns the folder of zips. */
function artifactSection(): string {
  const out = tempDir('loyalty-ml-bench-package-');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const r = spawnSync(join(ROOT, 'node_modules/.bin/osls'), ['package', '--stage', 'bench', '--package', out], {
    cwd: ROOT,
    env: { ...env, ESBUILD_WORK_FOLDER: '.esbuild-bench-package', ONNXRUNTIME_NODE_INSTALL: 'skip' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`osls package failed: ${r.stderr}`);
  for (const file of readdirSync(out).filter((f) => f.endsWith('.zip')).sort()) {
    const zipped = statSync(join(out, file)).size / 2 ** 20;
    const listing = execFileSync('unzip', ['-l', join(out, file)], { encoding: 'utf8' }).trim().split('\n').pop()!;
    const unzipped = Number(/^\s*(\d+)/.exec(listing)![1]) / 2 ** 20;
    if (file === 'onnxruntime.zip') {
      rows.push({ section: S.artifacts, metric: `onnxruntime layer (the six inference functions), unzipped ${unzipped.toFixed(1)} MB`, ours: zipped, unit: 'MB', peer: { label: 'Lambda limit, zipped', value: 50 }, ratio: null, target: null });
      continue;
    }
    const inference = /predict|legacy|models|Worker|train/i.test(file);
    rows.push({
      section: S.artifacts,
      metric: `${file.replace('.zip', '')}${inference ? ' (inference)' : ''}, unzipped ${unzipped.toFixed(1)} MB`,
      ours: zipped,
      unit: 'MB',
      peer: { label: 'Lambda limit, zipped', value: 50 },
      ratio: null,
      target: inference ? { text: '< 16 MB', met: zipped < 16 } : { text: 'no onnxruntime', met: !execFileSync('unzip', ['-Z1', join(out, file)], { encoding: 'utf8' }).includes('onnxruntime') },
    });
  }
  return out;
}

function writeBenchmarksMd(result: { date: string; machine: Record<string, unknown>; seconds: number; rows: BenchRow[] }): void {
  const path = join(ROOT, 'BENCHMARKS.md');
  const previous = (() => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  })();
  const notes = previous.includes('<!-- notes -->') ? previous.slice(previous.indexOf('<!-- notes -->')) : '<!-- notes -->\n';
  const m = result.machine;
  const text = `# Benchmarks

Measured by \`npm run bench\` on ${result.date.slice(0, 10)} (${result.seconds.toFixed(0)} s), on ${m.cpu} (${m.cores} cores), ${m.memory_gib} GiB,
Node ${m.node}, ${m.postgres}. Medians of repeated runs after a warm-up; every figure stands beside
a peer or a limit measured in the same run, and the ratio between them. The machine is shared and
noisy: compare ratios, not absolute numbers, across runs. Raw figures: \`bench/results/latest.json\`.

${markdown(result.rows)}
${details.join('\n')}
${notes}`;
  writeFileSync(path, text);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
