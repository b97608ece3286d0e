import { binaryLogLoss, multiclassMetrics, rocAuc } from '../metrics';
import type { OnnxGraphBuilder } from '../onnx/writer';
import { Rng, shuffledIndices } from '../random';
import type { InputColumn } from './design';
import type { GbtModel } from './gbt';

/**
 * Model selection by cross-validation: every family searches its own settings on the folds of the
 * training rows, scored on out-of-fold predictions (each row predicted by a model that never saw
 * it); the best family (or a blend of two, when the folds say the blend beats both) is then refit
 * on all training rows with the settings, rounds or epochs the folds chose. The report rows
 * (`--test-csv`, or the warehouse's latest snapshot) take no part in any of it.
 */
export type Family = 'logistic' | 'mlp' | 'gbt';
export const FAMILIES: Family[] = ['logistic', 'mlp', 'gbt'];

/** The data a search sees. Row indices refer to X and y. */
export interface SelectionData {
  columns: InputColumn[];
  /** Raw input rows [rows][columns]: numbers, NaN for missing, categories as their index. */
  X: Float64Array;
  y: Int32Array;
  classes: string[];
  /** The rows the final model learns from. */
  train: Uint32Array;
  plan: FoldPlan;
  seed: number;
  log: (message: string) => void;
  /**
   * What the folds rank binary settings by: AUC (the default: churn is used as a ranking) or log
   * loss (acceptance probabilities, compared across offers, must be calibrated, not only ranked).
   * Several classes are always ranked by log loss.
   */
  score?: 'auc' | 'log_loss';
}

/** How the training rows are folded. */
export interface FoldPlan {
  kind: 'k-fold' | 'time' | 'holdout';
  folds: { fit: Uint32Array; check: Uint32Array; label: string }[];
  description: string;
}

/** A family's best settings, with their out-of-fold predictions. */
export interface Candidate {
  family: Family | 'blend';
  /** Probabilities [rows][classes] over all rows of X; only the folds' check rows are filled. */
  oof: Float64Array;
  /** Out-of-fold score, higher is better: AUC for binary models (or minus the log loss, see SelectionData.score), minus the log loss for multiclass ones. */
  score: number;
  /** The chosen settings, for the log and the manifest. */
  settings: Record<string, unknown>;
  /** What was tried, with each setting's out-of-fold score. */
  tried: { settings: Record<string, unknown>; score: number }[];
  seconds: number;
  refit(): FittedModel;
  /**
   * On a holdout plan (large data): the model the search already fitted on the holdout's fit rows,
   * shipped instead of a refit on all training rows, which at that size would grow the same
   * settings on a quarter more rows for as long again and cannot change the choice.
   */
  kept?: { rows: number; model(): FittedModel };
}

/** A model refit on all training rows. */
export interface FittedModel {
  family: Family | 'blend';
  /** Probabilities [rows][classes] of raw input rows, as the exported graph computes them. */
  probabilities(X: Float64Array, rows: number): Float64Array;
  /** Writes the model into a graph from the raw input; returns the probabilities [N, classes]. */
  emit(g: OnnxGraphBuilder, x: string, prefix: string): string;
  /** What each input column became, and the model's inner steps, for the manifest. */
  preprocessing: Record<string, unknown>[];
  hyperparameters: Record<string, unknown>;
  /** Boosted trees reading the raw input as it is (no category remapping): their ensemble, which acceptance heads fold into one graph node. */
  trees?: GbtModel;
}

/** Rows at or below which the training rows are cross-validated in k folds; above, one holdout. */
export const KFOLD_MAX_ROWS = 100_000;
export const KFOLDS = 5;

/** Stratified k folds of the training rows (one stratified 20% holdout for large data). */
export function stratifiedPlan(y: Int32Array, train: Uint32Array, seed: number): FoldPlan {
  const k = train.length <= KFOLD_MAX_ROWS ? KFOLDS : 1;
  const parts = k === 1 ? stratifiedParts(y, train, [0.8, 0.2], seed) : stratifiedParts(y, train, new Array<number>(k).fill(1 / k), seed);
  if (k === 1) {
    return { kind: 'holdout', folds: [{ fit: parts[0]!, check: parts[1]!, label: 'holdout' }], description: `one stratified 20% holdout of the ${train.length} training rows (seed ${seed})` };
  }
  const folds = parts.map((check, f) => ({ fit: Uint32Array.from(parts.filter((_, g) => g !== f).flatMap((p) => Array.from(p)).sort((a, b) => a - b)), check, label: `fold ${f + 1}` }));
  return { kind: 'k-fold', folds, description: `${k}-fold stratified cross-validation of the ${train.length} training rows (seed ${seed})` };
}

