import { describe, expect, it } from 'vitest';
import { evaluateGates } from '../../lib/training/gates';
import { DEFAULT_THRESHOLDS } from '../../lib/training/pipeline';

const binary = (
  probabilities: number[],
  extra: Partial<{ auc: number; topDecileLift: number; logLoss: number; production: { version: number; auc: number; ownAuc: number } | null }> = {},
  thresholds = DEFAULT_THRESHOLDS,
) => evaluateGates({ kind: 'binary', probabilities, auc: 0.8, topDecileLift: 2.5, logLoss: 0.3, baselineLogLoss: 0.4, production: null, ...extra }, thresholds);

describe('quality gates', () => {
  it('pass a model with spread, calibrated answers that beats the prior', () => {
    const p = Array.from({ length: 1000 }, (_, i) => 0.02 + (i % 50) / 100);
    const verdict = binary(p);
    expect(verdict.passed).toBe(true);
    expect(verdict.results.map((r) => r.gate)).toEqual(['prediction_spread', 'confidence', 'beats_baseline', 'top_decile_lift']);
  });

  it('refuse churn probabilities that collapse to one value', () => {
    const verdict = binary(Array.from({ length: 1000 }, (_, i) => 0.3 + (i % 2) * 0.001));
    expect(verdict.passed).toBe(false);
    expect(verdict.results.find((r) => r.gate === 'prediction_spread')!.reason).toMatch(/collapsed/);
  });

  it('refuse near-100% confidence for almost everyone (the old placeholder models)', () => {
    const verdict = binary(Array.from({ length: 1000 }, (_, i) => (i % 2 ? 0.999 : 0.001)));
    expect(verdict.results.find((r) => r.gate === 'confidence')).toMatchObject({ passed: false });
  });

  it('refuse a model that does not beat the class prior, and one worse than production', () => {
    const p = Array.from({ length: 1000 }, (_, i) => 0.02 + (i % 50) / 100);
    expect(binary(p, { auc: 0.51 }).results.find((r) => r.gate === 'beats_baseline')!.passed).toBe(false);
    expect(binary(p, { logLoss: 0.45 }).results.find((r) => r.gate === 'beats_baseline')!.passed).toBe(false);
    // Production is compared on the report rows, with this model's own AUC there.
    const vsProduction = binary(p, { auc: 0.9, production: { version: 3, auc: 0.85, ownAuc: 0.8 } });
    expect(vsProduction.passed).toBe(false);
    expect(vsProduction.results.at(-1)!.reason).toMatch(/worse than production v3/);
    expect(binary(p, { auc: 0.7, production: { version: 3, auc: 0.85, ownAuc: 0.845 } }).passed).toBe(true);
  });

  it('refuse a ranking whose top decile does not find the positives, when a lift is required', () => {
    const p = Array.from({ length: 1000 }, (_, i) => 0.02 + (i % 50) / 100);
    expect(binary(p, { topDecileLift: 1.4 }).passed).toBe(true);
    const strict = binary(p, { topDecileLift: 1.4 }, { ...DEFAULT_THRESHOLDS, min_top_decile_lift: 2 });
    expect(strict.passed).toBe(false);
    expect(strict.results.find((r) => r.gate === 'top_decile_lift')!.reason).toMatch(/only 1.4000x/);
  });

  it('refuse a next-best-offer model that ranks one offer first for almost everyone', () => {
    const classes = ['a', 'b', 'c'];
    const rows = 100;
    const P = Array.from({ length: rows }, (_, r) => (r < 90 ? [0.5, 0.3, 0.2] : [0.2, 0.5, 0.3])).flat();
    const verdict = evaluateGates(
      { kind: 'multiclass', probabilities: P, classes, top1: 0.5, baselineTop1: 0.4, logLoss: 1, baselineLogLoss: 1.1, production: null },
      DEFAULT_THRESHOLDS,
    );
    expect(verdict.passed).toBe(false);
    expect(verdict.results[0]!.reason).toMatch(/one class, a, is ranked first for 90.0%/);
  });
});
