import type { OnnxGraphBuilder } from '../onnx/writer';
import { levelCounts, type InputColumn } from './design';

/**
 * How boosted trees see the input features: numbers as they are (missing values routed by each
 * split), and each categorical column as one ordered column. The order is either the categories'
 * own (ordered codes such as age bands keep it) or their smoothed positive rate in the training
 * rows, the order in which one threshold separates them best (as LightGBM sorts categories by
 * gradient statistics). The remapping is a table lookup, the same in the trainer and in the graph.
 */
export interface TreeInput {
  inputs: number;
  /** Per remapped categorical column: the value of each level, then NaN for missing or unseen. */
  remaps: { column: number; name: string; order: 'rate' | 'natural'; values: number[] }[];
}

/** Prior rows a level's rate is shrunk towards the overall rate with. */
const RATE_SMOOTHING = 10;

/**
 * Fits the remapping on training rows. `rate` lists the categorical columns ordered by positive
 * rate (binary labels only); the others keep their natural order and need no table.
 */
export function fitTreeInput(columns: InputColumn[], X: Float64Array, rows: ArrayLike<number>, y: Int32Array, rate: Set<string>): TreeInput {
  const D = columns.length;
  const remaps: TreeInput['remaps'] = [];
  columns.forEach((col, c) => {
    if (col.kind !== 'categorical' || !rate.has(col.name)) return;
    const L = col.categories.length;
    const { n, pos, total, positives } = levelCounts(X, D, c, L, rows, y);
    const prior = positives / Math.max(total, 1);
    const rates = Array.from({ length: L }, (_, l) => (pos[l]! + RATE_SMOOTHING * prior) / (n[l]! + RATE_SMOOTHING));
    // Rank of each level by rate (ties by level index), so thresholds fall between levels.
    const order = Array.from({ length: L }, (_, l) => l).sort((a, b) => rates[a]! - rates[b]! || a - b);
    const values = new Array<number>(L + 1).fill(NaN);
    order.forEach((l, rank) => (values[l] = rank));
    remaps.push({ column: c, name: col.name, order: 'rate', values });
  });
  return { inputs: D, remaps };
}

/** The trees' input matrix for rows of X (indices, or all rows). */
export function applyTreeInput(t: TreeInput, X: Float64Array, rows?: ArrayLike<number>): Float64Array {
  const D = t.inputs;
  const n = rows ? rows.length : X.length / D;
  const out = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    const src = (rows ? rows[i]! : i) * D;
    out.set(X.subarray(src, src + D), i * D);
    for (const m of t.remaps) {
      const v = X[src + m.column]!;
      out[i * D + m.column] = v === v && v >= 0 && v < m.values.length - 1 ? m.values[v]! : NaN;
    }
  }
  return out;
}

/** Writes the remapping into a graph: from the raw input [N, inputs] to the trees' input. */
export function emitTreeInput(g: OnnxGraphBuilder, x: string, t: TreeInput, prefix = 'trees'): string {
  if (!t.remaps.length) return x;
  const ints = (values: number[]) => BigInt64Array.from(values.map(BigInt));
  // Columns: the untouched ones gathered as they are, each remapped one through its table, then
  // put back in input order by a final Gather over the concatenation.
  const remapped = new Set(t.remaps.map((m) => m.column));
  const kept = Array.from({ length: t.inputs }, (_, c) => c).filter((c) => !remapped.has(c));
  const parts: string[] = [];
  const position = new Array<number>(t.inputs);
  if (kept.length) {
    parts.push(g.node('Gather', [x, g.constant(`${prefix}_kept_columns`, [kept.length], ints(kept))], { attributes: { axis: { int: 1 } } })[0]!);
    kept.forEach((c, i) => (position[c] = i));
  }
  t.remaps.forEach((m, i) => {
    const L = m.values.length - 1;
    const [code] = g.node('Gather', [x, g.constant(`${prefix}_remap${i}_column`, [1], ints([m.column]))], { attributes: { axis: { int: 1 } } });
    const [nan] = g.node('IsNaN', [code!]);
    const [filled] = g.node('Where', [nan!, g.constant(`${prefix}_remap${i}_missing`, [1], [L]), code!]);
    const [clipped] = g.node('Clip', [filled!, g.constant(`${prefix}_remap${i}_low`, [], [0]), g.constant(`${prefix}_remap${i}_high`, [], [L])]);
    const [index] = g.node('Cast', [clipped!], { attributes: { to: { int: 7 } } });
    // index [N, 1] into a [L + 1] table gives [N, 1].
    parts.push(g.node('Gather', [g.constant(`${prefix}_remap${i}_table`, [L + 1], Float32Array.from(m.values)), index!], { attributes: { axis: { int: 0 } } })[0]!);
    position[m.column] = kept.length + i;
  });
  const [joined] = g.node('Concat', parts, { attributes: { axis: { int: 1 } } });
  return g.node('Gather', [joined!, g.constant(`${prefix}_column_order`, [t.inputs], ints(position))], { attributes: { axis: { int: 1 } } })[0]!;
}

/** What the manifest records about the trees' view of each categorical column. */
export function describeTreeInput(t: TreeInput, columns: InputColumn[]): Record<string, unknown>[] {
  return columns.flatMap((col, c) => {
    if (col.kind !== 'categorical') return [];
    const m = t.remaps.find((r) => r.column === c);
    if (!m) return [{ column: col.name, became: col.ordered ? 'ordinal in the codes\' own order' : 'ordinal in the listed (alphabetical) order' }];
    return [{ column: col.name, became: `ordinal by smoothed positive rate in the training rows (${RATE_SMOOTHING} prior rows)`, order: [...col.categories].sort((a, b) => m.values[col.categories.indexOf(a)]! - m.values[col.categories.indexOf(b)]!) }];
  });
}
