import { FEATURE_INDEX, OFFER_IDS, type FeatureName } from '../catalog';

/**
 * The rule-based baseline used when a model has no published version and ML_MOCK_MODE allows it.
 * Deterministic, plausible and labelled `mock` everywhere it appears: it exists so a fresh
 * installation answers something honest, never to pass for a trained model.
 */

const at = (name: FeatureName) => FEATURE_INDEX[name];
const I = {
  recency: at('days_since_last_transaction'),
  count: at('transaction_count_90d'),
  avg: at('avg_transaction_value'),
  tenure: at('tenure_days'),
  points: at('points_balance'),
  complaints: at('complaints_90d'),
  trend: at('usage_trend'),
};

/** Churn probability from recency, frequency and complaints. */
export function mockChurnProbability(f: (number | null)[]): number {
  const recency = f[I.recency] ?? 365;
  const z = -2.2 + 0.9 * Math.min(3, Math.max(-2, Math.log1p(Math.min(recency, 730)) - 3.5)) - 0.4 * Math.log1p(f[I.count] ?? 0) + 0.4 * Math.min(f[I.complaints] ?? 0, 4);
  return 1 / (1 + Math.exp(-z));
}

/** P(accept) per offer (catalog order) from simple affinity rules: independent, as an acceptance model's. */
export function mockOfferProbabilities(f: (number | null)[]): number[] {
  const recency = f[I.recency] ?? 365;
  const avg = f[I.avg] ?? null;
  const scores: Record<string, number> = {
    winback_20: recency > 90 ? 2 : 0,
    double_points: (f[I.count] ?? 0) >= 4 ? 1.5 : 0,
    points_redemption_bonus: (f[I.points] ?? 0) > 500 ? 1.5 : 0,
    vip_upgrade: avg !== null && avg > 80 ? 1.5 : 0,
    free_shipping: avg !== null && avg < 25 ? 1 : 0,
    welcome_bundle: (f[I.tenure] ?? 1000) < 90 ? 2 : 0,
    service_recovery: (f[I.complaints] ?? 0) > 0 ? 2 : 0,
    cross_sell_bundle: (f[I.trend] ?? 0) > 0.2 ? 1 : 0,
  };
  return OFFER_IDS.map((id) => 1 / (1 + Math.exp(1.5 - (scores[id] ?? 0))));
}
