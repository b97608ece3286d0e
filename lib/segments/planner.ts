import { FEATURES } from '../catalog';
import { ConfigError, PreconditionFailedError } from '../errors';
import type { ModelRegistry } from '../registry/index';
import type { FeatureProfile } from '../drift';
import { AggregateMerger, type DriftReference, type SegmentAggregate } from './aggregates';
import { isFinished, type SegmentRun, type SegmentRunStore, type StoredStatistics } from './runs';
import type { FeatureBatch } from '../warehouse/index';
import { chunkFingerprint, cutChunks, toInline, type FeatureChunk } from './chunks';
import { reasonsRate, type WorkerPayload, type WorkerResult } from './worker';

/** Runs one chunk somewhere: in this process, or in a worker Lambda. Throws when the chunk failed. */
export interface WorkerInvoker {
  invoke(payload: WorkerPayload): Promise<WorkerResult>;
}

/** Starts a planner for a run somewhere else (an asynchronous Lambda invocation). */
export interface PlannerStarter {
  start(segmentId: string, runId: string): Promise<void>;
}

/** What the planner needs from the warehouse: the members' count, and one scan of members with features. */
export interface MemberSource {
  /** Connections the warehouse allows this process: with one, other reads cannot run beside the scan. */
  readonly connections?: number;
  countSegmentMembers(segmentId: string): Promise<number>;
  scanSegmentFeatures(segmentId: string, options?: { fetchRows?: number }): AsyncIterable<FeatureBatch>;
}

/** Starts the distributed map over a run's manifest (Step Functions, or the local runner). */
export interface MapStarter {
  start(run: SegmentRun, manifestKey: string): Promise<void>;
}

/** How a run reads and hands out its customers. */
export interface ScanSettings {
  fetchRows: number;
  /** A chunk's features go inline while its payload is at most this many bytes. */
  inlinePayloadBytes: number;
  /** More members than this: the distributed map. */
  mapThreshold: number;
}

export interface PlannerSettings {
  chunkSize: number;
  concurrency: number;
  retries: number;
  /** Pause before retry n is n times this. */
  retryBackoffMs: number;
}

export interface LeaseSettings {
  /** How long a claim lasts without renewal. */
  leaseMs: number;
  /** A run whose planner died this many times is failed instead of resumed. */
  maxPlannerFailures: number;
}

/** What became of one planner invocation. */
export type PlannerOutcome =
  /** This planner finished the run: completed, partial or failed. */
  | { kind: 'finished'; run: SegmentRun; stats: StoredStatistics | null }
  /** Nothing to do: the run is finished, or another planner holds its lease. */
  | { kind: 'not_needed'; run: SegmentRun; reason: string }
  /** Time ran out; the lease is released and a continuation must be started. */
  | { kind: 'handed_off'; run: SegmentRun }
  /** Another planner took the run over (this one's lease had expired); this one stopped. */
  | { kind: 'lease_lost'; run: SegmentRun }
  /** The run's planners died too often: the run is now failed. */
  | { kind: 'gave_up'; run: SegmentRun }
  /** The run's chunks are written and the distributed map that scores and merges them has started. */
  | { kind: 'mapped'; run: SegmentRun };

export interface PlanDeps {
  members: MemberSource;
  runs: SegmentRunStore;
  invoker: WorkerInvoker;
  registry?: ModelRegistry;
  /** Who this planner is (the invocation's request id): recorded in the lease. */
  owner: string;
  lease: LeaseSettings;
  retryBackoffMs: number;
  scan: ScanSettings;
  /** The customer base's RFM quintiles, read once per planner and handed to every chunk (null: unavailable). */
  rfmQuintiles?: () => Promise<WorkerPayload['rfm_quintiles']>;
  /** Starts the distributed map (runs above the threshold); without one every run is planned here. */
  map?: MapStarter;
  /** Milliseconds this planner may still work (a Lambda's remaining time); unlimited when absent. */
  timeLeftMs?: () => number;
  /** Stop dispatching this long before the time runs out (a chunk in flight must still finish). */
  handoffMarginMs?: number;
  onProgress?: (run: SegmentRun) => void;
}

