import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { explainRows } from '../../lib/explain/reasons';
import { ModelRunner } from '../../lib/inference/runner';
import { Rng } from '../../lib/random';
import { ModelRegistry, type ModelManifest } from '../../lib/registry/index';
import { TrainingService } from '../../lib/services/training';
import { churnTrainingSpec, nboTrainingSpec } from '../../lib/training/datasets';
import { publishExternalModel } from '../../lib/training/publish';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { createTestDatabase } from '../../devkit/postgres';
import { largestDifference, shapExact } from '../../devkit/shap';
import { onnxFixture } from '../support/fixtures';
import { tempDir, tempFsStore } from '../support/registry';

// Training four families on a small demo base, then shap's Exact explainer in Python for each.
vi.setConfig({ testTimeout: 300_000 });

const TOLERANCE = 1e-6;

let handle: WarehouseHandle;
let registry: ModelRegistry;
let records: Float64Array;
const RECORDS = 12;
const dir = tempDir();

beforeAll(async () => {
  handle = await openWarehouse(await createTestDatabase(inject('postgresUrl'), 'explain_shap'));
  await loadDemoData(handle.pool, handle.warehouse.cfg, { customers: 2000, seed: 31 });
  registry = new ModelRegistry(tempFsStore(), { actor: 'explain-test' });
  // Customers with every kind of value: missing points, no purchases, the 999 default.
  const ids = Array.from({ length: RECORDS }, (_, i) => `demo-${String(i * 131 + 7).padStart(6, '0')}`);
  const rows = await handle.warehouse.getFeatures(ids);
  await handle.pool.query(`UPDATE customer_features SET days_since_last_transaction = 999 WHERE customer_id = $1`, [ids[0]]);
  records = Float64Array.from(ids.flatMap((id) => rows.get(id)!.features.map((v) => v ?? NaN)));
  records[0] = 999;
}, 120_000);

afterAll(async () => {
  await handle?.close();
});

/** Our reasons and shap's for the same version, records and output columns. */
async function compare(manifest: ModelManifest, bytes: Uint8Array, X: Float64Array, n: number, column: (P: Float64Array, i: number) => number) {
  const runner = await ModelRunner.create(manifest, bytes);
  const k = runner.width;
  const P = await runner.predictEncoded(X, n);
  const columns = Array.from({ length: n }, (_, i) => column(P, i));
  const spec = manifest.explanation!;
  const started = performance.now();
  const ours = await explainRows({ method: spec.method, background: spec.background! }, (Z, rows) => runner.predictEncoded(Z, rows), X, n, k, columns);
  const oursMs = (performance.now() - started) / n;
  await runner.release();
  const shap = shapExact(dir, manifest, bytes, X, n, columns);
  const shapMs = (shap.seconds * 1000) / n;
  const worst = largestDifference(ours, shap);
  for (let i = 0; i < n; i++) {
    // Efficiency: base + contributions = the probability the answer reports.
    expect(Math.abs(ours[i]!.base + ours[i]!.contributions.reduce((a, b) => a + b, 0) - P[i * k + columns[i]!]!)).toBeLessThan(TOLERANCE);
  }
  if (process.env.EXPLAIN_SHAP_LOG) console.log(`${manifest.name} v${manifest.version} ${manifest.lineage.family ?? 'external'}: worst ${worst.toExponential(2)}, ours ${oursMs.toFixed(1)} ms/record, shap ${shapMs.toFixed(1)} ms/record`);
  return { worst, method: spec.method, oursMs, shapMs };
}

const positive = (manifest: ModelManifest) => () => manifest.output.classes.indexOf(manifest.output.positive_class!);
const top = (k: number) => (P: Float64Array, i: number) => {
  let best = 0;
  for (let c = 1; c < k; c++) if (P[i * k + c]! > P[i * k + best]!) best = c;
  return best;
};

