import trainingDefaults from '../../../models/training.json';
import { emitGbt } from '../export';
import { DEFAULT_GBT, gbtProbabilities, trainGbt, type GbtModel, type GbtParams } from '../gbt';
import { applyTreeInput, describeTreeInput, emitTreeInput, fitTreeInput } from '../tree-input';
import { labelsOf, oofScore, SCORE_TIE, scoreName, type Candidate, type FittedModel, type SelectionData } from '../selection';

/**
 * Boosted trees: a few tree shapes (from LightGBM's defaults to shallow, strongly regularised
 * trees for small tables) and, for categorical columns that are ordered codes, their own order or
 * the positive-rate order. Every setting trains on each fold with early stopping; the rounds are
 * chosen where the folds' summed validation loss is lowest (one count for all folds, as lgb.cv
 * does), the out-of-fold predictions come from the trees up to that round, and the refit on all
 * training rows grows exactly that many rounds.
 */
export function searchGbt(data: SelectionData, overrides: Partial<GbtParams> = {}): Candidate {
  const started = Date.now();
  const base: GbtParams = { ...DEFAULT_GBT, ...(trainingDefaults.gbt as Partial<GbtParams>), seed: data.seed };
  const largest = Math.max(...data.plan.folds.map((f) => f.fit.length));
  const shapes = (largest <= 50_000 ? SMALL_DATA_SHAPES : LARGE_DATA_SHAPES).map((s) => ({ ...base, ...s, ...overrides, seed: data.seed }));
  const binary = data.classes.length === 2;
  const categorical = data.columns.filter((c) => c.kind === 'categorical');
  // Binary labels: categories ordered by positive rate; ordered codes may keep their own order.
  const allByRate = new Set(binary ? categorical.map((c) => c.name) : []);
  const orderedNatural = new Set(binary ? categorical.filter((c) => !(c.kind === 'categorical' && c.ordered)).map((c) => c.name) : []);
  const tried: Candidate['tried'] = [];
  let best: (Evaluation & { params: GbtParams; byRate: Set<string> }) | null = null;
  const consider = (params: GbtParams, byRate: Set<string>, label: Record<string, unknown>) => {
    const e = evaluate(data, params, byRate, overrides.maxRounds ?? ROUND_CAP);
    tried.push({ settings: { ...label, rounds: e.rounds }, score: e.score });
    data.log(`gbt: ${JSON.stringify(label)}: out-of-fold ${scoreName(data)} ${e.score.toFixed(4)} at ${e.rounds} rounds`);
    if (!best || e.score > best.score + SCORE_TIE) best = { ...e, params, byRate };
  };
  for (const params of shapes) consider(params, allByRate, shapeLabel(params));
  const chosen = best!;
  if (orderedNatural.size !== allByRate.size) consider(chosen.params, orderedNatural, { ...shapeLabel(chosen.params), ordered_codes: 'own order' });
  const final = best! as Evaluation & { params: GbtParams; byRate: Set<string> };
  const settings = { ...shapeLabel(final.params), rounds: final.rounds, categories: describeOrder(data, final.byRate) };
  return {
    family: 'gbt',
    oof: final.oof,
    score: final.score,
    settings,
    tried,
    seconds: (Date.now() - started) / 1000,
    refit: () => refitGbt(data, final.params, final.rounds, final.byRate),
    kept: final.holdout && { rows: final.holdout.rows, model: () => gbtFitted(data, final.params, final.rounds, final.holdout!.input, final.holdout!.model) },
  };
}

/** Tree shapes tried on small tables (at most 50,000 rows per fold), from deep to shallow. */
const SMALL_DATA_SHAPES: Partial<GbtParams>[] = [
  { learningRate: 0.05, maxLeaves: 31, minSamplesLeaf: 20, featureSubsample: 0.9 },
  { learningRate: 0.05, maxLeaves: 15, minSamplesLeaf: 40, featureSubsample: 0.8 },
  { learningRate: 0.05, maxLeaves: 7, minSamplesLeaf: 50, featureSubsample: 0.7 },
  { learningRate: 0.05, maxLeaves: 4, minSamplesLeaf: 100, featureSubsample: 0.7 },
];
/** On large tables the defaults (models/training.json) and one more regularised shape. */
const LARGE_DATA_SHAPES: Partial<GbtParams>[] = [{}, { maxLeaves: 63, minSamplesLeaf: 100 }];

interface Evaluation {
  oof: Float64Array;
  score: number;
  rounds: number;
  /** On a holdout plan: the fold's model at the chosen rounds, with its input mapping. */
  holdout?: { model: GbtModel; input: ReturnType<typeof fitTreeInput>; rows: number };
}

