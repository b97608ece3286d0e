import { FEATURES } from '../catalog';
import type { ModelRegistry } from '../registry/index';
import { emptyAggregate, finalizeStatistics, mergeInto, type DriftReference, type SegmentAggregate } from './aggregates';
import type { SegmentRun, SegmentRunStore, StoredStatistics } from './runs';
import type { WorkerPayload, WorkerResult } from './worker';

/** Runs one chunk somewhere: in this process, or in a worker Lambda. Throws when the chunk failed. */
export interface WorkerInvoker {
  invoke(payload: WorkerPayload): Promise<WorkerResult>;
}

/** What the planner needs from the warehouse: segment members, a page at a time. */
export interface MemberSource {
  segmentMembersPage(segmentId: string, afterId: string | null, limit: number): Promise<string[]>;
}

export interface PlannerSettings {
  chunkSize: number;
  concurrency: number;
  retries: number;
  /** Pause before retry n is n times this. */
  retryBackoffMs: number;
}

/**
 * Runs a segment: reads its members in pages (keyset pagination: never every id in memory at once),
 * cuts them into chunks, has workers score the chunks with bounded concurrency, retries failed
 * chunks, and merges the parts into statistics. A chunk whose retries are spent leaves the run
 * `partial`, naming the chunk and its customers; nothing scored is lost and, since each chunk has
 * exactly one part (a retry replaces it), nothing is counted twice.
 */
