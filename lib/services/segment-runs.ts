import { z } from 'zod';
import type { Config } from '../config';
import { ConflictError, NotFoundError, ServiceUnavailableError } from '../errors';
import { logContext, logger, telemetry } from '../observability';
import type { ModelRegistry } from '../registry/index';
import { finishRun, mergeParts, newRun, planSegmentRun, type MapStarter, type MemberSource, type PlannerOutcome, type PlannerSettings, type PlannerStarter, type WorkerInvoker } from '../segments/planner';
import { LocalMapRunner } from '../segments/invokers';
import {
  assertSegmentId,
  isFinished,
  newRunId,
  scheduledRunId,
  SCORE_TYPES,
  type ScoreType,
  type SegmentRun,
  type SegmentRunStore,
  type StoredStatistics,
} from '../segments/runs';
import { rfmQuintiles, type WarehouseHandle } from '../warehouse/index';
import { RefreshingValue } from '../cache';

/** What the distributed map's merge states send (infra/segment-map.asl.json). */
const MergeEventSchema = z.object({ segment_id: z.string(), run_id: z.string(), map_error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).optional() });

/** A stopped planner keeps this long between its last dispatch and its own timeout (a chunk may take the worker's whole timeout). */
export const PLANNER_HANDOFF_MARGIN_MS = 180_000;

export interface NightlyOutcome {
  scheduled_at: string;
  started: { segment_id: string; run_id: string }[];
  /** Runs this scheduled time had started already (a repeated delivery of the event). */
  already_started: { segment_id: string; run_id: string; status: string }[];
  failed: { segment_id: string; error: string }[];
}

export interface SweepOutcome {
  checked: number;
  resumed: { segment_id: string; run_id: string }[];
  failed: { segment_id: string; run_id: string; error: string }[];
  forgotten: number;
}

/**
 * Segment runs as the API, the schedule, the sweeper and the CLI drive them: starting a run (its
 * planner runs elsewhere), its status and statistics, the planner's own work, the nightly schedule
 * and the sweeper that resumes runs whose planner died. Orchestration lives here; the handlers only
 * parse events and shape answers.
 */
export class SegmentRunService {
  constructor(
    private readonly deps: {
      runs: SegmentRunStore;
      warehouse: () => Promise<WarehouseHandle>;
      registry: ModelRegistry;
      invoker: WorkerInvoker;
      planners: PlannerStarter;
      /** The distributed map (Step Functions) for runs above the threshold; none: every run is planned in one planner. */
      map?: MapStarter;
      settings: Config['segments'];
      /**
       * How long the customer base's RFM quintiles are reused across runs (PROFILE_TTL_SECONDS, as
       * the API's base profile); 0 reads them for every run.
       */
      quintilesTtlMs?: number;
    },
  ) {
    this.quintiles = new RefreshingValue(async () => rfmQuintiles((await deps.warehouse()).warehouse), deps.quintilesTtlMs ?? 0);
  }

  /**
   * The customer base's RFM quintiles, read at most once per `quintilesTtlMs`: three sort-based
   * aggregates over the whole base (one took 0.26 s on a million customers on PostgreSQL here).
   */
  private readonly quintiles: RefreshingValue<Awaited<ReturnType<typeof rfmQuintiles>>>;

  /**
   * Creates a queued run and starts its planner; a planner that cannot be started fails the run.
   * When the segment already has an unfinished run for these types (or a run with this id exists),
   * that run is answered instead and nothing is started.
   */
  async start(segmentId: string, types: readonly ScoreType[], trigger: SegmentRun['trigger'] = 'api', runId = newRunId()): Promise<SegmentRun> {
    assertSegmentId(segmentId);
    await (await this.deps.warehouse()).warehouse.getSegment(segmentId);
    const run = newRun(runId, segmentId, [...new Set(types)], trigger, this.deps.settings);
    // At most one unfinished run per segment and types: a second start answers the run that holds them.
    const { created, run: held } = await this.deps.runs.createRun(run);
    if (!created) return held;
    logContext({ segment_id: segmentId, run_id: runId });
    await this.startPlanner(run);
    logger.info('segment run queued', { trigger, types: run.types });
    return run;
  }

