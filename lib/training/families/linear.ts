import { Rng } from '../../random';
import { buildDesign, describeDesign, designWidth, fitDesign, type Design, type DesignChoice } from '../design';
import { emitNet, netProbabilities, toFloat32, type NetModel } from '../export';
import { fitLinear, linearProbabilities, type LinearFit } from '../linear';
import { labelsOf, oofScore, SCORE_TIE, scoreName, type Candidate, type FittedModel, type SelectionData } from '../selection';

/**
 * Logistic regression (softmax for several classes) worth shipping: fitted to convergence by
 * L-BFGS, with its L2 strength chosen on the folds along a path of penalties (each fit starting
 * from the previous one), then a greedy search that keeps a change only when the out-of-fold score
 * improves: hinge terms for numeric columns (threshold and convex effects), log1p for skewed
 * columns, per categorical column one-hot, target encoding or (for ordered codes) a number, and
 * balanced class weights (the intercept is shifted back so probabilities keep the real prior).
 */
export function searchLogistic(data: SelectionData): Candidate {
  const started = Date.now();
  const binary = data.classes.length === 2;
  const categorical = data.columns.filter((c) => c.kind === 'categorical');
  const tried: Candidate['tried'] = [];
  const cache = new FoldDesigns(data);
  let best: Setting = { choice: { knots: 0, log: false, categorical: Object.fromEntries(categorical.map((c) => [c.name, 'one_hot'])) }, balanced: false, l2: 0, score: -Infinity, oof: new Float64Array(0) };
  const consider = (choice: DesignChoice, balanced: boolean, penalties: number[], what: string) => {
    const r = cache.evaluate(choice, balanced, penalties);
    tried.push({ settings: { ...settingsOf(choice, balanced), l2: r.l2 }, score: r.score });
    data.log(`logistic: ${what}: out-of-fold ${scoreName(data)} ${r.score.toFixed(4)} (L2 ${r.l2})`);
    if (r.score > best.score + SCORE_TIE) best = { choice, balanced, ...r };
  };
  consider(best.choice, false, PENALTIES, 'linear terms, one-hot categories');
  const around = () => [best.l2 * 10, best.l2 * 3, best.l2, best.l2 / 3];
  consider({ ...best.choice, knots: 3 }, best.balanced, around(), '3 hinge knots per numeric column');
  // More knots only when some helped (and not for several classes, where each fit costs K times more).
  if (best.choice.knots === 3 && binary) consider({ ...best.choice, knots: 6 }, best.balanced, around(), '6 hinge knots per numeric column');
  consider({ ...best.choice, log: true }, best.balanced, around(), 'log1p of skewed columns');
  if (binary) {
    for (const col of categorical) {
      const modes: ('target' | 'numeric')[] = col.kind === 'categorical' && col.ordered ? ['numeric', 'target'] : ['target'];
      for (const mode of modes) consider({ ...best.choice, categorical: { ...best.choice.categorical, [col.name]: mode } }, best.balanced, around(), `${col.name} as ${mode === 'numeric' ? 'an ordered number' : 'target encoding'}`);
    }
    consider(best.choice, true, around(), 'balanced class weights');
  }
  const final = best;
  return {
    family: 'logistic',
    oof: final.oof,
    score: final.score,
    settings: { ...settingsOf(final.choice, final.balanced), l2: final.l2 },
    tried,
    seconds: (Date.now() - started) / 1000,
    refit: () => refitLogistic(data, final),
  };
}

/** L2 penalties tried first, strongest first (each fit warm-starts from the previous one). */
const PENALTIES = [1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5];
/** Convergence tolerance of the fits that only rank settings (the refit converges fully). */
const SEARCH_TOLERANCE = 1e-7;
/** Training rows the refit uses at most (a seeded sample above). */
export const LINEAR_MAX_ROWS = 100_000;
/**
 * Rows each fold's fits use at most while searching (a seeded sample above): settings rank the
 * same on a sample, at a fraction of the time. The refit scales the chosen L2 by the ratio of the
 * row counts, as the penalty is per row of the mean loss.
 */
export const SEARCH_MAX_ROWS = 50_000;
/** The same for several classes, where every fit costs one pass per class. */
const MULTICLASS_SEARCH_MAX_ROWS = 10_000;

interface Setting {
  choice: DesignChoice;
  balanced: boolean;
  l2: number;
  score: number;
  oof: Float64Array;
}

/** Fold designs, fitted once per design choice and reused along the penalty path. */
class FoldDesigns {
  private readonly designs = new Map<string, { design: Design; Z: Float64Array; checkZ: Float64Array; fit: Uint32Array }[]>();

  constructor(private readonly data: SelectionData) {}

