/**
 * The reasons section of `npm run bench`: answers with `explain: true` over HTTP beside the same
 * answers without it, and the per-record cost of the reasons beside shap's Exact explainer on the
 * same ONNX model, background and records (its own explain calls timed inside Python), with the
 * largest difference between the two. The served churn and NBO versions, and churn trained as each
 * of the other families, on the bench's demo base.
 */
import { spawnSync } from 'node:child_process';
import { explainRows } from '../lib/explain/reasons';
import { ModelRunner } from '../lib/inference/runner';
import { ModelRegistry } from '../lib/registry/index';
import { TrainingService } from '../lib/services/training';
import { FsObjectStore } from '../lib/storage/fs';
import type { WarehouseHandle } from '../lib/warehouse/index';
import { largestDifference, shapExact } from '../devkit/shap';
import { tempDir } from '../devkit/temp';
import { measure, summarize, type BenchRow } from './harness';

export const EXPLAIN_SECTION = '12. Reasons (explain: true): over HTTP, and per record beside shap';

interface Options {
  /** The API's base URL (…/api/loyalty/v1) of a running service over the bench's registry. */
  api: string;
  registry: ModelRegistry;
  wh: WarehouseHandle;
  quick: boolean;
  log: (m: string) => void;
}

export async function explainSection(o: Options): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  await httpRows(o, rows);
  await perRecordRows(o, rows);
  return rows;
}

const ids = (count: number, step: number) => Array.from({ length: count }, (_, i) => `demo-${String(i * step + 1).padStart(6, '0')}`);

