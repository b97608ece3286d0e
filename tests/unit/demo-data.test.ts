import { describe, expect, it } from 'vitest';
import { rocAuc } from '../../lib/metrics';
import { OFFER_IDS } from '../../lib/catalog';
import { churnProbability, demoCustomerId, generateDemoBatch } from '../../lib/warehouse/demo';

describe('demo customer base', () => {
  it('is the same for a seed however it is chunked, and differs across seeds', () => {
    const whole = generateDemoBatch(11, 1, 400);
    const parts = [generateDemoBatch(11, 1, 150), generateDemoBatch(11, 151, 400)];

    expect(parts.flatMap((p) => p.customers)).toEqual(whole.customers);
    expect(parts.flatMap((p) => p.churn)).toEqual(whole.churn);
    expect(parts.flatMap((p) => p.offers)).toEqual(whole.offers);
    expect(generateDemoBatch(12, 1, 400).customers).not.toEqual(whole.customers);
  });

  it('moves forward in time without changing the past: outcomes of the features customers had, and two steps equal one of two', () => {
    const now = generateDemoBatch(11, 1, 300);
    const one = generateDemoBatch(11, 1, 300, 1);
    const two = generateDemoBatch(11, 1, 300, 2);
    const past = (b: typeof now) => b.churn.filter((r) => r.snapshotDate < '2026-11-01');

    expect([now.asOf, one.asOf, two.asOf]).toEqual(['2026-11-01', '2026-12-01', '2027-01-01']);
    expect(past(one)).toEqual(now.churn);
    expect(one.offers.filter((o) => o.offeredAt < '2026-11-01')).toEqual(now.offers);
    // The first month's outcomes are judged on the features customer_features held.
    const first = one.churn.filter((r) => r.snapshotDate === '2026-11-01');
    const current = new Map(now.customers.map((c) => [c.customerId, c.features]));
    expect(first.length).toBeGreaterThan(100);
    for (const r of first) expect(r.features).toEqual(current.get(r.customerId));
    // Two steps of one month write what one step of two months writes.
    expect(two.churn.filter((r) => r.snapshotDate <= '2026-11-01')).toEqual(one.churn);
    const second = new Map(two.churn.filter((r) => r.snapshotDate === '2026-12-01').map((r) => [r.customerId, r.features]));
    for (const c of one.customers) if (second.has(c.customerId)) expect(second.get(c.customerId)).toEqual(c.features);
  });

  it('names customers demo-000001, demo-000002, …', () => {
    expect(generateDemoBatch(1, 1, 2).customers.map((c) => c.customerId)).toEqual(['demo-000001', 'demo-000002']);
    expect(demoCustomerId(50_000)).toBe('demo-050000');
  });

  it('has labels a model can learn: the process probabilities rank churners well above chance', () => {
    const { churn } = generateDemoBatch(3, 1, 5000);
    const auc = rocAuc(churn.map((r) => r.probability), churn.map((r) => (r.churned ? 1 : 0)));
    const rate = churn.filter((r) => r.churned).length / churn.length;

    expect(auc).toBeGreaterThan(0.8);
    expect(rate).toBeGreaterThan(0.02);
    expect(rate).toBeLessThan(0.15);
  });

  it('spreads accepted offers over all 8 offers', () => {
    const { offers } = generateDemoBatch(3, 1, 5000);
    const accepted = new Set(offers.filter((o) => o.accepted).map((o) => o.offerId));
    expect([...accepted].sort()).toEqual([...OFFER_IDS].sort());
  });

  it('raises churn risk with recency and complaints, as documented', () => {
    const base = {
      days_since_last_transaction: 10,
      transaction_count_90d: 3,
      total_revenue_90d: 120,
      avg_transaction_value: 40,
      tenure_days: 700,
      points_balance: 300,
      points_redeemed_90d: 20,
      offers_accepted_180d: 1,
      complaints_90d: 0,
      usage_trend: 0,
    };
    expect(churnProbability({ ...base, days_since_last_transaction: 200 })).toBeGreaterThan(churnProbability(base));
    expect(churnProbability({ ...base, complaints_90d: 2 })).toBeGreaterThan(churnProbability(base));
  });
});
