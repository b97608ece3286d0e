import type { OnnxGraphBuilder } from '../onnx/writer';
import { Rng, shuffledIndices } from '../random';

/**
 * How the linear and network families see the input features: a dense design matrix built from
 * the raw input row (NaN = missing, categories as their index in the column's category list), the
 * same way in the trainer (buildDesign) and inside the exported ONNX graph (emitDesign), so a
 * served model takes the raw features and nothing is applied twice or differently.
 *
 * Numeric columns are imputed with the training median, optionally log1p-transformed, and
 * standardised; a 0/1 missing indicator follows for columns that had missing values; yes/no
 * columns stay 0/1 (indicators are not scaled, so their penalty is not inflated). Piecewise-linear
 * terms max(0, x - knot) / std at training quantiles let a linear model follow threshold and convex
 * effects (as credit scorecards bin their variables). Categorical columns become one-hot columns
 * (unscaled), or a single target-encoded column (the category's smoothed log-odds of the positive
 * class relative to the prior, fitted out of fold for the training rows), or, for ordered codes,
 * a numeric column of their rank.
 *
 * Column order of the matrix: standardised numeric values, missing indicators, hinge terms, then
 * each categorical block.
 */

/** One input feature as the trainer knows it. */
export type InputColumn =
  | { name: string; kind: 'numeric' }
  | { name: string; kind: 'boolean' }
  | { name: string; kind: 'categorical'; categories: string[]; ordered: boolean };

export interface NumericTerm {
  /** Input column index. */
  column: number;
  name: string;
  fill: number;
  log: boolean;
  /** Standardisation (mean 0, std 1 for indicator-like columns, which stay unscaled). */
  mean: number;
  std: number;
  indicator: boolean;
  /** Hinge knots on the imputed (and logged) scale; each adds max(0, x - knot) / std. */
  knots: number[];
}

export interface CategoricalTerm {
  column: number;
  name: string;
  mode: 'one_hot' | 'target';
  levels: number;
  /** target: the value of each level, then the value for missing or unseen levels. */
  values?: number[];
}

export interface Design {
  inputs: number;
  numeric: NumericTerm[];
  categorical: CategoricalTerm[];
}

/** How to encode each column; chosen by cross-validation (see selection.ts). */
export interface DesignChoice {
  /** Hinge knots per numeric column (0 = linear only). */
  knots: number;
  /** log1p for skewed non-negative numeric columns. */
  log: boolean;
  /** Per categorical input column (by name): how it enters. 'numeric' only for ordered codes. */
  categorical: Record<string, 'one_hot' | 'target' | 'numeric'>;
}

/** Smoothing weight of target encoding: a level's rate counts as this many prior rows. */
const TARGET_SMOOTHING = 20;
/** Folds of the out-of-fold target encoding of the training rows. */
const TARGET_FOLDS = 5;
const SKEW_FOR_LOG = 1;

export function designWidth(d: Design): number {
  let w = 0;
  for (const t of d.numeric) w += 1 + (t.indicator ? 1 : 0) + t.knots.length;
  for (const t of d.categorical) w += t.mode === 'one_hot' ? t.levels : 1;
  return w;
}

/** Names of the design matrix's columns, in order. */
export function designNames(d: Design): string[] {
  const names = d.numeric.map((t) => t.name);
  for (const t of d.numeric) if (t.indicator) names.push(`${t.name}:missing`);
  for (const t of d.numeric) for (const k of t.knots) names.push(`${t.name}:over_${round(k)}`);
  for (const t of d.categorical) {
    if (t.mode === 'one_hot') for (let l = 0; l < t.levels; l++) names.push(`${t.name}=${l}`);
    else names.push(`${t.name}:target`);
  }
  return names;
}

/**
 * Fits a design on the training rows (indices into X) and returns it with the training rows'
 * design matrix (target encodings out of fold). `y` is binary (0/1) when target encoding is used.
 */