export async function runSegment(
  run: SegmentRun,
  deps: {
    members: MemberSource;
    runs: SegmentRunStore;
    invoker: WorkerInvoker;
    registry?: ModelRegistry;
    settings: PlannerSettings;
    onProgress?: (run: SegmentRun) => void;
  },
): Promise<{ run: SegmentRun; stats: StoredStatistics | null }> {
  const { settings } = deps;
  run.status = 'running';
  run.started_at = new Date().toISOString();
  run.settings = { chunk_size: settings.chunkSize, concurrency: settings.concurrency, retries: settings.retries };
  await deps.runs.saveRun(run);

  let lastSaved = 0;
  /**
   * Saves progress at most once a second. A failed progress save is skipped (the next one carries
   * the same figures); only the final save (`force`) must succeed.
   */
  const report = async (force = false) => {
    deps.onProgress?.(run);
    if (force || Date.now() - lastSaved > 1000) {
      lastSaved = Date.now();
      const saving = deps.runs.saveRun(run);
      if (force) await saving;
      else await saving.catch(() => undefined);
    }
  };

  const succeeded: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const runChunk = async (chunk: number, ids: string[]) => {
    let lastError = 'unknown error';
    for (let attempt = 1; attempt <= settings.retries + 1; attempt++) {
      if (attempt > 1) {
        run.progress.chunk_retries++;
        await sleep(settings.retryBackoffMs * (attempt - 1));
      }
      let result: WorkerResult;
      try {
        result = await deps.invoker.invoke({ run_id: run.run_id, segment_id: run.segment_id, chunk, attempt, customer_ids: ids, types: run.types });
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        continue;
      }
      // Only the invocation is retried: once it succeeded, the chunk is counted exactly once.
      succeeded.push(chunk);
      run.progress.chunks_done++;
      run.progress.customers_scored += result.scored;
      run.progress.customers_failed += result.failed;
      await report();
      return;
    }
    run.progress.chunks_failed++;
    run.progress.customers_failed += ids.length;
    run.failed_chunks.push({ chunk, attempts: settings.retries + 1, error: lastError, customer_ids: ids });
    await report();
  };

  try {
    let cursor: string | null = null;
    let chunk = 0;
    const pageSize = settings.chunkSize * Math.max(1, settings.concurrency);
    for (;;) {
      const page: string[] = await deps.members.segmentMembersPage(run.segment_id, cursor, pageSize);
      if (page.length === 0) break;
      cursor = page[page.length - 1]!;
      run.progress.customers_planned += page.length;
      for (let start = 0; start < page.length; start += settings.chunkSize) {
        const ids = page.slice(start, start + settings.chunkSize);
        chunk++;
        run.progress.chunks_planned = chunk;
        while (inFlight.size >= settings.concurrency) await Promise.race(inFlight);
        const task: Promise<void> = runChunk(chunk, ids).finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
    }
    run.progress.planning_complete = true;
    await Promise.all(inFlight);
  } catch (error) {
    await Promise.allSettled(inFlight);
    run.status = 'failed';
    run.error = error instanceof Error ? error.message : String(error);
    run.finished_at = new Date().toISOString();
    await report(true);
    return { run, stats: null };
  }

  // Merge exactly one part per successful chunk, in chunk order.
  const merged: SegmentAggregate = emptyAggregate(FEATURES);
  const ordered = succeeded.sort((a, b) => a - b);
  const READS = 16;
  for (let i = 0; i < ordered.length; i += READS) {
    const batch = ordered.slice(i, i + READS);
    const parts = await Promise.all(batch.map((chunk) => deps.runs.getPart(run.segment_id, run.run_id, chunk)));
    parts.forEach((part, k) => {
      if (part) mergeInto(merged, part.aggregate);
      else {
        run.failed_chunks.push({ chunk: batch[k]!, attempts: 0, error: 'the worker reported success but wrote no part', customer_ids: [] });
        run.progress.chunks_failed++;
      }
    });
  }
  merged.failed += run.failed_chunks.reduce((n, c) => n + c.customer_ids.length, 0);
  const statistics = finalizeStatistics(merged, await driftReferences(merged, deps.registry));
  run.status = run.failed_chunks.length ? 'partial' : 'completed';
  run.finished_at = new Date().toISOString();
  run.progress.customers_scored = merged.scored;
  run.progress.customers_failed = merged.failed;
  const stats: StoredStatistics = {
    run_id: run.run_id,
    segment_id: run.segment_id,
    status: run.status,
    types: run.types,
    started_at: run.started_at,
    finished_at: run.finished_at,
    failed_chunks: run.failed_chunks.map((c) => c.chunk).sort((a, b) => a - b),
    ...statistics,
  };
  await deps.runs.putStatistics(stats);
  await deps.runs.appendHistory(stats);
  await report(true);
  return { run, stats };
}

/** The training fingerprints of the model versions that scored the run (for drift). */
async function driftReferences(merged: SegmentAggregate, registry: ModelRegistry | undefined): Promise<DriftReference[]> {
  if (!registry) return [];
  const refs: DriftReference[] = [];
  for (const key of Object.keys(merged.models)) {
    const m = /^(\w+) v(\d+) \(/.exec(key);
    if (!m) continue;
    const manifest = await registry.getManifest(m[1]!, Number(m[2])).catch(() => null);
    const fp = manifest?.holdout_fingerprint;
    if (!fp) continue;
    refs.push({ model: m[1]!, version: Number(m[2]), counts: fp.counts, topClassShare: fp.top_class_share });
  }
  return refs;
}

/** A new run record, queued. */
export function newRun(runId: string, segmentId: string, types: SegmentRun['types'], trigger: SegmentRun['trigger'], settings: PlannerSettings): SegmentRun {
  const now = new Date().toISOString();
  return {
    schema_version: 1,
    run_id: runId,
    segment_id: segmentId,
    types,
    status: 'queued',
    trigger,
    created_at: now,
    started_at: null,
    finished_at: null,
    updated_at: now,
    settings: { chunk_size: settings.chunkSize, concurrency: settings.concurrency, retries: settings.retries },
    progress: {
      planning_complete: false,
      chunks_planned: 0,
      chunks_done: 0,
      chunks_failed: 0,
      chunk_retries: 0,
      customers_planned: 0,
      customers_scored: 0,
      customers_failed: 0,
    },
    failed_chunks: [],
    error: null,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
