/**
 * The next-best-offer section of `npm run bench`: on the demo programme, whose acceptance process
 * is known, with offers logged by campaign rules (75%) and at random (25%) and, separately, all at
 * random, loyalty-ml's `train nbo` from PostgreSQL beside the policies a loyalty team could run
 * instead, each judged by its true acceptance on the evaluation window's customers (the process's
 * own probabilities of the offer it sends): the best possible, the campaign rules, what was sent,
 * a random offer, and LightGBM peers (one model per offer fitted on every offered row, the direct
 * method, with its defaults and tuned; one model with the offer as an input). Ours is scored
 * through the published ONNX model, as it is served; its off-policy estimate stands beside the
 * true value it estimates.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OFFER_IDS, FEATURES } from '../lib/catalog';
import { argmaxPolicy } from '../lib/decisions/policy-value';
import { ModelRunner } from '../lib/inference/runner';
import { ModelRegistry } from '../lib/registry/index';
import { TrainingService } from '../lib/services/training';
import { FsObjectStore } from '../lib/storage/fs';
import { nboTrainingSpec } from '../lib/training/datasets';
import { campaignOffer, demoOfferTruth, type OfferPolicy } from '../lib/warehouse/demo';
import { loadDemoData } from '../lib/warehouse/demo-load';
import { openWarehouse } from '../lib/warehouse/index';
import { createTestDatabase } from '../devkit/postgres';
import { tempDir } from '../devkit/temp';
import type { BenchRow } from './harness';

const ROOT = resolve(import.meta.dirname, '..');
export const NBO_SECTION = '11. Next best offer: the true acceptance of each policy on a programme with known truth';
const PEERS = ['lightgbm-heads', 'lightgbm-heads-tuned', 'lightgbm-pooled'] as const;

interface Programme {
  policy: OfferPolicy;
  rows: { train: number; window: number };
  /** True acceptance per send on the window's customers. */
  values: Record<string, number>;
  estimate: { dr: [number, number, number]; ips: number; snips: number | null; logging: number };
  seconds: { ours: number; peers: Record<string, number> };
  chosen: string;
}

export async function nboSection(options: { serverUrl: string; quick: boolean; log: (m: string) => void }): Promise<{ rows: BenchRow[]; markdown: string; programmes: Programme[] }> {
  const customers = options.quick ? 10_000 : 50_000;
  const programmes: Programme[] = [];
  for (const policy of ['targeted', 'uniform'] as const) programmes.push(await runProgramme(policy, customers, options));
  const rows: BenchRow[] = [];
  for (const p of programmes) {
    const peers = PEERS.filter((k) => p.values[k] !== undefined);
    const direct = p.values['lightgbm-heads'];
    const best = peers.reduce<string | null>((a, k) => (a === null || p.values[k]! > p.values[a]! ? k : a), null);
    rows.push({
      section: NBO_SECTION,
      metric: `${p.policy} history: true acceptance of the top offer, loyalty-ml (${p.chosen})`,
      ours: p.values.ours!,
      unit: 'rate',
      peer: best ? { label: `best LightGBM peer, ${best}`, value: p.values[best]! } : null,
      ratio: null,
      target: direct !== undefined ? { text: 'at least per-offer LightGBM (direct method)', met: p.values.ours! >= direct } : null,
      note: direct === undefined ? 'LightGBM not installed' : `rules ${p.values.rules!.toFixed(4)}, best possible ${p.values.oracle!.toFixed(4)}`,
    });
    const [estimate, low, high] = p.estimate.dr;
    rows.push({
      section: NBO_SECTION,
      metric: `${p.policy} history: off-policy estimate of loyalty-ml's top offer (doubly robust, 95% ${low.toFixed(4)}-${high.toFixed(4)})`,
      ours: estimate,
      unit: 'rate',
      peer: { label: 'true value', value: p.values.ours! },
      ratio: null,
      target: { text: 'interval covers the true value', met: low <= p.values.ours! && p.values.ours! <= high },
    });
    rows.push({
      section: NBO_SECTION,
      metric: `${p.policy} history: train nbo from PostgreSQL, ${customers.toLocaleString('en-US')} customers (${p.rows.train.toLocaleString('en-US')} offers learnt from)`,
      ours: p.seconds.ours,
      unit: 's',
      peer: p.seconds.peers['lightgbm-heads'] !== undefined ? { label: 'LightGBM per-offer heads, fit only', value: p.seconds.peers['lightgbm-heads'] } : null,
      ratio: p.seconds.peers['lightgbm-heads'] !== undefined ? p.seconds.ours / p.seconds.peers['lightgbm-heads'] : null,
      target: customers >= 50_000 ? { text: '< 60 s end to end', met: p.seconds.ours < 60 } : null,
    });
  }
  return { rows, markdown: nboMarkdown(programmes, customers), programmes };
}

