import { DEFAULTED_RECENCY, FEATURE_DESCRIPTIONS } from '../catalog';
import { explainAdditiveLogit } from './additive';
import { backgroundMatrix, type BackgroundRows, type ExplanationMethod } from './background';
import { explainBatch, type BatchPredict, type Explanation } from './exact';

/**
 * An answer's reasons: the exact interventional Shapley values of the probability it reports over
 * the version's background. `base` is the background's mean probability, `output` the answer's
 * probability unrounded, and base + the sum of the contributions = output. They say how much each
 * feature's value moves this model's answer away from a typical customer's, which is association
 * in the model, not cause in the customer.
 */
export interface Reasons {
  base: number;
  output: number;
  method: ExplanationMethod;
  /** All features, by |contribution|, largest first. */
  contributions: { feature: string; value: number | null; contribution: number }[];
  /** The top three reasons as sentences. */
  text: string[];
}

/** What a version says about its reasons (its manifest's `explanation`). */
export interface ExplanationSource {
  method: ExplanationMethod;
  background: BackgroundRows | null;
}

/** What the probability is the chance of, in words: "churn risk", "the chance of accepting Double points week". */
export type Target = { kind: 'churn' } | { kind: 'offer'; name: string };

/**
 * Shapley values for `records` rows of X (row-major, feature order, NaN missing) by the version's
 * method; record r is explained for its output column `column[r]`.
 */
export async function explainRows(source: ExplanationSource & { background: BackgroundRows }, predict: BatchPredict, X: Float64Array, records: number, outputs: number, column: ArrayLike<number>): Promise<Explanation[]> {
  const background = backgroundMatrix(source.background);
  return source.method === 'additive-logit' ? explainAdditiveLogit(X, records, background, predict, outputs, column) : explainBatch(X, records, background, predict, outputs, column);
}

/** The background's median of each feature (missing values left out): the "typical" value sentences compare with. */
export function typicalValues(background: BackgroundRows): (number | null)[] {
  const d = background[0]?.length ?? 0;
  return Array.from({ length: d }, (_, j) => {
    const values = background.map((r) => r[j]).filter((v): v is number => v !== null && v !== undefined).sort((a, b) => a - b);
    if (!values.length) return null;
    const mid = values.length >> 1;
    return values.length % 2 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  });
}

/** An explanation as the answer carries it: contributions sorted by size, with the three largest in words. */
export function toReasons(e: Explanation, x: ArrayLike<number>, features: readonly string[], method: ExplanationMethod, target: Target, typical: readonly (number | null)[]): Reasons {
  const contributions = features
    .map((feature, j) => ({ feature, value: Number.isNaN(x[j]!) ? null : x[j]!, contribution: e.contributions[j]! }))
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution) || features.indexOf(a.feature) - features.indexOf(b.feature));
  const text = contributions
    .slice(0, 3)
    .filter((c) => Math.abs(c.contribution) >= 0.0005)
    .map((c) => sentence(c.feature, c.value, typical[features.indexOf(c.feature)] ?? null, c.contribution, target));
  return { base: e.base, output: e.output, method, contributions, text };
}

const DESCRIPTIONS = new Map(FEATURE_DESCRIPTIONS.map((f) => [f.name, f]));

/** "No purchase for 74 days (typical: 12) raises churn risk by 21 points." */
export function sentence(feature: string, value: number | null, typical: number | null, contribution: number, target: Target): string {
  const what = target.kind === 'churn' ? 'churn risk' : `the chance of accepting ${target.name}`;
  const points = Math.abs(contribution) * 100;
  const size = points >= 9.5 ? String(Math.round(points)) : points >= 0.95 ? points.toFixed(1).replace(/\.0$/, '') : points.toFixed(1);
  const effect = `${contribution >= 0 ? 'raises' : 'lowers'} ${what} by ${size} ${size === '1' ? 'point' : 'points'}`;
  return `${describeValue(feature, value, typical)} ${effect}.`;
}

function describeValue(feature: string, value: number | null, typical: number | null): string {
  const info = DESCRIPTIONS.get(feature);
  const typ = typical === null ? '' : ` (typical: ${format(feature, typical)})`;
  if (value === null) return `${NOUNS[feature] ?? label(feature)} unknown${info ? ` (${info.missing})` : ''}`;
  if (feature === 'days_since_last_transaction' && value === DEFAULTED_RECENCY) return `Recency is the warehouse default ${DEFAULTED_RECENCY} (unknown)`;
  const v = format(feature, value);
  switch (feature) {
    case 'days_since_last_transaction':
      return `No purchase for ${v} days${typ}`;
    case 'transaction_count_90d':
      return `${v} ${value === 1 ? 'purchase' : 'purchases'} in the last 90 days${typ}`;
    case 'total_revenue_90d':
      return `Revenue of ${v} in the last 90 days${typ}`;
    case 'avg_transaction_value':
      return `An average purchase of ${v}${typ}`;
    case 'tenure_days':
      return `A member for ${v} days${typ}`;
    case 'points_balance':
      return `${v} points held${typ}`;
    case 'points_redeemed_90d':
      return `${v} points redeemed in the last 90 days${typ}`;
    case 'offers_accepted_180d':
      return `${v} ${value === 1 ? 'offer' : 'offers'} accepted in the last 180 days${typ}`;
    case 'complaints_90d':
      return `${v} ${value === 1 ? 'complaint' : 'complaints'} in the last 90 days${typ}`;
    case 'usage_trend':
      return `A purchase-rate change of ${v} against the previous quarter${typ}`;
    default:
      return `${label(feature)} of ${v}${info ? ` ${info.unit}` : ''}${typ}`;
  }
}

/** What a feature measures, for a sentence about its missing value. */
const NOUNS: Record<string, string> = {
  days_since_last_transaction: 'Recency',
  transaction_count_90d: 'Purchases in the last 90 days',
  total_revenue_90d: 'Revenue in the last 90 days',
  avg_transaction_value: 'Average purchase',
  tenure_days: 'Tenure',
  points_balance: 'Points balance',
  points_redeemed_90d: 'Points redeemed',
  offers_accepted_180d: 'Offers accepted',
  complaints_90d: 'Complaints',
  usage_trend: 'Purchase-rate trend',
};

function label(feature: string): string {
  const words = feature.replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function format(feature: string, v: number): string {
  const unit = DESCRIPTIONS.get(feature)?.unit;
  if (unit === 'currency') return v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (unit === 'ratio') return `${v >= 0 ? '+' : ''}${Math.round(v * 100)}%`;
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 1 });
}
