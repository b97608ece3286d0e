import { DEFAULTED_RECENCY, FEATURE_INDEX, OFFER_IDS } from '../catalog';
import { hash32, Rng } from '../random';

/**
 * The demo customer base: a deterministic synthetic loyalty programme whose churn and offer
 * acceptance follow a documented process (docs/demo-data.md), so a good model can learn it and the
 * best achievable scores are known. Pure: seed in, rows out; nothing here touches a database.
 *
 * Each customer has three hidden traits: engagement e (drifting month to month), value v and
 * satisfaction s, all standard normal. Month by month, for the 16 months up to the as-of date, the
 * observable features are drawn from those traits; at each of the 12 monthly snapshots from 15 to 4
 * months back the customer churns with probability `churnProbability(features)` and, once churned,
 * stops buying. Offers are chosen as a real programme chooses them (`targeted`, the default: campaign
 * rules for 75% of sends, an offer drawn at random for the other 25%; or `uniform`: every send at
 * random), with the chance of the choice logged as its propensity, and accepted with probability
 * `acceptanceProbabilities(features)[offer]`, whoever chose it.
 */

export const DEMO_AS_OF = '2026-11-01';
/** Months back of the first and last churn snapshot; the last one's 90-day window ends before as-of. */
const FIRST_SNAPSHOT_BACK = 15;
const LAST_SNAPSHOT_BACK = 4;
const OFFER_MONTHS_BACK = 12;
const DEFAULTED_RECENCY_RATE = 0.005;
const NEVER_BOUGHT_RATE = 0.04;
const NOT_ENROLLED_RATE = 0.06;
const OFFER_RATE_PER_MONTH = 0.35;
/** Share of targeted sends that ignore the campaign rules and draw an offer at random. */
export const DEMO_RANDOM_SHARE = 0.25;

/** How the demo programme chooses the offer it sends. */
export type OfferPolicy = 'targeted' | 'uniform';
export const OFFER_POLICIES: readonly OfferPolicy[] = ['targeted', 'uniform'];

/** The 10 features as the process sees them (true values, before the warehouse's recency default). */
export interface DemoFeatures {
  days_since_last_transaction: number | null;
  transaction_count_90d: number;
  total_revenue_90d: number;
  avg_transaction_value: number | null;
  tenure_days: number;
  points_balance: number | null;
  points_redeemed_90d: number | null;
  offers_accepted_180d: number;
  complaints_90d: number;
  usage_trend: number | null;
}

export type FeatureVector = (number | null)[];

export interface DemoCustomer {
  customerId: string;
  /** Current features as stored (the warehouse's defaulted recency applied). */
  features: FeatureVector;
  segments: string[];
}

export interface ChurnSnapshotRow {
  customerId: string;
  snapshotDate: string;
  features: FeatureVector;
  churned: boolean;
  /** The process's churn probability for this row (not stored; used for the oracle metrics). */
  probability: number;
}

export interface OfferRow {
  customerId: string;
  offeredAt: string;
  features: FeatureVector;
  offerId: string;
  accepted: boolean;
  /** The chance the logging policy had of choosing this offer for this customer (stored, as a real programme would log it). */
  propensity: number;
  /** Acceptance probability of every offer for this row (not stored; oracle NBO metrics). */
  acceptance: number[];
  /** The offer the campaign rules name for this row (not stored; the rules' policy value). */
  ruleOffer: string;
}

export interface DemoBatch {
  /** The date the customers' features are valid for (DEMO_AS_OF, later after months ahead). */
  asOf: string;
  customers: DemoCustomer[];
  churn: ChurnSnapshotRow[];
  offers: OfferRow[];
}

export const DEMO_SEGMENTS = [
  { id: 'all', name: 'All customers', description: 'Every customer in the programme.' },
  { id: 'high-value', name: 'High Value Customers', description: '90-day revenue of 250 or more.' },
  { id: 'at-risk', name: 'At Risk', description: 'Customers of 6 months or more whose last purchase was 45-180 days ago and whose purchasing is not growing.' },
  { id: 'new', name: 'New Customers', description: 'Joined in the last 90 days.' },
  { id: 'dormant', name: 'Dormant', description: 'No purchase in 180 days, or never bought, after 90 days of membership.' },
];

/** Id of the n-th demo customer (1-based): demo-000001, demo-000002, … */
export function demoCustomerId(n: number): string {
  return `demo-${String(n).padStart(6, '0')}`;
}

