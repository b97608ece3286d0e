import { LogLines, type PredictionLog } from '../monitoring/log';
import { shadowAnswers, type ShadowScorer } from '../monitoring/shadow';
import { logContext, logger, telemetry } from '../observability';
import { checkBatchSize } from '../scoring/api';
import { sourcesOf, type PredictionType, type ResultSource } from '../scoring/results';
import type { BatchOutcome, ScoringService } from '../scoring/service';

export interface PredictionRequest {
  customerIds: string[];
  type: PredictionType;
  /** Answers carry their reasons. */
  explain?: boolean;
  /** A batch request (limited to `maxCustomers` distinct ids) or a single customer. */
  batch: boolean;
  deadlineMs: number;
  /** The invocation's request id, recorded with its logged answers. */
  requestId?: string;
}

/**
 * Answers the prediction routes (single, batch and the old contract): checks the batch size,
 * scores, and records what was served: predictions by type and source (model, mock or rules),
 * warnings by code, answers from a stale model, batch sizes and deadline hits. Once the answer is
 * built, it is written to the prediction log (single answers sampled), with a sample of batches
 * also scored by the challenger; neither can change or fail the answer.
 */
export class PredictionService {
  constructor(
    private readonly deps: {
      scoring: ScoringService;
      maxCustomers: number;
      log?: PredictionLog;
      shadow?: { scorer: ShadowScorer; sampleRate: number };
    },
  ) {}

  async predict(request: PredictionRequest): Promise<BatchOutcome> {
    if (request.batch) checkBatchSize(request.customerIds, this.deps.maxCustomers);
    const logged = this.deps.log?.sampled(request.batch) ?? false;
    const shadowed = logged && request.batch && this.deps.shadow !== undefined && Math.random() < this.deps.shadow.sampleRate;
    const outcome = await this.deps.scoring.score(request.customerIds, request.type, request.deadlineMs, { keepInputs: shadowed, explain: request.explain === true });
    this.record(outcome, request.batch);
    if (logged) await this.writeLog(outcome, request, shadowed);
    return outcome;
  }

  /** Logs the answers (and the challenger's, when sampled); never throws. */
  private async writeLog(outcome: BatchOutcome, request: PredictionRequest, shadowed: boolean): Promise<void> {
    try {
      const context = { t: new Date().toISOString(), origin: `req:${request.requestId ?? 'local'}`, asOf: outcome.asOf };
      const lines = new LogLines().add(outcome.results, { ...context, warnings: outcome.warnings.map((w) => w.code) });
      if (shadowed) lines.add(await shadowAnswers(this.deps.shadow?.scorer, outcome), { ...context, shadow: true });
      await this.deps.log!.write(lines, { t: context.t });
    } catch (error) {
      logger.error('prediction log skipped', { error: (error as Error).message });
    }
  }

  private record(outcome: BatchOutcome, batch: boolean): void {
    const sources = new Map<string, { source: ResultSource; answers: number }>();
    for (const { result } of outcome.results) {
      for (const source of sourcesOf(result)) {
        const key = source.type === 'model' ? `${source.name}@${source.version}` : `${source.name}:${source.type}`;
        const entry = sources.get(key) ?? { source, answers: 0 };
        entry.answers++;
        sources.set(key, entry);
      }
    }
    for (const { source, answers } of sources.values()) {
      telemetry.count('Predictions', answers, { Model: source.name, Source: source.type });
      if (source.type === 'mock') telemetry.count('MockPredictions', answers);
    }
    for (const w of outcome.warnings) {
      telemetry.count('PredictionWarnings', 1, { Code: w.code });
      if (w.code === 'stale_model') telemetry.count('StaleModelAnswers', outcome.results.length);
    }
    if (batch) telemetry.count('BatchSize', outcome.ids.length);
    if (outcome.timedOut.length) telemetry.count('DeadlineHits');
    const served = [...sources.values()].map(({ source }) => (source.type === 'model' ? `${source.name} v${source.version} (${source.alias})` : `${source.name} (${source.type})`));
    logContext({ prediction_type: outcome.type });
    logger.info('scored', {
      customers: outcome.ids.length,
      successful: outcome.results.length,
      failed: outcome.errors.length,
      timed_out: outcome.timedOut.length,
      served_by: served,
      warnings: outcome.warnings.map((w) => w.code),
      timings_ms: outcome.timings,
    });
  }
}
