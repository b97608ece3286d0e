import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { NotFoundError, ServiceUnavailableError } from '../../lib/errors';
import { ModelRegistry } from '../../lib/registry/index';
import { newRun, type PlannerStarter, type WorkerInvoker } from '../../lib/segments/planner';
import { newRunId, SegmentRunStore } from '../../lib/segments/runs';
import { SegmentRunService } from '../../lib/services/segment-runs';
import type { WarehouseHandle } from '../../lib/warehouse/index';
import { tempFsStore } from '../support/registry';

/** A planner starter that records what it was asked to start, and can refuse. */
class RecordingStarter implements PlannerStarter {
  started: string[] = [];
  refuse = new Set<string>();
  async start(segmentId: string, runId: string): Promise<void> {
    if (this.refuse.has(segmentId)) throw new Error('Lambda throttled the invocation');
    this.started.push(`${segmentId}/${runId}`);
  }
}

const SEGMENTS = ['all', 'high-value', 'at-risk'];
const warehouse = async () =>
  ({
    warehouse: {
      getSegment: async (id: string) => {
        if (!SEGMENTS.includes(id)) throw new NotFoundError(`Segment "${id}" does not exist`, { code: 'segment_not_found' });
        return { id, name: id, description: null };
      },
    },
  }) as unknown as WarehouseHandle;

function service(env: Record<string, string> = {}) {
  const cfg = loadConfig({ STAGE: 'test', SCHEDULED_SEGMENTS: 'all,high-value,at-risk', SEGMENT_LEASE_SECONDS: '60', ...env });
  const runs = new SegmentRunStore(tempFsStore());
  const planners = new RecordingStarter();
  const never: WorkerInvoker = { invoke: () => Promise.reject(new Error('no workers in this test')) };
  const segments = new SegmentRunService({ runs, warehouse, registry: new ModelRegistry(tempFsStore(), { actor: 'test' }), invoker: never, planners, settings: cfg.segments });
  return { segments, runs, planners, cfg };
}

const schedule = new Date('2026-11-22T02:00:00.000Z');

describe('one unfinished run per segment and types', () => {
  it('answers every one of many racing starts with the same run, and only that one is created and planned', async () => {
    const { segments, runs, planners } = service();

    const started = await Promise.all(Array.from({ length: 12 }, () => segments.start('all', ['churn', 'nbo'])));

    expect(new Set(started.map((r) => r.run_id)).size).toBe(1);
    expect(planners.started).toEqual([`all/${started[0]!.run_id}`]);
    expect((await runs.activeRuns()).map((r) => r.run_id)).toEqual([started[0]!.run_id]);
    expect((await runs.store.list('segments/all/runs/')).keys).toHaveLength(1);
    // Other types are another run; the same types in another order are the same.
    expect((await segments.start('all', ['rfm'])).run_id).not.toBe(started[0]!.run_id);
    expect((await segments.start('all', ['nbo', 'churn'])).run_id).toBe(started[0]!.run_id);
    // Once it finished, a start is a new run.
    await runs.updateRun('all', started[0]!.run_id, (r) => Object.assign(r, { status: 'failed', finished_at: new Date().toISOString() }) !== null);
    expect((await segments.start('all', ['churn', 'nbo'])).run_id).not.toBe(started[0]!.run_id);
  });

  it('takes over a claim whose starter died before writing its run', async () => {
    const { segments, runs } = service();
    const orphan = newRunId();
    await runs.store.put('segments/at-risk/current/churn.json', new TextEncoder().encode(JSON.stringify({ run_id: orphan, created_at: new Date(Date.now() - 60_000).toISOString() })), { contentType: 'application/json' });

    const run = await segments.start('at-risk', ['churn']);

    expect(run.run_id).not.toBe(orphan);
    expect(run.status).toBe('queued');
  });
});

