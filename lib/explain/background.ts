import type { CsvTable } from '../csv';
import { ValidationError } from '../errors';
import { isMissing } from '../inference/encoding';
import { Rng } from '../random';
import type { Background } from './exact';

/**
 * The background set B a version's reasons are computed over: customers drawn from the rows the
 * version learnt from (seeded, so a retrain on the same data draws the same rows), stored in the
 * manifest so anyone can recompute the reasons. 100 rows: enough that the base value (B's mean
 * score) is within a point or two of the population's, few enough that an exact answer for a
 * batch of 100 stays near a second (each record costs sum over b of 2^|D_b| model rows).
 */
export const BACKGROUND_ROWS = 100;

/** The seed of a background drawn from the warehouse for a model published from elsewhere. */
export const BACKGROUND_SEED = 42;

/** How reasons are computed for a version: the closed form over an additive logit, or coalitions through the model. */
export type ExplanationMethod = 'additive-logit' | 'coalitions';

/** The rows stored in a manifest: numbers in feature order, null for a missing value. */
export type BackgroundRows = (number | null)[][];

/** Draws `size` distinct rows of X (row-major, `d` wide) among `candidates` (all rows when absent), in their original order. */
export function drawBackground(X: Float64Array, d: number, options: { candidates?: ArrayLike<number>; size?: number; seed: number }): BackgroundRows {
  const rows = X.length / d;
  const pool = options.candidates ? Array.from(options.candidates) : Array.from({ length: rows }, (_, i) => i);
  const size = Math.min(options.size ?? BACKGROUND_ROWS, pool.length);
  const rng = new Rng(options.seed ^ 0x5eed);
  // A partial Fisher-Yates shuffle: the first `size` entries are a uniform draw without replacement.
  for (let i = 0; i < size; i++) {
    const j = i + Math.floor(rng.next() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool
    .slice(0, size)
    .sort((a, b) => a - b)
    .map((r) => Array.from(X.subarray(r * d, (r + 1) * d), (v) => (Number.isNaN(v) ? null : v)));
}

/** The background a trained version's reasons are computed over: training rows drawn at random. */
export function trainedExplanation(X: Float64Array, d: number, train: ArrayLike<number>, seed: number, method: ExplanationMethod): { method: ExplanationMethod; background: BackgroundRows; source: string } {
  const background = drawBackground(X, d, { candidates: train, seed });
  return { method, background, source: `${background.length} training rows drawn at random (seed ${seed})` };
}

/** `size` of a version's background rows drawn at random without replacement (seeded), for cheaper explanations of a sample. */
export function backgroundSubset(rows: BackgroundRows, size: number, seed: number): BackgroundRows {
  const d = rows[0]?.length ?? 0;
  return drawBackground(backgroundMatrix(rows).X, d, { size, seed });
}

/** Stored rows as the matrix the explainers take (null becomes NaN). */
export function backgroundMatrix(rows: BackgroundRows): Background {
  const d = rows[0]?.length ?? 0;
  const X = new Float64Array(rows.length * d);
  rows.forEach((row, i) => row.forEach((v, j) => (X[i * d + j] = v === null ? NaN : v)));
  return { X, rows: rows.length };
}

/** The method a version's family allows: an additive logit (binary logistic regression trained here) has a closed form. */
export function explanationMethod(family: string | null, origin: 'trained' | 'external', outputKind: string): ExplanationMethod {
  return origin === 'trained' && family === 'logistic' && outputKind === 'binary' ? 'additive-logit' : 'coalitions';
}

/**
 * A background given as a CSV table: a header naming exactly the model's features (any order) and
 * one row per customer, empty for missing. Throws a ValidationError naming the missing and
 * unexpected columns, or the first cell that is not a number.
 */
export function parseBackgroundCsv(table: CsvTable, features: readonly string[], source: string): BackgroundRows {
  const missing = features.filter((f) => !table.columns.includes(f));
  const extra = table.columns.filter((h) => !features.includes(h));
  if (missing.length || extra.length) {
    const parts = [missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `unexpected ${extra.join(', ')}` : ''].filter(Boolean);
    throw new ValidationError(`${source}: a background must have exactly the model's features as columns (${parts.join('; ')})`);
  }
  return table.records.map((record, r) =>
    features.map((f) => {
      const text = (record[f] ?? '').trim();
      if (isMissing(text)) return null;
      const v = Number(text);
      if (!Number.isFinite(v)) throw new ValidationError(`${source}: row ${r + 2}, column ${f}: "${text}" is not a number`);
      return v;
    }),
  );
}