async function runProgramme(policy: OfferPolicy, customers: number, options: { serverUrl: string; log: (m: string) => void }): Promise<Programme> {
  const { log } = options;
  const wh = await openWarehouse(await createTestDatabase(options.serverUrl, `bench_nbo_${policy}`));
  try {
    log(`nbo: loading ${customers.toLocaleString('en-US')} demo customers, offers sent ${policy === 'targeted' ? 'by campaign rules and at random' : 'at random'}`);
    await loadDemoData(wh.pool, wh.warehouse.cfg, { customers, seed: 42, offerPolicy: policy });
    const registry = new ModelRegistry(new FsObjectStore(tempDir('loyalty-ml-bench-nbo-')), { actor: 'bench' });
    const t0 = performance.now();
    const outcome = await TrainingService.over(registry, wh).train({ model: 'nbo', promote: 'production' });
    const seconds = (performance.now() - t0) / 1000;
    log(`nbo ${policy}: trained v${outcome.manifest.version} (${outcome.manifest.status}) in ${seconds.toFixed(1)} s`);

    const spec = await nboTrainingSpec(wh.warehouse);
    const D = FEATURES.length;
    const K = OFFER_IDS.length;
    const window = spec.splits.test;
    const truth = demoOfferTruth(42, customers, 0, policy);
    const T = new Float64Array(window.length * K);
    window.forEach((r, i) => T.set(truth.get(`${spec.customerIds[r]}|${spec.offeredAt[r]}`)!, i * K));
    const X = new Float64Array(window.length * D);
    window.forEach((r, i) => X.set(spec.data.X.subarray(r * D, (r + 1) * D), i * D));
    const valueOf = (choice: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < window.length; i++) s += T[i * K + choice[i]!]!;
      return s / window.length;
    };
    // Ours, through the published model as it is served.
    const { manifest, bytes } = await registry.readModel('nbo', outcome.manifest.version);
    const runner = await ModelRunner.create(manifest, bytes, { threads: 2 });
    const ours = argmaxPolicy(await runner.predictMatrix(X, window.length, FEATURES), K);
    await runner.release();
    const values: Record<string, number> = {
      ours: valueOf(ours),
      oracle: valueOf(argmaxPolicy(T, K)),
      rules: valueOf(Array.from(window, (_, i) => OFFER_IDS.indexOf(campaignOffer(Array.from(X.subarray(i * D, (i + 1) * D), (v) => (Number.isNaN(v) ? null : v)))))),
      logging: valueOf(Array.from(window, (r) => spec.data.action[r]!)),
      uniform: T.reduce((a, b) => a + b, 0) / T.length,
    };
    const peers = runPeers(spec, X, window.length, log);
    for (const [name, p] of Object.entries(peers.policies)) values[name] = valueOf(p);
    log(`nbo ${policy}: true acceptance ours ${values.ours!.toFixed(4)}, ${Object.entries(values).filter(([k]) => k !== 'ours').map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
    const v = outcome.manifest.metrics!.policy_value!;
    return {
      policy,
      rows: { train: spec.splits.train.length, window: window.length },
      values,
      estimate: { dr: [v.estimate!, v.ci_low!, v.ci_high!], ips: v.ips.estimate!, snips: v.snips?.estimate ?? null, logging: v.logging! },
      seconds: { ours: seconds, peers: peers.seconds },
      chosen: outcome.chosen,
    };
  } finally {
    await wh.close();
  }
}

/** The LightGBM peers through bench/peers.py, on the same training rows and window contexts. */
function runPeers(spec: Awaited<ReturnType<typeof nboTrainingSpec>>, X: Float64Array, n: number, log: (m: string) => void): { policies: Record<string, Int32Array>; seconds: Record<string, number> } {
  const python = [process.env.PYTHON, 'python3', '/usr/bin/python3'].find((py) => py && spawnSync(py, ['-c', 'import lightgbm, pandas, numpy'], { stdio: 'ignore' }).status === 0);
  if (!python) {
    log('nbo: LightGBM peers skipped (pip install lightgbm pandas)');
    return { policies: {}, seconds: {} };
  }
  const D = FEATURES.length;
  const dir = tempDir('loyalty-ml-bench-nbo-peers-');
  const cell = (v: number) => (Number.isNaN(v) ? '' : String(v));
  const months = [...new Set(spec.data.months)].sort();
  const train = [`${FEATURES.join(',')},offer,accepted,month`];
  for (const r of spec.splits.train) train.push(`${Array.from(spec.data.X.subarray(r * D, (r + 1) * D), cell).join(',')},${spec.data.action[r]},${spec.data.accepted[r]},${months.indexOf(spec.data.months[r]!)}`);
  const test = [FEATURES.join(',')];
  for (let i = 0; i < n; i++) test.push(Array.from(X.subarray(i * D, (i + 1) * D), cell).join(','));
  writeFileSync(join(dir, 'train.csv'), `${train.join('\n')}\n`);
  writeFileSync(join(dir, 'test.csv'), `${test.join('\n')}\n`);
  const result = spawnSync(python, [join(ROOT, 'bench/peers.py'), 'nbo', '--train', join(dir, 'train.csv'), '--test', join(dir, 'test.csv'), '--offers', String(OFFER_IDS.length), '--threads', '2'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (result.status !== 0) {
    log(`nbo: LightGBM peers failed: ${result.stderr.trim().split('\n').pop()}`);
    return { policies: {}, seconds: {} };
  }
  const parsed = JSON.parse(result.stdout) as Record<string, { policy: number[]; seconds: number }>;
  return {
    policies: Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, Int32Array.from(v.policy)])),
    seconds: Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, v.seconds])),
  };
}

function nboMarkdown(programmes: Programme[], customers: number): string {
  const out = [
    '### Next best offer: which policy sends offers that are accepted',
    '',
    `The demo programme (${customers.toLocaleString('en-US')} customers, seed 42; its acceptance process in docs/demo-data.md) with two logging policies. Every policy is judged on the evaluation window's offered customers (the last two months) by its **true** acceptance per send: the mean over those customers of the process's own probability that they accept the offer the policy sends. LightGBM peers are fitted on every offered row of the training months (bench/peers.py nbo); loyalty-ml is \`train nbo\` from PostgreSQL, scored through its published ONNX model. The estimate is the one \`train\` reports, before any rollout, from the logged offers alone.`,
    '',
    '| policy | ' + programmes.map((p) => `${p.policy} history`).join(' | ') + ' |',
    '| --- | ' + programmes.map(() => '---').join(' | ') + ' |',
  ];
  const label: Record<string, string> = {
    oracle: 'the best offer for everyone (the process itself)',
    ours: '**loyalty-ml** (`train nbo`)',
    'lightgbm-heads': 'LightGBM, one model per offer, defaults (the direct method)',
    'lightgbm-heads-tuned': 'LightGBM, one model per offer, early stopping',
    'lightgbm-pooled': 'LightGBM, one model with the offer as an input',
    rules: 'the campaign rules',
    logging: 'the offers as sent',
    uniform: 'a random offer',
  };
  for (const key of Object.keys(label)) {
    if (!programmes.some((p) => p.values[key] !== undefined)) continue;
    out.push(`| ${label[key]} | ${programmes.map((p) => (p.values[key] === undefined ? 'skipped' : p.values[key]!.toFixed(4))).join(' | ')} |`);
  }
  out.push(`| loyalty-ml's estimate, doubly robust (95% interval) | ${programmes.map((p) => `${p.estimate.dr[0].toFixed(4)} (${p.estimate.dr[1].toFixed(4)}-${p.estimate.dr[2].toFixed(4)})`).join(' | ')} |`);
  out.push(`| its IPS / self-normalised IPS | ${programmes.map((p) => `${p.estimate.ips.toFixed(4)} / ${p.estimate.snips?.toFixed(4) ?? '-'}`).join(' | ')} |`);
  out.push(`| observed acceptance of the offers sent | ${programmes.map((p) => p.estimate.logging.toFixed(4)).join(' | ')} |`);
  out.push(`| offers learnt from / in the window | ${programmes.map((p) => `${p.rows.train.toLocaleString('en-US')} / ${p.rows.window.toLocaleString('en-US')}`).join(' | ')} |`);
  out.push(`| seconds: train nbo end to end / LightGBM heads fit | ${programmes.map((p) => `${p.seconds.ours.toFixed(1)} / ${p.seconds.peers['lightgbm-heads']?.toFixed(1) ?? '-'}`).join(' | ')} |`);
  out.push('');
  return out.join('\n');
}