describe('the nightly schedule', () => {
  it('starts each segment once when the same event is delivered twice', async () => {
    const { segments, runs, planners } = service();

    const first = await segments.nightly(schedule);
    const second = await segments.nightly(schedule);

    expect(first.started.map((s) => s.segment_id)).toEqual(SEGMENTS);
    expect(second.started).toEqual([]);
    expect(second.already_started.map((s) => [s.segment_id, s.run_id])).toEqual(first.started.map((s) => [s.segment_id, s.run_id]));
    expect(planners.started).toHaveLength(3);
    expect((await runs.activeRuns()).map((r) => r.segment_id).sort()).toEqual([...SEGMENTS].sort());
    // While last night's runs are unfinished, the next night answers them (one unfinished run per segment and types).
    const busy = await segments.nightly(new Date('2026-11-23T02:00:00.000Z'));
    expect(busy.started).toEqual([]);
    expect(busy.already_started.map((s) => s.run_id)).toEqual(first.started.map((s) => s.run_id));
    // Once they finished, the next night is another run.
    for (const s of first.started) await runs.updateRun(s.segment_id, s.run_id, (r) => Object.assign(r, { status: 'completed', finished_at: new Date().toISOString() }) !== null);
    const next = await segments.nightly(new Date('2026-11-23T02:00:00.000Z'));
    expect(next.started).toHaveLength(3);
    expect(next.started[0]!.run_id).not.toBe(first.started[0]!.run_id);
  });

  it('throws when a segment could not be started, and the retry starts only that one', async () => {
    const { segments, runs, planners } = service();
    planners.refuse.add('high-value');

    const error = await segments.nightly(schedule).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as Error).message).toMatch(/Could not start 1 scheduled segment runs: high-value/);
    const failedRun = (await runs.activeRuns()).find((r) => r.segment_id === 'high-value');
    expect(failedRun).toBeUndefined();

    planners.refuse.clear();
    const retry = await segments.nightly(schedule);

    expect(retry.started.map((s) => s.segment_id)).toEqual(['high-value']);
    expect(retry.already_started.map((s) => s.segment_id)).toEqual(['all', 'at-risk']);
    expect(planners.started.filter((s) => s.startsWith('high-value/'))).toHaveLength(1);
    const run = await runs.getRun('high-value', retry.started[0]!.run_id);
    expect(run).toMatchObject({ status: 'queued', error: null, trigger: 'schedule' });
  });

  it('reports an unknown scheduled segment without stopping the others', async () => {
    const { segments } = service({ SCHEDULED_SEGMENTS: 'all,nowhere' });

    const error = await segments.nightly(schedule).catch((e: unknown) => e);

    expect((error as Error).message).toMatch(/nowhere \(Segment "nowhere" does not exist\)/);
  });
});

describe('the sweeper', () => {
  it('resumes a run whose planner lease expired, forgets finished runs, and fails runs nobody ever picked up', async () => {
    const { segments, runs, planners, cfg } = service();
    const now = Date.now();
    const ago = (ms: number) => new Date(now - ms).toISOString();
    const settings = cfg.segments;

    // A running run whose planner died two minutes ago.
    const dead = newRun(newRunId(), 'all', ['churn'], 'api', settings);
    await runs.createRun(dead);
    await runs.updateRun('all', dead.run_id, (r) => {
      Object.assign(r, { status: 'running', started_at: ago(300_000) });
      r.planner = { ...r.planner, attempts: 1, owner: 'req-1', expires_at: ago(120_000) };
      return true;
    });
    // A running run whose planner is alive.
    const alive = newRun(newRunId(), 'high-value', ['churn'], 'api', settings);
    await runs.createRun(alive);
    await runs.updateRun('high-value', alive.run_id, (r) => {
      r.status = 'running';
      r.planner = { ...r.planner, attempts: 1, owner: 'req-2', expires_at: new Date(now + 30_000).toISOString() };
      return true;
    });
    // A queued run nobody picked up for an hour.
    const stranded = newRun(newRunId(), 'at-risk', ['churn'], 'api', settings);
    stranded.created_at = ago(3_600_000);
    await runs.createRun(stranded);

    const outcome = await segments.sweep(now);

    expect(outcome.resumed).toEqual([{ segment_id: 'all', run_id: dead.run_id }]);
    expect(planners.started).toEqual([`all/${dead.run_id}`]);
    expect(outcome.failed).toEqual([{ segment_id: 'at-risk', run_id: stranded.run_id, error: 'no planner picked the run up within 60 minutes' }]);
    expect((await runs.getRun('at-risk', stranded.run_id)).status).toBe('failed');
    expect((await runs.activeRuns()).map((r) => r.segment_id).sort()).toEqual(['all', 'high-value']);
  });
});