export function fitDesign(
  columns: InputColumn[],
  X: Float64Array,
  rows: ArrayLike<number>,
  y: Int32Array,
  choice: DesignChoice,
  seed: number,
): { design: Design; Z: Float64Array } {
  const D = columns.length;
  const n = rows.length;
  const numeric: NumericTerm[] = [];
  const categorical: CategoricalTerm[] = [];
  const values = new Float64Array(n);
  columns.forEach((col, c) => {
    const mode = col.kind === 'categorical' ? (choice.categorical[col.name] ?? 'one_hot') : 'numeric';
    if (col.kind === 'categorical' && mode !== 'numeric') {
      const levels = col.categories.length;
      if (mode === 'one_hot') categorical.push({ column: c, name: col.name, mode, levels });
      else categorical.push({ column: c, name: col.name, mode, levels, values: targetTable(X, D, c, levels, y, rows) });
      return;
    }
    let present = 0;
    for (let i = 0; i < n; i++) {
      const v = X[rows[i]! * D + c]!;
      if (v === v) values[present++] = v;
    }
    const sorted = values.subarray(0, present).slice().sort();
    const fill = present ? sorted[Math.floor(present / 2)]! : 0;
    const indicator = present < n;
    if (col.kind === 'boolean') {
      numeric.push({ column: c, name: col.name, fill: f32(fill), log: false, mean: 0, std: 1, indicator, knots: [] });
      return;
    }
    const log = choice.log && present > 2 && sorted[0]! >= 0 && skewness(sorted) > SKEW_FOR_LOG;
    const t = (v: number) => (log ? Math.log1p(Math.max(v, 0)) : v);
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const v = X[rows[i]! * D + c]!;
      const x = t(v === v ? v : fill);
      sum += x;
      squares += x * x;
    }
    const mean = sum / Math.max(n, 1);
    const variance = squares / Math.max(n, 1) - mean * mean;
    const std = variance > 1e-12 ? Math.sqrt(variance) : 1;
    numeric.push({ column: c, name: col.name, fill: f32(fill), log, mean: f32(mean), std: f32(std), indicator, knots: knotsOf(sorted, t, choice.knots) });
  });
  const design: Design = { inputs: D, numeric, categorical };
  const Z = buildDesign(design, X, rows);
  // Training rows get their target encodings out of fold: a row's own label never encodes it.
  if (categorical.some((t) => t.mode === 'target')) {
    const width = designWidth(design);
    const folds = foldOf(n, TARGET_FOLDS, seed);
    let offset = blockStart(design);
    for (const t of categorical) {
      if (t.mode === 'target') {
        for (let f = 0; f < TARGET_FOLDS; f++) {
          const fit: number[] = [];
          const apply: number[] = [];
          for (let i = 0; i < n; i++) (folds[i] === f ? apply : fit).push(i);
          const table = targetTable(X, D, t.column, t.levels, y, fit.map((i) => rows[i]!));
          for (const i of apply) Z[i * width + offset] = lookup(table, X[rows[i]! * D + t.column]!, t.levels);
        }
      }
      offset += t.mode === 'one_hot' ? t.levels : 1;
    }
  }
  return { design, Z };
}

/** The design matrix of rows (indices into X, or all rows of X when omitted). */
export function buildDesign(d: Design, X: Float64Array, rows?: ArrayLike<number>): Float64Array {
  const D = d.inputs;
  const n = rows ? rows.length : X.length / D;
  const width = designWidth(d);
  const Z = new Float64Array(n * width);
  const indicators = d.numeric.filter((t) => t.indicator);
  for (let i = 0; i < n; i++) {
    const src = (rows ? rows[i]! : i) * D;
    const out = i * width;
    let j = 0;
    const transformed = new Float64Array(d.numeric.length);
    d.numeric.forEach((t, k) => {
      const v = X[src + t.column]!;
      let x = v === v ? v : t.fill;
      if (t.log) x = Math.log1p(Math.max(x, 0));
      transformed[k] = x;
      Z[out + j++] = (x - t.mean) / t.std;
    });
    for (const t of indicators) Z[out + j++] = X[src + t.column]! === X[src + t.column]! ? 0 : 1;
    d.numeric.forEach((t, k) => {
      for (const knot of t.knots) Z[out + j++] = Math.max(0, transformed[k]! - knot) / t.std;
    });
    for (const t of d.categorical) {
      const v = X[src + t.column]!;
      if (t.mode === 'one_hot') {
        if (v === v && v >= 0 && v < t.levels) Z[out + j + v] = 1;
        j += t.levels;
      } else Z[out + j++] = lookup(t.values!, v, t.levels);
    }
  }
  return Z;
}

/**
 * Writes the design into an ONNX graph: from the raw input `x` [N, inputs] to the design matrix
 * [N, width]. Returns the name of the matrix.
 */