  evaluate(choice: DesignChoice, balanced: boolean, penalties: number[]): { l2: number; score: number; oof: Float64Array } {
    const { data } = this;
    const k = data.classes.length;
    const folds = this.designsOf(choice);
    const size = (data.X.length / data.columns.length) * k;
    let oof = new Float64Array(size);
    const fits: ((p: number) => void)[] = [];
    folds.forEach((f, i) => {
      const fold = data.plan.folds[i]!;
      const width = designWidth(f.design);
      const y = labelsOf(data, f.fit);
      const weights = balanced ? balancedWeights(y, k) : undefined;
      let start: LinearFit | undefined;
      fits.push((p: number) => {
        const fit = fitLinear({ Z: f.Z, rows: f.fit.length, width, y, weights: weights?.rows }, k, { l2: penalties[p]!, start, tolerance: SEARCH_TOLERANCE });
        start = fit;
        const P = linearProbabilities(weights ? priorCorrected(fit, weights.classes) : fit, f.checkZ, fold.check.length, width);
        fold.check.forEach((row, j) => oof.set(P.subarray(j * k, (j + 1) * k), row * k));
      });
    });
    // Along the path, strongest penalty first; stop once two in a row score below the best.
    let best = { index: -1, score: -Infinity, oof };
    for (let p = 0; p < penalties.length; p++) {
      for (const fit of fits) fit(p);
      const score = oofScore(oof, data);
      if (score > best.score + SCORE_TIE) {
        best = { index: p, score, oof };
        oof = new Float64Array(size);
      } else if (p - best.index >= 2) break;
    }
    return { l2: penalties[best.index]!, score: best.score, oof: best.oof };
  }

  private designsOf(choice: DesignChoice) {
    const key = JSON.stringify(choice);
    let folds = this.designs.get(key);
    if (!folds) {
      const { data } = this;
      folds = data.plan.folds.map((fold) => {
        const fit = sampleRows(fold.fit, data.classes.length === 2 ? SEARCH_MAX_ROWS : MULTICLASS_SEARCH_MAX_ROWS, data.seed);
        const { design, Z } = fitDesign(data.columns, data.X, fit, data.y, choice, data.seed);
        return { design, Z, checkZ: buildDesign(design, data.X, fold.check), fit };
      });
      this.designs.set(key, folds);
    }
    return folds;
  }
}

function refitLogistic(data: SelectionData, s: Setting): FittedModel {
  const k = data.classes.length;
  const rows = sampleRows(data.train, LINEAR_MAX_ROWS, data.seed);
  const { design, Z } = fitDesign(data.columns, data.X, rows, data.y, s.choice, data.seed);
  const y = labelsOf(data, rows);
  const weights = s.balanced ? balancedWeights(y, k) : undefined;
  const cap = data.classes.length === 2 ? SEARCH_MAX_ROWS : MULTICLASS_SEARCH_MAX_ROWS;
  const searched = Math.min(...data.plan.folds.map((f) => Math.min(f.fit.length, cap)));
  const l2 = searched < rows.length ? (s.l2 * searched) / rows.length : s.l2;
  const raw = fitLinear({ Z, rows: rows.length, width: designWidth(design), y, weights: weights?.rows }, k, { l2, tolerance: 1e-9 });
  const fit = weights ? priorCorrected(raw, weights.classes) : raw;
  const model: NetModel = toFloat32({
    kind: 'net',
    design,
    net: { layers: [{ inputs: designWidth(design), outputs: fit.outputs, W: fit.W, b: fit.b }], output: k === 2 ? 'sigmoid' : 'softmax' },
    classes: k,
  });
  return {
    family: 'logistic',
    probabilities: (X, n) => netProbabilities(model, X, n),
    emit: (g, x, prefix) => emitNet(g, x, model, prefix),
    preprocessing: [...describeDesign(design, data.columns).map((step) => ({ ...step, in_graph: true }))],
    hyperparameters: {
      ...settingsOf(s.choice, s.balanced),
      l2,
      searched_l2: s.l2,
      solver: 'L-BFGS (full batch)',
      iterations: raw.iterations,
      converged: raw.converged,
      training_rows: rows.length,
    },
  };
}

function settingsOf(choice: DesignChoice, balanced: boolean): Record<string, unknown> {
  return { hinge_knots: choice.knots, log1p_skewed: choice.log, categories: choice.categorical, class_weight: balanced ? 'balanced' : 'none' };
}

/** Balanced class weights: each class carries the same total weight. */
function balancedWeights(y: Int32Array, k: number): { rows: Float64Array; classes: number[] } {
  const counts = new Array<number>(k).fill(0);
  for (const label of y) counts[label]!++;
  const classes = counts.map((c) => (c > 0 ? y.length / (k * c) : 0));
  return { rows: Float64Array.from(y, (label) => classes[label]!), classes };
}

/**
 * Class weighting shifts the learned log-odds by log(weight); removing that from the intercepts
 * restores probabilities calibrated to the real class frequencies.
 */
function priorCorrected(fit: LinearFit, classWeights: number[]): LinearFit {
  const b = fit.b.slice();
  if (fit.outputs === 1) b[0] = b[0]! - Math.log(classWeights[1]! / classWeights[0]!);
  else for (let c = 0; c < fit.outputs; c++) b[c] = b[c]! - Math.log(classWeights[c]!);
  return { ...fit, b };
}

/** At most `limit` of the rows, a seeded sample in row order. */
export function sampleRows(rows: Uint32Array, limit: number, seed: number): Uint32Array {
  if (rows.length <= limit) return rows;
  const rng = new Rng(seed ^ 0x51ed270b);
  const keep = new Uint8Array(rows.length);
  let chosen = 0;
  // Selection sampling (Knuth's algorithm S): exactly `limit` rows, each equally likely.
  for (let i = 0; i < rows.length && chosen < limit; i++) {
    if (rng.next() * (rows.length - i) < limit - chosen) {
      keep[i] = 1;
      chosen++;
    }
  }
  return Uint32Array.from(Array.from(rows).filter((_, i) => keep[i]));
}