/**
 * Plans one segment run, or resumes it. The planner first claims the run by compare-and-swap on
 * the run record (a lease it renews while it works), so two planners never work on one run. It
 * reads the members in pages (keyset pagination: never every id in memory), cuts them into chunks
 * of the run's chunk size, has workers score them with bounded concurrency, retries failed chunks,
 * and merges the parts into statistics.
 *
 * A chunk's part is keyed by (run, chunk), so a retry replaces and never adds. A planner that
 * resumes a run whose previous planner died finds the chunks already scored (their parts hold the
 * same customers) and keeps them, so nothing is lost or counted twice. A chunk whose retries are
 * spent leaves the run `partial`, naming the chunk and its customers; if every chunk failed the
 * run is `failed`.
 */
export async function planSegmentRun(segmentId: string, runId: string, deps: PlanDeps): Promise<PlannerOutcome> {
  const claimed = await claim(segmentId, runId, deps);
  if ('kind' in claimed) return claimed;
  const { lease, resuming } = claimed;
  const run = lease.run;
  const settings: PlannerSettings = { chunkSize: run.settings.chunk_size, concurrency: run.settings.concurrency, retries: run.settings.retries, retryBackoffMs: deps.retryBackoffMs };
  const heartbeat = setInterval(() => void lease.save().catch(() => undefined), Math.max(500, Math.floor(deps.lease.leaseMs / 3)));
  heartbeat.unref();
  try {
    return await work(run, lease, resuming, settings, deps);
  } catch (error) {
    if (lease.lost) return { kind: 'lease_lost', run };
    // The lease is left to expire at once with its owner named: the next planner counts this one as failed.
    run.planner.last_error = describe(error);
    await lease.abandon().catch(() => undefined);
    throw error;
  } finally {
    clearInterval(heartbeat);
  }
}