describe("reasons equal shap's Exact explainer on the same model and background", () => {
  for (const family of ['logistic', 'mlp', 'gbt', 'blend'] as const) {
    it(`for churn trained as ${family}`, async () => {
      const spec = await churnTrainingSpec(handle.warehouse, undefined, { share: 0.5, seed: 1 });
      // A blend is the trees with another family, shipped when the folds say it beats both.
      const outcome = await TrainingService.over(registry).trainSpec(spec, { families: family === 'blend' ? ['gbt', 'mlp'] : [family], seed: 5 });
      const { manifest, bytes } = await registry.readModel('churn', outcome.manifest.version);
      expect(manifest.lineage.family).toBe(family);
      expect(manifest.explanation).toMatchObject({ method: family === 'logistic' ? 'additive-logit' : 'coalitions', source: expect.stringMatching(/^100 training rows drawn at random/) });
      expect(manifest.explanation!.background).toHaveLength(100);
      // Global importance over holdout rows: every feature, largest mean |contribution| first, each mean inside its interval.
      const importance = manifest.explanation!.importance!;
      // Within training's 0.5 s budget: all 200 rows of a cheap model, a handful of a tree ensemble's, and the source says which.
      expect(importance.customers).toBeGreaterThanOrEqual(5);
      expect(importance.source).toMatch(/^\d+ holdout rows drawn at random \(seed \d+\).*, each explained for the positive class$/);
      if (importance.customers < 200) expect(importance.source).toContain(`(the first ${importance.customers} of 200: the 0.5 s budget was spent)`);
      expect(importance.features.map((f) => f.feature).sort()).toEqual(manifest.input.features.map((f) => f.name).sort());
      const sizes = importance.features.map((f) => f.mean_abs);
      expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
      for (const f of importance.features) {
        expect(f.mean_abs).toBeGreaterThanOrEqual(Math.abs(f.mean) - 1e-12);
        expect(f.mean).toBeGreaterThanOrEqual(f.mean_ci95[0] - 1e-12);
        expect(f.mean).toBeLessThanOrEqual(f.mean_ci95[1] + 1e-12);
      }
      const r = await compare(manifest, bytes, records, RECORDS, positive(manifest));
      expect(r.worst).toBeLessThan(TOLERANCE);
    });
  }

  it("for next best offer's acceptance model, each customer's top offer", async () => {
    const spec = await nboTrainingSpec(handle.warehouse);
    const outcome = await TrainingService.over(registry).trainNboSpec(spec, { families: ['gbt'], seed: 5 });
    const { manifest, bytes } = await registry.readModel('nbo', outcome.manifest.version);
    const r = await compare(manifest, bytes, records, RECORDS, top(manifest.output.classes.length));
    expect(r.method).toBe('coalitions');
    expect(r.worst).toBeLessThan(TOLERANCE);
  });

  for (const name of ['sklearn_rf_iris', 'keras_bank_churn_mlp']) {
    it(`for a model trained elsewhere (${name}) published with --background`, async () => {
      const fixture = onnxFixture(name);
      const input = Object.values(fixture.vectors.inputs)[0]!;
      const d = input.dims[1]!;
      const base = input.data.map(Number);
      const rng = new Rng(d);
      // Rows around the fixture's own inputs, rounded so that some values agree with the records'.
      const around = (count: number) => Array.from({ length: count }, (_, i) => Array.from({ length: d }, (_, j) => Math.round((base[(i % input.dims[0]!) * d + j]! + rng.normal() * 0.5) * 4) / 4));
      const background = around(40);
      const manifest = await publishExternalModel(registry, { name: name.replace(/_/g, '-'), bytes: fixture.bytes, features: Array.from({ length: d }, (_, j) => `f${j}`), background: { rows: background, source: 'test' } });
      const stored = await registry.readModel(manifest.name, manifest.version);
      const X = Float64Array.from(around(6).flat());
      const r = await compare(stored.manifest, stored.bytes, X, 6, manifest.output.kind === 'binary' ? positive(manifest) : top(manifest.output.classes.length));
      expect(r.worst).toBeLessThan(TOLERANCE);
    });
  }
});
