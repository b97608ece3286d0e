import type { PredictionLog } from '../monitoring/log';
import type { ShadowScorer } from '../monitoring/shadow';
import { logContext } from '../observability';
import type { ScoringService } from '../scoring/service';
import type { SegmentRunStore } from '../segments/runs';
import { scoreChunk, WorkerPayloadSchema, type FaultPlan, type WorkerResult } from '../segments/worker';

/** The segment worker's work: score one chunk with the batch scoring path and write its part. */
export class ChunkScoringService {
  constructor(private readonly deps: { scoring: ScoringService; runs: SegmentRunStore; deadlineMs: number; faults: FaultPlan[] | null; log?: PredictionLog; shadow?: ShadowScorer }) {}

  /** Validates the payload (from the planner, the map's manifest or a thread) once, and scores it. */
  score(input: unknown): Promise<WorkerResult> {
    const payload = WorkerPayloadSchema.parse(input);
    logContext({ segment_id: payload.segment_id, run_id: payload.run_id, chunk: payload.chunk, attempt: payload.attempt });
    return scoreChunk(payload, this.deps);
  }
}