export function emitDesign(g: OnnxGraphBuilder, x: string, d: Design, prefix = 'design'): string {
  const parts: string[] = [];
  const ints = (values: number[]) => BigInt64Array.from(values.map(BigInt));
  const floatOf = (name: string) => g.node('Cast', [name], { attributes: { to: { int: 1 } } })[0]!;
  if (d.numeric.length) {
    const m = d.numeric.length;
    const [xn] = g.node('Gather', [x, g.constant(`${prefix}_numeric_columns`, [m], ints(d.numeric.map((t) => t.column)))], { attributes: { axis: { int: 1 } } });
    const [nan] = g.node('IsNaN', [xn!]);
    let xt = g.node('Where', [nan!, g.constant(`${prefix}_fill`, [m], d.numeric.map((t) => t.fill)), xn!])[0]!;
    if (d.numeric.some((t) => t.log)) {
      const [clipped] = g.node('Max', [xt, g.constant(`${prefix}_zero`, [1], [0])]);
      const [shifted] = g.node('Add', [clipped!, g.constant(`${prefix}_one`, [1], [1])]);
      const [logged] = g.node('Log', [shifted!]);
      const [mask] = g.node('Cast', [g.constant(`${prefix}_log_mask`, [m], d.numeric.map((t) => (t.log ? 1 : 0)))], { attributes: { to: { int: 9 } } });
      xt = g.node('Where', [mask!, logged!, xt])[0]!;
    }
    const [centered] = g.node('Sub', [xt, g.constant(`${prefix}_mean`, [m], d.numeric.map((t) => t.mean))]);
    parts.push(g.node('Div', [centered!, g.constant(`${prefix}_std`, [m], d.numeric.map((t) => t.std))])[0]!);
    const withIndicator = d.numeric.map((t, k) => (t.indicator ? k : -1)).filter((k) => k >= 0);
    if (withIndicator.length) {
      const [picked] = g.node('Gather', [nan!, g.constant(`${prefix}_indicator_columns`, [withIndicator.length], ints(withIndicator))], { attributes: { axis: { int: 1 } } });
      parts.push(floatOf(picked!));
    }
    const knotColumn: number[] = [];
    const knots: number[] = [];
    const scale: number[] = [];
    d.numeric.forEach((t, k) => {
      for (const knot of t.knots) {
        knotColumn.push(k);
        knots.push(knot);
        scale.push(t.std);
      }
    });
    if (knots.length) {
      const K = knots.length;
      const [repeated] = g.node('Gather', [xt, g.constant(`${prefix}_knot_columns`, [K], ints(knotColumn))], { attributes: { axis: { int: 1 } } });
      const [over] = g.node('Sub', [repeated!, g.constant(`${prefix}_knots`, [K], knots)]);
      const [hinge] = g.node('Relu', [over!]);
      parts.push(g.node('Div', [hinge!, g.constant(`${prefix}_knot_scale`, [K], scale)])[0]!);
    }
  }
  d.categorical.forEach((t, i) => {
    // The level index, with missing, unseen or out-of-range values sent to the extra last row.
    const [code] = g.node('Gather', [x, g.constant(`${prefix}_cat${i}_column`, [], ints([t.column]))], { attributes: { axis: { int: 1 } } });
    const [nan] = g.node('IsNaN', [code!]);
    const [filled] = g.node('Where', [nan!, g.constant(`${prefix}_cat${i}_missing`, [1], [t.levels]), code!]);
    const [clipped] = g.node('Clip', [filled!, g.constant(`${prefix}_cat${i}_low`, [], [0]), g.constant(`${prefix}_cat${i}_high`, [], [t.levels])]);
    const [index] = g.node('Cast', [clipped!], { attributes: { to: { int: 7 } } });
    const width = t.mode === 'one_hot' ? t.levels : 1;
    const table = new Float32Array((t.levels + 1) * width);
    if (t.mode === 'one_hot') for (let l = 0; l < t.levels; l++) table[l * width + l] = 1;
    else t.values!.forEach((v, l) => (table[l] = v));
    parts.push(g.node('Gather', [g.constant(`${prefix}_cat${i}_table`, [t.levels + 1, width], table), index!], { attributes: { axis: { int: 0 } } })[0]!);
  });
  if (parts.length === 1) return parts[0]!;
  return g.node('Concat', parts, { attributes: { axis: { int: 1 } } })[0]!;
}

