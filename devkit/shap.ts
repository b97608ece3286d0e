import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Explanation } from '../lib/explain/exact';
import type { ModelManifest } from '../lib/registry/index';

const REFERENCE = resolve(import.meta.dirname, 'shap_reference.py');

export interface ShapResult {
  values: number[][];
  base: number[];
  /** shap's own explain time (model loading and Python's start left out). */
  seconds: number;
}

/**
 * shap's Exact explainer with an Independent masker over the version's background, on the same
 * ONNX bytes, for records X (row-major, NaN missing), record i for output column `columns[i]`
 * (a graph that gives P(positive) alone is explained for its one column). Files go to `dir`.
 */
export function shapExact(dir: string, manifest: ModelManifest, bytes: Uint8Array, X: Float64Array, n: number, columns: readonly number[]): ShapResult {
  const model = join(dir, `${manifest.name}-${manifest.version}.onnx`);
  writeFileSync(model, bytes);
  const d = manifest.input.features.length;
  const raw = manifest.output.probability_layout === 'positive_column' ? columns.map(() => 0) : columns;
  const records = Array.from({ length: n }, (_, i) => Array.from(X.subarray(i * d, (i + 1) * d), (v) => (Number.isNaN(v) ? null : v)));
  const path = join(dir, `${manifest.name}-${manifest.version}.json`);
  writeFileSync(path, JSON.stringify({ model, input: manifest.input.tensors[0]!.name, output: manifest.output.probability_tensor, background: manifest.explanation!.background, records, columns: raw }));
  return JSON.parse(execFileSync('python3', [REFERENCE, path], { encoding: 'utf8', maxBuffer: 1 << 26 })) as ShapResult;
}

/** The largest absolute difference between our explanations and shap's, bases included. */
export function largestDifference(ours: readonly Explanation[], shap: ShapResult): number {
  let worst = 0;
  ours.forEach((e, i) => {
    worst = Math.max(worst, Math.abs(e.base - shap.base[i]!));
    e.contributions.forEach((c, j) => (worst = Math.max(worst, Math.abs(c - shap.values[i]![j]!))));
  });
  return worst;
}
