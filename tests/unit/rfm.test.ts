import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  FIXED_CUT_POINTS,
  quintileCuts,
  RFM_CELLS,
  RFM_SEGMENTS,
  rfmCells,
  scoreAgainst,
  scoreRfm,
  segmentOf,
  summarizeTransactions,
  type RfmCutPoints,
} from '../../lib/scoring/rfm';
import { FIXTURES_DIR } from '../support/fixtures';

describe('RFM segment rules', () => {
  it('map every one of the 125 score cells to a segment, and reach every segment', () => {
    const reached = new Set<string>();
    for (let r = 1; r <= 5; r++) for (let f = 1; f <= 5; f++) for (let m = 1; m <= 5; m++) reached.add(segmentOf(r, f, m));
    expect([...reached].sort()).toEqual(RFM_SEGMENTS.map((s) => s.name).sort());
    expect(reached.size).toBe(11);
  });

  it('order specific rules before general ones', () => {
    expect(segmentOf(5, 5, 5)).toBe('Champions');
    expect(segmentOf(1, 5, 5)).toBe("Can't Lose Them");
    expect(segmentOf(1, 3, 3)).toBe('At Risk');
    expect(segmentOf(5, 1, 1)).toBe('New Customers');
    expect(segmentOf(4, 1, 5)).toBe('Promising');
    expect(segmentOf(1, 1, 3)).toBe('Lost');
    expect(segmentOf(1, 1, 1)).toBe('Lost');
  });
});

describe('RFM scores', () => {
  const cuts: RfmCutPoints = { recency_days: [10, 20, 30, 40], frequency: [1, 2, 3, 4], monetary: [10, 20, 30, 40], basis: 'fixed' };

  it('score recent purchases high and put a value on a cut point in the lower band', () => {
    expect(scoreAgainst(5, cuts.recency_days, true)).toBe(5);
    expect(scoreAgainst(10, cuts.recency_days, true)).toBe(5);
    expect(scoreAgainst(11, cuts.recency_days, true)).toBe(4);
    expect(scoreAgainst(400, cuts.recency_days, true)).toBe(1);
    expect(scoreAgainst(0, cuts.frequency, false)).toBe(1);
    expect(scoreAgainst(4.5, cuts.frequency, false)).toBe(5);
  });

  it('give "113 Lost"-style answers only to customers who deserve them', () => {
    expect(scoreRfm({ recency_days: 3, frequency: 6, monetary: 99 }, cuts)).toMatchObject({ rfm_score: '555', segment: 'Champions' });
    // The old warehouse bug: recency defaulted to 999 scores R=1, like an unknown recency.
    expect(scoreRfm({ recency_days: 999, frequency: 0, monetary: 25 }, cuts)).toMatchObject({ r_score: 1, f_score: 1, m_score: 3, rfm_score: '113', segment: 'Lost' });
    expect(scoreRfm({ recency_days: null, frequency: null, monetary: null }, cuts)).toMatchObject({ rfm_score: '111' });
  });

  it('computes quintile cut points as PERCENTILE_CONT does', () => {
    expect(quintileCuts([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])).toEqual([3, 5, 7, 9]);
    expect(quintileCuts([0, 10])).toEqual([2, 4, 6, 8]);
  });

  it('ships fixed cut points that increase', () => {
    for (const cuts of [FIXED_CUT_POINTS.recency_days, FIXED_CUT_POINTS.frequency, FIXED_CUT_POINTS.monetary]) {
      expect(cuts).toHaveLength(4);
      expect([...cuts].sort((a, b) => a - b)).toEqual(cuts);
    }
  });
});

