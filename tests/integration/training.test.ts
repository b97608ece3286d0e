import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ModelRejectedError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry/index';
import { Rng } from '../../lib/random';
import { churnTrainingSpec, nboTrainingSpec } from '../../lib/training/datasets';
import { exportNet, netProbabilities, toFloat32, verifyExport, type NetModel } from '../../lib/training/export';
import { initNet } from '../../lib/training/nn';
import { trainAndPublish, type TrainingSpec } from '../../lib/training/pipeline';
import { fitPreprocessor } from '../../lib/training/preprocess';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { cdnowChurnCsv } from '../support/cdnow';
import { runCli } from '../support/cli';
import { createTestDatabase } from '../support/postgres';
import { tempDir, tempFsStore } from '../support/registry';

let handle: WarehouseHandle;
let churn: TrainingSpec;
let nbo: TrainingSpec;

beforeAll(async () => {
  handle = await openWarehouse(await createTestDatabase(inject('postgresUrl'), 'training'));
  await loadDemoData(handle.pool, handle.warehouse.cfg, { customers: 8000, seed: 21 });
  churn = await churnTrainingSpec(handle.warehouse);
  nbo = await nboTrainingSpec(handle.warehouse);
});

afterAll(async () => {
  await handle?.close();
});

const registry = () => new ModelRegistry(tempFsStore(), { actor: 'trainer-test' });

describe('training on warehouse history', () => {
  it('trains churn on earlier snapshots, tests on the latest, passes the gates and promotes', async () => {
    const reg = registry();

    const outcome = await trainAndPublish(reg, churn, { promote: 'production' });

    const m = outcome.manifest;
    expect(m.status).toBe('ready');
    expect(outcome.promoted?.version).toBe(m.version);
    const holdout = (m.metrics as { holdout: Record<string, number> }).holdout;
    expect(holdout.auc).toBeGreaterThan(0.8);
    expect(holdout.log_loss).toBeLessThan((m.metrics as { baseline_prior: Record<string, number> }).baseline_prior.log_loss!);
    expect(m.lineage).toMatchObject({ origin: 'trained', rows: churn.rows, data_source: 'warehouse:customer_churn_history', seed: 42 });
    expect(m.lineage.time_window!.to).toBe(churn.lineage.time_window!.to);
    expect(m.lineage.data_fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(m.holdout_fingerprint!.rows).toBe(churn.splits.test.length);
    expect(m.input.features.map((f) => f.name)).toEqual(churn.featureNames);
    expect(m.output).toMatchObject({ kind: 'binary', classes: ['0', '1'], positive_class: '1' });
    expect(outcome.candidates.map((c) => c.family)).toEqual(['logistic', 'mlp']);
    expect(outcome.exportCheck.maxAbsDiff).toBeLessThanOrEqual(1e-5);

    // A second model is compared with production on the same holdout.
    const second = await trainAndPublish(reg, churn, { families: ['logistic'], seed: 7 });
    const production = (second.manifest.metrics as { production: { version: number; comparable: boolean; metrics: { auc: number } } }).production;
    expect(production).toMatchObject({ version: m.version, comparable: true });
    expect(production.metrics.auc).toBeCloseTo(holdout.auc!, 4); // onnxruntime float32 vs the trainer: ties may differ
  });

  it('trains next best offer over the 8 offers, with top offers spread over several of them', async () => {
    const outcome = await trainAndPublish(registry(), nbo);

    const m = outcome.manifest;
    expect(m.status).toBe('ready');
    expect(m.output.classes).toHaveLength(8);
    const holdout = (m.metrics as { holdout: { top1_accuracy: number; top_class_share: Record<string, number> } }).holdout;
    const baseline = (m.metrics as { baseline_prior: { top1_accuracy: number } }).baseline_prior;
    expect(holdout.top1_accuracy).toBeGreaterThan(baseline.top1_accuracy);
    const ranked = Object.values(holdout.top_class_share).filter((share) => share > 0.03);
    expect(ranked.length).toBeGreaterThanOrEqual(4);
  });

  it('refuses a model trained on random labels, keeps it as a refused version, and never promotes it', async () => {
    const reg = registry();
    const rng = new Rng(99);
    const shuffled = Int32Array.from(churn.y);
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }

    const outcome = await trainAndPublish(reg, { ...churn, y: shuffled }, { promote: 'production' });

    expect(outcome.manifest.status).toBe('refused');
    expect(outcome.manifest.refusal_reasons.join(' ')).toMatch(/does not beat the class prior/);
    expect(outcome.promoted).toBeNull();
    expect(await reg.getAlias('churn', 'production')).toBeNull();
    expect((await reg.listVersions('churn')).map((v) => v.status)).toEqual(['refused']);
    await expect(reg.promote('churn', 'production', outcome.manifest.version)).rejects.toThrow(/refused by the quality gates/);
  });

  it('is deterministic for a seed', async () => {
    const a = await trainAndPublish(registry(), churn, { families: ['logistic'], seed: 3 });
    const b = await trainAndPublish(registry(), churn, { families: ['logistic'], seed: 3 });
    expect(a.manifest.model.sha256).toBe(b.manifest.model.sha256);
  });
});

