import trainingDefaults from '../../../models/training.json';
import type { GbtParams } from '../gbt';
import { scoreName, scoredByAuc, type Candidate, type Family, type SelectionData } from '../selection';
import { searchBlend } from './blend';
import { searchGbt } from './gbt';
import { searchLogistic } from './linear';
import { searchMlp } from './mlp';

export interface SelectionOptions {
  families: Family[];
  gbt?: Partial<GbtParams>;
  maxEpochs?: number;
}

/** Serving cost, cheapest first: a linear graph, a small network, a tree ensemble, two models. */
const SERVING_COST: Record<Candidate['family'], number> = { logistic: 0, mlp: 1, gbt: 2, blend: 3 };

/**
 * Runs every family's cross-validated search, then the blends of the trees with each other
 * family, and returns the candidate to ship: the best out-of-fold score, unless a candidate that
 * serves faster (logistic, then MLP, then trees, then blends) is within the selection tolerance
 * of it (models/training.json): a slower model must earn its cost in every scoring call.
 */
export function selectModel(data: SelectionData, options: SelectionOptions): { chosen: Candidate; candidates: Candidate[] } {
  const candidates: Candidate[] = [];
  for (const family of options.families) {
    data.log(`${family}: searching on ${data.plan.folds.length} fold${data.plan.folds.length === 1 ? '' : 's'}`);
    const candidate = family === 'gbt' ? searchGbt(data, options.gbt) : family === 'logistic' ? searchLogistic(data) : searchMlp(data, { maxEpochs: options.maxEpochs });
    data.log(`${family}: out-of-fold ${scoreName(data)} ${candidate.score.toFixed(4)} (${candidate.seconds.toFixed(1)}s)`);
    candidates.push(candidate);
  }
  const trees = candidates.find((c) => c.family === 'gbt');
  if (trees) {
    for (const other of candidates.filter((c) => c.family !== 'gbt')) {
      const blend = searchBlend(data, trees, other);
      if (blend) candidates.push(blend);
    }
  }
  const best = candidates.reduce((a, c) => (c.score > a.score ? c : a));
  const tolerance = scoredByAuc(data) ? trainingDefaults.selection_tolerance.auc : trainingDefaults.selection_tolerance.log_loss;
  const chosen = candidates.filter((c) => c.score >= best.score - tolerance).reduce((a, c) => (SERVING_COST[c.family] < SERVING_COST[a.family] ? c : a));
  if (chosen !== best) data.log(`${chosen.family} is within ${tolerance} of ${best.family}'s out-of-fold score and serves faster: shipping ${chosen.family}`);
  return { chosen, candidates };
}
