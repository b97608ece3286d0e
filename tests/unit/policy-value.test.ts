import { describe, expect, it } from 'vitest';
import { argmaxPolicy, estimatePolicyValue, pairedDifference, type LoggedOffers } from '../../lib/decisions/policy-value';
import { describeUnsupported, overlapReport, unsupportedRegions } from '../../lib/decisions/overlap';
import { Rng } from '../../lib/random';

/**
 * A programme with a known truth: contexts x in [0, 1]², K offers whose acceptance depends on x,
 * offers sent by a targeting rule (75%) or at random (25%), so the logging policy and the value of
 * any policy are known exactly.
 */
const K = 4;
function truth(x0: number, x1: number): number[] {
  const z = [1.5 * x0 - 1, 1.5 * x1 - 1, 0.8 - 2 * x0 * x1, -0.5];
  return z.map((v) => 1 / (1 + Math.exp(-v)));
}
const rule = (x0: number) => (x0 > 0.5 ? 0 : 2);
const propensity = (x0: number, k: number) => 0.25 / K + (k === rule(x0) ? 0.75 : 0);

function simulate(n: number, seed: number) {
  const rng = new Rng(seed);
  const X = new Float64Array(n * 2);
  const P = new Float64Array(n * K);
  const logged: LoggedOffers = { offers: K, action: new Int32Array(n), reward: new Int32Array(n), propensity: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const x0 = rng.next();
    const x1 = rng.next();
    X[2 * i] = x0;
    X[2 * i + 1] = x1;
    const p = truth(x0, x1);
    P.set(p, i * K);
    const u = rng.next();
    const a = u < 0.25 ? Math.floor((u / 0.25) * K) : rule(x0);
    (logged.action as Int32Array)[i] = a;
    (logged.propensity as Float64Array)[i] = propensity(x0, a);
    (logged.reward as Int32Array)[i] = rng.next() < p[a]! ? 1 : 0;
  }
  return { X, P, logged };
}

/** The policy's true value on the rows: the mean of its offers' true acceptance. */
function trueValue(P: Float64Array, policy: Int32Array): number {
  let s = 0;
  for (let i = 0; i < policy.length; i++) s += P[i * K + policy[i]!]!;
  return s / policy.length;
}

/** A reward model that is wrong: the truth shrunk halfway to 0.3 and tilted, as a mediocre model would be. */
function biasedModel(P: Float64Array): Float64Array {
  return P.map((p, j) => 0.5 * p + 0.15 + (j % K === 3 ? 0.1 : 0));
}

describe('off-policy estimates of an offer policy', () => {
  it('cover the true value of the best policy at close to their 95% level over repeated programmes, with a biased reward model', () => {
    let drCovered = 0;
    let ipsCovered = 0;
    let snipsCovered = 0;
    const runs = 200;
    let drError = 0;
    let dmError = 0;
    for (let s = 0; s < runs; s++) {
      const { P, logged } = simulate(2000, 1000 + s);
      const q = biasedModel(P);
      const policy = argmaxPolicy(P, K);
      const value = trueValue(P, policy);
      const e = estimatePolicyValue(logged, policy, q);
      if (e.dr!.ci_low <= value && value <= e.dr!.ci_high) drCovered++;
      if (e.ips.ci_low <= value && value <= e.ips.ci_high) ipsCovered++;
      if (e.snips!.ci_low <= value && value <= e.snips!.ci_high) snipsCovered++;
      drError += e.dr!.estimate - value;
      dmError += trueValue(q, policy) - value;
    }
    // 95% intervals over 200 programmes: a binomial 95% range is about 0.92-0.98.
    expect(drCovered / runs).toBeGreaterThan(0.9);
    expect(ipsCovered / runs).toBeGreaterThan(0.9);
    expect(snipsCovered / runs).toBeGreaterThan(0.9);
    // The model alone (the direct method) is biased; the doubly-robust correction removes it.
    expect(Math.abs(dmError / runs)).toBeGreaterThan(0.03);
    expect(Math.abs(drError / runs)).toBeLessThan(0.005);
  });

  it('is uncertain, not confident, about a policy that rarely matches the logged offers, and still covers its value', () => {
    const { P, logged } = simulate(4000, 7);
    const best = estimatePolicyValue(logged, argmaxPolicy(P, K), biasedModel(P));
    // Offer 3 is never the rule's: only the random quarter of sends, 1 in 16, ever chose it.
    const always3 = new Int32Array(4000).fill(3);
    const e = estimatePolicyValue(logged, always3, biasedModel(P));
    expect(e.matched).toBeGreaterThan(150);
    expect(e.matched).toBeLessThan(400);
    expect(e.effective_rows).toBeCloseTo(e.matched, 5);
    expect(e.dr!.ci_high - e.dr!.ci_low).toBeGreaterThan(best.dr!.ci_high - best.dr!.ci_low);
    expect(e.dr!.ci_low).toBeLessThanOrEqual(trueValue(P, always3));
    expect(e.dr!.ci_high).toBeGreaterThanOrEqual(trueValue(P, always3));
    expect(estimatePolicyValue(logged, always3, null).dr).toBeNull();
  });

  it('says a worse policy is significantly worse on the same rows, and an equal one is not', () => {
    const { P, logged } = simulate(6000, 11);
    const q = biasedModel(P);
    const best = argmaxPolicy(P, K);
    const worst = argmaxPolicy(P.map((p) => -p), K);
    const worse = pairedDifference(logged, best, worst, q);
    expect(worse.ci_high).toBeLessThan(0);
    expect(worse.estimate).toBeCloseTo(trueValue(P, worst) - trueValue(P, best), 1);
    const same = pairedDifference(logged, best, best, q);
    expect(same.estimate).toBe(0);
    expect(same.ci_low).toBe(0);
  });
});