/**
 * Time-ordered folds over snapshot dates: each of the latest training dates is checked by a model
 * fit on the dates before it (up to three folds; one for large data).
 */
export function timePlan(times: string[], train: Uint32Array, unit = 'snapshot'): FoldPlan {
  const dates = [...new Set(Array.from(train, (r) => times[r]!))].sort();
  const count = Math.min(train.length <= KFOLD_MAX_ROWS ? 3 : 1, dates.length - 1);
  const folds: FoldPlan['folds'] = [];
  for (let i = dates.length - count; i < dates.length; i++) {
    const date = dates[i]!;
    folds.push({
      fit: Uint32Array.from(Array.from(train).filter((r) => times[r]! < date)),
      check: Uint32Array.from(Array.from(train).filter((r) => times[r]! === date)),
      label: `${unit} ${date}`,
    });
  }
  return {
    kind: 'time',
    folds,
    description: `time-ordered folds: each of the ${unit}s ${dates.slice(dates.length - count).join(', ')} predicted by a model fit on the ${unit}s before it`,
  };
}

/**
 * Splits rows into parts of the given fractions (seeded), keeping each class's share in every
 * part; equal fractions deal each class's shuffled rows round-robin, so part sizes differ by one.
 */
export function stratifiedParts(y: Int32Array, rows: Uint32Array, fractions: number[], seed: number): Uint32Array[] {
  const rng = new Rng(seed);
  const parts: number[][] = fractions.map(() => []);
  const byClass = new Map<number, number[]>();
  for (const r of rows) {
    const list = byClass.get(y[r]!) ?? [];
    list.push(r);
    byClass.set(y[r]!, list);
  }
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(c)!;
    const order = shuffledIndices(members.length, rng);
    // Deal the class's rows round-robin in shuffled order: every part gets its share.
    if (fractions.every((f) => f === fractions[0])) {
      order.forEach((o, i) => parts[i % fractions.length]!.push(members[o]!));
      continue;
    }
    let start = 0;
    fractions.forEach((f, p) => {
      const end = p === fractions.length - 1 ? members.length : start + Math.round(members.length * f);
      for (let i = start; i < end; i++) parts[p]!.push(members[order[i]!]!);
      start = end;
    });
  }
  return parts.map((p) => Uint32Array.from(p.sort((a, b) => a - b)));
}

/** Rows of the plan's check sets (the rows with out-of-fold predictions), in order. */
export function coveredRows(plan: FoldPlan): Uint32Array {
  return Uint32Array.from(plan.folds.flatMap((f) => Array.from(f.check)).sort((a, b) => a - b));
}

/** The out-of-fold score of predictions over the covered rows. */
export function oofScore(P: Float64Array, data: SelectionData, rows = coveredRows(data.plan)): number {
  const k = data.classes.length;
  if (k === 2) {
    const p = Float64Array.from(rows, (r) => P[r * 2 + 1]!);
    const y = Int32Array.from(rows, (r) => data.y[r]!);
    return data.score === 'log_loss' ? -binaryLogLoss(p, y) : rocAuc(p, y);
  }
  const M = new Float64Array(rows.length * k);
  rows.forEach((r, i) => M.set(P.subarray(r * k, (r + 1) * k), i * k));
  return -multiclassMetrics(M, Int32Array.from(rows, (r) => data.y[r]!), data.classes).log_loss;
}

/** What `oofScore` measures, for logs. */
export function scoreName(data: Pick<SelectionData, 'classes' | 'score'>): string {
  return data.classes.length === 2 && data.score !== 'log_loss' ? 'AUC' : 'minus log loss';
}

/** Whether the out-of-fold score is an AUC (else minus a log loss). */
export function scoredByAuc(data: Pick<SelectionData, 'classes' | 'score'>): boolean {
  return data.classes.length === 2 && data.score !== 'log_loss';
}

/** Labels of rows. */
export function labelsOf(data: SelectionData, rows: ArrayLike<number>): Int32Array {
  return Int32Array.from(rows as ArrayLike<number>, (r) => data.y[r]!);
}

/** A rough score gap under which two settings count as equally good (the simpler one wins). */
export const SCORE_TIE = 1e-4;
