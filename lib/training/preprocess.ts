/**
 * Numeric preprocessing fitted on the training split only: missing values (NaN) are imputed with
 * the column median and flagged by an indicator column where the training data had any; heavily
 * right-skewed non-negative columns go through log1p; everything is then standardised. The same
 * steps are written into the ONNX graph (export.ts), so a served model takes raw features with NaN
 * for missing values and nothing is applied twice or differently.
 */
export interface Preprocessor {
  /** Raw input width. */
  inputs: number;
  names: string[];
  /** Imputation value per raw column (training median). */
  fill: number[];
  /** Raw columns transformed with log1p after imputation. */
  logColumns: number[];
  /** Raw columns that get a 0/1 "was missing" indicator appended, in this order. */
  indicatorColumns: number[];
  /** Standardisation of the inputs + indicators. */
  mean: number[];
  std: number[];
}

const SKEW_FOR_LOG = 1;

export function fitPreprocessor(X: Float64Array, rows: number, cols: number, names: string[]): Preprocessor {
  const fill: number[] = [];
  const logColumns: number[] = [];
  const indicatorColumns: number[] = [];
  for (let c = 0; c < cols; c++) {
    const present: number[] = [];
    for (let r = 0; r < rows; r++) {
      const v = X[r * cols + c]!;
      if (!Number.isNaN(v)) present.push(v);
    }
    if (present.length < rows) indicatorColumns.push(c);
    present.sort((a, b) => a - b);
    const median = present.length ? present[Math.floor(present.length / 2)]! : 0;
    fill.push(median);
    if (present.length && present[0]! >= 0 && skewness(present) > SKEW_FOR_LOG) logColumns.push(c);
  }
  const pp: Preprocessor = { inputs: cols, names, fill, logColumns, indicatorColumns, mean: [], std: [] };
  const width = cols + indicatorColumns.length;
  const sums = new Float64Array(width);
  const squares = new Float64Array(width);
  const row = new Float64Array(width);
  for (let r = 0; r < rows; r++) {
    transformRow(pp, X, r * cols, row, 0, false);
    for (let j = 0; j < width; j++) {
      sums[j] = sums[j]! + row[j]!;
      squares[j] = squares[j]! + row[j]! * row[j]!;
    }
  }
  for (let j = 0; j < width; j++) {
    const mean = sums[j]! / Math.max(rows, 1);
    const variance = squares[j]! / Math.max(rows, 1) - mean * mean;
    pp.mean.push(mean);
    pp.std.push(variance > 1e-12 ? Math.sqrt(variance) : 1);
  }
  return pp;
}

/** Width of the transformed rows. */
export function transformedWidth(pp: Preprocessor): number {
  return pp.inputs + pp.indicatorColumns.length;
}

/** Transforms raw rows (NaN for missing) into the standardised design matrix. */
export function transform(pp: Preprocessor, X: Float64Array, rows: number): Float64Array {
  const width = transformedWidth(pp);
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) transformRow(pp, X, r * pp.inputs, out, r * width, true);
  return out;
}

function transformRow(pp: Preprocessor, X: Float64Array, offset: number, out: Float64Array, outOffset: number, standardise: boolean): void {
  const logs = pp.logColumns;
  let li = 0;
  for (let c = 0; c < pp.inputs; c++) {
    let v = X[offset + c]!;
    if (Number.isNaN(v)) v = pp.fill[c]!;
    if (li < logs.length && logs[li] === c) {
      v = Math.log1p(Math.max(v, 0));
      li++;
    }
    out[outOffset + c] = v;
  }
  for (let k = 0; k < pp.indicatorColumns.length; k++) {
    out[outOffset + pp.inputs + k] = Number.isNaN(X[offset + pp.indicatorColumns[k]!]!) ? 1 : 0;
  }
  if (standardise) {
    const width = pp.inputs + pp.indicatorColumns.length;
    for (let j = 0; j < width; j++) out[outOffset + j] = (out[outOffset + j]! - pp.mean[j]!) / pp.std[j]!;
  }
}

function skewness(sorted: number[]): number {
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

/** The preprocessing as recorded in a manifest (applied inside the graph). */
export function describePreprocessor(pp: Preprocessor): Record<string, unknown>[] {
  return [
    { step: 'impute', strategy: 'median', values: Object.fromEntries(pp.names.map((n, i) => [n, pp.fill[i]])) },
    { step: 'log1p', columns: pp.logColumns.map((c) => pp.names[c]) },
    { step: 'missing_indicators', columns: pp.indicatorColumns.map((c) => pp.names[c]) },
    { step: 'standardize', mean: pp.mean, std: pp.std },
  ];
}
