import { z } from 'zod';
import { columnarLogFile, type PredictionLog } from '../monitoring/log';
import { shadowMatrix, type ShadowScorer } from '../monitoring/shadow';
import { NOT_FOUND, ScoringTimeoutError, type ScoringService } from '../scoring/service';
import { FEATURES } from '../catalog';
import { idHash } from '../random';
import { IntegrityError } from '../errors';
import { SERVING_WARNINGS } from '../scoring/warnings';
import type { ResultSource } from '../scoring/results';
import { RFM_CELLS } from '../scoring/rfm';
import { addScores, emptyAggregate, SegmentAggregateSchema, tallyModel, type ModelTally } from './aggregates';
import { chunkFingerprint, foundRows, fromInline, InlineChunkSchema, type FeatureChunk } from './chunks';
import { SCORE_TYPES, SEGMENT_ID, RUN_ID, type ChunkPart, type SegmentRunStore } from './runs';

/**
 * A chunk to score: its customers' features inline (while the payload fits) or the key of its chunk
 * file. The worker never reads the warehouse.
 */
export const WorkerPayloadSchema = z.object({
  run_id: z.string().regex(RUN_ID),
  segment_id: z.string().regex(SEGMENT_ID),
  chunk: z.number().int().positive(),
  /** The planner's attempt number (a distributed map's items carry none: its retries are its own). */
  attempt: z.number().int().positive().default(1),
  types: z.array(z.enum(SCORE_TYPES)).min(1),
  /** The RFM cut points' basis the planner read once for the run (quintiles of the customer base); null when unavailable. */
  rfm_quintiles: z
    .object({ recency_days: z.array(z.number()), frequency: z.array(z.number()), monetary: z.array(z.number()), customers: z.number().int().nonnegative() })
    .nullable()
    .optional(),
  /** The share of the segment whose churn reasons are summed (a random sample by id; absent: none). */
  reasons_rate: z.number().min(0).max(1).optional(),
  customers: z.union([z.strictObject({ inline: InlineChunkSchema }), z.strictObject({ file: z.string().min(1), count: z.number().int().positive(), fingerprint: z.string() })]),
});

/** About this many customers of a segment run are explained, for the segment's mean reasons. */
export const REASONS_SAMPLE = 100;

/**
 * A chunk spends at most about this long on its share of the sample (a large tree ensemble costs
 * 50-200 ms a customer): the run's cost stays bounded, and the statistics say how many were explained.
 */
export const REASONS_BUDGET_MS = 500;

/** The share of a segment of `members` customers to explain. */
export function reasonsRate(members: number): number {
  return Math.min(1, REASONS_SAMPLE / Math.max(1, members));
}

/**
 * Whether a customer is in a run's reasons sample: a hash of the id (FNV-1a, finalised) below the rate, so
 * every chunk draws its share independently and the sample is the same whichever chunk holds whom.
 */
export function inReasonsSample(id: string, rate: number): boolean {
  return idHash(id) / 2 ** 32 < rate;
}

/** A payload as planners and the map's manifest build it. */
export type WorkerPayload = z.input<typeof WorkerPayloadSchema>;
/** A payload once validated (defaults applied): what a worker scores. */
export type ValidWorkerPayload = z.output<typeof WorkerPayloadSchema>;

