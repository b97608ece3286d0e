import { binaryMetricsOf } from '../../lib/registry/index';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import trainingDefaults from '../../models/training.json';
import { ModelRejectedError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry/index';
import { Rng } from '../../lib/random';
import { churnTrainingSpec, csvTrainingSpec, nboTrainingSpec } from '../../lib/training/datasets';
import { exportNet, netProbabilities, toFloat32, verifyExport, type NetModel } from '../../lib/training/export';
import { initNet } from '../../lib/training/nn';
import type { TrainingSpec } from '../../lib/training/pipeline';
import { TrainingService } from '../../lib/services/training';
import type { NboTrainingSpec } from '../../lib/training/datasets';
import { designWidth, fitDesign } from '../../lib/training/design';
import { loadDemoData, readDemoSummary } from '../../lib/warehouse/demo-load';
import { OFFER_IDS } from '../../lib/catalog';
import { openWarehouse, Warehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { cdnowChurnTable, syntheticChurnTable, toCsv } from '../../devkit/datasets';
import { runCli } from '../support/cli';
import { createTestDatabase } from '../../devkit/postgres';
import { tempDir, tempFsStore } from '../support/registry';
import { lambdaContext } from '../support/app';

// Each training run cross-validates every family: minutes, not seconds, on one core.
vi.setConfig({ testTimeout: 300_000 });

let handle: WarehouseHandle;
let churn: TrainingSpec;
let nbo: NboTrainingSpec;

beforeAll(async () => {
  handle = await openWarehouse(await createTestDatabase(inject('postgresUrl'), 'training'));
  await loadDemoData(handle.pool, handle.warehouse.cfg, { customers: 5000, seed: 21 });
  churn = await churnTrainingSpec(handle.warehouse);
  nbo = await nboTrainingSpec(handle.warehouse);
});

afterAll(async () => {
  await handle?.close();
});

const registry = () => new ModelRegistry(tempFsStore(), { actor: 'trainer-test' });

describe('training on warehouse history', () => {
  it('chooses churn by time-ordered folds over earlier snapshots, reports on the latest, passes the gates and promotes', async () => {
    const reg = registry();

    const outcome = await TrainingService.over(reg).trainSpec(churn, { promote: 'production' });

    const m = outcome.manifest;
    expect(m.status).toBe('ready');
    expect(outcome.promoted?.version).toBe(m.version);
    const holdout = binaryMetricsOf(m.metrics!.holdout);
    expect(holdout.auc).toBeGreaterThan(0.8);
    expect(holdout.log_loss).toBeLessThan(m.metrics!.baseline_prior.log_loss!);
    expect(m.lineage).toMatchObject({ origin: 'trained', rows: churn.rows, data_source: 'warehouse:customer_churn_history', seed: 42 });
    expect(m.lineage.time_window!.to).toBe(churn.lineage.time_window!.to);
    expect(m.lineage.data_fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(m.holdout_fingerprint!.rows).toBe(churn.splits.test.length);
    expect(m.input.features.map((f) => f.name)).toEqual(churn.columns.map((c) => c.name));
    expect(m.output).toMatchObject({ kind: 'binary', classes: ['0', '1'], positive_class: '1' });
    expect(outcome.candidates.map((c) => c.family).slice(0, 3)).toEqual(['logistic', 'mlp', 'gbt']);
    expect(m.metrics).toMatchObject({ chosen_family: outcome.chosen, validation: { logistic: expect.any(Object), mlp: expect.any(Object), gbt: expect.any(Object) } });
    // Selection: three time-ordered folds, each later snapshot predicted from the ones before it.
    const cv = m.metrics!.cross_validation!;
    expect(cv.kind).toBe('time');
    expect(cv.folds).toHaveLength(3);
    for (const f of cv.folds) expect(f.fit_rows).toBeGreaterThan(f.check_rows);
    expect(binaryMetricsOf(cv.out_of_fold).auc).toBeGreaterThan(0.8);
    expect(cv.refit).toEqual({ rows: churn.splits.train.length, family: outcome.chosen });
    // The chosen candidate is the best out of fold, or serves faster within the selection tolerance
    // of it; the gates judged its out-of-fold predictions.
    const best = Math.max(...outcome.candidates.map((c) => c.score));
    const chosenScore = outcome.candidates.find((c) => c.family === outcome.chosen)!.score;
    expect(chosenScore).toBeGreaterThanOrEqual(best - trainingDefaults.selection_tolerance.auc);
    const order = ['logistic', 'mlp', 'gbt', 'blend'];
    for (const c of outcome.candidates.filter((c) => c.score > chosenScore)) expect(order.indexOf(c.family)).toBeGreaterThan(order.indexOf(outcome.chosen));
    expect(m.gates!.results.find((g) => g.gate === 'beats_baseline')!.value).toBeCloseTo(binaryMetricsOf(cv.out_of_fold).auc!, 10);
    expect(outcome.exportCheck.maxAbsDiff).toBeLessThanOrEqual(1e-5);

    // A second model is compared with production on the same holdout.
    const second = await TrainingService.over(reg).trainSpec(churn, { families: ['logistic'], seed: 7 });
    const production = second.manifest.metrics!.production!;
    expect(production).toMatchObject({ version: m.version, comparable: true });
    expect(binaryMetricsOf(production.metrics!).auc!).toBeCloseTo(holdout.auc!, 4); // onnxruntime float32 vs the trainer: ties may differ
  });

  it('learns P(accept) per offer from every offer made: its top offer beats the campaign rules on the window, and the interval covers the truth', async () => {
    const reg = registry();
    const demo = (await readDemoSummary(handle.pool))!;

    const outcome = await TrainingService.over(reg, handle).train({ model: 'nbo', promote: 'production' });

    const m = outcome.manifest;
    expect(m.status).toBe('ready');
    expect(m.output).toMatchObject({ kind: 'multilabel', classes: [...OFFER_IDS] });
    // Every offer made in the training months is learnt from, accepted or refused.
    const heads = m.metrics!.heads!;
    expect(heads.map((h) => h.offer_id)).toEqual([...OFFER_IDS]);
    expect(heads.reduce((a, h) => a + h.sent, 0)).toBe(nbo.splits.train.length);
    expect(heads.reduce((a, h) => a + h.accepted, 0)).toBeLessThan(nbo.splits.train.length / 2);
    expect(heads.every((h) => h.kind === 'model')).toBe(true);
    const v = m.metrics!.policy_value!;
    expect(v).toMatchObject({ method: 'doubly robust', propensity: 'logged', rows: nbo.splits.test.length, from: nbo.window.from, to: nbo.window.to });
    // The truth on demo data: the process's own acceptance probabilities of the offers the policy picks.
    expect(v.true_value!).toBeGreaterThan(demo.oracle.nbo!.window.rules);
    expect(v.true_value!).toBeLessThanOrEqual(demo.oracle.nbo!.window.oracle);
    expect(v.ci_low!).toBeLessThanOrEqual(v.true_value!);
    expect(v.ci_high!).toBeGreaterThanOrEqual(v.true_value!);
    expect(v.ci_low!).toBeGreaterThan(v.logging!);
    expect(m.gates!.results.find((g) => g.gate === 'policy_beats_logging')).toMatchObject({ passed: true, value: v.ci_low, threshold: v.logging });
    expect(outcome.promoted?.version).toBe(m.version);
    // The heads are calibrated where they were sent: mean predicted close to observed acceptance per offer.
    for (const o of m.metrics!.per_offer!) expect(Math.abs(o.mean_predicted! - o.accepted / o.sent)).toBeLessThan(0.06);

    // A second version is estimated beside production on the same rows, with the same reward model.
    const second = await TrainingService.over(reg, handle).train({ model: 'nbo', seed: 7 });
    const production = second.manifest.metrics!.policy_value!.production!;
    expect(production.version).toBe(m.version);
    expect(Math.abs(production.difference.estimate!)).toBeLessThan(0.03);
    expect(second.manifest.gates!.results.find((g) => g.gate === 'policy_not_worse_than_production')!.passed).toBe(true);
  });

  it('estimates the logging policy from the history where the warehouse logs no propensities, and still covers the truth', async () => {
    const cfg = handle.warehouse.cfg;
    for (const propensity of [null, 'chance_logged']) {
      const warehouse = new Warehouse(handle.pool, { ...cfg, offer_history: { ...cfg.offer_history, propensity } });
      const spec = await nboTrainingSpec(warehouse);
      expect(spec.propensity).toBeNull();
      expect(spec.propensityNote).toMatch(propensity ? /has no column "chance_logged"/ : /no propensity column is mapped/);
      const outcome = await TrainingService.over(registry()).trainNboSpec(spec, { demo: await readDemoSummary(handle.pool) });
      const v = outcome.manifest.metrics!.policy_value!;
      expect(v.propensity).toBe('estimated');
      expect(outcome.manifest.metrics!.overlap!.propensity_source).toBe('estimated');
      expect(v.ci_low!).toBeLessThanOrEqual(v.true_value!);
      expect(v.ci_high!).toBeGreaterThanOrEqual(v.true_value!);
      if (propensity) break; // the model is the same; one training run shows the missing column is handled
    }
  });

  it('refuses propensities outside (0, 1] or missing, naming the row, and publishes nothing', async () => {
    await handle.pool.query(`CREATE TABLE offers_bad AS SELECT * FROM customer_offer_history`);
    const cfg = handle.warehouse.cfg;
    const warehouse = new Warehouse(handle.pool, { ...cfg, offer_history: { ...cfg.offer_history, table: 'offers_bad' } });
    const first = (await handle.pool.query(`SELECT customer_id, offered_at FROM offers_bad ORDER BY offered_at, customer_id LIMIT 1`)).rows[0] as { customer_id: string };
    await handle.pool.query(`UPDATE offers_bad SET propensity = 1.5 WHERE customer_id = $1`, [first.customer_id]);
    await expect(nboTrainingSpec(warehouse)).rejects.toThrow(new RegExp(`propensity 1.5 on the row of customer ${first.customer_id}, offered .*, offer [a-z_0-9]+ is outside \\(0, 1\\]`));
    await handle.pool.query(`UPDATE offers_bad SET propensity = NULL WHERE customer_id = $1`, [first.customer_id]);
    await expect(nboTrainingSpec(warehouse)).rejects.toThrow(new RegExp(`no propensity on the row of customer ${first.customer_id}`));
  });

  it('gives an offer never accepted, or sent too rarely, a constant with a warning naming it, and still ranks the others', async () => {
    await handle.pool.query(`CREATE TABLE offers_odd AS SELECT * FROM customer_offer_history`);
    await handle.pool.query(`UPDATE offers_odd SET accepted = false WHERE offer_id = 'vip_upgrade'`);
    await handle.pool.query(`DELETE FROM offers_odd WHERE offer_id = 'cross_sell_bundle' AND md5(customer_id) > '1'`);
    const cfg = handle.warehouse.cfg;
    const spec = await nboTrainingSpec(new Warehouse(handle.pool, { ...cfg, offer_history: { ...cfg.offer_history, table: 'offers_odd' } }));

    const outcome = await TrainingService.over(registry()).trainNboSpec(spec);

    const heads = outcome.manifest.metrics!.heads!;
    const vip = heads.find((h) => h.offer_id === 'vip_upgrade')!;
    const cross = heads.find((h) => h.offer_id === 'cross_sell_bundle')!;
    expect(vip).toMatchObject({ kind: 'constant', reason: expect.stringMatching(/^never accepted in \d+ sends/) });
    expect(cross).toMatchObject({ kind: 'constant', reason: expect.stringMatching(/^made only \d+ times in the training months/) });
    expect(outcome.nbo!.warnings.filter((w) => /^offer (vip_upgrade|cross_sell_bundle): /.test(w))).toHaveLength(2);
    expect(heads.filter((h) => h.kind === 'model')).toHaveLength(6);
    // The others are still ranked by their models: the policy picks several offers, and never the one no one accepts.
    const tops = outcome.manifest.holdout_fingerprint!.top_class_share!;
    expect(Object.values(tops).filter((share) => share > 0.03).length).toBeGreaterThanOrEqual(4);
    expect(tops.vip_upgrade).toBe(0);
  });

  it('refuses an NBO model whose policy cannot be shown to beat what was sent, with the figures, and never promotes it', async () => {
    // Acceptance that has nothing to do with the customer or the offer: nothing to learn.
    await handle.pool.query(`CREATE TABLE offers_noise AS SELECT * FROM customer_offer_history`);
    await handle.pool.query(`UPDATE offers_noise SET accepted = (substr(md5(customer_id || offered_at::text), 1, 2) < '60')`);
    const cfg = handle.warehouse.cfg;
    const spec = await nboTrainingSpec(new Warehouse(handle.pool, { ...cfg, offer_history: { ...cfg.offer_history, table: 'offers_noise' } }));
    const reg = registry();

    const outcome = await TrainingService.over(reg).trainNboSpec(spec, { promote: 'production' });

    expect(outcome.manifest.status).toBe('refused');
    expect(outcome.promoted).toBeNull();
    expect(outcome.manifest.refusal_reasons.join(' ')).toMatch(/cannot show that sending each customer its top offer beats what was sent: estimated acceptance 0\.\d{4} \(95% interval 0\.\d{4}-0\.\d{4}, doubly robust, \d+ offers of \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d\), whose lower bound is below the 0\.\d{4}/);
    expect(await reg.getAlias('nbo', 'production')).toBeNull();
  });

  it('refuses a model trained on random labels, keeps it as a refused version, and never promotes it', async () => {
    const reg = registry();
    const rng = new Rng(99);
    const shuffled = Int32Array.from(churn.y);
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }

    const outcome = await TrainingService.over(reg).trainSpec({ ...churn, y: shuffled }, { promote: 'production' });

    expect(outcome.manifest.status).toBe('refused');
    expect(outcome.manifest.refusal_reasons.join(' ')).toMatch(/does not beat the class prior/);
    expect(outcome.promoted).toBeNull();
    expect(await reg.getAlias('churn', 'production')).toBeNull();
    expect((await reg.listVersions('churn')).map((v) => v.status)).toEqual(['refused']);
    await expect(reg.promote('churn', 'production', outcome.manifest.version)).rejects.toThrow(/refused by the quality gates/);
  });

  it('is deterministic for a seed', async () => {
    const a = await TrainingService.over(registry()).trainSpec(churn, { families: ['logistic'], seed: 3 });
    const b = await TrainingService.over(registry()).trainSpec(churn, { families: ['logistic'], seed: 3 });
    expect(a.manifest.model.sha256).toBe(b.manifest.model.sha256);
  });

  it('reads the same rows in the same order, and trains the same bytes, whatever the physical row order', async () => {
    const t = handle.warehouse.cfg.churn_history.table;
    const before = await TrainingService.over(registry()).trainSpec(churn, { families: ['gbt'] });
    // Rewrite the table in a shuffled physical order: same content, different heap order.
    await handle.pool.query(`CREATE TEMP TABLE shuffled AS SELECT * FROM ${t} ORDER BY md5(customer_id || snapshot_date::text)`);
    await handle.pool.query(`TRUNCATE ${t}`);
    await handle.pool.query(`INSERT INTO ${t} SELECT * FROM shuffled`);
    const again = await churnTrainingSpec(handle.warehouse);
    expect(Buffer.from(again.X.buffer).equals(Buffer.from(churn.X.buffer))).toBe(true);
    expect(Array.from(again.y)).toEqual(Array.from(churn.y));
    const after = await TrainingService.over(registry()).trainSpec(again, { families: ['gbt'] });
    expect(after.manifest.model.sha256).toBe(before.manifest.model.sha256);
  });

  it('samples customers in SQL with a stated seed, keeping the latest snapshot whole', async () => {
    const sampled = await churnTrainingSpec(handle.warehouse, undefined, { share: 0.3, seed: 5 });
    expect(sampled.splits.test.length).toBe(churn.splits.test.length);
    const share = sampled.splits.train.length / churn.splits.train.length;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.35);
    expect(sampled.splits.description).toMatch(/30\.0% sample of customers \(md5 of customer id, seed 5\)/);
    // The same seed draws the same customers; another seed others.
    const same = await churnTrainingSpec(handle.warehouse, undefined, { share: 0.3, seed: 5 });
    expect(Buffer.from(same.X.buffer).equals(Buffer.from(sampled.X.buffer))).toBe(true);
    const other = await churnTrainingSpec(handle.warehouse, undefined, { share: 0.3, seed: 6 });
    expect(Buffer.from(other.X.buffer).equals(Buffer.from(sampled.X.buffer))).toBe(false);
    // Above max_learning_rows the sample is drawn by default.
    const capped = await churnTrainingSpec(handle.warehouse, undefined, { maxRows: 5000, seed: 42 });
    expect(capped.splits.train.length).toBeLessThan(6000);
    expect(capped.lineage.notes).toMatch(/sampled/);
  });
});

describe('export verification', () => {
  it('fails an export whose onnxruntime outputs differ from the trainer by more than 1e-5', async () => {
    const rows = 50;
    const X = Float64Array.from({ length: rows * 3 }, (_, i) => Math.fround(Math.sin(i) * 3));
    const columns = ['a', 'b', 'c'].map((name) => ({ name, kind: 'numeric' as const }));
    const { design } = fitDesign(columns, X, Uint32Array.from({ length: rows }, (_, i) => i), new Int32Array(rows), { knots: 2, log: false, categorical: {} }, 1);
    const model: NetModel = toFloat32({ kind: 'net', design, net: initNet(designWidth(design), [4], 2, 1), classes: 2 });
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
    writeFileSync(csv, toCsv(cdnowChurnTable()));
    const env = { MODEL_REGISTRY_URI: join(dir, 'registry') };

    const trained = await runCli(['train', 'cdnow', '--csv', csv, '--label', 'churned', '--promote', 'production', '--json'], env);
    expect(trained.code).toBe(0);
    const manifest = trained.json().manifest;
    expect(manifest.input.features.map((f: { name: string }) => f.name)).toEqual(['frequency', 'recency_days', 'age_days', 'monetary_mean', 'first_spend']);
    expect(manifest.metrics.holdout.auc).toBeGreaterThan(0.72);
    expect(manifest.input.preprocessing.steps[0]).toMatchObject({ step: 'encode' });
    // Progress: the steps that matter and one result line per family, not one line per fold, epoch or setting.
    const progress = trained.stderr.trim().split('\n');
    expect(progress.length).toBeLessThan(30);
    expect(trained.stderr).toMatch(/model selection: 5-fold stratified cross-validation/);
    for (const family of ['logistic', 'mlp', 'gbt']) expect(trained.stderr).toMatch(new RegExp(`train cdnow: ${family}: out-of-fold AUC 0\\.\\d{4} \\(\\d+\\.\\ds\\)`));
    expect(trained.stderr).not.toMatch(/hinge knots/);
    expect(manifest.metrics.cross_validation.candidates.map((c: { family: string }) => c.family)).toEqual(expect.arrayContaining(['logistic', 'mlp', 'gbt']));

    const out = join(dir, 'predictions.csv');
    const predicted = await runCli(['predict', 'cdnow', '--csv', csv, '--out', out], env);
    expect(predicted.code).toBe(0);
    expect(predicted.stdout.trim()).toBe(`Wrote 23570 predictions from cdnow v1 to ${out}`);
    expect(predicted.stderr).not.toMatch(/warning/);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('customer_id,probability,predicted');
    expect(lines).toHaveLength(23_571);
    const probabilities = lines.slice(1).map((l) => Number(l.split(',')[1]));
    expect(Math.max(...probabilities) - Math.min(...probabilities)).toBeGreaterThan(0.5);

    const evaluated = await runCli(['evaluate', 'cdnow', '--csv', csv, '--label', 'churned', '--json'], env);
    expect(evaluated.code).toBe(0);
    expect(evaluated.json().metrics.auc).toBeGreaterThan(0.72);
    expect(evaluated.json().rows).toBe(23_570);

    // Text where a number belongs is scored as missing, and counted, not silently.
    const text = readFileSync(csv, 'utf8').split('\n');
    const header = text[0]!.split(',');
    const column = header.indexOf('frequency');
    const dirty = text.slice(0, 4).map((line, i) => (i === 0 ? line : line.split(',').map((v, j) => (j === column ? 'many' : v)).join(',')));
    const dirtyCsv = join(dir, 'dirty.csv');
    writeFileSync(dirtyCsv, `${dirty.join('\n')}\n`);
    const one = await runCli(['predict', 'cdnow', '--csv', dirtyCsv, '--out', join(dir, 'dirty-out.csv')], env);
    expect(one.code).toBe(0);
    expect(one.stdout.trim()).toBe(`Wrote 3 predictions from cdnow v1 to ${join(dir, 'dirty-out.csv')}`);
    expect(one.stderr).toContain('warning: 3 values were not numbers and were scored as missing: frequency (3 rows)');

    // --verbose shows every step of the search.
    const small = join(dir, 'small.csv');
    writeFileSync(small, `${text.slice(0, 2001).join('\n')}\n`);
    const verbose = await runCli(['train', 'small', '--csv', small, '--label', 'churned', '--family', 'logistic', '--verbose'], env);
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toMatch(/logistic: 3 hinge knots per numeric column: out-of-fold AUC 0\.\d{4}/);
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
      const result = await handler({ model: 'nbo', promote: 'staging' }, lambdaContext());
      expect(result).toMatchObject({ model: 'nbo', version: 1, status: 'ready', promoted: { alias: 'staging', version: 1 } });
      expect(result.holdout.auc).toBeGreaterThan(0.6);
      expect(result.policy_value).toMatchObject({ method: 'doubly robust', rows: nbo.splits.test.length });
      expect(result.policy_value!.ci_low!).toBeGreaterThan(result.policy_value!.logging!);
      await expect(handler({ model: 'weather' }, lambdaContext())).rejects.toThrow(/Invalid training event: model: "model" must be one of churn, nbo/);
      await expect(handler({ model: 'churn', seed: 'x' }, lambdaContext())).rejects.toThrow(/"seed" must be a whole number/);
      await expect(handler({ model: 'churn', promote: 'Prod Alias' }, lambdaContext())).rejects.toThrow(/"promote" must be an alias name/);
      await expect(handler({ model: 'churn', color: 'red' }, lambdaContext())).rejects.toThrow(/Unrecognized key/);
    } finally {
      process.env = before;
      resetConfig();
    }
  });
});

