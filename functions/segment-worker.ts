import { app } from '../lib/scoring-app';
import { parseFaultPlan, scoreChunk, WorkerPayloadSchema, type WorkerPayload, type WorkerResult } from '../lib/segments/worker';

/** The worker function: scores one chunk and writes its part (synchronous invocation by the planner). */
export async function handler(event: unknown): Promise<WorkerResult> {
  const payload: WorkerPayload = WorkerPayloadSchema.parse(event);
  const { scoring, runs, config: cfg } = await app();
  return scoreChunk(payload, { scoring, runs, deadlineMs: cfg.batchDeadlineMs, faults: parseFaultPlan(cfg.segments.faults) });
}