describe('RFM arithmetic against the CDNOW oracle', () => {
  it('reproduces the published per-customer summary of the CDNOW sample (x, t_x, T, zbar)', () => {
    const lines = readFileSync(join(FIXTURES_DIR, 'cdnow', 'cdnow_sample_transactions.csv'), 'utf8').trim().split('\n').slice(1);
    const transactions = lines.map((l) => {
      const [, sampleId, date, , dollars] = l.split(',') as [string, string, string, string, string];
      return { customerId: String(Number(sampleId)), date, amount: Number(dollars) };
    });
    const published = readFileSync(join(FIXTURES_DIR, 'cdnow', 'cdnow_sample_summary_published.csv'), 'utf8').trim().split('\n').slice(1);

    const summary = summarizeTransactions(transactions, '1997-09-30');

    expect(summary.size).toBe(published.length);
    expect(published.length).toBe(2357);
    for (const line of published) {
      const [id, x, tx, T, zbar] = line.split(',').map(Number) as [number, number, number, number, number];
      const s = summary.get(String(id))!;
      expect(s.repeatPurchases).toBe(x);
      expect(Math.abs(s.activeSpanDays / 7 - tx)).toBeLessThanOrEqual(0.005 + 1e-9);
      expect(Math.abs(s.ageDays / 7 - T)).toBeLessThanOrEqual(0.005 + 1e-9);
      expect(Math.abs(s.monetaryMeanRepeat - zbar)).toBeLessThanOrEqual(0.005 + 1e-9);
    }
  });

  it('spreads CDNOW customers over the RFM scores by quintiles', () => {
    const lines = readFileSync(join(FIXTURES_DIR, 'cdnow', 'cdnow_master_transactions.csv'), 'utf8').trim().split('\n').slice(1);
    const summary = summarizeTransactions(
      lines.map((l) => {
        const [customerId, date, , dollars] = l.split(',') as [string, string, string, string];
        return { customerId, date, amount: Number(dollars) };
      }),
      '1998-06-30',
    );
    const all = [...summary.values()];
    const sorted = (f: (s: (typeof all)[number]) => number) => all.map(f).sort((a, b) => a - b);
    const cuts: RfmCutPoints = {
      recency_days: quintileCuts(sorted((s) => s.recencyDays)),
      frequency: quintileCuts(sorted((s) => s.purchaseDays)),
      monetary: quintileCuts(sorted((s) => s.monetaryTotal)),
      basis: 'quintiles',
    };
    const scores = all.map((s) => scoreRfm({ recency_days: s.recencyDays, frequency: s.purchaseDays, monetary: s.monetaryTotal }, cuts));
    const share = (score: number, key: 'r_score' | 'm_score') => scores.filter((x) => x[key] === score).length / scores.length;
    // Monetary totals are nearly continuous: every quintile holds about a fifth of the customers.
    for (let q = 1; q <= 5; q++) expect(share(q, 'm_score')).toBeCloseTo(0.2, 1);
    // Most customers bought once, early: R and F pile up at 1 but the segments still differ.
    expect(new Set(scores.map((s) => s.segment)).size).toBeGreaterThanOrEqual(6);
  });

  it('scores a feature matrix into the same cells as one customer at a time, awkward values included', () => {
    // The second cut points put 999 (the warehouse's defaulted recency) inside a band, so reading it as a known recency would show.
    for (const cuts of [
      { recency_days: [10, 30, 60, 120], frequency: [0, 1, 2, 4], monetary: [0, 50, 150, 400], basis: 'quintiles' },
      { recency_days: [10, 30, 60, 1200], frequency: [0, 1, 2, 4], monetary: [0, 50, 150, 400], basis: 'quintiles' },
    ] satisfies RfmCutPoints[]) {
      const awkward = [NaN, 999, 0, -1, 10, 30, 30.000001, 120, 121, 1e9, Infinity, -Infinity, 4, 50, 400, 0.5];
      const w = 5;
      const rows: [number, number, number][] = [];
      for (const r of awkward) for (const f of awkward) for (const m of [NaN, 0, 50, 151, Infinity]) rows.push([r, f, m]);
      // Columns placed among other values, as in the features matrix.
      const X = new Float64Array(rows.length * w).fill(-7);
      rows.forEach(([r, f, m], i) => {
        X[i * w + 3] = r;
        X[i * w + 0] = f;
        X[i * w + 4] = m;
      });
      const cells = new Uint8Array(rows.length);
      rfmCells(X, rows.length, w, { recency: 3, frequency: 0, monetary: 4 }, cuts, cells);
      const known = (v: number) => (Number.isNaN(v) ? null : v);
      rows.forEach(([r, f, m], i) => {
        const one = scoreRfm({ recency_days: known(r), frequency: known(f), monetary: known(m) }, cuts);
        expect(RFM_CELLS[cells[i]!]!.score, `${r} ${f} ${m}`).toBe(one.rfm_score);
      });
    }
  });
});