/** What the manifest records about a design: what each input column became. */
export function describeDesign(d: Design, columns: InputColumn[]): Record<string, unknown>[] {
  const steps: Record<string, unknown>[] = [];
  for (const t of d.numeric) {
    const col = columns[t.column]!;
    steps.push({
      column: t.name,
      became: col.kind === 'categorical' ? 'ordered code as a number' : col.kind === 'boolean' ? '0/1 indicator (unscaled)' : 'number',
      impute: t.fill,
      log1p: t.log,
      standardize: { mean: t.mean, std: t.std },
      missing_indicator: t.indicator,
      hinge_knots: t.knots,
    });
  }
  for (const t of d.categorical) {
    const col = columns[t.column]! as Extract<InputColumn, { kind: 'categorical' }>;
    steps.push(
      t.mode === 'one_hot'
        ? { column: t.name, became: `one-hot (${t.levels} levels, unscaled; missing or unseen: all zero)` }
        : {
            column: t.name,
            became: `target encoding (smoothed log-odds against the prior, ${TARGET_SMOOTHING} prior rows; out of fold for training rows)`,
            values: Object.fromEntries(col.categories.map((c, l) => [c, t.values![l]])),
            missing_or_unseen: t.values![t.levels],
          },
    );
  }
  return steps;
}

/** Offset of the first categorical block. */
function blockStart(d: Design): number {
  let w = 0;
  for (const t of d.numeric) w += 1 + (t.indicator ? 1 : 0) + t.knots.length;
  return w;
}

function lookup(values: number[], v: number, levels: number): number {
  return v === v && v >= 0 && v < levels ? values[v]! : values[levels]!;
}

/** Rows and positives per level of a category column over some rows (a label above 0 is positive). */
export function levelCounts(X: Float64Array, D: number, c: number, levels: number, rows: ArrayLike<number>, y: Int32Array): { n: Float64Array; pos: Float64Array; total: number; positives: number } {
  const n = new Float64Array(levels);
  const pos = new Float64Array(levels);
  let positives = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const label = y[r]! > 0 ? 1 : 0;
    positives += label;
    const v = X[r * D + c]!;
    if (v === v && v >= 0 && v < levels) {
      n[v] = n[v]! + 1;
      pos[v] = pos[v]! + label;
    }
  }
  return { n, pos, total: rows.length, positives };
}

/**
 * Smoothed log-odds of the positive class per level, relative to the prior, from the `fit` rows;
 * the last entry (missing or unseen) is 0, the prior itself. float32, as the graph stores them.
 */
function targetTable(X: Float64Array, D: number, c: number, levels: number, y: Int32Array, fit: ArrayLike<number>): number[] {
  const { n, pos, total, positives } = levelCounts(X, D, c, levels, fit, y);
  const prior = Math.min(1 - 1e-6, Math.max(1e-6, positives / Math.max(total, 1)));
  const priorLogit = Math.log(prior / (1 - prior));
  const out: number[] = [];
  for (let l = 0; l < levels; l++) {
    const p = (pos[l]! + TARGET_SMOOTHING * prior) / (n[l]! + TARGET_SMOOTHING);
    out.push(f32(Math.log(p / (1 - p)) - priorLogit));
  }
  out.push(0);
  return out;
}

/** Knots at evenly spaced quantiles of the (transformed) values, distinct, inside the range. */
function knotsOf(sorted: Float64Array, t: (v: number) => number, count: number): number[] {
  if (count <= 0 || sorted.length < 20) return [];
  const knots: number[] = [];
  const low = t(sorted[0]!);
  const high = t(sorted[sorted.length - 1]!);
  for (let k = 1; k <= count; k++) {
    const knot = f32(t(sorted[Math.floor((k * sorted.length) / (count + 1))]!));
    if (knot > low && knot < high && (knots.length === 0 || knot > knots[knots.length - 1]!)) knots.push(knot);
  }
  return knots;
}

/** A seeded fold number per position: a shuffled deal, so every fold gets its share. */
function foldOf(n: number, k: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const order = shuffledIndices(n, new Rng(seed ^ 0x9e3779b9));
  for (let i = 0; i < n; i++) out[order[i]!] = i % k;
  return out;
}

function skewness(sorted: Float64Array): number {
  const n = sorted.length;
  if (n < 3) return 0;
  let mean = 0;
  for (const v of sorted) mean += v;
  mean /= n;
  let m2 = 0;
  let m3 = 0;
  for (const v of sorted) {
    const d = v - mean;
    m2 += d * d;
    m3 += d * d * d;
  }
  m2 /= n;
  m3 /= n;
  return m2 > 0 ? m3 / Math.pow(m2, 1.5) : 0;
}

function f32(v: number): number {
  return Math.fround(v);
}

function round(v: number): string {
  return String(Number(v.toPrecision(4)));
}
