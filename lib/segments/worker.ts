import { z } from 'zod';
import { LogLines, type PredictionLog } from '../monitoring/log';
import { shadowAnswers, type ShadowScorer } from '../monitoring/shadow';
import type { BatchOutcome, ScoringService } from '../scoring/service';
import type { AllResult } from '../scoring/results';
import { FEATURES } from '../catalog';
import { SERVING_WARNINGS } from '../scoring/warnings';
import type { ResultSource } from '../scoring/results';
import { addCustomer, emptyAggregate, tallyModel, type CompactResult, type ModelTally } from './aggregates';
import { SCORE_TYPES, SEGMENT_ID, RUN_ID, type ChunkPart, type SegmentRunStore } from './runs';

export const WorkerPayloadSchema = z.object({
  run_id: z.string().regex(RUN_ID),
  segment_id: z.string().regex(SEGMENT_ID),
  chunk: z.number().int().positive(),
  attempt: z.number().int().positive(),
  customer_ids: z.array(z.string().min(1).max(128)).min(1).max(10_000),
  types: z.array(z.enum(SCORE_TYPES)).min(1),
});

export type WorkerPayload = z.infer<typeof WorkerPayloadSchema>;

export const WorkerResultSchema = z.object({
  chunk: z.number().int().positive(),
  scored: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});
export type WorkerResult = z.infer<typeof WorkerResultSchema>;

/**
 * Test hook: chunks that fail on their first attempt, or on every attempt (local and test stages
 * only), optionally for one segment.
 */
export interface FaultPlan {
  failOnce: number[];
  failAlways: number[];
  /** Only this segment's chunks fail (all segments when absent). */
  segment?: string;
}

/** Parses SEGMENT_WORKER_FAULTS, e.g. "fail-once:1,3;fail-always@new:2". */
export function parseFaultPlan(value: string | undefined): FaultPlan[] | null {
  if (!value) return null;
  return value
    .split(';')
    .filter(Boolean)
    .map((part) => {
      const [head, list] = part.split(':');
      const [kind, segment] = (head ?? '').split('@');
      const chunks = (list ?? '').split(',').filter(Boolean).map(Number);
      return { failOnce: kind === 'fail-once' ? chunks : [], failAlways: kind === 'fail-always' ? chunks : [], ...(segment ? { segment } : {}) };
    });
}

/**
 * Scores one chunk of a segment with the same code as the batch API (one warehouse query, one
 * ONNX run per model) and writes its part object: per-customer results and the partial aggregate.
 * Customers the warehouse lacks are counted as failed; a timeout throws so the chunk is retried.
 */
export async function scoreChunk(
  payload: WorkerPayload,
  deps: { scoring: ScoringService; runs: SegmentRunStore; deadlineMs: number; faults?: FaultPlan[] | null; log?: PredictionLog; shadow?: ShadowScorer },
): Promise<WorkerResult> {
  for (const f of deps.faults ?? []) {
    if (f.segment !== undefined && f.segment !== payload.segment_id) continue;
    if (f.failAlways.includes(payload.chunk) || (f.failOnce.includes(payload.chunk) && payload.attempt === 1)) {
      throw new Error(`Injected fault for chunk ${payload.chunk}, attempt ${payload.attempt}`);
    }
  }
  const outcome = await deps.scoring.score(payload.customer_ids, 'all', deps.deadlineMs, { parts: payload.types, keepInputs: true });
  if (outcome.timedOut.length) throw new ChunkTimeoutError(`${outcome.timedOut.length} customers of chunk ${payload.chunk} were not scored within ${Math.round(deps.deadlineMs / 1000)} s`);

  const aggregate = emptyAggregate(FEATURES);
  const customers: CompactResult[] = [];
  for (const { customer_id, result } of outcome.results) {
    const r = result as Partial<AllResult>;
    const compact: CompactResult = { id: customer_id };
    if (r.churn) {
      compact.churn = r.churn.churn_probability;
      compact.risk = r.churn.churn_risk;
      tallyModel(aggregate.models, servedBy(r.churn.source));
    }
    if (r.nbo) {
      compact.offer = r.nbo.offer_id;
      compact.confidence = r.nbo.confidence;
      tallyModel(aggregate.models, servedBy(r.nbo.source));
    }
    if (r.rfm) {
      compact.rfm = r.rfm.rfm_score;
      compact.rfm_segment = r.rfm.segment;
    }
    customers.push(compact);
    addCustomer(aggregate, compact, outcome.inputs.get(customer_id));
  }
  aggregate.failed = outcome.errors.length;
  for (const w of outcome.warnings) if (SERVING_WARNINGS.includes(w.code)) aggregate.workerWarnings[w.code] = w.message;
  const part: ChunkPart = {
    run_id: payload.run_id,
    chunk: payload.chunk,
    attempt: payload.attempt,
    written_at: new Date().toISOString(),
    customers,
    failed: outcome.errors.map((e) => ({ customer_id: e.customer_id, error: e.error })),
    aggregate,
  };
  // The part and the log file are written side by side; a log failure never fails the chunk.
  await Promise.all([deps.runs.putPart(payload.segment_id, part), deps.log ? logChunk(deps.log, deps.shadow, payload, outcome) : undefined]);
  return { chunk: payload.chunk, scored: customers.length, failed: outcome.errors.length };
}

/**
 * Logs every answer of a chunk, and the challenger's answers for the same customers, as one file
 * keyed by (segment, run, chunk) in the run's day: a retried chunk replaces its file, never adds one.
 */
async function logChunk(log: PredictionLog, shadow: ShadowScorer | undefined, payload: WorkerPayload, outcome: BatchOutcome): Promise<void> {
  const context = { t: new Date().toISOString(), origin: `run:${payload.segment_id}/${payload.run_id}`, asOf: outcome.asOf };
  const lines = new LogLines().add(outcome.results, context).add(await shadowAnswers(shadow, outcome), { ...context, shadow: true });
  const day = `${payload.run_id.slice(0, 4)}-${payload.run_id.slice(4, 6)}-${payload.run_id.slice(6, 8)}`;
  await log.write(lines, { t: context.t, day, name: `segment-${payload.segment_id}-${payload.run_id}-c${String(payload.chunk).padStart(6, '0')}` });
}

/** What served a result, as a segment tallies it. */
function servedBy(source: ResultSource): Omit<ModelTally, 'customers'> {
  return source.type === 'model'
    ? { model: source.name, source: 'model', version: source.version, alias: source.alias }
    : { model: source.name, source: 'mock', version: null, alias: null };
}

/** A chunk's customers were not all scored before the deadline: the chunk is retried whole. */
export class ChunkTimeoutError extends Error {}
