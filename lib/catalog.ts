import featureCatalog from '../models/features.json';
import offerCatalog from '../models/offers.json';

/**
 * The domain's constants, at the bottom of the house: every layer may import them, they import
 * nothing of ours. models/features.json and models/offers.json describe the same things for people
 * (units, meanings, offer names); a unit test keeps them and these constants in step.
 */

/** The 10 model features, in the order every model takes them. */
export const FEATURES = [
  'days_since_last_transaction',
  'transaction_count_90d',
  'total_revenue_90d',
  'avg_transaction_value',
  'tenure_days',
  'points_balance',
  'points_redeemed_90d',
  'offers_accepted_180d',
  'complaints_90d',
  'usage_trend',
] as const;

export type FeatureName = (typeof FEATURES)[number];

/** Where a feature sits in a feature row. */
export const FEATURE_INDEX: Readonly<Record<FeatureName, number>> = Object.fromEntries(FEATURES.map((f, i) => [f, i])) as Record<FeatureName, number>;

/** The recency the old warehouse wrote for "unknown": never a real number of days. */
export const DEFAULTED_RECENCY = 999;

/** The offers next-best-offer models rank, in class order (models/offers.json). */
export const OFFERS: readonly { id: string; name: string; description: string }[] = offerCatalog.offers;
export const OFFER_IDS: readonly string[] = OFFERS.map((o) => o.id);

/** Offer names by id, as answers and statistics print them. */
export const OFFER_NAMES: ReadonlyMap<string, string> = new Map(OFFERS.map((o) => [o.id, o.name]));

/** The feature descriptions people read (models/features.json). */
export const FEATURE_DESCRIPTIONS: readonly { name: string; unit: string; description: string; missing: string }[] = featureCatalog.features;

/**
 * The models the API serves and the kinds of output each may have: NBO as acceptance probabilities
 * (multilabel, what `train nbo` learns) or, for versions trained before them and softmax models
 * published from elsewhere, one distribution over the offers (multiclass).
 */
export const SERVED_MODELS: Readonly<Record<'churn' | 'nbo', readonly ('binary' | 'multiclass' | 'multilabel')[]>> = { churn: ['binary'], nbo: ['multilabel', 'multiclass'] };
export type ServedModelName = keyof typeof SERVED_MODELS;
