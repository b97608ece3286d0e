import { oofScore, SCORE_TIE, scoreName, type Candidate, type FittedModel, type SelectionData } from '../selection';

/** Weights of the first model tried in a blend (the second gets the rest). */
const WEIGHTS = [0.25, 0.5, 0.75];

/**
 * A weighted average of two candidates' probabilities, when the folds say it beats both: the
 * weight is chosen on the out-of-fold predictions (both candidates' folds are the same rows). The
 * refit blends the two refit models inside one graph, both reading the same raw input.
 */
export function searchBlend(data: SelectionData, a: Candidate, b: Candidate): Candidate | null {
  const started = Date.now();
  const tried: Candidate['tried'] = [];
  let best: { weight: number; score: number; oof: Float64Array } | null = null;
  for (const weight of WEIGHTS) {
    const oof = new Float64Array(a.oof.length);
    for (let i = 0; i < oof.length; i++) oof[i] = weight * a.oof[i]! + (1 - weight) * b.oof[i]!;
    const score = oofScore(oof, data);
    tried.push({ settings: { [a.family]: weight, [b.family]: 1 - weight }, score });
    if (!best || score > best.score) best = { weight, score, oof };
  }
  const chosen = best!;
  data.log(`blend of ${a.family} and ${b.family}: out-of-fold ${scoreName(data)} ${chosen.score.toFixed(4)} at weights ${chosen.weight}/${1 - chosen.weight}`);
  if (chosen.score <= Math.max(a.score, b.score) + SCORE_TIE) return null;
  return {
    family: 'blend',
    oof: chosen.oof,
    score: chosen.score,
    settings: { members: [a.family, b.family], weights: [chosen.weight, 1 - chosen.weight], member_settings: [a.settings, b.settings] },
    tried,
    seconds: (Date.now() - started) / 1000 + a.seconds + b.seconds,
    refit: () => blendModels(a.refit(), b.refit(), chosen.weight),
  };
}

function blendModels(a: FittedModel, b: FittedModel, weight: number): FittedModel {
  return {
    family: 'blend',
    probabilities: (X, rows) => {
      const pa = a.probabilities(X, rows);
      const pb = b.probabilities(X, rows);
      // float32 weights, as the graph multiplies by them.
      const wa = Math.fround(weight);
      const wb = Math.fround(1 - weight);
      return pa.map((v, i) => wa * v + wb * pb[i]!);
    },
    emit: (g, x, prefix) => {
      const pa = a.emit(g, x, `${prefix}_a`);
      const pb = b.emit(g, x, `${prefix}_b`);
      const [sa] = g.node('Mul', [pa, g.constant(`${prefix}_weight_a`, [1], [weight])]);
      const [sb] = g.node('Mul', [pb, g.constant(`${prefix}_weight_b`, [1], [1 - weight])]);
      return g.node('Add', [sa!, sb!])[0]!;
    },
    preprocessing: [
      { step: 'blend', members: [a.family, b.family], weights: [weight, 1 - weight], in_graph: true },
      { member: a.family, steps: a.preprocessing },
      { member: b.family, steps: b.preprocessing },
    ],
    hyperparameters: { members: [a.family, b.family], weights: [weight, 1 - weight], [a.family]: a.hyperparameters, [b.family]: b.hyperparameters },
  };
}