/** The process's probability that a customer with these features churns at a snapshot. */
export function churnProbability(x: DemoFeatures): number {
  const recency = x.days_since_last_transaction ?? 365;
  const enrolled = x.points_balance !== null;
  const logit =
    -3.55 +
    0.95 * clamp(Math.log1p(recency) - 3.0, -2, 3) -
    0.35 * Math.log1p(x.transaction_count_90d) +
    (x.tenure_days < 120 ? 0.8 : 0) -
    0.15 * Math.min(x.tenure_days / 365, 6) +
    0.5 * Math.min(x.complaints_90d, 4) -
    0.5 * Math.tanh(x.usage_trend ?? 0) -
    0.25 * Math.min(x.offers_accepted_180d, 4) +
    (enrolled ? -0.08 * Math.log1p(x.points_balance!) : 0.35) +
    (x.complaints_90d > 0 && (x.avg_transaction_value ?? 0) > 60 ? 0.4 : 0);
  return sigmoid(logit);
}

/** The process's probability that a customer with these features accepts each offer (catalog order). */
export function acceptanceProbabilities(x: DemoFeatures): number[] {
  const recencyLog = Math.log1p(x.days_since_last_transaction ?? 365);
  const avgLog = x.avg_transaction_value === null ? null : Math.log(x.avg_transaction_value);
  const affinity: Record<string, number> = {
    winback_20: 1.4 * (recencyLog - 4.0),
    double_points: 0.9 * (Math.log1p(x.transaction_count_90d) - 1.0),
    points_redemption_bonus: x.points_balance === null ? -2 : 0.8 * (Math.log1p(x.points_balance) - 5.0),
    vip_upgrade: avgLog === null ? -2 : 1.3 * (avgLog - 4.0),
    free_shipping: avgLog === null ? -0.5 : -1.1 * (avgLog - 3.4),
    welcome_bundle: x.tenure_days < 120 ? 1.6 : -0.8 - Math.min(x.tenure_days, 1000) / 500,
    service_recovery: 1.3 * Math.min(x.complaints_90d, 3) - 0.8,
    cross_sell_bundle: x.usage_trend === null ? -0.5 : 1.6 * Math.tanh(x.usage_trend),
  };
  return OFFER_IDS.map((id) => sigmoid((affinity[id] ?? 0) - 1.0));
}

const F = FEATURE_INDEX;

/**
 * The campaign rules of the demo programme, on the features as the warehouse stores them (what a
 * marketer's rules see), first match wins: plausible targeting, not the best offer for everyone.
 */
export function campaignOffer(observed: FeatureVector): string {
  const v = (name: keyof typeof F) => observed[F[name]] ?? null;
  const recency = v('days_since_last_transaction');
  if ((v('tenure_days') ?? 0) < 90) return 'welcome_bundle';
  if ((v('complaints_90d') ?? 0) >= 1) return 'service_recovery';
  if (recency === null || recency > 45) return 'winback_20';
  if ((v('avg_transaction_value') ?? 0) >= 50) return 'vip_upgrade';
  if ((v('points_balance') ?? 0) >= 300) return 'points_redemption_bonus';
  if ((v('transaction_count_90d') ?? 0) >= 3) return 'double_points';
  return 'free_shipping';
}

/** P(the logging policy sends offer k | features), in catalog order. */
export function loggingPropensities(observed: FeatureVector, policy: OfferPolicy): number[] {
  const k = OFFER_IDS.length;
  if (policy === 'uniform') return OFFER_IDS.map(() => 1 / k);
  const rule = campaignOffer(observed);
  return OFFER_IDS.map((id) => DEMO_RANDOM_SHARE / k + (id === rule ? 1 - DEMO_RANDOM_SHARE : 0));
}

interface CustomerState {
  e: number;
  v: number;
  s: number;
  neverBuys: boolean;
  enrolled: boolean;
  tenureNow: number;
  counts: number[];
  lastRecency: number | null;
  churned: boolean;
}

/**
 * Generates customers [from, to] (1-based, inclusive). Each customer's rows depend only on (seed, n).
 * With `monthsAhead`, the process continues past DEMO_AS_OF for that many months (time moving
 * forward): each month an active customer's churn is drawn from the features it had (a snapshot
 * row, labelled), offers are made, and the next month's features are drawn; the customers' current
 * features are those of the last month. The months up to DEMO_AS_OF are the same whatever
 * `monthsAhead` (the later months draw from a separate stream), so time can move forward in steps.
 */
