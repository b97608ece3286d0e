import { describe, expect, it } from 'vitest';
import {
  averagePrecision,
  binaryLogLoss,
  brierScore,
  calibrationTable,
  expectedCalibrationError,
  liftAt,
  multiclassMetrics,
  rocAuc,
  scoreCurves,
} from '../../lib/metrics';

describe('rocAuc', () => {
  it('is 1 for a perfect ranking and 0 for a reversed one', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
  });

  it('counts ties as one half (hand-computed)', () => {
    // Positives: 0.5, 0.7; negatives: 0.5, 0.3.
    // Pairs: (0.5 vs 0.5) tie = 0.5, (0.5 vs 0.3) = 1, (0.7 vs 0.5) = 1, (0.7 vs 0.3) = 1 -> 3.5 / 4.
    expect(rocAuc([0.5, 0.7, 0.5, 0.3], [1, 1, 0, 0])).toBeCloseTo(0.875, 12);
    // Every score equal: no information, AUC 0.5.
    expect(rocAuc([0.2, 0.2, 0.2, 0.2, 0.2], [1, 0, 1, 0, 0])).toBe(0.5);
  });

  it('is undefined (NaN) when only one class is present', () => {
    expect(rocAuc([0.1, 0.2], [1, 1])).toBeNaN();
  });
});


describe('averagePrecision', () => {
  it('matches a hand computation', () => {
    // Sorted by score: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg). AP = 1/2 * 1/1 + 1/2 * 2/3.
    expect(averagePrecision([0.1, 0.7, 0.8, 0.9], [0, 1, 0, 1])).toBeCloseTo(0.5 + 1 / 3, 12);
  });

  it('treats tied scores as one threshold', () => {
    // 0.5 x3 (two positives, one negative) then 0.2 (positive): AP = 2/3 * 2/3 + 1/3 * 3/4.
    expect(averagePrecision([0.5, 0.5, 0.5, 0.2], [1, 0, 1, 1])).toBeCloseTo((2 / 3) * (2 / 3) + (1 / 3) * (3 / 4), 12);
  });
});

describe('liftAt', () => {
  it('is the top fraction positive rate over the base rate', () => {
    // 10 rows, 2 positives; the top 10% (1 row) is a positive: lift = 1 / 0.2 = 5.
    const scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
    const labels = [1, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    expect(liftAt(scores, labels, 0.1)).toBeCloseTo(5, 12);
    expect(liftAt(scores, labels, 0.2)).toBeCloseTo(2.5, 12);
  });

  it('counts rows tied at the cut in proportion', () => {
    // Top 10% of 10 rows = 1 row, but the top 4 rows tie (1 positive among them): 1/4 positive
    // expected in the slot -> positive rate 0.25 over base rate 0.2 = 1.25.
    const scores = [0.9, 0.9, 0.9, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05];
    const labels = [0, 1, 0, 0, 0, 0, 0, 1, 0, 0];
    expect(liftAt(scores, labels, 0.1)).toBeCloseTo(1.25, 12);
  });
});

describe('calibration and probability scores', () => {
  it('puts probabilities in equal-width bins with their observed rates', () => {
    const p = [0.05, 0.08, 0.15, 0.95, 1.0];
    const y = [0, 1, 0, 1, 1];
    const table = calibrationTable(p, y);

    expect(table[0]).toMatchObject({ count: 2, observed_rate: 0.5 });
    expect(table[0]!.mean_predicted).toBeCloseTo(0.065, 12);
    expect(table[1]).toMatchObject({ count: 1, observed_rate: 0 });
    expect(table[9]).toMatchObject({ count: 2, mean_predicted: 0.975, observed_rate: 1 });
    // ECE = (2*|0.065-0.5| + 1*|0.15-0| + 2*|0.975-1|) / 5
    expect(expectedCalibrationError(table)).toBeCloseTo((2 * 0.435 + 0.15 + 2 * 0.025) / 5, 12);
  });

  it('computes log loss and Brier score by hand', () => {
    expect(binaryLogLoss([0.8, 0.4], [1, 0])).toBeCloseTo(-(Math.log(0.8) + Math.log(0.6)) / 2, 12);
    expect(brierScore([0.8, 0.4], [1, 0])).toBeCloseTo((0.04 + 0.16) / 2, 12);
  });
});

describe('multiclassMetrics', () => {
  it('reports top-1, top-3, log loss and per-class recall', () => {
    const classes = ['a', 'b', 'c', 'd'];
    const P = [
      0.7, 0.1, 0.1, 0.1, // label a: top-1 hit
      0.4, 0.3, 0.2, 0.1, // label c: top-3 hit only
      0.1, 0.2, 0.3, 0.4, // label a: miss both
    ];
    const m = multiclassMetrics(P, [0, 2, 0], classes);

    expect(m.top1_accuracy).toBeCloseTo(1 / 3, 12);
    expect(m.top3_accuracy).toBeCloseTo(2 / 3, 12);
    expect(m.log_loss).toBeCloseTo(-(Math.log(0.7) + Math.log(0.2) + Math.log(0.1)) / 3, 12);
    expect(m.per_class_recall).toEqual({ a: 0.5, b: null, c: 0, d: null });
    expect(m.top_class_share).toEqual({ a: 2 / 3, b: 0, c: 0, d: 1 / 3 });
  });
});

describe('the report curves', () => {
  it('walk the ROC through every distinct score, count gain with ties in proportion and bin scores by outcome', () => {
    const curves = scoreCurves([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]);
    expect(curves.roc).toEqual({ fpr: [0, 0, 0.5, 0.5, 1], tpr: [0, 0.5, 0.5, 1, 1] });
    expect(curves.gain.share).toHaveLength(21);
    expect(curves.gain.captured[10]).toBe(0.5); // the top half (0.9, 0.8) holds one of the two positives
    expect(curves.gain.captured[20]).toBe(1);
    expect(curves.histogram.positives[18]).toBe(1); // 0.9 falls in [0.90, 0.95)
    expect(curves.histogram.negatives[2]).toBe(1); // 0.1 in [0.10, 0.15)
    const tied = scoreCurves([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]);
    expect(tied.roc).toEqual({ fpr: [0, 1], tpr: [0, 1] }); // one threshold: no ranking at all
    expect(tied.gain.captured[10]).toBe(0.5);
  });

  it('keep at most 101 ROC points, from (0, 0) to (1, 1)', () => {
    const n = 5000;
    const p = Array.from({ length: n }, (_, i) => (i * 7919) % n / n);
    const y = p.map((s, i) => (s + ((i * 31) % 17) / 40 > 0.7 ? 1 : 0));
    const { roc } = scoreCurves(p, y);
    expect(roc.fpr).toHaveLength(101);
    expect([roc.fpr[0], roc.tpr[0], roc.fpr[100], roc.tpr[100]]).toEqual([0, 0, 1, 1]);
    expect(roc.fpr.every((x, i) => i === 0 || x >= roc.fpr[i - 1]!)).toBe(true);
  });
});
