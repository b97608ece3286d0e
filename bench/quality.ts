/**
 * The model-quality section of `npm run bench`: the same tables and splits through loyalty-ml's
 * default `train` and, in the same run, LightGBM (native categoricals and one-hot), scikit-learn's
 * HistGradientBoosting, a tuned logistic regression and MLP(32, 16), and XGBoost (bench/peers.py).
 * Every model is scored on the same untouched test rows by one set of metric functions; ours is
 * scored through the published ONNX model, as it would be served. A peer whose library is not
 * installed is skipped with a note. Also the boosted-trees trainer's time per row and round beside
 * single-thread LightGBM on one table with the same parameters.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { achievableAuc, cdnowChurnTable, speedTable, splitTable, syntheticChurnTable, toCsv, type LabelledTable } from '../devkit/datasets';
import { tempDir } from '../devkit/temp';
import { FEATURES } from '../lib/catalog';
import { ModelRunner } from '../lib/inference/runner';
import { binaryLogLoss, rocAuc } from '../lib/metrics';
import { ModelRegistry } from '../lib/registry/index';
import { FsObjectStore } from '../lib/storage/fs';
import { csvTrainingSpec, churnTrainingSpec } from '../lib/training/datasets';
import { DEFAULT_GBT, trainGbt } from '../lib/training/gbt';
import type { TrainingSpec } from '../lib/training/pipeline';
import { TrainingService } from '../lib/services/training';
import type { Warehouse } from '../lib/warehouse/index';
import type { BenchRow } from './harness';

const ROOT = resolve(import.meta.dirname, '..');
export const QUALITY_SECTION = '9. Model quality and training speed beside LightGBM and scikit-learn';
const PEERS = ['lightgbm', 'lightgbm-onehot', 'hgb', 'logreg', 'mlp', 'xgboost'];
const PEER_MODULE: Record<string, string> = { lightgbm: 'lightgbm', 'lightgbm-onehot': 'lightgbm', hgb: 'sklearn', logreg: 'sklearn', mlp: 'sklearn', xgboost: 'xgboost' };

/** Test-row metrics every model gets, computed here the same way for all. */
export interface Scored {
  auc: number;
  log_loss: number;
  /** Positives among the top 10% of test rows by score (stable order, as the peers count). */
  captured_top_decile: number;
  positives: number;
  ece: number;
  seconds: number;
  note?: string;
}

export interface QualityResult {
  dataset: string;
  rows: { train: number; test: number; positive_share: number };
  achievable_auc: number | null;
  ours: Scored & { chosen: string };
  peers: Record<string, Scored | { skipped: string }>;
}

interface Dataset {
  name: string;
  train: LabelledTable;
  test: LabelledTable;
  /** Rare positives: judged by positives captured in the top decile as well as AUC. */
  rare: boolean;
  /** Our training when it does not come from the CSV files (the warehouse demo base). */
  spec?: () => Promise<TrainingSpec>;
}