export function generateDemoBatch(seed: number, from: number, to: number, monthsAhead = 0, offerPolicy: OfferPolicy = 'targeted'): DemoBatch {
  const asOf = new Date(`${DEMO_AS_OF}T00:00:00Z`);
  const batch: DemoBatch = { asOf: isoDate(monthsBefore(asOf, -monthsAhead)), customers: [], churn: [], offers: [] };
  for (let n = from; n <= to; n++) {
    const rng = new Rng(hash32(seed, n));
    const id = demoCustomerId(n);
    const state: CustomerState = {
      e: rng.normal(),
      v: rng.normal(),
      s: rng.normal(),
      neverBuys: rng.next() < NEVER_BOUGHT_RATE,
      enrolled: rng.next() >= NOT_ENROLLED_RATE,
      // Skewed tenure: many recent joiners, a long tail of old members (up to 10 years).
      tenureNow: Math.min(3650, 1 + Math.floor(-Math.log(1 - rng.next()) * 700)),
      counts: [],
      lastRecency: null,
      churned: false,
    };
    let current: DemoFeatures | null = null;
    for (let back = FIRST_SNAPSHOT_BACK; back >= 0; back--) {
      const tenure = state.tenureNow - back * 30;
      if (tenure < 0) {
        state.counts.push(-1);
        continue;
      }
      const x = monthFeatures(rng, state, tenure);
      const observed = observe(rng, x);
      const date = monthsBefore(asOf, back);
      if (!state.churned && back >= LAST_SNAPSHOT_BACK && back <= FIRST_SNAPSHOT_BACK) {
        const p = churnProbability(x);
        const churned = rng.next() < p;
        batch.churn.push({ customerId: id, snapshotDate: isoDate(date), features: observed, churned, probability: p });
        if (churned) state.churned = true;
      } else if (!state.churned && back > 0 && back < LAST_SNAPSHOT_BACK) {
        // Churn keeps happening after the last labelled snapshot; it shapes the current features.
        if (rng.next() < churnProbability(x)) state.churned = true;
      }
      if (back >= 1 && back <= OFFER_MONTHS_BACK && !state.churned && rng.next() < OFFER_RATE_PER_MONTH) {
        batch.offers.push(makeOffer(rng, id, date, x, observed, offerPolicy));
      }
      if (back === 0) current = x;
    }
    let x = current!;
    let observed = observe(rng, x);
    const ahead = new Rng(hash32(hash32(seed, n), 0x2545f491));
    for (let month = 0; month < monthsAhead; month++) {
      const date = monthsBefore(asOf, -month);
      if (!state.churned) {
        const p = churnProbability(x);
        const churned = ahead.next() < p;
        batch.churn.push({ customerId: id, snapshotDate: isoDate(date), features: observed, churned, probability: p });
        if (churned) state.churned = true;
      }
      if (!state.churned && ahead.next() < OFFER_RATE_PER_MONTH) batch.offers.push(makeOffer(ahead, id, date, x, observed, offerPolicy));
      x = monthFeatures(ahead, state, state.tenureNow + (month + 1) * 30);
      observed = observe(ahead, x);
    }
    batch.customers.push({ customerId: id, features: observed, segments: segmentsOf(x) });
  }
  return batch;
}

/**
 * An offer made in the month starting at `date`, chosen by the logging policy and accepted with the
 * process's probability. One draw chooses the offer whatever the policy (uniform: it picks one of
 * the 8; targeted: below the random share it picks one of the 8, above it the rules decide), so the
 * rest of a customer's history is the same under either policy.
 */
function makeOffer(rng: Rng, customerId: string, date: Date, x: DemoFeatures, observed: FeatureVector, policy: OfferPolicy): OfferRow {
  const acceptance = acceptanceProbabilities(x);
  const u = rng.next();
  const ruleOffer = campaignOffer(observed);
  const k =
    policy === 'uniform'
      ? Math.floor(u * OFFER_IDS.length)
      : u < DEMO_RANDOM_SHARE
        ? Math.min(OFFER_IDS.length - 1, Math.floor((u / DEMO_RANDOM_SHARE) * OFFER_IDS.length))
        : OFFER_IDS.indexOf(ruleOffer);
  const offeredAt = new Date(date.getTime() + Math.floor(rng.next() * 28) * 86_400_000 + Math.floor(rng.next() * 86_400) * 1000);
  const propensity = loggingPropensities(observed, policy)[k]!;
  return { customerId, offeredAt: offeredAt.toISOString(), features: observed, offerId: OFFER_IDS[k]!, accepted: rng.next() < acceptance[k]!, propensity, acceptance, ruleOffer };
}