async function work(run: SegmentRun, lease: RunLease, resuming: boolean, settings: PlannerSettings, deps: PlanDeps): Promise<PlannerOutcome> {
  if (!run.path) {
    const members = await deps.members.countSegmentMembers(run.segment_id);
    const mapped = deps.map !== undefined && members > deps.scan.mapThreshold;
    // Saved with the first progress.
    run.path = { kind: mapped ? 'distributed-map' : 'planner', members, threshold: deps.scan.mapThreshold, manifest_key: null, execution: null };
  }
  // The quintiles are read beside the scan on another connection (the first dispatch waits for
  // them), or before it when the warehouse allows one connection (the scan would hold it).
  const quintilesRead: Promise<WorkerPayload['rfm_quintiles'] | undefined> = run.types.includes('rfm') && deps.rfmQuintiles ? deps.rfmQuintiles() : Promise.resolve(undefined);
  quintilesRead.catch(() => undefined);
  if ((deps.members.connections ?? 1) < 2) await quintilesRead;
  if (run.path.kind === 'distributed-map') return writeMap(run, lease, deps, await quintilesRead);

  const existing = resuming ? await deps.runs.partChunks(run.segment_id, run.run_id) : new Set<number>();
  let lastProgress = 0;
  const report = async (force = false) => {
    deps.onProgress?.(run);
    if (force || Date.now() - lastProgress > 1000) {
      lastProgress = Date.now();
      await lease.save().catch(() => undefined);
    }
  };

  // Parts are merged as their chunks finish, while the scan goes on.
  const merged = new AggregateMerger(FEATURES);
  let succeeded = 0;
  const mergePart = (aggregate: SegmentAggregate) => {
    merged.add(aggregate);
    succeeded++;
  };
  const runChunk = async (number: number, chunk: FeatureChunk) => {
    const quintiles = await quintilesRead;
    if (existing.has(number)) {
      const part = await deps.runs.getPart(run.segment_id, run.run_id, number).catch(() => null);
      if (part && part.fingerprint === chunkFingerprint(chunk.ids)) {
        mergePart(part.aggregate);
        run.progress.chunks_done++;
        run.progress.customers_scored += part.scored;
        run.progress.customers_failed += part.failed.length;
        run.planner.resumed_chunks++;
        await report();
        return;
      }
    }
    let customers: WorkerPayload['customers'];
    try {
      customers = await chunkCustomers(run, number, chunk, deps);
    } catch (error) {
      run.progress.chunks_failed++;
      run.progress.customers_failed += chunk.ids.length;
      run.failed_chunks.push({ chunk: number, attempts: 0, error: `its chunk file could not be written: ${describe(error)}`, customer_ids: chunk.ids });
      await report();
      return;
    }
    let lastError = 'unknown error';
    let attempts = 0;
    for (let attempt = 1; attempt <= settings.retries + 1; attempt++) {
      if (attempt > 1) {
        run.progress.chunk_retries++;
        await sleep(settings.retryBackoffMs * (attempt - 1));
      }
      attempts = attempt;
      let result: WorkerResult;
      try {
        result = await deps.invoker.invoke({ run_id: run.run_id, segment_id: run.segment_id, chunk: number, attempt, types: run.types, ...(quintiles !== undefined ? { rfm_quintiles: quintiles } : {}), ...explaining(run), customers });
      } catch (error) {
        lastError = describe(error);
        // A misconfigured invoker (no region, no such function, no credentials) fails the same way every time.
        if (error instanceof ConfigError) break;
        continue;
      }
      // Only the invocation is retried: once it succeeded, the chunk is counted exactly once, with
      // the aggregate the worker wrote in its part.
      mergePart(result.aggregate);
      run.progress.chunks_done++;
      run.progress.customers_scored += result.scored;
      run.progress.customers_failed += result.failed;
      await report();
      return;
    }
    run.progress.chunks_failed++;
    run.progress.customers_failed += chunk.ids.length;
    run.failed_chunks.push({ chunk: number, attempts, error: lastError, customer_ids: chunk.ids });
    await report();
  };

  const margin = deps.handoffMarginMs ?? 0;
  const outOfTime = () => deps.timeLeftMs !== undefined && deps.timeLeftMs() < margin;
  const inFlight = new Set<Promise<void>>();
  let stopped: 'time' | 'lease' | null = null;
  let number = 0;
  // One scan per run: the members with their features, in id order, cut into chunks as they arrive.
  const chunks = cutChunks(deps.members.scanSegmentFeatures(run.segment_id, { fetchRows: deps.scan.fetchRows }), settings.chunkSize);
  for await (const chunk of chunks) {
    while (inFlight.size >= settings.concurrency) await Promise.race(inFlight);
    if (lease.lost || outOfTime()) {
      stopped = lease.lost ? 'lease' : 'time';
      break;
    }
    number++;
    run.progress.chunks_planned = number;
    run.progress.customers_planned += chunk.ids.length;
    const task: Promise<void> = runChunk(number, chunk).finally(() => inFlight.delete(task));
    inFlight.add(task);
  }
  await Promise.all(inFlight);
  if (stopped === 'lease' || lease.lost) return { kind: 'lease_lost', run };
  if (stopped === 'time') {
    await lease.release();
    return { kind: 'handed_off', run };
  }
  run.progress.planning_complete = true;
  await report(true);
  const stats = await finishRun(run, merged, succeeded, deps);
  if (lease.lost) return { kind: 'lease_lost', run };
  await lease.finish();
  return { kind: 'finished', run, stats };
}

/** A chunk as its worker receives it: inline while the payload fits, else as a chunk file. */
async function chunkCustomers(run: SegmentRun, number: number, chunk: FeatureChunk, deps: Pick<PlanDeps, 'runs' | 'scan'>): Promise<WorkerPayload['customers']> {
  const inline = toInline(chunk);
  // The payload's other fields take well under a kilobyte.
  const bytes = inline.features.length + inline.ids.reduce((n, id) => n + id.length + 3, 0) + inline.missing.length * 8 + inline.as_of.length * 20 + 1024;
  if (bytes <= deps.scan.inlinePayloadBytes) return { inline };
  const file = await deps.runs.putChunkFile(run.segment_id, run.run_id, chunk, number);
  // The fingerprint is needed only here (the worker checks the file against it) and on resume:
  // an inline chunk's worker computes it for its part.
  return { file, count: chunk.ids.length, fingerprint: chunkFingerprint(chunk.ids) };
}

/** A manifest item: one chunk for the distributed map's item processor (the segment worker). */
export interface MapItem {
  run_id: string;
  segment_id: string;
  chunk: number;
  types: SegmentRun['types'];
  rfm_quintiles?: WorkerPayload['rfm_quintiles'];
  reasons_rate?: number;
  customers: { file: string; count: number; fingerprint: string };
}