describe('export verification', () => {
  it('fails an export whose onnxruntime outputs differ from the trainer by more than 1e-5', async () => {
    const rows = 50;
    const X = Float64Array.from({ length: rows * 3 }, (_, i) => Math.fround(Math.sin(i) * 3));
    const pp = fitPreprocessor(X, rows, 3, ['a', 'b', 'c']);
    const model: NetModel = toFloat32({ kind: 'net', preprocessor: pp, net: initNet(3, [4], 2, 1), classes: 2 });
    const expected = netProbabilities(model, X, rows);
    const good = exportNet(model, { name: 't', producerVersion: 'test' });
    await expect(verifyExport(good, X, rows, 3, expected)).resolves.toMatchObject({ rows });

    const drifted = toFloat32({ ...model, net: { ...model.net, layers: model.net.layers.map((l, i) => (i === 1 ? { ...l, b: l.b.map((v) => v + 0.001) } : l)) } });
    const bad = exportNet(drifted, { name: 't', producerVersion: 'test' });
    await expect(verifyExport(bad, X, rows, 3, expected)).rejects.toBeInstanceOf(ModelRejectedError);
  });
});

describe('training, evaluating and predicting from CSV files (real CDNOW purchases)', () => {
  it('works end to end through the CLI', async () => {
    const dir = tempDir();
    const csv = join(dir, 'cdnow.csv');
    writeFileSync(csv, cdnowChurnCsv());
    const env = { MODEL_REGISTRY_URI: join(dir, 'registry') };

    const trained = await runCli(['train', 'cdnow', '--csv', csv, '--label', 'churned', '--promote', 'production', '--json'], env);
    expect(trained.code).toBe(0);
    const manifest = trained.json().manifest;
    expect(manifest.input.features.map((f: { name: string }) => f.name)).toEqual(['frequency', 'recency_days', 'age_days', 'monetary_mean', 'first_spend']);
    expect(manifest.metrics.holdout.auc).toBeGreaterThan(0.72);
    expect(manifest.input.preprocessing.steps[0]).toMatchObject({ step: 'encode' });
    expect(trained.stderr).toMatch(/epoch 1 train loss/);

    const out = join(dir, 'predictions.csv');
    const predicted = await runCli(['predict', 'cdnow', '--csv', csv, '--out', out], env);
    expect(predicted.code).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('customer_id,probability,predicted');
    expect(lines).toHaveLength(23_571);
    const probabilities = lines.slice(1).map((l) => Number(l.split(',')[1]));
    expect(Math.max(...probabilities) - Math.min(...probabilities)).toBeGreaterThan(0.5);

    const evaluated = await runCli(['evaluate', 'cdnow', '--csv', csv, '--label', 'churned', '--json'], env);
    expect(evaluated.code).toBe(0);
    expect(evaluated.json().metrics.auc).toBeGreaterThan(0.72);
    expect(evaluated.json().rows).toBe(23_570);
  });

  it('refuses bad CSV input with exit code 2', async () => {
    const dir = tempDir();
    const csv = join(dir, 'bad.csv');
    writeFileSync(csv, 'id,x,label\n1,2,maybe\n2,3,perhaps\n3,4,unsure\n');
    const env = { MODEL_REGISTRY_URI: join(dir, 'registry') };
    const cases: [string[], RegExp][] = [
      [['train', 'm', '--csv', csv, '--label', 'label'], /exactly two values/],
      [['train', 'm', '--csv', csv, '--label', 'nope'], /Label column "nope"|exactly two values/],
      [['train', 'm', '--csv', join(dir, 'missing.csv'), '--label', 'label'], /no such file/],
      [['train', 'm', '--label', 'x'], /not a warehouse model/],
      [['train', 'churn', '--family', 'forest'], /--family must be one of/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});

describe('the training function', () => {
  it('trains and publishes on direct invocation, and refuses a bad event', async () => {
    const { handler } = await import('../../functions/train');
    const { resetConfig } = await import('../../lib/config');
    const registryDir = tempDir();
    const before = { ...process.env };
    process.env.MODEL_REGISTRY_URI = registryDir;
    process.env.WAREHOUSE_URL = handle.pool.options.connectionString!;
    resetConfig();
    try {
      const result = await handler({ model: 'nbo', promote: 'staging' });
      expect(result).toMatchObject({ model: 'nbo', version: 1, status: 'ready', promoted: { alias: 'staging', version: 1 } });
      expect(result.holdout.top1_accuracy).toBeGreaterThan(0.2);
      await expect(handler({ model: 'weather' })).rejects.toThrow(/not a warehouse model/);
      await expect(handler({ model: 'churn', seed: 'x' })).rejects.toThrow(/"seed" must be a whole number/);
    } finally {
      process.env = before;
      resetConfig();
    }
  });
});
