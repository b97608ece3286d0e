import { describe, expect, it } from 'vitest';
import { rocAuc } from '../../lib/training/metrics';

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