describe('boosted trees end to end', () => {
  it('train on the demo warehouse, publish, and serve through the scoring path like any version', async () => {
    const { createScoringApp } = await import('../../lib/app/scoring');
    const { loadConfig } = await import('../../lib/config');
    const reg = registry();
    const churnOutcome = await TrainingService.over(reg).trainSpec(churn, { families: ['gbt'], promote: 'production' });
    const nboOutcome = await TrainingService.over(reg).trainNboSpec(nbo, { families: ['gbt'], promote: 'production' });
    expect(churnOutcome.manifest).toMatchObject({ status: 'ready', lineage: { family: 'gbt' }, output: { probability_tensor: 'probabilities' } });
    expect(binaryMetricsOf(churnOutcome.manifest.metrics!.holdout).auc).toBeGreaterThan(0.8);
    expect(nboOutcome.manifest.output.classes).toHaveLength(8);
    expect(churnOutcome.exportCheck.maxAbsDiff).toBeLessThanOrEqual(1e-5);

    const app = await createScoringApp(loadConfig({ STAGE: 'test', MODEL_REGISTRY_URI: reg.location, WAREHOUSE_URL: handle.pool.options.connectionString!, ML_MOCK_MODE: 'off' }));
    try {
      const outcome = await app.scoring.score(['demo-000001', 'demo-000002', 'demo-000003'], 'all', 10_000);
      expect(outcome.results).toHaveLength(3);
      const r = outcome.results[0]!.result as { churn: { source: unknown; churn_probability: number }; nbo: { offers: unknown[] } };
      expect(r.churn.source).toEqual({ type: 'model', name: 'churn', version: churnOutcome.manifest.version, alias: 'production' });
      expect(r.nbo.offers).toHaveLength(8);
    } finally {
      await app.close();
    }
  });

  it('ship the search\'s own fit on large data (a holdout plan): no refit, and the manifest says so', async () => {
    const dir = tempDir();
    const file = join(dir, 'large.csv');
    writeFileSync(file, toCsv(syntheticChurnTable(130_000, 3)));
    const { spec } = await csvTrainingSpec({ name: 'large', file, label: 'churned', positive: 'yes', idColumn: 'customer_id', seed: 42 });
    const log: string[] = [];
    const outcome = await TrainingService.over(registry()).trainSpec(spec, { families: ['gbt'], gbt: { maxRounds: 30 }, onProgress: (m) => log.push(m) });
    const cv = outcome.manifest.metrics!.cross_validation!;
    expect(cv.kind).toBe('holdout');
    expect(cv.refit).toEqual({ rows: cv.folds[0]!.fit_rows, family: 'gbt', kept_from_selection: true });
    expect(log).toContainEqual(expect.stringMatching(new RegExp(`keeping its fit on the holdout plan's ${cv.folds[0]!.fit_rows} fit rows \\(no refit at this size\\)$`)));
    expect(binaryMetricsOf(outcome.manifest.metrics!.holdout).auc).toBeGreaterThan(0.7);
    expect(outcome.manifest.status).toBe('ready');
  }, 120_000);

  it('take a text column as one ordinal column from a CSV, and score unseen categories', async () => {
    const rng = new Rng(5);
    const plans = Array.from({ length: 12 }, (_, i) => `plan-${String.fromCharCode(97 + i)}`);
    const lines = ['id,plan,monthly_charges,autopay,churn'];
    for (let i = 0; i < 4000; i++) {
      const p = Math.floor(rng.next() * plans.length);
      const charges = 20 + rng.next() * 100;
      const autopay = rng.next() < 0.5;
      const z = -1.5 + (p % 3 === 0 ? 2 : 0) + (charges > 90 ? 1 : 0) - (autopay ? 1 : 0);
      const churned = rng.next() < 1 / (1 + Math.exp(-z));
      lines.push([`c${i}`, plans[p], rng.next() < 0.05 ? '' : charges.toFixed(2), autopay ? 'Yes' : 'No', churned ? 'Yes' : 'No'].join(','));
    }
    const dir = tempDir();
    const csv = join(dir, 'plans.csv');
    writeFileSync(csv, `${lines.join('\n')}\n`);
    const env = { MODEL_REGISTRY_URI: join(dir, 'registry') };

    const trained = await runCli(['train', 'plans', '--csv', csv, '--label', 'churn', '--family', 'gbt', '--json'], env);
    expect(trained.code).toBe(0);
    const manifest = trained.json().manifest;
    expect(manifest.lineage.family).toBe('gbt');
    expect(manifest.input.features.map((f: { name: string }) => f.name)).toEqual(['plan', 'monthly_charges', 'autopay']);
    const plan = manifest.input.preprocessing.steps[0].columns.find((c: { column: string }) => c.column === 'plan');
    expect(plan).toMatchObject({ kind: 'ordinal' });
    expect(plan.categories).toHaveLength(12);
    expect(manifest.metrics.holdout.auc).toBeGreaterThan(0.7);

    const input = join(dir, 'new.csv');
    writeFileSync(input, 'id,plan,monthly_charges,autopay\nn1,plan-a,95,No\nn2,plan-zzz,30,Yes\nn3,,,\n');
    const out = join(dir, 'scored.csv');
    const predicted = await runCli(['predict', 'plans', 'latest', '--csv', input, '--out', out], env);
    expect(predicted.code).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    expect(rows.map((r) => r[0])).toEqual(['n1', 'n2', 'n3']);
    for (const r of rows) expect(Number(r[1])).toBeGreaterThan(0);
    expect(Number(rows[0]![1])).toBeGreaterThan(Number(rows[1]![1]));
  });
});
