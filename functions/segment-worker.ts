import { scoringApp } from '../lib/app/scoring';
import { observed } from '../lib/observability';
import { WorkerPayloadSchema, type WorkerResult } from '../lib/segments/worker';

/** The worker function: scores one chunk and writes its part (synchronous invocation by the planner). */
export const handler = observed(async (event: unknown): Promise<WorkerResult> => {
  const payload = WorkerPayloadSchema.parse(event);
  const { chunks } = await scoringApp();
  return chunks.score(payload);
});
