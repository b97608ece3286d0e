import { describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../lib/registry/index';
import { ModelProvider } from '../../lib/scoring/models';
import { NOT_FOUND, ScoringService, type FeatureSource } from '../../lib/scoring/service';
import { churnCollapseWarning, featureWarnings, nboCollapseWarning } from '../../lib/scoring/warnings';
import { FEATURES } from '../../lib/catalog';
import { customerFeatures, MemoryFeatures, PROFILE, testApp } from '../support/app';
import { publishTiny } from '../support/models';
import { tempFsStore } from '../support/registry';

const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `c${from + i}`);
const warehouse = (n: number) => new MemoryFeatures(new Map(ids(n).map((id, i) => [id, customerFeatures(i + 1)])));

async function servedApp(features: FeatureSource, options: { constant?: boolean } = {}) {
  const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
  await publishTiny(registry, 'churn', 'production', options);
  await publishTiny(registry, 'nbo', 'production', options);
  return testApp({ features, registry });
}

describe('answers with reasons', () => {
  const background = Array.from({ length: 15 }, (_, i) => customerFeatures(100 + i * 7));
  const strip = (results: unknown) => JSON.stringify(results, (key, value) => (key === 'reasons' ? undefined : value));

  it('add exact reasons to churn and NBO answers and change nothing else', async () => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn', 'production', { background });
    await publishTiny(registry, 'nbo', 'production', { acceptance: true, background });
    const app = await testApp({ features: warehouse(8), registry });

    const plain = await app.scoring.score(ids(8), 'all', 5000);
    const explained = await app.scoring.score(ids(8), 'all', 5000, { explain: true });

    expect(JSON.stringify(plain.results)).not.toContain('reasons');
    expect(strip(explained.results)).toBe(JSON.stringify(plain.results));
    expect(explained.warnings).toEqual(plain.warnings);
    for (const { result } of explained.results) {
      const { churn, nbo } = JSON.parse(JSON.stringify(result));
      for (const [reasons, reported] of [[churn.reasons, churn.churn_probability], [nbo.reasons, nbo.confidence]]) {
        expect(reasons.contributions.map((c: { feature: string }) => c.feature).sort()).toEqual([...FEATURES].sort());
        const sizes = reasons.contributions.map((c: { contribution: number }) => Math.abs(c.contribution));
        expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
        const sum = reasons.contributions.reduce((a: number, c: { contribution: number }) => a + c.contribution, 0);
        expect(Math.abs(reasons.base + sum - reasons.output)).toBeLessThan(1e-9);
        expect(Math.abs(reasons.output - reported)).toBeLessThan(1e-6);
        expect(reasons.text.length).toBeGreaterThan(0);
      }
      expect(nbo.reasons.text[0]).toContain(`the chance of accepting ${nbo.offer_name}`);
      expect(result).not.toHaveProperty('rfm.reasons');
    }
  });

  it('say why they are unavailable for a version without a background, and still answer', async () => {
    const app = await servedApp(warehouse(3));

    const outcome = await app.scoring.score(ids(3), 'churn', 5000, { explain: true });

    expect(outcome.results).toHaveLength(3);
    expect((outcome.results[0]!.result as { reasons: unknown }).reasons).toBeNull();
    expect(outcome.warnings).toEqual([expect.objectContaining({ code: 'reasons_unavailable', model: 'churn', message: expect.stringMatching(/churn v1 has no background.*--background/) })]);
  });
});