  private async startPlanner(run: SegmentRun): Promise<void> {
    try {
      await this.deps.planners.start(run.segment_id, run.run_id);
    } catch (error) {
      logger.error('the planner could not be started', { error });
      await this.deps.runs.updateRun(run.segment_id, run.run_id, (r) => {
        if (r.status !== 'queued') return false;
        r.status = 'failed';
        r.error = 'the planner could not be started';
        r.finished_at = new Date().toISOString();
        return true;
      });
      run.status = 'failed';
      throw new ServiceUnavailableError('Could not start the segment run: the planner function did not accept the invocation', { cause: error });
    }
  }

  /** A run's record as the status route shows it (failed chunks' ids capped at 1,000 each). */
  async status(segmentId: string, runId: string) {
    const { failed_chunks, ...rest } = await this.deps.runs.getRun(segmentId, runId);
    return {
      ...rest,
      failed_chunks: failed_chunks.map((c) => ({ chunk: c.chunk, attempts: c.attempts, error: c.error, customers: c.customer_ids.length, customer_ids: c.customer_ids.slice(0, 1000) })),
    };
  }

  /** The latest finished run's statistics with the trend of earlier runs, or one run's statistics. */
  async stats(segmentId: string, runId?: string) {
    assertSegmentId(segmentId);
    if (runId) {
      // The run's input histograms are for later runs to compare with, not for the answer.
      const { inputs: _inputs, ...stats } = await this.deps.runs.getStatistics(segmentId, runId);
      return { ...stats, history: [] };
    }
    const history = await this.deps.runs.history(segmentId);
    if (!history.length) {
      const segment = await (await this.deps.warehouse()).warehouse.getSegment(segmentId);
      throw new NotFoundError(`Segment ${segment.id} (${segment.name}) has never been scored; start a run with POST /api/loyalty/v1/segments/${segment.id}/ml/predict/`, {
        code: 'segment_not_scored',
      });
    }
    const [entry, ...earlier] = history;
    // The latest run's own statistics: the history keeps only the input comparisons that moved.
    const { inputs: _inputs, ...latest } = await this.deps.runs.getStatistics(segmentId, entry!.run_id).catch(() => entry!);
    return { ...latest, history: earlier.map(trend) };
  }

  /**
   * The planner's work for one invocation: claim the run, score it (or resume it), merge. When the
   * invocation's time runs short the planner hands the run to a new invocation of itself.
   */
  async plan(
    segmentId: string,
    runId: string,
    invocation: {
      owner: string;
      timeLeftMs?: () => number;
      invoker?: WorkerInvoker;
      map?: MapStarter;
      mapThreshold?: number;
      /** Where members and features come from, when not the warehouse's one scan (the benchmark's per-chunk queries). */
      members?: MemberSource;
      onProgress?: (run: SegmentRun) => void;
    },
  ): Promise<PlannerOutcome> {
    logContext({ segment_id: segmentId, run_id: runId });
    const settings = this.deps.settings;
    const map = invocation.map ?? this.deps.map;
    const outcome = await planSegmentRun(segmentId, runId, {
      rfmQuintiles: async () => {
        try {
          const { value } = await this.quintiles.get();
          return { ...value.quintiles, customers: value.customers };
        } catch (error) {
          logger.warn('the RFM quintiles could not be read; the run scores RFM on the fixed cut points', { error: (error as Error).message });
          return null;
        }
      },
      scan: { fetchRows: settings.fetchRows, inlinePayloadBytes: settings.inlinePayloadBytes, mapThreshold: invocation.mapThreshold ?? settings.mapThreshold },
      ...(map ? { map } : {}),
      members: invocation.members ?? (await this.deps.warehouse()).warehouse,
      runs: this.deps.runs,
      invoker: invocation.invoker ?? this.deps.invoker,
      registry: this.deps.registry,
      owner: invocation.owner,
      lease: { leaseMs: this.deps.settings.leaseMs, maxPlannerFailures: this.deps.settings.maxPlannerFailures },
      retryBackoffMs: this.deps.settings.retryBackoffMs,
      timeLeftMs: invocation.timeLeftMs,
      handoffMarginMs: invocation.timeLeftMs ? PLANNER_HANDOFF_MARGIN_MS : 0,
      onProgress: invocation.onProgress,
    });
    const run = outcome.run;
    const progress = run.progress;
    telemetry.count('SegmentChunksDone', progress.chunks_done - run.planner.resumed_chunks);
    telemetry.count('SegmentChunksResumed', run.planner.resumed_chunks);
    telemetry.count('SegmentChunksFailed', progress.chunks_failed);
    telemetry.count('SegmentChunksRetried', progress.chunk_retries);
    if (outcome.kind === 'mapped') telemetry.count('SegmentRunsMapped');
    if (outcome.kind === 'finished' || outcome.kind === 'gave_up') {
      telemetry.count(run.status === 'completed' ? 'SegmentRunsCompleted' : run.status === 'partial' ? 'SegmentRunsPartial' : 'SegmentRunsFailed');
      telemetry.count('SegmentCustomersScored', progress.customers_scored);
    }
    if (outcome.kind === 'handed_off') {
      telemetry.count('SegmentRunsHandedOff');
      await this.deps.planners.start(segmentId, runId);
    }
    logger.info(`planner ${outcome.kind}`, {
      status: run.status,
      reason: outcome.kind === 'not_needed' ? outcome.reason : undefined,
      chunks_done: progress.chunks_done,
      chunks_failed: progress.chunks_failed,
      chunks_resumed: run.planner.resumed_chunks,
      customers_scored: progress.customers_scored,
      planner_attempt: run.planner.attempts,
      error: run.error ?? undefined,
    });
    return outcome;
  }

