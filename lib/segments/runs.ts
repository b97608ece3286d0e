import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { IntegrityError, NotFoundError, PreconditionFailedError, UnsafeStoreError, ValidationError } from '../errors';
import { casUpdate, type CasChange } from '../storage/cas';
import type { ObjectStore } from '../storage/index';
import { SegmentAggregateSchema, SegmentStatisticsSchema } from './aggregates';
import { decodeChunkFile, encodeChunkFile, type FeatureChunk } from './chunks';

/**
 * Segment runs in the object store: the run record (progress, outcome and the planner's lease),
 * one part object per chunk (per-customer results and its partial aggregate), the merged
 * statistics, a per-segment history of finished runs for trends, and an index of unfinished runs
 * that the sweeper walks.
 *
 *   segments/<segment>/runs/<run>/run.json
 *   segments/<segment>/runs/<run>/stats.json
 *   segments/<segment>/history.json
 *   segments/_active/<run>=<segment>              (present while the run is unfinished)
 *   segments/<segment>/current/<types>.json       (the run that holds the segment for those types)
 *   segment-parts/<segment>/<run>/<chunk>.json     (bulky and short-lived: a lifecycle rule expires them)
 *
 * Every document is validated against its schema when read. The run record changes only by
 * compare-and-swap, so a planner that lost its lease cannot overwrite the one that took over.
 */