async function httpRows(o: Options, rows: BenchRow[]): Promise<void> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${o.api}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${path} answered ${response.status}: ${text.slice(0, 200)}`);
    if (body && (body as { explain?: boolean }).explain && !text.includes('"reasons":{')) throw new Error(`${path} answered without reasons: ${text.slice(0, 200)}`);
    return text;
  };
  const singles = ids(200, 13);
  for (const type of ['churn', 'all'] as const) {
    // Interleaved, so that noise on this shared machine hits both.
    const times = { with: [] as number[], without: [] as number[] };
    const reps = o.quick ? 30 : 200;
    for (let i = 0; i < reps + 10; i++) {
      for (const explain of [true, false]) {
        const t0 = performance.now();
        await post('/ml/predict', { customer_id: singles[i % singles.length], type, ...(explain ? { explain } : {}) });
        if (i >= 10) times[explain ? 'with' : 'without'].push(performance.now() - t0);
      }
    }
    const w = summarize(times.with);
    const wo = summarize(times.without);
    rows.push({
      section: EXPLAIN_SECTION,
      metric: `one answer over HTTP with reasons, p50, type ${type}`,
      ours: w.median,
      unit: 'ms',
      peer: { label: 'the same without explain', value: wo.median },
      ratio: w.median / wo.median,
      target: null,
      note: `p99 ${w.p99.toFixed(1)} ms`,
    });
    o.log(`explain single ${type}: ${w.median.toFixed(1)} ms vs ${wo.median.toFixed(1)} ms without`);
  }
  const batch = ids(100, 7);
  for (const type of ['churn', 'nbo', 'all'] as const) {
    const reps = o.quick ? 3 : 15;
    const withReasons = await measure(() => post('/ml/predict/batch', { customer_ids: batch, type, explain: true }), { reps, warmup: 2 });
    const without = await measure(() => post('/ml/predict/batch', { customer_ids: batch, type }), { reps, warmup: 2 });
    rows.push({
      section: EXPLAIN_SECTION,
      metric: `batch of 100 over HTTP with reasons, type ${type}`,
      ours: withReasons.median,
      unit: 'ms',
      peer: { label: 'the same without explain', value: without.median },
      ratio: withReasons.median / without.median,
      target: { text: '< 1 s', met: withReasons.median < 1000 },
    });
    o.log(`explain batch ${type}: ${withReasons.median.toFixed(0)} ms vs ${without.median.toFixed(1)} ms without`);
  }
}

/** Per-record time of our reasons and of shap's Exact explainer, on the same model, background and records. */
async function perRecordRows(o: Options, rows: BenchRow[]): Promise<void> {
  const shap = spawnSync('python3', ['-c', 'import shap, onnxruntime; print(shap.__version__)'], { encoding: 'utf8' });
  const shapVersion = shap.status === 0 ? shap.stdout.trim() : null;
  if (!shapVersion) o.log('shap or onnxruntime for Python is not installed: per-record rows without the peer');
  const models: { label: string; registry: ModelRegistry; name: 'churn' | 'nbo' }[] = [
    { label: 'served churn', registry: o.registry, name: 'churn' },
    { label: 'served NBO (top offer)', registry: o.registry, name: 'nbo' },
  ];
  for (const family of ['mlp', 'gbt'] as const) {
    const registry = new ModelRegistry(new FsObjectStore(tempDir('loyalty-ml-bench-explain-')), { actor: 'bench' });
    o.log(`training churn as ${family} for its reasons`);
    await TrainingService.over(registry, o.wh).train({ model: 'churn', promote: 'production' }, { families: [family] });
    models.push({ label: `churn trained as ${family}`, registry, name: 'churn' });
  }
  const recordIds = ids(o.quick ? 5 : 20, 331);
  const found = await o.wh.warehouse.getFeatures(recordIds);
  const X = Float64Array.from(recordIds.flatMap((id) => found.get(id)!.features.map((v) => v ?? NaN)));
  const n = recordIds.length;
  const dir = tempDir('loyalty-ml-bench-shap-');
  for (const m of models) {
    const { manifest, bytes } = await m.registry.readModel(m.name, 'production');
    const runner = await ModelRunner.create(manifest, bytes);
    const k = runner.width;
    const P = await runner.predictEncoded(X, n);
    const positive = manifest.output.kind === 'binary' ? manifest.output.classes.indexOf(manifest.output.positive_class!) : -1;
    const columns = Array.from({ length: n }, (_, i) => (positive >= 0 ? positive : argmax(P, i, k)));
    const spec = manifest.explanation!;
    const explain = () => explainRows({ method: spec.method, background: spec.background! }, (Z, r) => runner.predictEncoded(Z, r), X, n, k, columns);
    const ours = await measure(explain, { reps: o.quick ? 2 : 5, warmup: 1 });
    const values = await explain();
    await runner.release();
    const perRecord = ours.median / n;
    const peer = shapVersion ? shapExact(dir, manifest, bytes, X, n, columns) : null;
    const worst = peer ? largestDifference(values, peer) : 0;
    const shapMs = peer ? (peer.seconds * 1000) / n : null;
    rows.push({
      section: EXPLAIN_SECTION,
      metric: `per record, ${m.label} (${manifest.lineage.family ?? 'external'}, ${spec.method}, ${spec.background!.length} background rows)`,
      ours: perRecord,
      unit: 'ms',
      peer: shapMs === null ? null : { label: `shap ${shapVersion} Exact, same model and background`, value: shapMs },
      ratio: shapMs === null ? null : perRecord / shapMs,
      target: shapMs === null ? null : { text: '>= 10x faster than shap', met: shapMs / perRecord >= 10 },
      note: peer ? `${(shapMs! / perRecord).toFixed(0)}x faster; largest difference ${worst.toExponential(1)}` : 'shap not installed',
    });
    o.log(`explain per record ${m.label}: ${perRecord.toFixed(1)} ms${shapMs === null ? '' : ` vs shap ${shapMs.toFixed(0)} ms, worst ${worst.toExponential(1)}`}`);
  }
}

function argmax(P: Float64Array, i: number, k: number): number {
  let best = 0;
  for (let c = 1; c < k; c++) if (P[i * k + c]! > P[i * k + best]!) best = c;
  return best;
}
