import { describe, expect, it } from 'vitest';
import { Rng } from '../../lib/random';
import { searchBlend } from '../../lib/training/families/blend';
import { coveredRows, oofScore, stratifiedPlan, timePlan, type Candidate, type SelectionData } from '../../lib/training/selection';

const all = (n: number) => Uint32Array.from({ length: n }, (_, i) => i);

describe('fold plans', () => {
  it('cut a small table into 5 stratified folds that partition the learning rows', () => {
    const y = Int32Array.from({ length: 1000 }, (_, i) => (i % 16 === 0 ? 1 : 0));
    const train = Uint32Array.from(all(1000).filter((r) => r % 10 !== 0)); // the rest are report rows
    const plan = stratifiedPlan(y, train, 42);
    expect(plan.kind).toBe('k-fold');
    expect(plan.folds).toHaveLength(5);
    expect(Array.from(coveredRows(plan))).toEqual(Array.from(train));
    const positives = [...train].filter((r) => y[r] === 1).length;
    for (const f of plan.folds) {
      expect(f.fit.length + f.check.length).toBe(train.length);
      expect(new Set([...f.fit, ...f.check]).size).toBe(train.length);
      // Every fold holds its share of the positives (to within one row).
      expect(Math.abs([...f.check].filter((r) => y[r] === 1).length - positives / 5)).toBeLessThanOrEqual(1);
    }
  });

  it('hold out one stratified 20% of a large table', () => {
    const y = Int32Array.from({ length: 150_000 }, (_, i) => i % 2);
    const plan = stratifiedPlan(y, all(150_000), 1);
    expect(plan.kind).toBe('holdout');
    expect(plan.folds).toHaveLength(1);
    expect(plan.folds[0]!.check.length).toBe(30_000);
  });

  it('predict each of the latest three snapshots from the ones before it', () => {
    const dates = ['2026-01-01', '2026-02-01', '2026-03-01', '2026-04-01', '2026-05-01'];
    const times = Array.from({ length: 500 }, (_, i) => dates[i % 5]!);
    const plan = timePlan(times, all(500));
    expect(plan.folds.map((f) => f.label)).toEqual(['snapshot 2026-03-01', 'snapshot 2026-04-01', 'snapshot 2026-05-01']);
    for (const f of plan.folds) {
      const checked = times[f.check[0]!]!;
      expect([...f.check].every((r) => times[r] === checked)).toBe(true);
      expect([...f.fit].every((r) => times[r]! < checked)).toBe(true);
    }
  });
});

describe('blends', () => {
  // Two noisy views of the same signal: their average ranks better than either.
  const n = 4000;
  const rng = new Rng(3);
  const y = new Int32Array(n);
  const a = new Float64Array(n * 2);
  const b = new Float64Array(n * 2);
  for (let r = 0; r < n; r++) {
    const z = rng.normal();
    y[r] = rng.next() < 1 / (1 + Math.exp(-2 * z)) ? 1 : 0;
    const pa = 1 / (1 + Math.exp(-(z + rng.normal())));
    const pb = 1 / (1 + Math.exp(-(z + rng.normal())));
    a.set([1 - pa, pa], r * 2);
    b.set([1 - pb, pb], r * 2);
  }
  const data: SelectionData = {
    columns: [],
    X: new Float64Array(n),
    y,
    classes: ['0', '1'],
    train: all(n),
    plan: { kind: 'k-fold', folds: [{ fit: new Uint32Array(0), check: all(n), label: 'all' }], description: 'test' },
    seed: 1,
    log: () => undefined,
  };
  const candidate = (family: Candidate['family'], oof: Float64Array): Candidate => ({
    family,
    oof,
    score: oofScore(oof, data),
    settings: {},
    tried: [],
    seconds: 0,
    refit: () => {
      throw new Error('not refit in this test');
    },
  });

  it('are kept when the out-of-fold average beats both members', () => {
    const blend = searchBlend(data, candidate('gbt', a), candidate('logistic', b))!;
    expect(blend).not.toBeNull();
    expect(blend.score).toBeGreaterThan(Math.max(oofScore(a, data), oofScore(b, data)) + 0.005);
    expect(blend.settings).toMatchObject({ members: ['gbt', 'logistic'], weights: [0.5, 0.5] });
  });

  it('are dropped when one member alone is as good', () => {
    const weak = new Float64Array(n * 2).fill(0.5);
    expect(searchBlend(data, candidate('gbt', a), candidate('logistic', weak))).toBeNull();
  });
});