  /**
   * The distributed map's last step, from the event its state machine sends (infra/segment-map.asl.json:
   * `segment_id`, `run_id`, and `map_error`, the Map state's caught error, when the map failed).
   */
  async mergeStep(event: unknown): Promise<{ run_id: string; status: SegmentRun['status']; chunks_done: number; chunks_failed: number }> {
    const { segment_id, run_id, map_error } = MergeEventSchema.parse(event);
    const error = map_error ? [map_error.Error, map_error.Cause].filter(Boolean).join(': ').slice(0, 500) || 'the map state failed' : undefined;
    const run = await this.mergeMapped(segment_id, run_id, error);
    return { run_id, status: run.status, chunks_done: run.progress.chunks_done, chunks_failed: run.progress.chunks_failed };
  }

  /**
   * The distributed map's last step: merges the parts the map's workers wrote into the run's
   * statistics and history, and finishes the run. A chunk of the manifest without a part failed
   * (its retries spent, or the map stopped); a run whose chunks all failed is failed. Repeating the
   * step changes nothing once the run is finished.
   */
  async mergeMapped(segmentId: string, runId: string, mapError?: string): Promise<SegmentRun> {
    logContext({ segment_id: segmentId, run_id: runId });
    const run = await this.deps.runs.getRun(segmentId, runId);
    if (isFinished(run.status)) return run;
    const manifest = await this.deps.runs.getManifest(segmentId, runId);
    const parts = await this.deps.runs.partChunks(segmentId, runId);
    const withParts: number[] = [];
    run.failed_chunks = [];
    run.progress = { ...run.progress, chunks_planned: manifest.length, chunks_done: 0, chunks_failed: 0, customers_planned: 0, customers_scored: 0, customers_failed: 0, planning_complete: true };
    for (const item of manifest) {
      run.progress.customers_planned += item.customers.count;
      if (parts.has(item.chunk)) {
        withParts.push(item.chunk);
        run.progress.chunks_done++;
        continue;
      }
      const chunk = await this.deps.runs.getChunkFile(segmentId, runId, item.chunk).catch(() => null);
      run.failed_chunks.push({ chunk: item.chunk, attempts: 0, error: mapError ? `not scored by the distributed map: ${mapError}` : 'not scored by the distributed map', customer_ids: chunk?.ids ?? [] });
      run.progress.chunks_failed++;
    }
    const { merged, succeeded } = await mergeParts(run, withParts, this.deps.runs);
    await finishRun(run, merged, succeeded, { runs: this.deps.runs, registry: this.deps.registry });
    const saved = await this.deps.runs.updateRun(segmentId, runId, (r) => {
      if (isFinished(r.status)) return false;
      Object.assign(r, { status: run.status, finished_at: run.finished_at, progress: run.progress, failed_chunks: run.failed_chunks, error: run.error });
      return true;
    });
    telemetry.count(saved.status === 'completed' ? 'SegmentRunsCompleted' : saved.status === 'partial' ? 'SegmentRunsPartial' : 'SegmentRunsFailed');
    telemetry.count('SegmentCustomersScored', saved.progress.customers_scored);
    logger.info('distributed map merged', { status: saved.status, chunks_done: saved.progress.chunks_done, chunks_failed: saved.progress.chunks_failed, customers_scored: saved.progress.customers_scored });
    return saved;
  }

