import { logger, telemetry } from '../observability';
import { sourcesOf, type CustomerResult, type ResultSource } from '../scoring/results';
import type { BatchOutcome, MatrixScores, ScoringService } from '../scoring/service';

/**
 * The challenger: the same scoring path over the challenger alias's models (staging by default),
 * run on the features the served answer was computed from, after that answer is ready. Its
 * answers are only logged (shadow: true), never returned. A model whose challenger is the served
 * version itself, or that has no challenger version, is skipped.
 */
export class ShadowScorer {
  constructor(readonly scoring: ScoringService) {}

  /** Challenger answers for the churn and NBO parts of a served outcome (scored with `keepInputs`). */
  async score(served: BatchOutcome): Promise<{ customer_id: string; result: CustomerResult }[]> {
    const ids = served.results.map((r) => r.customer_id).filter((id) => served.inputs.has(id));
    if (ids.length === 0) return [];
    const features = ids.map((id) => served.inputs.get(id)!);
    const servedVersions = servedModelVersions(served);
    const out: { customer_id: string; result: CustomerResult }[] = [];
    for (const part of ['churn', 'nbo'] as const) {
      const servedPart = served.type === part || (served.type === 'all' && served.results.some((r) => part in r.result));
      if (!servedPart) continue;
      let outcome: BatchOutcome;
      try {
        outcome = await this.scoring.scoreFeatures(ids, features, part);
      } catch (error) {
        // No challenger version (the usual case) or one that cannot load: nothing to compare.
        logger.debug('no shadow answers', { model: part, reason: (error as Error).message });
        continue;
      }
      const first = outcome.results[0]?.result as { source?: ResultSource } | undefined;
      const source = first?.source;
      if (!source || source.type !== 'model' || servedVersions.get(part) === source.version) continue;
      out.push(...outcome.results);
      telemetry.count('ShadowPredictions', outcome.results.length, { Model: part });
    }
    return out;
  }
}

/**
 * Challenger scores for a segment chunk's matrix (the worker's columnar path): churn and NBO where
 * the served chunk has them and the challenger is another version. Failures are counted, never raised.
 */
export async function shadowMatrix(shadow: ShadowScorer | undefined, served: MatrixScores, X: Float64Array): Promise<MatrixScores[]> {
  if (!shadow) return [];
  const challenger: MatrixScores = { ids: served.ids, warnings: [] };
  for (const part of ['churn', 'nbo'] as const) {
    const mine = served[part];
    if (!mine) continue;
    let scores: MatrixScores;
    try {
      scores = await shadow.scoring.scoreMatrix(served.ids, X, { parts: [part], deadlineMs: 60_000, quintiles: null });
    } catch (error) {
      logger.debug('no shadow answers', { model: part, reason: (error as Error).message });
      continue;
    }
    const source = scores[part]?.source;
    if (!source || source.type !== 'model' || (mine.source.type === 'model' && mine.source.version === source.version)) continue;
    if (part === 'churn') challenger.churn = scores.churn;
    else challenger.nbo = scores.nbo;
    telemetry.count('ShadowPredictions', served.ids.length, { Model: part });
  }
  return challenger.churn || challenger.nbo ? [challenger] : [];
}

/** The model version each model part of an outcome was served by (one batch, one version per model). */
function servedModelVersions(outcome: BatchOutcome): Map<string, number> {
  const first = outcome.results[0]?.result;
  const sources = first ? sourcesOf(first) : [];
  return new Map(sources.flatMap((s) => (s.type === 'model' ? [[s.name, s.version] as const] : [])));
}

/** Shadow failures are counted, never raised: a challenger must not cost the caller an answer. */
export async function shadowAnswers(shadow: ShadowScorer | undefined, served: BatchOutcome): Promise<{ customer_id: string; result: CustomerResult }[]> {
  if (!shadow) return [];
  try {
    return await shadow.score(served);
  } catch (error) {
    telemetry.count('ShadowFailures', 1);
    logger.warn('shadow scoring failed; the served answers are unaffected', { error: (error as Error).message });
    return [];
  }
}
