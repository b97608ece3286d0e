import { backgroundMatrix, drawBackground, type BackgroundRows, type ExplanationMethod } from '../explain/background';
import { explainRows } from '../explain/reasons';
import { addExplanations, emptySums, summarizeSums, type ContributionSummary } from '../explain/summary';
import { createSession, ort } from '../inference/session';
import { Rng } from '../random';
import { INPUT_NAME, OUTPUT_NAME } from './export';

/** Holdout customers a trained version's global importance is measured on (seeded): the interval says how sure it is. */
export const IMPORTANCE_ROWS = 200;
/** Rows explained first (an interval needs two); later steps are sized by the cost per row measured so far. */
const FIRST_STEP = 2;
const MAX_STEP = 50;
/** Training spends at most about this long on importance (large tree ensembles and blends cost 50-200 ms a row on two cores). */
const BUDGET_MS = 500;

export type Importance = ContributionSummary & { source: string };

/**
 * Global importance of a freshly exported graph: each of up to IMPORTANCE_ROWS holdout rows
 * explained as an answer would be (the positive class of a binary model, the top class of any
 * other), summarised as mean |contribution| and mean contribution per feature with 95% intervals.
 */
export async function holdoutImportance(
  bytes: Uint8Array,
  X: Float64Array,
  features: readonly string[],
  holdout: ArrayLike<number>,
  explanation: { method: ExplanationMethod; background: BackgroundRows },
  seed: number,
  log: (message: string) => void = () => undefined,
): Promise<Importance | null> {
  const started = performance.now();
  const d = features.length;
  const rows = drawBackground(X, d, { candidates: holdout, size: IMPORTANCE_ROWS, seed: seed + 1 });
  // Shuffled (seeded), so that the rows a time budget leaves out are a random part of the draw.
  const rng = new Rng(seed + 2);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  if (!rows.length || !explanation.background.length) return null;
  const { X: R, rows: n } = backgroundMatrix(rows);
  const session = await createSession(bytes, { threads: 2 });
  try {
    let width = 0;
    const predict = async (Z: Float64Array, m: number) => {
      const out = (await session.run({ [INPUT_NAME]: new ort.Tensor('float32', Float32Array.from(Z), [m, d]) }))[OUTPUT_NAME]!;
      width = out.data.length / m;
      return Float64Array.from(out.data as Float32Array);
    };
    const P = await predict(R, n);
    const column = Int32Array.from({ length: n }, (_, i) => {
      if (width === 2) return 1;
      let best = 0;
      for (let c = 1; c < width; c++) if (P[i * width + c]! > P[i * width + best]!) best = c;
      return best;
    });
    const sums = emptySums(features);
    // In steps, so a budget cut keeps a random part of the draw; each step as large as the time left allows.
    const explaining = performance.now();
    for (let from = 0, m = Math.min(FIRST_STEP, n); from < n; from += m) {
      m = Math.min(m, n - from);
      addExplanations(sums, await explainRows(explanation, predict, R.subarray(from * d, (from + m) * d), m, width, column.subarray(from, from + m)));
      const left = BUDGET_MS - (performance.now() - started);
      if (left <= 0) break;
      const perRow = (performance.now() - explaining) / (from + m);
      m = Math.max(1, Math.min(MAX_STEP, Math.floor(left / perRow)));
    }
    const summary = summarizeSums(sums)!;
    log(`global importance: ${sums.n} holdout rows explained in ${((performance.now() - started) / 1000).toFixed(1)} s; largest ${summary.features[0]!.feature} (mean |contribution| ${summary.features[0]!.mean_abs.toFixed(4)})`);
    const cut = sums.n < n ? ` (the first ${sums.n} of ${n}: the ${BUDGET_MS / 1000} s budget was spent)` : '';
    return { ...summary, source: `${sums.n} holdout rows drawn at random (seed ${seed + 1})${cut}, each explained for ${width === 2 ? 'the positive class' : 'its top class'}` };
  } finally {
    await session.release();
  }
}