/** A run scoring churn explains a random sample of about REASONS_SAMPLE members (the segment's mean reasons). */
function explaining(run: SegmentRun): { reasons_rate?: number } {
  return run.types.includes('churn') && run.path ? { reasons_rate: reasonsRate(run.path.members) } : {};
}

/**
 * The distributed map's planning: every chunk to a chunk file, the manifest (a JSON array of
 * worker payloads, what the map's ItemReader reads), then the map is started. The lease is
 * released: from here the map's merge step finishes the run.
 */
async function writeMap(run: SegmentRun, lease: RunLease, deps: PlanDeps, quintiles: WorkerPayload['rfm_quintiles']): Promise<PlannerOutcome> {
  const items: MapItem[] = [];
  let number = 0;
  const chunks = cutChunks(deps.members.scanSegmentFeatures(run.segment_id, { fetchRows: deps.scan.fetchRows }), run.settings.chunk_size);
  const writes = new Set<Promise<void>>();
  let lastSave = Date.now();
  for await (const chunk of chunks) {
    if (lease.lost) return { kind: 'lease_lost', run };
    const n = ++number;
    const fingerprint = chunkFingerprint(chunk.ids);
    while (writes.size >= 16) await Promise.race(writes);
    const write: Promise<void> = deps.runs.putChunkFile(run.segment_id, run.run_id, chunk, n).then((file) => {
      items[n - 1] = { run_id: run.run_id, segment_id: run.segment_id, chunk: n, types: run.types, ...(quintiles !== undefined ? { rfm_quintiles: quintiles } : {}), ...explaining(run), customers: { file, count: chunk.ids.length, fingerprint } };
    });
    const tracked: Promise<void> = write.finally(() => writes.delete(tracked));
    writes.add(tracked);
    run.progress.chunks_planned = n;
    run.progress.customers_planned += chunk.ids.length;
    if (Date.now() - lastSave > 1000) {
      lastSave = Date.now();
      deps.onProgress?.(run);
      await lease.save().catch(() => undefined);
    }
  }
  await Promise.all(writes);
  run.progress.planning_complete = true;
  if (items.length === 0) {
    const stats = await finishRun(run, new AggregateMerger(FEATURES), 0, deps);
    await lease.finish();
    return { kind: 'finished', run, stats };
  }
  const manifestKey = await deps.runs.putManifest(run.segment_id, run.run_id, items);
  run.path!.manifest_key = manifestKey;
  run.path!.execution = mapExecutionName(run);
  // Released before the start: from here the map's merge step owns the run record.
  await lease.release();
  deps.onProgress?.(run);
  try {
    await deps.map!.start(run, manifestKey);
  } catch (error) {
    const failed = await deps.runs.updateRun(run.segment_id, run.run_id, (r) => {
      if (isFinished(r.status)) return false;
      r.status = 'failed';
      r.error = `the distributed map could not be started: ${describe(error)}`;
      r.finished_at = new Date().toISOString();
      return true;
    });
    return { kind: 'finished', run: failed, stats: null };
  }
  return { kind: 'mapped', run };
}

/**
 * Reads and merges the parts of these chunks, 16 at a time (the distributed map's merge step). A
 * chunk without a part is added to the run's failed chunks. Returns the merged parts and how many there were.
 */
export async function mergeParts(run: SegmentRun, chunks: number[], runs: SegmentRunStore): Promise<{ merged: AggregateMerger; succeeded: number }> {
  const merged = new AggregateMerger(FEATURES);
  let succeeded = 0;
  const READS = 16;
  for (let i = 0; i < chunks.length; i += READS) {
    const batch = chunks.slice(i, i + READS);
    const parts = await Promise.all(batch.map((c) => runs.getPart(run.segment_id, run.run_id, c)));
    parts.forEach((part, k) => {
      if (part) {
        merged.add(part.aggregate);
        succeeded++;
      } else {
        run.failed_chunks.push({ chunk: batch[k]!, attempts: 0, error: 'the worker reported success but wrote no part', customer_ids: [] });
        run.progress.chunks_failed++;
      }
    });
  }
  return { merged, succeeded };
}

/**
 * Finishes a run from the merged aggregate of its successful chunks: statistics and the segment's
 * history, status completed or partial (failed chunks), or failed when no chunk succeeded.
 */