  /**
   * The nightly schedule: a run for each configured segment. Run ids derive from the scheduled time,
   * so a repeated delivery of the same event finds the runs it started and starts nothing twice; it
   * throws (and Lambda retries it) only when some segment could not be started, and the retry then
   * starts only those.
   */
  async nightly(scheduledAt: Date): Promise<NightlyOutcome> {
    const outcome: NightlyOutcome = { scheduled_at: scheduledAt.toISOString(), started: [], already_started: [], failed: [] };
    for (const segmentId of this.deps.settings.scheduled) {
      const runId = scheduledRunId(segmentId, scheduledAt);
      try {
        const existing = await this.deps.runs.getRun(segmentId, runId).catch((error: unknown) => {
          if (error instanceof NotFoundError) return null;
          throw error;
        });
        if (!existing) {
          const run = await this.start(segmentId, [...SCORE_TYPES], 'schedule', runId);
          if (run.run_id === runId) outcome.started.push({ segment_id: segmentId, run_id: runId });
          else outcome.already_started.push({ segment_id: segmentId, run_id: run.run_id, status: run.status });
        } else if (existing.status === 'failed' && existing.planner.attempts === 0) {
          // An earlier delivery created the run but no planner ever ran it: try again. (A run still
          // queued has its planner on the way; the sweeper restarts one that never arrives.)
          await this.requeue(existing);
          await this.startPlanner(existing);
          outcome.started.push({ segment_id: segmentId, run_id: runId });
        } else {
          outcome.already_started.push({ segment_id: segmentId, run_id: runId, status: existing.status });
        }
      } catch (error) {
        outcome.failed.push({ segment_id: segmentId, error: error instanceof Error ? error.message : String(error) });
      }
    }
    logger.info('nightly segment scoring', { ...outcome });
    if (outcome.failed.length) {
      throw new ServiceUnavailableError(`Could not start ${outcome.failed.length} scheduled segment runs: ${outcome.failed.map((f) => `${f.segment_id} (${f.error})`).join('; ')}`);
    }
    return outcome;
  }

  /** A scheduled run whose planner never started goes back to queued, so the retry can start it. */
  private async requeue(run: SegmentRun): Promise<void> {
    await this.deps.runs.updateRun(run.segment_id, run.run_id, (r) => {
      if (r.status !== 'failed' || r.planner.attempts > 0) return false;
      r.status = 'queued';
      r.error = null;
      r.finished_at = null;
      return true;
    });
  }

