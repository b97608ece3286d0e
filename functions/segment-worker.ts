import { scoringApp } from '../lib/app/scoring';
import { observed } from '../lib/observability';
import type { WorkerResult } from '../lib/segments/worker';

/** The worker function: scores one chunk and writes its part (the planner's invocation, or a map item); the service validates the event. */
export const handler = observed(async (event: unknown): Promise<WorkerResult> => {
  const { chunks } = await scoringApp();
  return chunks.score(event);
});