describe('overlap of the logged offers', () => {
  it('names the offer and the kind of customer it was never sent to, and reports weights per offer', () => {
    // Offer 1 is only ever sent to customers with tenure below 90 days.
    const rng = new Rng(3);
    const n = 3000;
    const X = new Float64Array(n * 2);
    const action = new Int32Array(n);
    const accepted = new Int32Array(n);
    const p = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const tenure = Math.floor(rng.next() * 1000);
      X[2 * i] = tenure;
      X[2 * i + 1] = rng.next() < 0.1 ? NaN : rng.next();
      action[i] = tenure < 90 ? (rng.next() < 0.5 ? 1 : 0) : rng.next() < 0.5 ? 0 : 2;
      p[i] = 0.5;
      accepted[i] = rng.next() < 0.3 ? 1 : 0;
    }
    const regions = unsupportedRegions(X, ['tenure_days', 'usage_trend'], action, 3, ['a', 'b', 'c']);
    const b = regions.find((r) => r.offer_id === 'b')!;
    expect(b).toMatchObject({ feature: 'tenure_days' });
    expect(b.customers).toMatch(/^tenure_days of \d+ or more$/);
    expect(Number(/of (\d+)/.exec(b.customers)![1])).toBeGreaterThanOrEqual(90);
    expect(b.share).toBeGreaterThan(0.8);
    expect(describeUnsupported(b)).toMatch(/offer b was never sent to customers with tenure_days of \d+ or more \(\d[\d,]* offered rows, \d+\.\d%\)/);
    const c = regions.find((r) => r.offer_id === 'c')!;
    expect(c.customers).toMatch(/^tenure_days up to \d+$/);
    // Offer a went to everyone: no region.
    expect(regions.filter((r) => r.offer_id === 'a')).toEqual([]);

    const report = overlapReport({ X, features: ['tenure_days', 'usage_trend'], action, accepted, propensity: p, offerIds: ['a', 'b', 'c'], source: 'logged' });
    expect(report.offers.map((o) => o.sent).reduce((s, v) => s + v, 0)).toBe(n);
    // Equal propensities: every send counts fully.
    for (const o of report.offers) expect(o.effective_sends).toBeCloseTo(o.sent, 5);
  });

  it('reports an offer never sent at all once, for every customer', () => {
    const X = Float64Array.from({ length: 200 }, (_, i) => i);
    const regions = unsupportedRegions(X, ['x'], new Int32Array(200), 2, ['sent', 'never']);
    expect(regions).toEqual([{ offer_id: 'never', feature: '*', customers: 'any features', rows: 200, share: 1 }]);
  });
});