export async function finishRun(run: SegmentRun, merger: AggregateMerger, succeeded: number, deps: Pick<PlanDeps, 'runs' | 'registry'>): Promise<StoredStatistics | null> {
  if (succeeded === 0 && run.progress.chunks_planned > 0) {
    run.status = 'failed';
    run.error = `every one of the ${run.progress.chunks_planned} chunks failed; the first said: ${run.failed_chunks[0]?.error ?? 'nothing'}`;
    run.finished_at = new Date().toISOString();
    return null;
  }
  const merged = merger.total;
  merged.failed += run.failed_chunks.reduce((n, c) => n + c.customer_ids.length, 0);
  const statistics = merger.statistics(await driftReferences(run.segment_id, merged, deps));
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
  return stats;
}

/**
 * Takes the run for this planner: a queued run, a run whose planner handed over, or a run whose
 * planner's lease expired (that planner died; counted). Compare-and-swap makes one claimant win.
 */
async function claim(segmentId: string, runId: string, deps: PlanDeps): Promise<PlannerOutcome | { lease: RunLease; resuming: boolean }> {
  const { run, etag } = await deps.runs.readRun(segmentId, runId);
  if (isFinished(run.status)) return { kind: 'not_needed', run, reason: `the run is ${run.status} already` };
  if (run.path?.execution) return { kind: 'not_needed', run, reason: `the distributed map ${run.path.execution} scores the run` };
  const now = Date.now();
  const expires = run.planner.expires_at === null ? null : Date.parse(run.planner.expires_at);
  if (run.planner.owner !== null && expires !== null && expires > now) {
    return { kind: 'not_needed', run, reason: `planner ${run.planner.owner} holds the run until ${run.planner.expires_at}` };
  }
  const died = run.planner.owner !== null;
  if (died) run.planner.failures++;
  if (run.planner.failures >= deps.lease.maxPlannerFailures) {
    run.status = 'failed';
    run.error =
      `the planner stopped ${run.planner.failures} times before finishing (crashed, timed out or ran out of memory)` +
      (run.planner.last_error ? `; the last one said: ${run.planner.last_error}` : '');
    run.finished_at = new Date(now).toISOString();
    run.planner.owner = null;
    run.planner.expires_at = null;
    try {
      await deps.runs.saveRun(run, etag);
    } catch (error) {
      if (error instanceof PreconditionFailedError) return { kind: 'not_needed', run, reason: 'another planner changed the run first' };
      throw error;
    }
    return { kind: 'gave_up', run };
  }
  const resuming = run.planner.attempts > 0;
  run.status = 'running';
  run.started_at ??= new Date(now).toISOString();
  run.error = null;
  run.planner.attempts++;
  run.planner.owner = deps.owner;
  run.planner.expires_at = new Date(now + deps.lease.leaseMs).toISOString();
  run.planner.resumed_chunks = 0;
  // A resumed run is counted again from the parts that exist: the earlier planner's figures died with it.
  run.progress = { planning_complete: false, chunks_planned: 0, chunks_done: 0, chunks_failed: 0, chunk_retries: 0, customers_planned: 0, customers_scored: 0, customers_failed: 0 };
  run.failed_chunks = [];
  let saved: string;
  try {
    saved = await deps.runs.saveRun(run, etag);
  } catch (error) {
    if (error instanceof PreconditionFailedError) return { kind: 'not_needed', run, reason: 'another planner claimed the run first' };
    throw error;
  }
  return { lease: new RunLease(deps.runs, run, saved, deps.lease.leaseMs), resuming };
}

/**
 * The planner's hold on its run record. Every save renews the lease and is a compare-and-swap on
 * the version this planner wrote last; saves are queued so two never race each other. If a save
 * finds another writer's version, the lease is lost and the planner stops.
 */
