import { randomBytes } from 'node:crypto';
import { ConflictError, IntegrityError, NotFoundError, PreconditionFailedError, ValidationError } from '../errors';
import type { ObjectStore } from '../storage/index';
import type { CompactResult, SegmentAggregate, SegmentStatistics } from './aggregates';

/**
 * Segment runs in the object store: the run record (progress and outcome), one part object per
 * chunk (per-customer results and its partial aggregate), the merged statistics, and a per-segment
 * history of completed runs for trends.
 *
 *   segments/<segment>/runs/<run>/run.json
 *   segments/<segment>/runs/<run>/stats.json
 *   segments/<segment>/history.json
 *   segment-parts/<segment>/<run>/<chunk>.json   (bulky and short-lived: a lifecycle rule expires them)
 */
export const SEGMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const RUN_ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;
export const SCORE_TYPES = ['churn', 'nbo', 'rfm'] as const;
export type ScoreType = (typeof SCORE_TYPES)[number];
const HISTORY_LIMIT = 100;

export type RunStatus = 'queued' | 'running' | 'completed' | 'partial' | 'failed';

export interface FailedChunk {
  chunk: number;
  attempts: number;
  error: string;
  customer_ids: string[];
}

export interface SegmentRun {
  schema_version: 1;
  run_id: string;
  segment_id: string;
  types: ScoreType[];
  status: RunStatus;
  trigger: 'api' | 'schedule' | 'cli';
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  settings: { chunk_size: number; concurrency: number; retries: number };
  progress: {
    planning_complete: boolean;
    chunks_planned: number;
    chunks_done: number;
    chunks_failed: number;
    chunk_retries: number;
    customers_planned: number;
    customers_scored: number;
    customers_failed: number;
  };
  failed_chunks: FailedChunk[];
  error: string | null;
}

export interface ChunkPart {
  run_id: string;
  chunk: number;
  attempt: number;
  written_at: string;
  customers: CompactResult[];
  failed: { customer_id: string; error: string }[];
  aggregate: SegmentAggregate;
}

export interface StoredStatistics extends SegmentStatistics {
  run_id: string;
  segment_id: string;
  status: RunStatus;
  types: ScoreType[];
  started_at: string | null;
  finished_at: string | null;
  failed_chunks: number[];
}

interface History {
  segment_id: string;
  runs: StoredStatistics[];
}

export function assertSegmentId(id: string): void {
  if (!SEGMENT_ID.test(id)) throw new ValidationError(`Invalid segment id "${id}": 1-128 letters, digits, ".", "_" or "-"`, { code: 'invalid_segment_id' });
}

/** A new, time-sortable run id. */
export function newRunId(now = new Date()): string {
  const iso = now.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}T${iso.slice(11, 23).replace(/[:.]/g, '')}Z-${randomBytes(3).toString('hex')}`;
}

export class SegmentRunStore {
  constructor(readonly store: ObjectStore) {}

  async createRun(run: SegmentRun): Promise<void> {
    assertSegmentId(run.segment_id);
    await this.store.put(this.runKey(run.segment_id, run.run_id), encode(run), { ifNoneMatch: true, contentType: 'application/json' });
  }

  async getRun(segmentId: string, runId: string): Promise<SegmentRun> {
    assertSegmentId(segmentId);
    if (!RUN_ID.test(runId)) throw new ValidationError(`Invalid run id "${runId}"`, { code: 'invalid_run_id' });
    const stored = await this.store.get(this.runKey(segmentId, runId));
    if (!stored) throw new NotFoundError(`Segment ${segmentId} has no run ${runId}`, { code: 'run_not_found' });
    return decode<SegmentRun>(stored.body, `run ${runId}`);
  }

  /** The planner is the only writer of its run record, so a plain replace is enough. */
  async saveRun(run: SegmentRun): Promise<void> {
    run.updated_at = new Date().toISOString();
    await this.store.put(this.runKey(run.segment_id, run.run_id), encode(run), { contentType: 'application/json' });
  }

  /** Writes (or, for a retried chunk, replaces) a chunk's part: idempotent per (run, chunk). */
  async putPart(segmentId: string, part: ChunkPart): Promise<void> {
    await this.store.put(this.partKey(segmentId, part.run_id, part.chunk), encode(part), { contentType: 'application/json' });
  }

  async getPart(segmentId: string, runId: string, chunk: number): Promise<ChunkPart | null> {
    const stored = await this.store.get(this.partKey(segmentId, runId, chunk));
    return stored ? decode<ChunkPart>(stored.body, `part ${chunk} of run ${runId}`) : null;
  }

  async putStatistics(stats: StoredStatistics): Promise<void> {
    await this.store.put(`${this.runPrefix(stats.segment_id, stats.run_id)}stats.json`, encode(stats), { contentType: 'application/json' });
  }

  async getStatistics(segmentId: string, runId: string): Promise<StoredStatistics> {
    await this.getRun(segmentId, runId);
    const stored = await this.store.get(`${this.runPrefix(segmentId, runId)}stats.json`);
    if (!stored) throw new NotFoundError(`Run ${runId} of segment ${segmentId} has no statistics yet (it has not finished)`, { code: 'stats_not_found' });
    return decode<StoredStatistics>(stored.body, `statistics of run ${runId}`);
  }

  /** Completed runs of a segment, newest first. */
  async history(segmentId: string): Promise<StoredStatistics[]> {
    assertSegmentId(segmentId);
    const stored = await this.store.get(this.historyKey(segmentId));
    return stored ? decode<History>(stored.body, `history of ${segmentId}`).runs : [];
  }

  /** Adds a finished run to the segment's history (compare-and-swap: concurrent runs keep both). */
  async appendHistory(stats: StoredStatistics): Promise<void> {
    const key = this.historyKey(stats.segment_id);
    for (let attempt = 0; attempt < 20; attempt++) {
      const stored = await this.store.get(key);
      const history: History = stored ? decode<History>(stored.body, 'history') : { segment_id: stats.segment_id, runs: [] };
      history.runs = [stats, ...history.runs.filter((r) => r.run_id !== stats.run_id)]
        .sort((a, b) => (b.run_id < a.run_id ? -1 : 1))
        .slice(0, HISTORY_LIMIT);
      try {
        await this.store.put(key, encode(history), { ...(stored ? { ifMatch: stored.etag } : { ifNoneMatch: true }), contentType: 'application/json' });
        return;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        await new Promise((r) => setTimeout(r, Math.random() * 50));
      }
    }
    throw new ConflictError(`The history of segment ${stats.segment_id} kept changing; run ${stats.run_id} was not added`);
  }

  private runPrefix(segmentId: string, runId: string): string {
    return `segments/${segmentId}/runs/${runId}/`;
  }

  private runKey(segmentId: string, runId: string): string {
    return `${this.runPrefix(segmentId, runId)}run.json`;
  }

  private partKey(segmentId: string, runId: string, chunk: number): string {
    return `segment-parts/${segmentId}/${runId}/${String(chunk).padStart(6, '0')}.json`;
  }

  private historyKey(segmentId: string): string {
    return `segments/${segmentId}/history.json`;
  }
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function decode<T>(body: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(body)) as T;
  } catch {
    throw new IntegrityError(`The stored ${what} is not valid JSON`);
  }
}