export const WorkerResultSchema = z.object({
  chunk: z.number().int().positive(),
  scored: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  /** The part's aggregate as written (the planner merges it without reading the part back). */
  aggregate: SegmentAggregateSchema,
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
 * Scores one chunk of a segment from the features it carries (one onnxruntime run per model, scores
 * as columns) and writes its part object: the chunk's fingerprint, its partial aggregate and the
 * members the warehouse had no features for (failed). A timeout throws so the chunk is retried.
 */
export async function scoreChunk(
  payload: ValidWorkerPayload,
  deps: { scoring: ScoringService; runs: SegmentRunStore; deadlineMs: number; faults?: FaultPlan[] | null; log?: PredictionLog; shadow?: ShadowScorer },
): Promise<WorkerResult> {
  for (const f of deps.faults ?? []) {
    if (f.segment !== undefined && f.segment !== payload.segment_id) continue;
    if (f.failAlways.includes(payload.chunk) || (f.failOnce.includes(payload.chunk) && payload.attempt === 1)) {
      throw new Error(`Injected fault for chunk ${payload.chunk}, attempt ${payload.attempt}`);
    }
  }
  const started = Date.now();
  const { chunk, fingerprint } = await loadChunk(payload, deps.runs);
  const { ids, features, asOf, missing } = foundRows(chunk);
  let scores;
  try {
    scores = await deps.scoring.scoreMatrix(ids, features, {
      parts: payload.types,
      deadlineMs: Math.max(1, deps.deadlineMs - (Date.now() - started)),
      // The worker never reads the warehouse: the quintiles come with the chunk (absent: fixed cut points, with a warning).
      quintiles: payload.rfm_quintiles ?? null,
      explainSample: sampleRows(ids, payload.reasons_rate),
      explainBudgetMs: REASONS_BUDGET_MS,
    });
  } catch (error) {
    if (error instanceof ScoringTimeoutError) throw new ChunkTimeoutError(`chunk ${payload.chunk} (${ids.length} customers) was ${error.message}`);
    throw error;
  }

  const aggregate = emptyAggregate(FEATURES);
  // Mean probabilities per offer are acceptance rates only when the model gives acceptance probabilities.
  const nbo = scores.nbo && { ...scores.nbo, P: 'probabilities' in scores.nbo.source && scores.nbo.source.probabilities === 'acceptance' ? scores.nbo.P : undefined };
  addScores(aggregate, { n: ids.length, churn: scores.churn, nbo, rfm: scores.rfm && { cell: scores.rfm.cell, cells: RFM_CELLS } }, features);
  if (scores.churn?.contributions) aggregate.churn.contributions = scores.churn.contributions;
  if (ids.length) {
    if (scores.churn) tallyModel(aggregate.models, servedBy(scores.churn.source), ids.length);
    if (scores.nbo) tallyModel(aggregate.models, servedBy(scores.nbo.source), ids.length);
  }
  aggregate.failed = missing.length;
  for (const w of scores.warnings) if (SERVING_WARNINGS.includes(w.code)) aggregate.workerWarnings[w.code] = w.message;
  const part: ChunkPart = {
    run_id: payload.run_id,
    chunk: payload.chunk,
    attempt: payload.attempt,
    written_at: new Date().toISOString(),
    fingerprint,
    scored: ids.length,
    failed: missing.map((customer_id) => ({ customer_id, error: NOT_FOUND })),
    aggregate,
  };
  // The part and the log file are written side by side; a log failure never fails the chunk.
  const logged = async () => {
    if (!deps.log || ids.length === 0) return;
    const shadows = await shadowMatrix(deps.shadow, scores, features);
    const t = new Date().toISOString();
    const day = `${payload.run_id.slice(0, 4)}-${payload.run_id.slice(4, 6)}-${payload.run_id.slice(6, 8)}`;
    await deps.log.writeColumns(() => columnarLogFile(scores, shadows, { t, origin: `run:${payload.segment_id}/${payload.run_id}`, asOf }), {
      day,
      name: `segment-${payload.segment_id}-${payload.run_id}-c${String(payload.chunk).padStart(6, '0')}`,
    });
  };
  await Promise.all([deps.runs.putPart(payload.segment_id, part), logged()]);
  return { chunk: payload.chunk, scored: ids.length, failed: missing.length, aggregate };
}

/**
 * The chunk's customers and features, from the payload or from the run's chunk file, with its
 * fingerprint (computed once: a chunk file is checked against the planner's).
 */
async function loadChunk(payload: ValidWorkerPayload, runs: SegmentRunStore): Promise<{ chunk: FeatureChunk; fingerprint: string }> {
  const c = payload.customers;
  if ('inline' in c) {
    const chunk = fromInline(c.inline);
    return { chunk, fingerprint: chunkFingerprint(chunk.ids) };
  }
  const expected = runs.chunkFileKey(payload.segment_id, payload.run_id, payload.chunk);
  if (c.file !== expected) throw new IntegrityError(`chunk ${payload.chunk} names the file ${c.file}; its run keeps it at ${expected}`);
  const chunk = await runs.getChunkFile(payload.segment_id, payload.run_id, payload.chunk);
  const fingerprint = chunkFingerprint(chunk.ids);
  if (chunk.ids.length !== c.count || fingerprint !== c.fingerprint) {
    throw new IntegrityError(`the chunk file of chunk ${payload.chunk} holds other customers than the planner listed (${chunk.ids.length}, expected ${c.count})`);
  }
  return { chunk, fingerprint };
}

/** The rows of a chunk in its reasons sample. */
function sampleRows(ids: readonly string[], rate: number | undefined): Int32Array | undefined {
  if (!rate) return undefined;
  const rows: number[] = [];
  ids.forEach((id, i) => {
    if (inReasonsSample(id, rate)) rows.push(i);
  });
  return Int32Array.from(rows);
}

/** What served a result, as a segment tallies it. */
function servedBy(source: ResultSource): Omit<ModelTally, 'customers'> {
  return source.type === 'model'
    ? { model: source.name, source: 'model', version: source.version, alias: source.alias }
    : { model: source.name, source: 'mock', version: null, alias: null };
}

/** A chunk's customers were not all scored before the deadline: the chunk is retried whole. */
export class ChunkTimeoutError extends Error {}