/** Runs the section; returns its rows for the summary table and its detailed Markdown. */
export async function qualitySection(options: { quick: boolean; warehouse: Warehouse | null; log: (m: string) => void }): Promise<{ rows: BenchRow[]; markdown: string; results: QualityResult[] }> {
  const { log } = options;
  const datasets: Dataset[] = [];
  const synthetic = (rows: number, testRows: number): Dataset => {
    const train = syntheticChurnTable(rows, 1, { name: `synthetic ${rows.toLocaleString('en-US')}` });
    const test = syntheticChurnTable(testRows, 2, { name: 'synthetic test' });
    return { name: `synthetic, ${rows.toLocaleString('en-US')} rows, 6% positives`, train, test, rare: true };
  };
  datasets.push(synthetic(3000, options.quick ? 10_000 : 50_000));
  if (!options.quick) {
    const cdnow = splitTable(cdnowChurnTable(), 0.2, 1);
    datasets.push({ name: 'CDNOW churn (real purchases)', train: cdnow.train, test: cdnow.test, rare: false });
    if (options.warehouse) datasets.push(await demoBase(options.warehouse));
    datasets.push(synthetic(500_000, 100_000));
  }
  const results: QualityResult[] = [];
  for (const d of datasets) results.push(await runDataset(d, log));
  const rows: BenchRow[] = [];
  for (const r of results) {
    const peers = Object.entries(r.peers).filter((e): e is [string, Scored] => !('skipped' in e[1]));
    if (!peers.length) {
      rows.push({ section: QUALITY_SECTION, metric: `${r.dataset}: test AUC`, ours: r.ours.auc, unit: 'AUC', peer: null, ratio: null, target: null, note: 'no peer installed' });
      continue;
    }
    const [bestName, best] = peers.reduce((a, b) => (b[1].auc > a[1].auc ? b : a));
    rows.push({
      section: QUALITY_SECTION,
      metric: `${r.dataset}: test AUC (${r.ours.chosen})`,
      ours: r.ours.auc,
      unit: 'AUC',
      peer: { label: `best peer, ${bestName}`, value: best.auc },
      ratio: null,
      target: { text: 'within 0.002 of the best peer, or ahead', met: r.ours.auc >= best.auc - 0.002 },
    });
    const [capName, cap] = peers.reduce((a, b) => (b[1].captured_top_decile > a[1].captured_top_decile ? b : a));
    const rare = datasets.find((d) => d.name === r.dataset)?.rare ?? false;
    rows.push({
      section: QUALITY_SECTION,
      metric: `${r.dataset}: positives in the top 10% of ${r.rows.test.toLocaleString('en-US')} test rows`,
      ours: r.ours.captured_top_decile,
      unit: 'positives',
      peer: { label: `best peer, ${capName}`, value: cap.captured_top_decile },
      ratio: null,
      target: rare ? { text: 'at least the best peer', met: r.ours.captured_top_decile >= cap.captured_top_decile } : null,
    });
    rows.push({
      section: QUALITY_SECTION,
      metric: `${r.dataset}: training time`,
      ours: r.ours.seconds,
      unit: 's',
      peer: { label: bestName, value: best.seconds },
      ratio: r.ours.seconds / best.seconds,
      target: null,
    });
  }
  rows.push(...(await gbtSpeedRows(options.quick, log)));
  return { rows, markdown: qualityMarkdown(results), results };
}

async function runDataset(d: Dataset, log: (m: string) => void): Promise<QualityResult> {
  const dir = tempDir('loyalty-ml-quality-');
  const trainFile = join(dir, 'train.csv');
  const testFile = join(dir, 'test.csv');
  writeFileSync(trainFile, toCsv(d.train));
  writeFileSync(testFile, toCsv(d.test));
  const labelIndex = d.test.columns.indexOf(d.test.label);
  const y = Int32Array.from(d.test.rows, (r) => (r[labelIndex] === d.test.positive ? 1 : 0));
  const trainY = d.train.rows.filter((r) => r[d.train.columns.indexOf(d.train.label)] === d.train.positive).length;
  log(`quality: ${d.name}: ${d.train.rows.length} training rows, ${d.test.rows.length} test rows`);

  const registry = new ModelRegistry(new FsObjectStore(join(dir, 'registry')), { actor: 'bench' });
  const spec = d.spec
    ? await d.spec()
    : (await csvTrainingSpec({ name: 'quality', file: trainFile, testFile, label: d.train.label, positive: d.train.positive, idColumn: 'customer_id', seed: 42 })).spec;
  const started = Date.now();
  const outcome = await TrainingService.over(registry).trainSpec(spec, { onProgress: (m: string) => (/^(chose|model selection)/.test(m) ? log(`quality: ${d.name}: ${m}`) : undefined) });
  const seconds = (Date.now() - started) / 1000;
  const { manifest, bytes } = await registry.readModel(spec.name, outcome.manifest.version);
  const runner = await ModelRunner.create(manifest, bytes, { threads: 2 });
  let p: Float64Array;
  try {
    const records = d.test.rows.map((r) => Object.fromEntries(d.test.columns.map((c, i) => [c, r[i] === null ? '' : String(r[i])])));
    const P = await runner.predictRecords(records);
    p = Float64Array.from({ length: y.length }, (_, i) => P[i * 2 + 1]!);
  } finally {
    await runner.release();
  }
  const ours = { ...score(p, y, seconds), chosen: outcome.chosen };
  log(`quality: ${d.name}: loyalty-ml (${outcome.chosen}) test AUC ${ours.auc.toFixed(4)} in ${seconds.toFixed(1)} s`);
  const peers = runPeers(trainFile, testFile, d.train.label, d.train.positive, y, log);
  return {
    dataset: d.name,
    rows: { train: d.train.rows.length, test: d.test.rows.length, positive_share: trainY / d.train.rows.length },
    achievable_auc: d.test.truth ? achievableAuc(d.test) : null,
    ours,
    peers,
  };
}