/** Rounds a fold may grow before its early stopping must have fired (unless --gbt sets maxRounds). */
const ROUND_CAP = 3000;

function evaluate(data: SelectionData, params: GbtParams, byRate: Set<string>, cap: number): Evaluation {
  const k = data.classes.length;
  const D = data.columns.length;
  const runs = data.plan.folds.map((fold) => {
    const input = fitTreeInput(data.columns, data.X, fold.fit, data.y, byRate);
    const check = applyTreeInput(input, data.X, fold.check);
    const { model, report } = trainGbt(
      { X: applyTreeInput(input, data.X, fold.fit), rows: fold.fit.length, cols: D, y: labelsOf(data, fold.fit) },
      { X: check, rows: fold.check.length, cols: D, y: labelsOf(data, fold.check) },
      k,
      // Folds share one round count (their summed loss), so each runs well past its own best; a
      // single holdout (large data) stops at the configured patience.
      { ...params, maxRounds: cap, earlyStoppingRounds: data.plan.kind === 'holdout' ? params.earlyStoppingRounds : Math.max(params.earlyStoppingRounds, 50) },
      { keepAllTrees: true },
    );
    return { fold, model, history: report.history, check, input };
  });
  // One round count for all folds: where their summed validation loss (row-weighted) is lowest.
  const longest = Math.max(...runs.map((r) => r.history.length));
  let rounds = 1;
  let lowest = Infinity;
  for (let i = 0; i < longest; i++) {
    let total = 0;
    for (const r of runs) total += r.fold.check.length * r.history[Math.min(i, r.history.length - 1)]!;
    if (total < lowest - 1e-12) {
      lowest = total;
      rounds = i + 1;
    }
  }
  const oof = new Float64Array(data.X.length / D * k);
  for (const r of runs) {
    const truncated: GbtModel = { ...r.model, trees: r.model.trees.slice(0, rounds * (k === 2 ? 1 : k)) };
    const P = gbtProbabilities(truncated, r.check, r.fold.check.length);
    r.fold.check.forEach((row, i) => oof.set(P.subarray(i * k, (i + 1) * k), row * k));
  }
  const only = data.plan.kind === 'holdout' ? runs[0]! : null;
  const holdout = only ? { model: { ...only.model, trees: only.model.trees.slice(0, rounds * (k === 2 ? 1 : k)) }, input: only.input, rows: only.fold.fit.length } : undefined;
  return { oof, score: oofScore(oof, data), rounds, holdout };
}

function refitGbt(data: SelectionData, params: GbtParams, rounds: number, byRate: Set<string>): FittedModel {
  const D = data.columns.length;
  const input = fitTreeInput(data.columns, data.X, data.train, data.y, byRate);
  const { model } = trainGbt({ X: applyTreeInput(input, data.X, data.train), rows: data.train.length, cols: D, y: labelsOf(data, data.train) }, null, data.classes.length, {
    ...params,
    maxRounds: rounds,
  });
  return gbtFitted(data, params, rounds, input, model);
}

function gbtFitted(data: SelectionData, params: GbtParams, rounds: number, input: ReturnType<typeof fitTreeInput>, model: GbtModel): FittedModel {
  const D = data.columns.length;
  return {
    family: 'gbt',
    probabilities: (X, rows) => gbtProbabilities(model, applyTreeInput(input, X.subarray(0, rows * D)), rows),
    emit: (g, x, prefix) => emitGbt(g, emitTreeInput(g, x, input, `${prefix}_input`), model, data.classes, prefix),
    preprocessing: [
      ...describeTreeInput(input, data.columns),
      { step: 'trees', missing_values: 'routed by each split (nodes_missing_value_tracks_true)', scaling: 'none', in_graph: true },
    ],
    hyperparameters: { ...params, maxRounds: rounds, trees: model.trees.length } as unknown as Record<string, unknown>,
    trees: input.remaps.length ? undefined : model,
  };
}

function shapeLabel(p: GbtParams): Record<string, unknown> {
  return { learning_rate: p.learningRate, leaves: p.maxLeaves, min_leaf: p.minSamplesLeaf, feature_fraction: p.featureSubsample };
}

function describeOrder(data: SelectionData, byRate: Set<string>): Record<string, string> {
  return Object.fromEntries(data.columns.filter((c) => c.kind === 'categorical').map((c) => [c.name, byRate.has(c.name) ? 'positive-rate order' : 'own order']));
}

