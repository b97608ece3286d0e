import type { GbtParams } from '../gbt';
import type { Candidate, Family, SelectionData } from '../selection';
import { searchBlend } from './blend';
import { searchGbt } from './gbt';
import { searchLogistic } from './linear';
import { searchMlp } from './mlp';

export interface SelectionOptions {
  families: Family[];
  gbt?: Partial<GbtParams>;
  maxEpochs?: number;
}

/**
 * Runs every family's cross-validated search, then the blends of the trees with each other
 * family, and returns the candidate with the best out-of-fold score (on a tie, the one found
 * first: single families before blends).
 */
export function selectModel(data: SelectionData, options: SelectionOptions): { chosen: Candidate; candidates: Candidate[] } {
  const candidates: Candidate[] = [];
  for (const family of options.families) {
    data.log(`${family}: searching on ${data.plan.folds.length} fold${data.plan.folds.length === 1 ? '' : 's'}`);
    const candidate = family === 'gbt' ? searchGbt(data, options.gbt) : family === 'logistic' ? searchLogistic(data) : searchMlp(data, { maxEpochs: options.maxEpochs });
    data.log(`${family}: out-of-fold ${data.classes.length === 2 ? 'AUC' : 'minus log loss'} ${candidate.score.toFixed(4)} (${candidate.seconds.toFixed(1)}s)`);
    candidates.push(candidate);
  }
  const trees = candidates.find((c) => c.family === 'gbt');
  if (trees) {
    for (const other of candidates.filter((c) => c.family !== 'gbt')) {
      const blend = searchBlend(data, trees, other);
      if (blend) candidates.push(blend);
    }
  }
  const chosen = candidates.reduce((best, c) => (c.score > best.score ? c : best));
  return { chosen, candidates };
}