/** Draws one month's features from the hidden traits; churned customers stop buying. */
function monthFeatures(rng: Rng, state: CustomerState, tenure: number): DemoFeatures {
  state.e = 0.85 * state.e + 0.53 * rng.normal();
  const active = !state.churned && !state.neverBuys;
  const rate = active ? Math.exp(0.6 + 0.8 * state.e + 0.3 * state.v) : 0;
  // Purchases in the last 90 days (capped by tenure for new members).
  const count = rng.poisson(rate * Math.min(1, tenure / 90));
  let recency: number | null;
  if (count > 0) {
    const window = Math.min(90, Math.max(1, tenure));
    recency = 1 + Math.floor(window * (1 - Math.pow(rng.next(), 1 / count)));
  } else if (state.neverBuys) {
    recency = null;
  } else if (state.lastRecency !== null) {
    recency = Math.max(91, state.lastRecency + 30);
  } else {
    recency = tenure < 91 ? null : 91 + Math.floor(-Math.log(1 - rng.next()) * 120);
  }
  if (recency !== null && recency > tenure && tenure >= 1) recency = tenure;
  state.lastRecency = recency;
  const threeMonthsAgo = state.counts.length >= 3 ? state.counts[state.counts.length - 3]! : -1;
  state.counts.push(count);
  const avg = count > 0 ? round2(Math.exp(3.6 + 0.55 * state.v + 0.25 * rng.normal())) : null;
  const revenue = count > 0 ? round2(count * avg! * Math.exp(0.1 * rng.normal())) : 0;
  const balance = state.enrolled ? Math.round(Math.exp(4.5 + 0.7 * state.v + 0.4 * state.e + 0.3 * rng.normal())) : null;
  const redeemed =
    balance === null ? null : rng.next() < 0.6 ? Math.round(balance * sigmoid(-1.5 + 0.6 * state.e + 0.5 * rng.normal())) : 0;
  return {
    days_since_last_transaction: recency,
    transaction_count_90d: count,
    total_revenue_90d: revenue,
    avg_transaction_value: avg,
    tenure_days: tenure,
    points_balance: balance,
    points_redeemed_90d: redeemed,
    offers_accepted_180d: active ? rng.poisson(Math.exp(-0.7 + 0.5 * state.e)) : 0,
    complaints_90d: rng.poisson(Math.exp(-2.3 - 0.7 * state.s + 0.2 * rng.normal()) * (active ? 1 : 0.3)),
    usage_trend: tenure >= 90 && threeMonthsAgo >= 0 ? round3((count - threeMonthsAgo) / (threeMonthsAgo + 1)) : null,
  };
}

/** The features as the warehouse stores them: a few recency values defaulted to 999. */
function observe(rng: Rng, x: DemoFeatures): FeatureVector {
  const recency = rng.next() < DEFAULTED_RECENCY_RATE ? DEFAULTED_RECENCY : x.days_since_last_transaction;
  return [
    recency,
    x.transaction_count_90d,
    x.total_revenue_90d,
    x.avg_transaction_value,
    x.tenure_days,
    x.points_balance,
    x.points_redeemed_90d,
    x.offers_accepted_180d,
    x.complaints_90d,
    x.usage_trend,
  ];
}

function segmentsOf(x: DemoFeatures): string[] {
  const out = ['all'];
  const recency = x.days_since_last_transaction;
  if (x.total_revenue_90d >= 250) out.push('high-value');
  if (x.tenure_days >= 180 && recency !== null && recency >= 45 && recency <= 180 && (x.usage_trend ?? 0) <= 0) out.push('at-risk');
  if (x.tenure_days < 90) out.push('new');
  if (x.tenure_days >= 90 && (recency === null || recency > 180)) out.push('dormant');
  return out;
}

function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function monthsBefore(date: Date, months: number): Date {
  const d = new Date(date.getTime());
  d.setUTCMonth(d.getUTCMonth() - months);
  return d;
}

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/**
 * The process's acceptance probability of every offer for each offer row the demo wrote, keyed by
 * `customer id|offered at` (ISO): the truth a learned policy's value is measured against on demo data.
 */
export function demoOfferTruth(seed: number, customers: number, monthsAhead: number, policy: OfferPolicy): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (let from = 1; from <= customers; from += 1000) {
    const batch = generateDemoBatch(seed, from, Math.min(customers, from + 999), monthsAhead, policy);
    for (const o of batch.offers) out.set(`${o.customerId}|${o.offeredAt}`, o.acceptance);
  }
  return out;
}