  /**
   * Finds unfinished runs whose planner is gone, and resumes them (a new planner invocation, which
   * keeps the chunks already scored) or, after `maxPlannerFailures` dead planners, fails them. A
   * queued run nobody picked up is started again, and failed once it has waited past every lease.
   */
  async sweep(now = Date.now()): Promise<SweepOutcome> {
    const outcome: SweepOutcome = { checked: 0, resumed: [], failed: [], forgotten: 0 };
    const { leaseMs, maxPlannerFailures } = this.deps.settings;
    for (const { segment_id, run_id } of await this.deps.runs.activeRuns()) {
      outcome.checked++;
      let run: SegmentRun;
      try {
        run = await this.deps.runs.getRun(segment_id, run_id);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        await this.deps.runs.forgetActive(segment_id, run_id);
        outcome.forgotten++;
        continue;
      }
      if (isFinished(run.status)) {
        await this.deps.runs.forgetActive(segment_id, run_id);
        outcome.forgotten++;
        continue;
      }
      // A distributed map finishes its run itself (its merge step runs even when items fail).
      if (run.path?.execution) continue;
      const leaseEnds = run.planner.expires_at ? Date.parse(run.planner.expires_at) : Date.parse(run.created_at) + leaseMs;
      if (leaseEnds > now) continue;
      telemetry.count('SegmentRunsPastLease');
      const neverStarted = run.status === 'queued' && run.planner.attempts === 0;
      const waitedTooLong = neverStarted && now - Date.parse(run.created_at) > leaseMs * (maxPlannerFailures + 1);
      if (waitedTooLong) {
        const error = `no planner picked the run up within ${Math.round((now - Date.parse(run.created_at)) / 60_000)} minutes`;
        const updated = await this.deps.runs.updateRun(segment_id, run_id, (r) => {
          if (r.status !== 'queued' || r.planner.attempts > 0) return false;
          r.status = 'failed';
          r.error = error;
          r.finished_at = new Date(now).toISOString();
          return true;
        });
        if (updated.status === 'failed') {
          telemetry.count('SegmentRunsFailed');
          outcome.failed.push({ segment_id, run_id, error });
        }
        continue;
      }
      // The planner claims the run itself, counting a dead predecessor and failing the run if needed.
      try {
        await this.deps.planners.start(segment_id, run_id);
        telemetry.count('SegmentRunsResumed');
        outcome.resumed.push({ segment_id, run_id });
      } catch (error) {
        logger.error('could not start a planner to resume a run', { segment_id, run_id, error });
      }
    }
    logger.info('swept unfinished segment runs', { ...outcome });
    return outcome;
  }

  /**
   * A whole run in this process (the CLI): create it, plan it here with the given worker (local or
   * the worker Lambda) and settings, and return the finished run with its statistics.
   */
  async runHere(
    segmentId: string,
    types: readonly ScoreType[],
    options: {
      settings: Pick<PlannerSettings, 'chunkSize' | 'concurrency' | 'retries'>;
      invoker: WorkerInvoker;
      owner: string;
      onProgress?: (run: SegmentRun) => void;
      /** Runs above this many members take the distributed-map path, mapped here by the local runner. */
      mapThreshold?: number;
      members?: MemberSource;
    },
  ): Promise<{ run: SegmentRun; stats: StoredStatistics | null }> {
    assertSegmentId(segmentId);
    const run = newRun(newRunId(), segmentId, [...new Set(types)], 'cli', options.settings);
    const { created, run: held } = await this.deps.runs.createRun(run);
    if (!created) {
      throw new ConflictError(`Segment ${segmentId} already has an unfinished run for ${run.types.join(', ')}: ${held.run_id} (${held.status}, started by ${held.trigger}); wait for it (loyalty-ml segment-stats ${segmentId}) before scoring it again`, { code: 'run_in_progress' });
    }
    const map = new LocalMapRunner({
      runs: this.deps.runs,
      invoker: options.invoker,
      concurrency: options.settings.concurrency,
      retries: options.settings.retries,
      toleratedFailurePercent: this.deps.settings.mapToleratedFailurePercent,
      merge: (segment, id, error) => this.mergeMapped(segment, id, error),
    });
    const outcome = await this.plan(segmentId, run.run_id, { owner: options.owner, invoker: options.invoker, map, mapThreshold: options.mapThreshold, members: options.members, onProgress: options.onProgress });
    if (outcome.kind === 'mapped') {
      const done = await this.deps.runs.getRun(segmentId, run.run_id);
      return { run: done, stats: isFinished(done.status) && done.status !== 'failed' ? await this.deps.runs.getStatistics(segmentId, run.run_id) : null };
    }
    return { run: outcome.run, stats: outcome.kind === 'finished' ? outcome.stats : null };
  }
}

/** The figures of an earlier run that a trend needs. */
function trend(s: StoredStatistics) {
  return {
    run_id: s.run_id,
    finished_at: s.finished_at,
    status: s.status,
    customers: s.customers,
    churn: s.churn && { mean: s.churn.mean, median: s.churn.median, p90: s.churn.p90, risk_bands: s.churn.risk_bands },
    nbo: s.nbo && { mean_confidence: s.nbo.mean_confidence, top_offers: s.nbo.top_offers.map((o) => ({ offer_id: o.offer_id, share: o.share })) },
    rfm: s.rfm && { segments: s.rfm.segments.map((x) => ({ segment: x.segment, share: x.share })) },
    models: s.models,
    drift: s.drift,
  };
}