class RunLease {
  lost = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly runs: SegmentRunStore,
    readonly run: SegmentRun,
    private etag: string,
    private readonly leaseMs: number,
  ) {}

  /** Saves progress and renews the lease. */
  save(): Promise<void> {
    return this.write(() => {
      this.run.planner.expires_at = new Date(Date.now() + this.leaseMs).toISOString();
    });
  }

  /** Saves the finished run and clears the lease. */
  finish(): Promise<void> {
    return this.write(() => {
      this.run.planner.owner = null;
      this.run.planner.expires_at = null;
    });
  }

  /** Hands the run over: the lease ends now and names nobody, so the next planner starts at once. */
  release(): Promise<void> {
    return this.write(() => {
      this.run.planner.owner = null;
      this.run.planner.expires_at = new Date().toISOString();
    });
  }

  /** Gives the run up after an error: the lease ends now but still names this planner (a failure). */
  abandon(): Promise<void> {
    return this.write(() => {
      this.run.planner.expires_at = new Date().toISOString();
    });
  }

  private write(change: () => void): Promise<void> {
    const next = this.chain.then(async () => {
      if (this.lost) throw new PreconditionFailedError(`run ${this.run.run_id} was taken over by another planner`);
      change();
      try {
        this.etag = await this.runs.saveRun(this.run, this.etag);
      } catch (error) {
        if (error instanceof PreconditionFailedError) this.lost = true;
        throw error;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/**
 * What each model version that scored the run is compared with: the segment's first and previous
 * finished runs under the same version (from its history, their inputs from their own statistics)
 * and the base the version was trained for (its manifest's feature profile). Never the training
 * holdout: a segment is not the holdout, so that comparison is "major" from the first run on.
 */
async function driftReferences(segmentId: string, merged: SegmentAggregate, deps: Pick<PlanDeps, 'runs' | 'registry'>): Promise<DriftReference[]> {
  const refs: DriftReference[] = [];
  const history = await deps.runs.history(segmentId).catch(() => []);
  // Churn and NBO usually share their earlier runs: each run's statistics are read once.
  const read = new Map<string, Promise<FeatureProfile | null>>();
  const inputsOf = (runId: string) => {
    if (!read.has(runId)) read.set(runId, deps.runs.getStatistics(segmentId, runId).then((s) => s.inputs ?? null, () => null));
    return read.get(runId)!;
  };
  for (const tally of merged.models) {
    if (tally.source !== 'model' || tally.version === null) continue;
    const label = `${tally.model} v${tally.version}`;
    // Newest first: the previous run is the first with this version, the baseline the last.
    const same = history.filter((h) => h.status !== 'failed' && h.models.some((m) => m.model === tally.model && m.source === 'model' && m.version === tally.version));
    const scoresOf = (h: (typeof history)[number]) => ({
      churn: tally.model === 'churn' ? h.churn?.histogram.counts : undefined,
      topOffers: tally.model === 'nbo' && h.nbo ? Object.fromEntries(h.nbo.top_offers.map((o) => [o.offer_id, o.customers])) : undefined,
    });
    const previous = same[0];
    const baseline = same[same.length - 1];
    if (baseline) {
      const both = baseline === previous;
      refs.push({ model: tally.model, version: tally.version, against: 'baseline', reference: `baseline run ${baseline.run_id} (the first under ${label}${both ? ', and the previous run' : ''})`, scores: scoresOf(baseline), inputs: await inputsOf(baseline.run_id) });
    }
    if (previous && previous !== baseline) refs.push({ model: tally.model, version: tally.version, against: 'previous', reference: `previous run ${previous.run_id}`, scores: scoresOf(previous), inputs: await inputsOf(previous.run_id) });
    const manifest = deps.registry ? await deps.registry.getManifest(tally.model, tally.version).catch(() => null) : null;
    // The segment as it stood when the version was trained; for a model trained on other rows (a
    // CSV file), those rows. A segment the warehouse gained since has no such reference.
    const profile = manifest?.feature_profile;
    const trainedFor = profile?.segments ? profile.segments[segmentId] : profile;
    if (trainedFor) refs.push({ model: tally.model, version: tally.version, against: 'training', reference: `${label} at training: ${trainedFor.source}`, inputs: trainedFor });
  }
  return refs;
}

/** The name of a run's distributed-map execution: one per run, so starting it twice starts it once. */
export function mapExecutionName(run: Pick<SegmentRun, 'segment_id' | 'run_id'>): string {
  return `${run.segment_id}-${run.run_id}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80);
}

/** A new run record, queued. */
export function newRun(runId: string, segmentId: string, types: SegmentRun['types'], trigger: SegmentRun['trigger'], settings: Pick<PlannerSettings, 'chunkSize' | 'concurrency' | 'retries'>): SegmentRun {
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
    planner: { attempts: 0, failures: 0, owner: null, expires_at: null, resumed_chunks: 0, last_error: null },
    path: null,
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
