import { z } from 'zod';
import type { Explanation } from './exact';

/**
 * Reasons summed over many customers: per feature the mean contribution (its sign: does this
 * feature push the group's answers up or down) and the mean |contribution| (how much the model's
 * answers lean on it), each with the 95% interval of a mean over a sample. Kept as sums, so parts
 * scored apart (segment chunks) merge by adding.
 */
export const ContributionSumsSchema = z.object({
  n: z.number().int().nonnegative(),
  features: z.array(z.string()),
  sum: z.array(z.number()),
  /** Sums of squares, which are also those of |contribution|. */
  sumSq: z.array(z.number()),
  sumAbs: z.array(z.number()),
  baseSum: z.number(),
});
export type ContributionSums = z.infer<typeof ContributionSumsSchema>;

export const FeatureContributionSchema = z.object({
  feature: z.string(),
  mean: z.number().describe('mean contribution over the customers explained (probability points / 100)'),
  mean_ci95: z.tuple([z.number(), z.number()]).describe('95% interval of the mean (normal approximation over the sample)'),
  mean_abs: z.number().describe('mean |contribution|: how much the answers lean on the feature'),
  mean_abs_ci95: z.tuple([z.number(), z.number()]),
});
export type FeatureContribution = z.infer<typeof FeatureContributionSchema>;

export const ContributionSummarySchema = z.object({
  customers: z.number().int().nonnegative().describe('how many customers were explained'),
  base: z.number().describe("the background's mean probability, the start of every customer's reasons"),
  features: z.array(FeatureContributionSchema).describe('by mean |contribution|, largest first'),
});
export type ContributionSummary = z.infer<typeof ContributionSummarySchema>;

export function emptySums(features: readonly string[]): ContributionSums {
  const zeros = () => features.map(() => 0);
  return { n: 0, features: [...features], sum: zeros(), sumSq: zeros(), sumAbs: zeros(), baseSum: 0 };
}

/** Adds explanations whose contributions are in the sums' feature order. */
export function addExplanations(s: ContributionSums, explanations: readonly Explanation[]): void {
  for (const e of explanations) add(s, e.base, (j) => e.contributions[j]!);
}

/** Adds answers' reasons (contributions by feature name). */
export function addReasons(s: ContributionSums, reasons: readonly { base: number; contributions: readonly { feature: string; contribution: number }[] }[]): void {
  for (const r of reasons) {
    const by = new Map(r.contributions.map((c) => [c.feature, c.contribution]));
    add(s, r.base, (j) => by.get(s.features[j]!) ?? 0);
  }
}

function add(s: ContributionSums, base: number, contribution: (j: number) => number): void {
  s.n++;
  s.baseSum += base;
  for (let j = 0; j < s.features.length; j++) {
    const c = contribution(j);
    s.sum[j] = s.sum[j]! + c;
    s.sumSq[j] = s.sumSq[j]! + c * c;
    s.sumAbs[j] = s.sumAbs[j]! + Math.abs(c);
  }
}

/** a + b (same features; a may be returned), or null when they explain different features (a model change mid-run). */
export function mergeSums(a: ContributionSums | null | undefined, b: ContributionSums | null | undefined): ContributionSums | null {
  if (!a) return b ? structuredClone(b) : null;
  if (!b) return a;
  if (a.features.join('\u0000') !== b.features.join('\u0000')) return null;
  const add = (x: number[], y: number[]) => x.map((v, j) => v + y[j]!);
  return { n: a.n + b.n, features: a.features, sum: add(a.sum, b.sum), sumSq: add(a.sumSq, b.sumSq), sumAbs: add(a.sumAbs, b.sumAbs), baseSum: a.baseSum + b.baseSum };
}

/** Means with their 95% intervals, by mean |contribution|; null before any customer. */
export function summarizeSums(s: ContributionSums): ContributionSummary | null {
  if (s.n === 0) return null;
  const n = s.n;
  const interval = (sum: number, sumSq: number): [number, number] => {
    const mean = sum / n;
    const variance = n > 1 ? Math.max(0, (sumSq - n * mean * mean) / (n - 1)) : 0;
    const half = n > 1 ? 1.96 * Math.sqrt(variance / n) : 0;
    return [mean - half, mean + half];
  };
  const features = s.features
    .map((feature, j) => ({
      feature,
      mean: s.sum[j]! / n,
      mean_ci95: interval(s.sum[j]!, s.sumSq[j]!),
      mean_abs: s.sumAbs[j]! / n,
      mean_abs_ci95: interval(s.sumAbs[j]!, s.sumSq[j]!).map((v) => Math.max(0, v)) as [number, number],
    }))
    .sort((a, b) => b.mean_abs - a.mean_abs);
  return { customers: n, base: s.baseSum / n, features };
}