describe('batch scoring', () => {
  it('answers a whole batch from one warehouse query, reporting unknown and duplicate ids', async () => {
    const features = warehouse(30);
    const app = await servedApp(features);

    const outcome = await app.scoring.score([...ids(30), 'ghost', 'c1'], 'all', 5000);

    expect(features.queries).toBe(1);
    expect(outcome.results).toHaveLength(30);
    expect(outcome.errors).toEqual([{ customer_id: 'ghost', error: NOT_FOUND }]);
    expect(outcome.duplicates).toEqual(['c1']);
    const first = outcome.results[0]!.result as { churn: { source: unknown; churn_risk: string }; nbo: { offers: unknown[] }; rfm: { segment: string } };
    expect(first.churn.source).toEqual({ type: 'model', name: 'churn', version: 1, alias: 'production' });
    expect(first.nbo.offers).toHaveLength(8);
    expect(typeof first.rfm.segment).toBe('string');
    expect(outcome.warnings).toEqual([]);
  });

  it('serves an NBO model with independent acceptance outputs (published from elsewhere) and says so; a softmax one is labelled softmax', async () => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    const acceptance = await publishTiny(registry, 'nbo', 'production', { acceptance: true });
    // Sigmoid columns do not sum to 1 on the probe rows: published as multilabel, without being told.
    expect(acceptance.output.kind).toBe('multilabel');
    const app = await testApp({ features: warehouse(5), registry });

    const outcome = await app.scoring.score(ids(5), 'nbo', 5000);

    const answers = outcome.results.map((r) => r.result as { source: unknown; offers: { probability: number }[]; confidence: number });
    expect(answers[0]!.source).toEqual({ type: 'model', name: 'nbo', version: 1, alias: 'production', probabilities: 'acceptance' });
    const sums = answers.map((a) => a.offers.reduce((s, o) => s + o.probability, 0));
    expect(sums.some((s) => Math.abs(s - 1) > 0.05)).toBe(true);
    for (const a of answers) expect(a.confidence).toBe(a.offers[0]!.probability);

    const softmax = await servedApp(warehouse(2));
    const first = (await softmax.scoring.score(ids(2), 'nbo', 5000)).results[0]!.result as { source: unknown; offers: { probability: number }[] };
    expect(first.source).toMatchObject({ probabilities: 'softmax' });
    expect(first.offers.reduce((s, o) => s + o.probability, 0)).toBeCloseTo(1, 5);
  });

  it('returns what finished by the deadline and lists the rest as timed out', async () => {
    const stuck: FeatureSource = { getFeatures: () => new Promise(() => undefined) };
    const app = await servedApp(stuck);

    const started = Date.now();
    const outcome = await app.scoring.score(ids(5), 'churn', 200);

    expect(Date.now() - started).toBeLessThan(2000);
    expect(outcome.results).toEqual([]);
    expect(outcome.errors.map((e) => e.error)).toEqual(Array(5).fill('Timed out: not scored within 0.2 s (waiting for the warehouse)'));
  });

  it('keeps unknown customers separate from timed-out ones when a model is slow', async () => {
    const features = warehouse(3);
    const app = await testApp({ features });
    const slowModels = { get: () => new Promise<never>(() => undefined) } as unknown as ModelProvider;
    const scoring = new ScoringService({ features, models: slowModels, profile: app.profile, settings: { churnRiskThresholds: [0.3, 0.6], rfmCutPoints: 'quintiles' } });

    const outcome = await scoring.score(['c1', 'c2', 'nobody'], 'all', 300);

    expect(outcome.results).toEqual([]);
    expect(outcome.errors).toEqual([
      { customer_id: 'c1', error: expect.stringMatching(/Timed out.*churn and nbo not finished/) },
      { customer_id: 'c2', error: expect.stringMatching(/Timed out/) },
      { customer_id: 'nobody', error: NOT_FOUND },
    ]);
    expect(outcome.timedOut).toEqual(['c1', 'c2']);
  });

  it('warns when a model gives everyone the same answer', async () => {
    const app = await servedApp(warehouse(12), { constant: true });

    const churn = await app.scoring.score(ids(12), 'churn', 5000);
    const nbo = await app.scoring.score(ids(12), 'nbo', 5000);

    expect(churn.warnings.map((w) => w.code)).toEqual(['collapsed_predictions']);
    expect(nbo.warnings.map((w) => w.code)).toEqual(['collapsed_predictions']);
  });

  it('labels baseline answers as mock and says so at the top', async () => {
    const app = await testApp({ features: warehouse(3), mockMode: 'auto' });

    const outcome = await app.scoring.score(ids(3), 'churn', 5000);

    expect(outcome.results.every((r) => (r.result as { source: { type: string } }).source.type === 'mock')).toBe(true);
    expect(outcome.warnings).toEqual([expect.objectContaining({ code: 'mock_predictions', model: 'churn' })]);
  });
});

/** Rows of features as the row-major matrix scoring works on (null: NaN). */
const matrix = (rows: (number | null)[][]) => Float64Array.from(rows.flat(), (v) => v ?? NaN);

describe('warnings', () => {
  const recency = FEATURES.indexOf('days_since_last_transaction');

  it('flag recency 999 for everyone (the old warehouse bug) but not ordinary batches', () => {
    const rows = Array.from({ length: 20 }, (_, i) => customerFeatures(i + 1));
    expect(featureWarnings(FEATURES, matrix(rows), rows.length, PROFILE)).toEqual([]);

    const defaulted = rows.map((r) => r.map((v, j) => (j === recency ? 999 : v)));
    const warnings = featureWarnings(FEATURES, matrix(defaulted), defaulted.length, PROFILE);
    expect(warnings).toEqual([expect.objectContaining({ code: 'defaulted_feature', feature: 'days_since_last_transaction' })]);
  });

  it('flag a feature missing for every customer, and one customer with a defaulted recency', () => {
    const rows = Array.from({ length: 5 }, (_, i) => customerFeatures(i + 1).map((v, j) => (j === 5 ? null : v)));
    expect(featureWarnings(FEATURES, matrix(rows), rows.length, PROFILE).map((w) => [w.code, w.feature])).toEqual([['missing_feature', 'points_balance']]);

    const one = [customerFeatures(1).map((v, j) => (j === recency ? 999 : v)), customerFeatures(2)];
    expect(featureWarnings(FEATURES, matrix(one), one.length, PROFILE)[0]!.message).toMatch(/1 of 2 customers have days_since_last_transaction = 999/);
  });

  it('do not flag values that are common in the base (most customers have no complaints)', () => {
    const rows = Array.from({ length: 5 }, (_, i) => customerFeatures(i + 1).map((v, j) => (j === FEATURES.indexOf('complaints_90d') ? 0 : v)));
    expect(featureWarnings(FEATURES, matrix(rows), rows.length, PROFILE)).toEqual([]);
  });

  it('flag collapsed churn and NBO predictions only in batches large enough to tell', () => {
    expect(churnCollapseWarning(Array(10).fill(0.42), 'churn')?.code).toBe('collapsed_predictions');
    expect(churnCollapseWarning(Array(9).fill(0.42), 'churn')).toBeNull();
    expect(churnCollapseWarning(Array.from({ length: 10 }, (_, i) => i / 10), 'churn')).toBeNull();
    expect(nboCollapseWarning(['a', 'b'], new Uint8Array(10), new Float64Array(10).fill(0.995), 'nbo')).toMatchObject({ code: 'collapsed_predictions', message: expect.stringContaining('offer a at 99%+') });
    expect(nboCollapseWarning(['a', 'b'], new Uint8Array(10), new Float64Array(10).fill(0.6), 'nbo')).toBeNull();
    expect(nboCollapseWarning(['a', 'b'], Uint8Array.from({ length: 10 }, (_, i) => i % 2), new Float64Array(10).fill(0.995), 'nbo')).toBeNull();
  });
});
