import { z } from 'zod';
import type { BaseProfile } from '../warehouse/index';
import { DEFAULTED_RECENCY } from '../catalog';

/**
 * Warnings for the old system's silent failures, computed over one batch. Pure functions.
 */
export const WARNING_CODES = [
  'missing_feature',
  'constant_feature',
  'defaulted_feature',
  'collapsed_predictions',
  'mock_predictions',
  'stale_model',
  'rfm_fixed_cut_points',
  'reasons_unavailable',
] as const;
export type WarningCode = (typeof WARNING_CODES)[number];

/** Warnings about how a whole run was served (not about its customers): segment workers pass them on. */
export const SERVING_WARNINGS: readonly WarningCode[] = ['mock_predictions', 'stale_model', 'rfm_fixed_cut_points'];

export const WarningSchema = z.object({
  code: z.enum(WARNING_CODES),
  message: z.string(),
  feature: z.string().optional(),
  model: z.string().optional(),
});
export type Warning = z.infer<typeof WarningSchema>;

/** A pattern this unlikely in a random batch from the customer base is reported. */
const SURPRISE = 1e-3;
const MIN_BATCH_FOR_COLLAPSE = 10;

/**
 * Input features identical (or missing) for every customer of the batch, when that would be very
 * unlikely for customers drawn from the base (the old "recency 999 for everyone" bug), and any
 * customer whose recency is the warehouse's 999 default.
 */
export function featureWarnings(names: readonly string[], X: Float64Array, n: number, profile: BaseProfile | null): Warning[] {
  const warnings: Warning[] = [];
  if (n === 0) return warnings;
  const d = names.length;
  const at = (i: number, j: number) => (Number.isNaN(X[i * d + j]!) ? null : X[i * d + j]!);
  const recencyIndex = names.indexOf('days_since_last_transaction');
  names.forEach((feature, j) => {
    const first = at(0, j);
    if (n < 2) return;
    for (let i = 1; i < n; i++) if (at(i, j) !== first) return;
    const share = profile?.commonValues[feature]?.find((v) => v.value === first)?.share ?? 0;
    if (Math.pow(share, n) >= SURPRISE) return;
    const defaulted = j === recencyIndex && first === DEFAULTED_RECENCY;
    warnings.push({
      code: first === null ? 'missing_feature' : defaulted ? 'defaulted_feature' : 'constant_feature',
      feature,
      message:
        first === null
          ? `${feature} is missing for all ${n} customers in this batch; models see it as unknown`
          : defaulted
            ? `${feature} is ${DEFAULTED_RECENCY} (the warehouse default for "unknown") for all ${n} customers; recency-based scores are not informative`
            : `${feature} is ${first} for all ${n} customers in this batch (${(share * 100).toFixed(1)}% of all customers have that value); check the warehouse load`,
    });
  });
  if (recencyIndex >= 0 && !warnings.some((w) => w.code === 'defaulted_feature')) {
    let defaulted = 0;
    for (let i = 0; i < n; i++) if (X[i * d + recencyIndex] === DEFAULTED_RECENCY) defaulted++;
    if (defaulted > 0) {
      warnings.push({
        code: 'defaulted_feature',
        feature: 'days_since_last_transaction',
        message: `${defaulted} of ${n} customers have days_since_last_transaction = ${DEFAULTED_RECENCY}, the warehouse default for "unknown"; their RFM recency scores 1`,
      });
    }
  }
  return warnings;
}

/** Churn probabilities that are nearly equal across a batch. */
export function churnCollapseWarning(probabilities: ArrayLike<number>, model: string): Warning | null {
  const n = probabilities.length;
  if (n < MIN_BATCH_FOR_COLLAPSE) return null;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probabilities[i]!;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (probabilities[i]! - mean) ** 2;
  const std = Math.sqrt(squares / n);
  if (std >= 0.005) return null;
  return {
    code: 'collapsed_predictions',
    model,
    message: `churn probabilities are nearly equal for all ${n} customers (${mean.toFixed(3)} ± ${std.toFixed(4)}); the model or its inputs may be degenerate`,
  };
}

/** The same offer at near-100% confidence for everyone in a batch. */
export function nboCollapseWarning(offers: readonly string[], top: ArrayLike<number>, confidence: ArrayLike<number>, model: string): Warning | null {
  const n = top.length;
  if (n < MIN_BATCH_FOR_COLLAPSE) return null;
  for (let i = 0; i < n; i++) if (top[i] !== top[0] || confidence[i]! < 0.99) return null;
  const first = offers[top[0]!]!;
  return {
    code: 'collapsed_predictions',
    model,
    message: `every one of the ${n} customers gets offer ${first} at 99%+ confidence; the model or its inputs may be degenerate`,
  };
}