/**
 * The demo base's churn history as the warehouse trainer sees it: learn from the earlier
 * snapshots, test on the latest. The peers get the same rows as CSV files.
 */
async function demoBase(warehouse: Warehouse): Promise<Dataset> {
  const spec = await churnTrainingSpec(warehouse);
  const columns = ['customer_id', ...FEATURES, 'churned'];
  const part = (rows: Uint32Array, name: string): LabelledTable => ({
    name,
    columns,
    label: 'churned',
    positive: 'yes',
    rows: Array.from(rows, (r) => [`row${r}`, ...FEATURES.map((_, j) => (Number.isNaN(spec.X[r * FEATURES.length + j]!) ? null : spec.X[r * FEATURES.length + j]!)), spec.y[r] ? 'yes' : 'no']),
  });
  return { name: `demo base churn (${spec.rows.toLocaleString('en-US')} snapshot rows)`, train: part(spec.splits.train, 'demo train'), test: part(spec.splits.test, 'demo test'), rare: false, spec: async () => spec };
}

/** Each peer through the first Python that has its library ($PYTHON, python3, then /usr/bin/python3). */
function runPeers(trainFile: string, testFile: string, label: string, positive: string, y: Int32Array, log: (m: string) => void): Record<string, Scored | { skipped: string }> {
  const pythons = [...new Set([process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
  const out: Record<string, Scored | { skipped: string }> = {};
  for (const peer of PEERS) {
    const python = pythons.find((py) => spawnSync(py, ['-c', `import numpy, pandas, ${PEER_MODULE[peer]}`], { stdio: 'ignore' }).status === 0);
    if (!python) {
      out[peer] = { skipped: `${PEER_MODULE[peer]} (with numpy and pandas) is not installed for ${pythons.join(' or ')}; pip install ${PEER_MODULE[peer] === 'sklearn' ? 'scikit-learn' : PEER_MODULE[peer]} pandas` };
      log(`quality: ${peer} skipped: ${(out[peer] as { skipped: string }).skipped}`);
      continue;
    }
    const result = spawnSync(python, [join(ROOT, 'bench/peers.py'), '--train', trainFile, '--test', testFile, '--label', label, '--positive', positive, '--id', 'customer_id', '--peers', peer, '--threads', '1', '--predictions'], {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    if (result.status !== 0) {
      out[peer] = { skipped: `failed: ${result.stderr.trim().split('\n').pop()}` };
      log(`quality: ${peer} failed: ${result.stderr.trim().split('\n').pop()}`);
      continue;
    }
    const parsed = JSON.parse(result.stdout) as Record<string, { predictions?: number[]; seconds: number; skipped?: string }>;
    const r = parsed[peer]!;
    if (r.skipped || !r.predictions) {
      out[peer] = { skipped: r.skipped ?? 'no predictions' };
      continue;
    }
    out[peer] = score(Float64Array.from(r.predictions), y, r.seconds);
    log(`quality: ${peer} test AUC ${(out[peer] as Scored).auc.toFixed(4)} in ${r.seconds.toFixed(1)} s`);
  }
  return out;
}

/** The metrics of test predictions, the same for every model. */
export function score(p: Float64Array, y: Int32Array, seconds: number): Scored {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
  const k = Math.max(1, Math.round(n * 0.1));
  let captured = 0;
  for (let i = 0; i < k; i++) captured += y[order[i]!]!;
  let positives = 0;
  for (const v of y) positives += v;
  const bins = Array.from({ length: 10 }, () => ({ n: 0, p: 0, y: 0 }));
  for (let i = 0; i < n; i++) {
    const b = bins[Math.min(9, Math.floor(p[i]! * 10))]!;
    b.n++;
    b.p += p[i]!;
    b.y += y[i]!;
  }
  const ece = bins.reduce((a, b) => a + (b.n ? Math.abs(b.p / b.n - b.y / b.n) * b.n : 0), 0) / n;
  const clipped = Float64Array.from(p, (v) => Math.min(1 - 1e-7, Math.max(1e-7, v)));
  return { auc: rocAuc(p, y), log_loss: binaryLogLoss(clipped, y), captured_top_decile: captured, positives, ece, seconds };
}

/**
 * Time per row and round of the boosted-trees trainer beside single-thread LightGBM: one
 * 100,000 x 10 table (20,000 in quick mode), 100 rounds, the same parameters, no early stopping,
 * no subsampling. Ours on one thread and on both cores.
 */
async function gbtSpeedRows(quick: boolean, log: (m: string) => void): Promise<BenchRow[]> {
  const rows = quick ? 20_000 : 100_000;
  const rounds = 100;
  const { X, y, cols, csv } = speedTable(rows);
  const file = join(tempDir('loyalty-ml-gbt-speed-'), 'table.csv');
  writeFileSync(file, csv());
  const params = { ...DEFAULT_GBT, learningRate: 0.1, maxLeaves: 31, maxDepth: 8, minSamplesLeaf: 20, minHessianLeaf: 1e-3, l2: 1, maxBins: 255, maxRounds: rounds, earlyStoppingRounds: rounds + 1, rowSubsample: 1, featureSubsample: 1 };
  const ours = (threads: number) => {
    const times: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const t0 = performance.now();
      trainGbt({ X, rows, cols, y }, null, 2, { ...params, threads });
      times.push((performance.now() - t0) * 1e6 / rows / rounds);
    }
    return times.sort((a, b) => a - b)[1]!;
  };
  const one = ours(1);
  const two = ours(2);
  const python = [process.env.PYTHON, 'python3', '/usr/bin/python3'].find((py) => py && spawnSync(py, ['-c', 'import lightgbm, pandas'], { stdio: 'ignore' }).status === 0);
  let peer: { train: number; construct: number } | null = null;
  if (python) {
    const times: { train: number; construct: number }[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const result = spawnSync(python, [join(ROOT, 'bench/peers.py'), 'speed', '--table', file, '--rounds', String(rounds)], { encoding: 'utf8' });
      if (result.status === 0) {
        const r = JSON.parse(result.stdout) as { train_s: number; construct_s: number };
        times.push({ train: (r.train_s * 1e9) / rows / rounds, construct: (r.construct_s * 1e9) / rows / rounds });
      }
    }
    if (times.length) peer = times.sort((a, b) => a.train - b.train)[Math.floor(times.length / 2)]!;
  }
  log(`gbt speed: ${one.toFixed(1)} ns per row and round on 1 thread, ${two.toFixed(1)} on 2${peer ? `; LightGBM 1 thread ${peer.train.toFixed(1)} (+${peer.construct.toFixed(1)} to build its dataset)` : '; LightGBM not installed'}`);
  const metric = (threads: number) => `boosted trees: ns per row and round, ${rows.toLocaleString('en-US')} x ${cols}, ${rounds} rounds, ${threads === 1 ? '1 thread' : 'both cores'} (binning included)`;
  const target = (v: number) => (peer ? { text: 'at or below LightGBM 1 thread', met: v <= peer.train } : null);
  const peerCell = peer ? { label: 'LightGBM, 1 thread, training only', value: peer.train } : null;
  return [
    { section: QUALITY_SECTION, metric: metric(1), ours: one, unit: 'ns', peer: peerCell, ratio: peer ? one / peer.train : null, target: target(one) },
    { section: QUALITY_SECTION, metric: metric(2), ours: two, unit: 'ns', peer: peerCell, ratio: peer ? two / peer.train : null, target: target(two), note: peer ? undefined : 'LightGBM not installed' },
  ];
}

/** Per dataset, every model's test metrics. */
function qualityMarkdown(results: QualityResult[]): string {
  const out: string[] = ['### Model quality in detail', ''];
  const num = (v: number, d = 4) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  for (const r of results) {
    out.push(
      `**${r.dataset}**: ${r.rows.train.toLocaleString('en-US')} training rows (${(r.rows.positive_share * 100).toFixed(1)}% positive), ${r.rows.test.toLocaleString('en-US')} test rows${r.achievable_auc !== null ? `; achievable AUC (the generating probabilities) ${num(r.achievable_auc)}` : ''}`,
      '',
      '| model | test AUC | log loss | positives in top 10% | calibration error | training s |',
      '| --- | --- | --- | --- | --- | --- |',
      `| **loyalty-ml** (${r.ours.chosen}) | ${num(r.ours.auc)} | ${num(r.ours.log_loss)} | ${r.ours.captured_top_decile} of ${r.ours.positives} | ${num(r.ours.ece)} | ${num(r.ours.seconds, 1)} |`,
    );
    for (const [name, s] of Object.entries(r.peers)) {
      if ('skipped' in s) out.push(`| ${name} | skipped: ${s.skipped} | | | | |`);
      else out.push(`| ${name} | ${num(s.auc)} | ${num(s.log_loss)} | ${s.captured_top_decile} of ${s.positives} | ${num(s.ece)} | ${num(s.seconds, 1)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