export const SEGMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const RUN_ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;
export const SCORE_TYPES = ['churn', 'nbo', 'rfm'] as const;
export type ScoreType = (typeof SCORE_TYPES)[number];
export const RUN_STATUSES = ['queued', 'running', 'completed', 'partial', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
const FINISHED: readonly RunStatus[] = ['completed', 'partial', 'failed'];
const HISTORY_LIMIT = 100;
const ACTIVE_PREFIX = 'segments/_active/';
/** How long a claim may stand without its run's record before another starter takes it over. */
const CLAIM_GRACE_MS = 5000;

const count = z.number().int().nonnegative();
const timestamp = z.string().datetime();

/** The start route's body: optional, and strict (an unknown field is a mistake worth a 400, not a run). */
export const StartRunSchema = z.strictObject({ types: z.array(z.enum(SCORE_TYPES, { error: 'types may hold churn, nbo and rfm' })).min(1).max(3).optional() });

export const FailedChunkSchema = z.object({
  chunk: z.number().int().positive(),
  attempts: count,
  error: z.string(),
  customer_ids: z.array(z.string()),
});
export type FailedChunk = z.infer<typeof FailedChunkSchema>;

/**
 * Who is running the run's planner and until when. A planner renews its lease while it works and
 * clears it when it finishes or hands over; a lease that expires with an owner still named means
 * that planner died (crash, timeout, out of memory), which `failures` counts.
 */
export const PlannerLeaseSchema = z.object({
  /** Planners that have worked on the run (the first one, continuations and resumptions). */
  attempts: count,
  failures: count,
  owner: z.string().nullable(),
  expires_at: timestamp.nullable(),
  /** Chunks a resumed planner found already scored by an earlier one (kept, not scored again). */
  resumed_chunks: count,
  /** What the last planner that failed said, if it could say anything. */
  last_error: z.string().nullable(),
});
export type PlannerLease = z.infer<typeof PlannerLeaseSchema>;

export const SegmentRunSchema = z.object({
  schema_version: z.literal(1),
  run_id: z.string().regex(RUN_ID),
  segment_id: z.string().regex(SEGMENT_ID),
  types: z.array(z.enum(SCORE_TYPES)).min(1),
  status: z.enum(RUN_STATUSES),
  trigger: z.enum(['api', 'schedule', 'cli']),
  created_at: timestamp,
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  updated_at: timestamp,
  settings: z.object({ chunk_size: z.number().int().positive(), concurrency: z.number().int().positive(), retries: count }),
  progress: z.object({
    planning_complete: z.boolean(),
    chunks_planned: count,
    chunks_done: count,
    chunks_failed: count,
    chunk_retries: count,
    customers_planned: count,
    customers_scored: count,
    customers_failed: count,
  }),
  failed_chunks: z.array(FailedChunkSchema),
  error: z.string().nullable(),
  planner: PlannerLeaseSchema.default({ attempts: 0, failures: 0, owner: null, expires_at: null, resumed_chunks: 0, last_error: null }),
  /**
   * How the run is scored, decided by its size when its first planner starts: `planner` (one
   * planner dispatches chunks to workers and merges) or `distributed-map` (the planner writes chunk
   * files and a manifest; a Step Functions distributed map runs the workers and the merge).
   */
  path: z
    .object({
      kind: z.enum(['planner', 'distributed-map']),
      members: count,
      threshold: count,
      /** Distributed map: the manifest its ItemReader reads, and the execution that was started. */
      manifest_key: z.string().nullable().default(null),
      execution: z.string().nullable().default(null),
    })
    .nullable()
    .default(null),
});
export type SegmentRun = z.infer<typeof SegmentRunSchema>;

export const ChunkPartSchema = z.object({
  run_id: z.string(),
  chunk: z.number().int().positive(),
  attempt: z.number().int().positive(),
  written_at: timestamp,
  /** The chunk's identity (see chunkFingerprint): a resumed run keeps a part only for the same customers. */
  fingerprint: z.string(),
  scored: z.number().int().nonnegative(),
  failed: z.array(z.object({ customer_id: z.string(), error: z.string() })),
  aggregate: SegmentAggregateSchema,
});
export type ChunkPart = z.infer<typeof ChunkPartSchema>;

export const StoredStatisticsSchema = SegmentStatisticsSchema.extend({
  run_id: z.string(),
  segment_id: z.string(),
  status: z.enum(RUN_STATUSES),
  types: z.array(z.enum(SCORE_TYPES)),
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  failed_chunks: z.array(z.number().int().positive()),
});
export type StoredStatistics = z.infer<typeof StoredStatisticsSchema>;

const HistorySchema = z.object({ segment_id: z.string(), runs: z.array(StoredStatisticsSchema) });
/** Which run holds a segment's types (written by the starter that claimed them). */
const ClaimSchema = z.object({ run_id: z.string().optional(), created_at: z.string().optional() });
type History = z.infer<typeof HistorySchema>;

/** A run record as read, with the version tag a compare-and-swap save must match. */
export interface VersionedRun {
  run: SegmentRun;
  etag: string;
}

export function assertSegmentId(id: string): void {
  if (!SEGMENT_ID.test(id)) throw new ValidationError(`Invalid segment id "${id}": 1-128 letters, digits, ".", "_" or "-"`, { code: 'invalid_segment_id' });
}

export function isFinished(status: RunStatus): boolean {
  return FINISHED.includes(status);
}

/** A new, time-sortable run id. */
export function newRunId(now = new Date()): string {
  return `${compactTime(now)}-${randomBytes(3).toString('hex')}`;
}

/**
 * The run id a scheduled run of a segment gets for one scheduled time: the same for every delivery
 * of that event (EventBridge delivers at least once, Lambda retries), so a repeat finds the run it
 * started instead of starting another.
 */
export function scheduledRunId(segmentId: string, scheduledAt: Date): string {
  const digest = createHash('sha256').update(`${segmentId}|${scheduledAt.toISOString()}`).digest('hex');
  return `${compactTime(scheduledAt)}-${digest.slice(0, 6)}`;
}

function compactTime(at: Date): string {
  const iso = at.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}T${iso.slice(11, 23).replace(/[:.]/g, '')}Z`;
}

export class SegmentRunStore {
  private safe: Promise<void> | undefined;

  constructor(readonly store: ObjectStore) {}

  /**
   * Makes `run` the segment's run for its types, creates its record (create-only: a run id is never
   * reused) and indexes it as unfinished. At most one unfinished run per segment and set of types:
   * the claim is a conditional write (create-only, or compare-and-swap over a finished run's claim),
   * so starters racing, in one process or in separate Lambdas, agree on one run; the claim comes
   * before the record, so a loser writes nothing (and needs no right to delete). Returns the run
   * that holds the segment: this one (`created`), the one with this id that exists already, or the
   * unfinished run another starter claimed first.
   */
  async createRun(run: SegmentRun): Promise<{ created: boolean; run: SegmentRun }> {
    assertSegmentId(run.segment_id);
    await this.assertSafeStore();
    const holder = await this.claim(run);
    if (holder) return { created: false, run: holder };
    try {
      await this.store.put(this.runKey(run.segment_id, run.run_id), encode(run), { ifNoneMatch: true, contentType: 'application/json' });
    } catch (error) {
      if (error instanceof PreconditionFailedError) return { created: false, run: await this.getRun(run.segment_id, run.run_id) };
      throw error;
    }
    await this.store.put(activeKey(run.segment_id, run.run_id), encode({ segment_id: run.segment_id, run_id: run.run_id, created_at: run.created_at }), {
      contentType: 'application/json',
    });
    return { created: true, run };
  }

  /**
   * Claims the segment's types for `run`; returns null when it holds them now (or held them
   * already: a repeated delivery of the same run), or the unfinished run that holds them. A claim
   * whose run has no record yet is another starter between its claim and its record: its record is
   * waited for (a few seconds), and a claim still without one is taken over (that starter died).
   */
  private async claim(run: SegmentRun): Promise<SegmentRun | null> {
    const key = claimKey(run.segment_id, run.types);
    const body = encode({ run_id: run.run_id, created_at: new Date().toISOString() });
    return casUpdate(
      this.store,
      key,
      async (held): Promise<CasChange<SegmentRun | null>> => {
        if (held) {
          const claim = decode(held.body, ClaimSchema, `the claim of segment ${run.segment_id}`);
          if (claim.run_id === run.run_id) return { keep: true, result: null };
          const holder = claim.run_id && RUN_ID.test(claim.run_id) ? await this.awaitRecord(run.segment_id, claim.run_id, claim.created_at) : null;
          if (holder && !isFinished(holder.status)) return { keep: true, result: holder };
        }
        return { write: body, result: null };
      },
      { contention: `Segment ${run.segment_id}: other starters kept claiming it while this run was being started` },
    );
  }

  /** A claimed run's record, waiting up to CLAIM_GRACE_MS after the claim for its starter to write it; null when there is none. */
  private async awaitRecord(segmentId: string, runId: string, claimedAt: string | undefined): Promise<SegmentRun | null> {
    const deadline = (claimedAt ? Date.parse(claimedAt) : 0) + CLAIM_GRACE_MS;
    for (;;) {
      try {
        return await this.getRun(segmentId, runId);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
      if (Date.now() >= deadline) return null;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async getRun(segmentId: string, runId: string): Promise<SegmentRun> {
    return (await this.readRun(segmentId, runId)).run;
  }

  /** The run record and its version tag. */
  async readRun(segmentId: string, runId: string): Promise<VersionedRun> {
    assertSegmentId(segmentId);
    if (!RUN_ID.test(runId)) throw new ValidationError(`Invalid run id "${runId}"`, { code: 'invalid_run_id' });
    const stored = await this.store.get(this.runKey(segmentId, runId));
    if (!stored) throw new NotFoundError(`Segment ${segmentId} has no run ${runId}`, { code: 'run_not_found' });
    return { run: decode(stored.body, SegmentRunSchema, `run ${runId} of segment ${segmentId}`), etag: stored.etag };
  }

  /**
   * Saves the run only if nobody changed it since `etag` was read; returns the new tag. Throws
   * PreconditionFailedError when another writer (a planner that took over) got there first.
   */
  async saveRun(run: SegmentRun, etag: string): Promise<string> {
    run.updated_at = new Date().toISOString();
    const out = await this.store.put(this.runKey(run.segment_id, run.run_id), encode(run), { ifMatch: etag, contentType: 'application/json' });
    if (isFinished(run.status)) await this.store.delete(activeKey(run.segment_id, run.run_id)).catch(() => undefined);
    return out.etag;
  }

  /**
   * Reads, changes and saves a run by compare-and-swap, retrying against the newer record when a
   * concurrent writer got there first. `change` returns false to leave the run as it is.
   */
  async updateRun(segmentId: string, runId: string, change: (run: SegmentRun) => boolean): Promise<SegmentRun> {
    assertSegmentId(segmentId);
    if (!RUN_ID.test(runId)) throw new ValidationError(`Invalid run id "${runId}"`, { code: 'invalid_run_id' });
    const run = await casUpdate(
      this.store,
      this.runKey(segmentId, runId),
      (stored): CasChange<SegmentRun> => {
        if (!stored) throw new NotFoundError(`Segment ${segmentId} has no run ${runId}`, { code: 'run_not_found' });
        const current = decode(stored.body, SegmentRunSchema, `run ${runId} of segment ${segmentId}`);
        if (!change(current)) return { keep: true, result: current };
        current.updated_at = new Date().toISOString();
        return { write: encode(current), result: current };
      },
      { contention: `Run ${runId} of segment ${segmentId} kept changing while being updated` },
    );
    if (isFinished(run.status)) await this.store.delete(activeKey(segmentId, runId)).catch(() => undefined);
    return run;
  }

  /** Unfinished runs (queued or running), from the index the sweeper walks. */
  async activeRuns(): Promise<{ segment_id: string; run_id: string }[]> {
    const { keys } = await this.store.list(ACTIVE_PREFIX);
    return keys.flatMap((key) => {
      const [runId, segmentId] = key.slice(ACTIVE_PREFIX.length).split('=');
      return runId && segmentId && RUN_ID.test(runId) && SEGMENT_ID.test(segmentId) ? [{ segment_id: segmentId, run_id: runId }] : [];
    });
  }

  /** Drops a run from the unfinished index (it finished, or its record is gone). */
  async forgetActive(segmentId: string, runId: string): Promise<void> {
    await this.store.delete(activeKey(segmentId, runId));
  }

  /** Writes (or, for a retried chunk, replaces) a chunk's part: idempotent per (run, chunk). */
  async putPart(segmentId: string, part: ChunkPart): Promise<void> {
    // A part lost in a crash is scored again on resume (an unreadable part counts as missing): no fsync per part.
    await this.store.put(this.partKey(segmentId, part.run_id, part.chunk), encode(part), { contentType: 'application/json', durable: false });
  }

  /** Where a chunk's features wait for its worker when they do not fit the payload. */
  chunkFileKey(segmentId: string, runId: string, chunk: number): string {
    return `segment-chunks/${segmentId}/${runId}/${String(chunk).padStart(6, '0')}.arrow`;
  }

  async putChunkFile(segmentId: string, runId: string, chunk: FeatureChunk, number: number): Promise<string> {
    const key = this.chunkFileKey(segmentId, runId, number);
    await this.store.put(key, encodeChunkFile(chunk), { contentType: 'application/vnd.apache.arrow.file', durable: false });
    return key;
  }

  async getChunkFile(segmentId: string, runId: string, chunk: number): Promise<FeatureChunk> {
    const stored = await this.store.get(this.chunkFileKey(segmentId, runId, chunk));
    if (!stored) throw new NotFoundError(`Chunk ${chunk} of run ${runId} has no chunk file`, { code: 'chunk_not_found' });
    return decodeChunkFile(stored.body);
  }

  /** The distributed map's manifest: a JSON array of worker payloads, one per chunk. */
  async putManifest(segmentId: string, runId: string, items: unknown[]): Promise<string> {
    const key = `segment-chunks/${segmentId}/${runId}/manifest.json`;
    await this.store.put(key, encode(items), { contentType: 'application/json' });
    return key;
  }

  async getManifest(segmentId: string, runId: string): Promise<{ chunk: number; customers: { count: number } }[]> {
    const stored = await this.store.get(`segment-chunks/${segmentId}/${runId}/manifest.json`);
    if (!stored) throw new NotFoundError(`Run ${runId} of segment ${segmentId} has no manifest`, { code: 'manifest_not_found' });
    return decode(stored.body, z.array(z.object({ chunk: z.number().int().positive(), customers: z.object({ count: z.number().int().positive() }) })), `manifest of run ${runId}`);
  }

  async getPart(segmentId: string, runId: string, chunk: number): Promise<ChunkPart | null> {
    const stored = await this.store.get(this.partKey(segmentId, runId, chunk));
    return stored ? decode(stored.body, ChunkPartSchema, `part ${chunk} of run ${runId}`) : null;
  }

  /** Chunk numbers that have a part (an earlier planner's work, when a run resumes). */
  async partChunks(segmentId: string, runId: string): Promise<Set<number>> {
    const prefix = `segment-parts/${segmentId}/${runId}/`;
    const { keys } = await this.store.list(prefix);
    return new Set(keys.map((k) => /^(\d+)\.json$/.exec(k.slice(prefix.length))?.[1]).filter((n): n is string => n !== undefined).map(Number));
  }

  async putStatistics(stats: StoredStatistics): Promise<void> {
    await this.store.put(`${this.runPrefix(stats.segment_id, stats.run_id)}stats.json`, encode(stats), { contentType: 'application/json' });
  }

  async getStatistics(segmentId: string, runId: string): Promise<StoredStatistics> {
    await this.getRun(segmentId, runId);
    const stored = await this.store.get(`${this.runPrefix(segmentId, runId)}stats.json`);
    if (!stored) throw new NotFoundError(`Run ${runId} of segment ${segmentId} has no statistics yet (it has not finished)`, { code: 'stats_not_found' });
    return decode(stored.body, StoredStatisticsSchema, `statistics of run ${runId}`);
  }

  /** Finished runs of a segment, newest first. */
  async history(segmentId: string): Promise<StoredStatistics[]> {
    assertSegmentId(segmentId);
    const stored = await this.store.get(this.historyKey(segmentId));
    return stored ? decode(stored.body, HistorySchema, `history of ${segmentId}`).runs : [];
  }

  /** Adds a finished run to the segment's history (compare-and-swap: concurrent runs keep both). */
  async appendHistory(stats: StoredStatistics): Promise<void> {
    // The run's own statistics keep everything; the history, read by every run, trend and daily
    // check, keeps no input histograms and, of the input comparisons, those that moved.
    const { inputs: _inputs, ...rest } = stats;
    const entry = { ...rest, drift: stats.drift.filter((d) => d.kind !== 'feature' || d.level !== 'stable') };
    await casUpdate(
      this.store,
      this.historyKey(stats.segment_id),
      (stored): CasChange<void> => {
        const history: History = stored ? decode(stored.body, HistorySchema, 'history') : { segment_id: stats.segment_id, runs: [] };
        history.runs = [entry, ...history.runs.filter((r) => r.run_id !== stats.run_id)].sort((a, b) => (b.run_id < a.run_id ? -1 : 1)).slice(0, HISTORY_LIMIT);
        return { write: encode(history), result: undefined };
      },
      { contention: `The history of segment ${stats.segment_id} kept changing; run ${stats.run_id} was not added` },
    );
  }

  /** Run records, leases and history rely on conditional writes: refuse a store that ignores them. */
  private assertSafeStore(): Promise<void> {
    this.safe ??= this.store.checkConditionalWrites('segments/').then(
      (support) => {
        if (!support.ok) {
          throw new UnsafeStoreError(
            `Refusing to keep segment runs on ${this.store.location}: this store ${support.problems.join('; it ')}. Use Amazon S3, or an S3-compatible store that honours If-None-Match and If-Match.`,
          );
        }
      },
      (error: unknown) => {
        this.safe = undefined;
        throw error;
      },
    );
    return this.safe;
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

function claimKey(segmentId: string, types: readonly string[]): string {
  return `segments/${segmentId}/current/${[...types].sort().join('+')}.json`;
}

function activeKey(segmentId: string, runId: string): string {
  return `${ACTIVE_PREFIX}${runId}=${segmentId}`;
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function decode<T>(body: Uint8Array, schema: z.ZodType<T>, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new IntegrityError(`The stored ${what} is not valid JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new IntegrityError(`The stored ${what} is malformed (${issue.path.join('.') || '(root)'}: ${issue.message})`);
  }
  return parsed.data;
}
