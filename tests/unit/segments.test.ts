import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../lib/random';
import { ModelRegistry } from '../../lib/registry/index';
import { countsPsi, driftLevel, featureProfile, fineBin, histogramPsi } from '../../lib/drift';
import { addCustomer, addScores, AggregateMerger, emptyAggregate, finalizeStatistics, mergeInto, SegmentAggregateSchema, tallyModel, type CompactResult } from '../../lib/segments/aggregates';
import { LambdaWorkerInvoker, LocalMapRunner, LocalWorkerInvoker } from '../../lib/segments/invokers';
import { chunkFingerprint, cutChunks, decodeChunkFile, encodeChunkFile, fromInline, toInline } from '../../lib/segments/chunks';
import { SegmentRunService } from '../../lib/services/segment-runs';
import { loadConfig } from '../../lib/config';
import { newRun, planSegmentRun, type MemberSource, type WorkerInvoker } from '../../lib/segments/planner';
import { newRunId, SegmentRunStore, type ScoreType } from '../../lib/segments/runs';
import { scoreChunk, WorkerPayloadSchema, type FaultPlan } from '../../lib/segments/worker';
import { FEATURES } from '../../lib/catalog';
import { customerFeatures, MemoryFeatures, PROFILE, testApp } from '../support/app';
import { publishTiny } from '../support/models';
import { FaultyStore, tempFsStore } from '../support/registry';
import { runStateMachine, segmentMapDefinition } from '../support/state-machine';
import { StoreUnavailableError } from '../../lib/errors';
import type { NboResult } from '../../lib/scoring/results';

const OFFERS = ['winback_20', 'double_points', 'vip_upgrade'];
const SEGMENTS = ['Champions', 'Lost', 'At Risk'];

function randomResults(n: number, seed: number): { results: CompactResult[]; features: (number | null)[][] } {
  const rng = new Rng(seed);
  const results: CompactResult[] = [];
  const features: (number | null)[][] = [];
  for (let i = 0; i < n; i++) {
    const p = Math.round(rng.next() ** 2 * 1e6) / 1e6;
    results.push({
      id: `c${i}`,
      churn: p,
      risk: p >= 0.6 ? 'high' : p >= 0.3 ? 'medium' : 'low',
      offer: OFFERS[Math.floor(rng.next() * 3)]!,
      confidence: Math.round((0.3 + rng.next() * 0.6) * 1e6) / 1e6,
      rfm: '345',
      rfm_segment: SEGMENTS[Math.floor(rng.next() * 3)]!,
    });
    features.push(customerFeatures(i));
  }
  return { results, features };
}

describe('segment aggregates', () => {
  it('merged from many parts equal the statistics computed in one pass', () => {
    const { results, features } = randomResults(5003, 1);
    const whole = emptyAggregate(FEATURES);
    results.forEach((r, i) => addCustomer(whole, r, features[i]));

    // Uneven parts, merged in a shuffled order.
    const cuts = [0, 17, 900, 901, 2500, 4999, 5003];
    const parts = cuts.slice(1).map((end, k) => {
      const agg = emptyAggregate(FEATURES);
      for (let i = cuts[k]!; i < end; i++) addCustomer(agg, results[i]!, features[i]);
      return agg;
    });
    const order = [3, 0, 5, 1, 4, 2];
    const merged = order.reduce((acc, k) => mergeInto(acc, parts[k]!), emptyAggregate(FEATURES));

    const fromParts = finalizeStatistics(merged);
    expect(fromParts).toEqual(finalizeStatistics(whole));

    // And against a direct computation over the plain values.
    const p = results.map((r) => r.churn!).sort((a, b) => a - b);
    const n = p.length;
    expect(fromParts.churn!.customers).toBe(n);
    expect(fromParts.churn!.mean).toBeCloseTo(p.reduce((a, b) => a + b, 0) / n, 12);
    expect(fromParts.churn!.median).toBe(p[(n - 1) / 2]);
    expect(fromParts.churn!.p90).toBe(p[Math.ceil(0.9 * n) - 1]);
    expect(fromParts.churn!.risk_bands).toEqual({
      low: p.filter((x) => x < 0.3).length,
      medium: p.filter((x) => x >= 0.3 && x < 0.6).length,
      high: p.filter((x) => x >= 0.6).length,
    });
    expect(fromParts.churn!.histogram.counts.reduce((a, b) => a + b, 0)).toBe(n);
    const offers = Object.fromEntries(fromParts.nbo!.top_offers.map((o) => [o.offer_id, o.customers]));
    expect(offers).toEqual(Object.fromEntries(OFFERS.map((o) => [o, results.filter((r) => r.offer === o).length])));
    expect(fromParts.rfm!.segments.reduce((a, s) => a + s.customers, 0)).toBe(n);
  });

  it("a run's merger (dense counts) gives the one-pass statistics, from parts as stored, the earlier stored form included", () => {
    const { results, features } = randomResults(3001, 2);
    const whole = emptyAggregate(FEATURES);
    results.forEach((r, i) => addCustomer(whole, r, features[i]));
    const merger = new AggregateMerger(FEATURES);
    for (const [from, to] of [[0, 1000], [1000, 1001], [1001, 3001]] as const) {
      const part = emptyAggregate(FEATURES);
      for (let i = from; i < to; i++) addCustomer(part, results[i]!, features[i]);
      const stored = JSON.parse(JSON.stringify(part)) as { churn: { micro: unknown } };
      // Parts written before the pairs: the churn counts as an object keyed by micro-units.
      if (from === 1001) {
        const pairs = stored.churn.micro as number[];
        stored.churn.micro = Object.fromEntries(pairs.flatMap((m, k) => (k % 2 ? [] : [[String(m), pairs[k + 1]]])));
      }
      merger.add(SegmentAggregateSchema.parse(stored));
    }
    expect(merger.statistics()).toEqual(finalizeStatistics(whole));
    // Counts out of order, or a value that is no micro-unit, are refused.
    const bad = JSON.parse(JSON.stringify(whole)) as { churn: { micro: number[] } };
    bad.churn.micro = [500, 1, 400, 1];
    expect(SegmentAggregateSchema.safeParse(bad).success).toBe(false);
    bad.churn.micro = [1_000_001, 1];
    expect(SegmentAggregateSchema.safeParse(bad).success).toBe(false);
    // In the earlier form too: a key beyond a million micro-units is refused, not dropped.
    (bad.churn as { micro: unknown }).micro = { '500': 2, '1000001': 1 };
    expect(SegmentAggregateSchema.safeParse(bad).success).toBe(false);
    (bad.churn as { micro: unknown }).micro = { '500': 2, '400': 1 };
    expect(SegmentAggregateSchema.parse(bad).churn.micro).toEqual([400, 1, 500, 2]);
  });

  it('computes the median of an even count as the mean of the middle two', () => {
    const agg = emptyAggregate(FEATURES);
    for (const [i, p] of [0.1, 0.2, 0.4, 0.9].entries()) addCustomer(agg, { id: `c${i}`, churn: p, risk: 'low' }, undefined);
    expect(finalizeStatistics(agg).churn).toMatchObject({ median: 0.3, p90: 0.9, mean: 0.4 });
  });

  it('reports collapsed predictions and constant inputs over the whole segment', () => {
    const agg = emptyAggregate(FEATURES);
    for (let i = 0; i < 20; i++) addCustomer(agg, { id: `c${i}`, churn: 0.5, risk: 'medium', offer: 'vip_upgrade', confidence: 0.995 }, [999, ...customerFeatures(1).slice(1)]);
    const codes = finalizeStatistics(agg).warnings.map((w) => `${w.code}:${w.model ?? w.feature ?? ''}`);
    expect(codes).toContain('collapsed_predictions:churn');
    expect(codes).toContain('collapsed_predictions:nbo');
    expect(codes).toContain('constant_feature:days_since_last_transaction');
    expect(codes).toContain('defaulted_feature:days_since_last_transaction');
  });

  it('finds constant, missing and defaulted inputs from a chunk matrix as from one customer at a time', () => {
    // Column 1 always missing, 2 constant, 3 missing then set, 4 set then missing, 5 -0 against 0 (equal), others vary; recency (column 0) 999 twice.
    const rows = Array.from({ length: 6 }, (_, i) => customerFeatures(i + 1).map((v, j) => (j === 1 ? null : j === 2 ? 5 : j === 3 ? (i ? 1 : null) : j === 4 ? (i ? null : 1) : j === 5 ? (i % 2 ? -0 : 0) : v)));
    const recency = FEATURES.indexOf('days_since_last_transaction');
    rows[2]![recency] = 999;
    rows[4]![recency] = 999;
    const one = emptyAggregate(FEATURES);
    rows.forEach((r, i) => addCustomer(one, { id: `c${i}` }, r));
    const matrix = emptyAggregate(FEATURES);
    addScores(matrix, { n: rows.length }, Float64Array.from(rows.flat(), (v) => v ?? NaN));
    expect(matrix.features).toEqual(one.features);
    expect(matrix.features.constant?.slice(1, 6)).toEqual([{ value: null }, { value: 5 }, 'varies', 'varies', { value: 0 }]);
    expect(matrix.features.missing.slice(1, 5)).toEqual([6, 0, 1, 5]);
    expect(matrix.features.defaultedRecency).toBe(2);
  });

  it('measures drift with the population stability index', () => {
    expect(countsPsi([10, 10, 10, 10], [10, 10, 10, 10])).toBe(0);
    // Shares 0.5/0.5 against 0.9/0.1: (0.5-0.9)ln(0.5/0.9) + (0.5-0.1)ln(0.5/0.1)
    expect(countsPsi([5, 5], [9, 1])).toBeCloseTo(-0.4 * Math.log(0.5 / 0.9) + 0.4 * Math.log(5), 12);
  });

  it('compares inputs over fine bins grouped by the reference: nothing on the same data, major when 30% lapse', () => {
    const rng = new Rng(4);
    // A segment of customers who bought one to four months ago.
    const recency = Float64Array.from({ length: 5000 }, () => (rng.next() < 0.05 ? NaN : 30 + Math.floor(90 * rng.next())));
    const before = featureProfile(recency, ['days_since_last_transaction'], 'run 1');
    expect(histogramPsi(before.histograms[0]!, before.histograms[0]!)).toBe(0);
    // A different draw of the same population is stable.
    const again = Float64Array.from(recency, () => (rng.next() < 0.05 ? NaN : 30 + Math.floor(90 * rng.next())));
    expect(driftLevel(histogramPsi(featureProfile(again, ['r'], 'x').histograms[0]!, before.histograms[0]!))).toBe('stable');
    // 30% of customers lapse: their recency triples.
    const lapsed = Float64Array.from(recency, (v, i) => (i % 10 < 3 ? v * 3 : v));
    expect(driftLevel(histogramPsi(featureProfile(lapsed, ['r'], 'x').histograms[0]!, before.histograms[0]!))).toBe('major');
    // A profile of some rows (the training rows of a table) counts those rows alone, as a copy of them would.
    const two = Float64Array.from({ length: 2000 }, (_, i) => (i % 7 === 0 ? NaN : (i * 37) % 101));
    const some = Uint32Array.from({ length: 300 }, (_, i) => (i * 13) % 1000);
    const copied = Float64Array.from(Array.from(some).flatMap((r) => [two[r * 2]!, two[r * 2 + 1]!]));
    expect(featureProfile(two, ['a', 'b'], 's', some)).toEqual(featureProfile(copied, ['a', 'b'], 's'));
    // Bins: missing, zero, and a quarter of a binary order of magnitude either side.
    expect([NaN, 0, -0, 1, 1.18, 1.2, -3, 1e12].map(fineBin)).toEqual(['m', '0', '0', '+0', '+0', '+1', '-6', '+120']);
  });
});

describe('segment runs', () => {
  /** A segment of n members whose features the warehouse has (c00001, c00002, …), scanned 250 at a time. */
  const members = (n: number): MemberSource & { pages: number } => {
    const ids = Array.from({ length: n }, (_, i) => `c${String(i + 1).padStart(5, '0')}`);
    const source = {
      pages: 0,
      async countSegmentMembers() {
        return n;
      },
      async *scanSegmentFeatures() {
        for (let start = 0; start < n; start += 250) {
          source.pages++;
          const page = ids.slice(start, start + 250);
          const features = Float64Array.from(page.flatMap((_, i) => customerFeatures(start + i + 1).map((v) => v ?? NaN)));
          yield { ids: page, features, found: new Uint8Array(page.length).fill(1), asOf: page.map(() => '2026-01-01') };
        }
      },
    };
    return source;
  };
  const scan = { fetchRows: 250, inlinePayloadBytes: 256 * 1024, mapThreshold: 1_000_000 };

  async function setup(n: number, faults: FaultPlan[] | null) {
    const features = new MemoryFeatures(new Map(Array.from({ length: n }, (_, i) => [`c${String(i + 1).padStart(5, '0')}`, customerFeatures(i + 1)])));
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    await publishTiny(registry, 'nbo');
    const app = await testApp({ features, registry });
    const runs = new SegmentRunStore(tempFsStore());
    const invoker = new LocalWorkerInvoker((payload) => scoreChunk(WorkerPayloadSchema.parse(payload), { scoring: app.scoring, runs, deadlineMs: 10_000, faults }));
    return { app, runs, invoker };
  }

  const settings = { chunkSize: 100, concurrency: 3, retries: 2 };
  const lease = { leaseMs: 60_000, maxPlannerFailures: 3 };

  /** Creates a queued run and plans it to the end in this process. */
  async function runToEnd(runs: SegmentRunStore, deps: { members: MemberSource; invoker: WorkerInvoker }, types: ScoreType[] = ['churn', 'nbo', 'rfm'], chunkSettings = settings) {
    const run = newRun(newRunId(), 'all', types, 'cli', chunkSettings);
    await runs.createRun(run);
    const outcome = await planSegmentRun('all', run.run_id, { ...deps, runs, owner: 'planner-1', lease, retryBackoffMs: 1, scan });
    if (outcome.kind !== 'finished') throw new Error(`planner ended ${outcome.kind}`);
    return outcome;
  }

  it('completes exactly when chunks fail on their first attempt', async () => {
    const { runs, invoker } = await setup(1050, [{ failOnce: [1, 4, 11], failAlways: [] }]);
    const source = members(1050);

    const { run: done, stats } = await runToEnd(runs, { members: source, invoker });

    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ chunks_planned: 11, chunks_done: 11, chunks_failed: 0, chunk_retries: 3, customers_scored: 1050, customers_failed: 0 });
    expect(done.planner).toMatchObject({ attempts: 1, failures: 0, owner: null, expires_at: null });
    expect(stats!.customers).toEqual({ scored: 1050, failed: 0 });
    expect(stats!.churn!.customers).toBe(1050);
    expect(stats!.models.map((m) => m.label).sort()).toEqual(['churn v1 (production)', 'nbo v1 (production)']);
    expect(source.pages).toBe(Math.ceil(1050 / 300) + 1);

    // The same customers scored in one pass give the same statistics.
    const clean = await setup(1050, null);
    const direct = await runToEnd(clean.runs, { members: members(1050), invoker: clean.invoker }, ['churn', 'nbo', 'rfm'], { ...settings, chunkSize: 1050 });
    const strip = (s: typeof stats) => ({ ...s!, run_id: '', started_at: '', finished_at: '' });
    expect(strip(stats)).toEqual(strip(direct.stats));
    expect((await runs.history('all')).map((h) => h.run_id)).toEqual([done.run_id]);
  });

  it('counts a chunk once when saving progress fails right after it succeeded', async () => {
    const { runs: healthy, invoker } = await setup(500, null);
    let runSaves = 0;
    const faulty = new FaultyStore(healthy.store, () => new StoreUnavailableError('throttled'));
    // run.json writes: create, the claim, then the first progress save, which fails.
    faulty.failPut = (key) => key.endsWith('run.json') && ++runSaves === 3;
    const runs = new SegmentRunStore(faulty);

    const { run: done, stats } = await runToEnd(runs, { members: members(500), invoker }, ['churn']);

    expect(runSaves).toBeGreaterThan(3);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ chunks_done: 5, chunk_retries: 0, customers_scored: 500 });
    expect(stats!.customers).toEqual({ scored: 500, failed: 0 });
  });

  it('ends partial, naming the failed chunk and its customers, when a worker always fails', async () => {
    const { runs, invoker } = await setup(450, [{ failOnce: [], failAlways: [2] }]);

    const { run: done, stats } = await runToEnd(runs, { members: members(450), invoker }, ['churn']);

    expect(done.status).toBe('partial');
    expect(done.failed_chunks).toEqual([{ chunk: 2, attempts: 3, error: 'Injected fault for chunk 2, attempt 3', customer_ids: expect.any(Array) }]);
    expect(done.failed_chunks[0]!.customer_ids).toHaveLength(100);
    expect(done.failed_chunks[0]!.customer_ids[0]).toBe('c00101');
    expect(stats!.customers).toEqual({ scored: 350, failed: 100 });
    expect(stats!.failed_chunks).toEqual([2]);
    expect((await runs.getRun('all', done.run_id)).status).toBe('partial');
  });

  it('does not retry a worker invoker that is misconfigured (no region, no such function), and says what to set', async () => {
    const { runs } = await setup(250, null);
    let calls = 0;
    const lambda = new LambdaClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
    mockClient(lambda).on(InvokeCommand).callsFake(() => {
      calls++;
      throw Object.assign(new Error('Function not found: arn:aws:lambda:eu-west-1:1:function:nope'), { name: 'ResourceNotFoundException' });
    });

    const { run: done } = await runToEnd(runs, { members: members(250), invoker: new LambdaWorkerInvoker('nope', lambda) }, ['churn']);

    expect(calls).toBe(3); // one attempt per chunk, where settings allow three
    expect(done.status).toBe('failed');
    expect(done.failed_chunks.map((c) => c.attempts)).toEqual([1, 1, 1]);
    expect(done.error).toMatch(/cannot invoke the worker function nope: Function not found.*AWS_REGION/);
  });

  it('ends failed, not partial, when every chunk failed, and adds nothing to the history', async () => {
    const { runs, invoker } = await setup(250, [{ failOnce: [], failAlways: [1, 2, 3] }]);

    const { run: done, stats } = await runToEnd(runs, { members: members(250), invoker }, ['churn']);

    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/every one of the 3 chunks failed; the first said: Injected fault/);
    expect(stats).toBeNull();
    expect(await runs.history('all')).toEqual([]);
    expect(await runs.activeRuns()).toEqual([]);
  });

  it('resumes a run whose planner died, keeping the chunks it scored, and fences the dead planner off', async () => {
    const { runs: healthy, invoker } = await setup(1000, null);
    // The first planner's process "dies" after 4 chunks: its workers never answer and its writes fail.
    let dead = false;
    let revived = false;
    let release: () => void = () => undefined;
    const hung = new Promise<void>((r) => (release = r));
    const dying: WorkerInvoker = {
      invoke: async (payload) => {
        if (!revived && payload.chunk > 4) {
          dead = true;
          await hung;
        }
        return invoker.invoke(payload);
      },
    };
    const faulty = new FaultyStore(healthy.store, () => new StoreUnavailableError('process gone'));
    faulty.failPut = (key) => dead && key.endsWith('run.json');
    const shortLease = { leaseMs: 300, maxPlannerFailures: 3 };
    const run = newRun(newRunId(), 'all', ['churn', 'nbo', 'rfm'], 'cli', { chunkSize: 100, concurrency: 1, retries: 0 });
    await healthy.createRun(run);
    const first = planSegmentRun('all', run.run_id, { members: members(1000), runs: new SegmentRunStore(faulty), invoker: dying, owner: 'planner-1', lease: shortLease, retryBackoffMs: 1, scan });
    while (!dead) await new Promise((r) => setTimeout(r, 10));

    // While its lease lasts, nobody else may take the run.
    const early = await planSegmentRun('all', run.run_id, { members: members(1000), runs: healthy, invoker, owner: 'planner-2', lease: shortLease, retryBackoffMs: 1, scan });
    expect(early.kind).toBe('not_needed');
    await new Promise((r) => setTimeout(r, 400));
    const second = await planSegmentRun('all', run.run_id, { members: members(1000), runs: healthy, invoker, owner: 'planner-3', lease: shortLease, retryBackoffMs: 1, scan });

    expect(second.kind).toBe('finished');
    expect(second.run.status).toBe('completed');
    expect(second.run.planner).toMatchObject({ attempts: 2, failures: 1, resumed_chunks: 4, owner: null });
    expect(second.run.progress).toMatchObject({ chunks_planned: 10, chunks_done: 10, customers_scored: 1000, customers_failed: 0 });
    if (second.kind === 'finished') expect(second.stats!.customers).toEqual({ scored: 1000, failed: 0 });

    // The dead planner wakes up: it may not write over the finished run.
    dead = false;
    revived = true;
    release();
    expect((await first).kind).toBe('lease_lost');
    expect((await healthy.getRun('all', run.run_id)).status).toBe('completed');
  });

  it('fails a run whose planners keep dying, instead of leaving it running', async () => {
    const { runs, invoker } = await setup(300, null);
    const run = newRun(newRunId(), 'all', ['churn'], 'cli', settings);
    await runs.createRun(run);
    const broken: MemberSource = {
      countSegmentMembers: async () => 300,
      // eslint-disable-next-line require-yield
      scanSegmentFeatures: async function* () {
        throw new Error('the warehouse dropped the connection');
      },
    };
    const plan = (owner: string) => planSegmentRun('all', run.run_id, { members: broken, runs, invoker, owner, lease: { leaseMs: 60_000, maxPlannerFailures: 2 }, retryBackoffMs: 1, scan });

    await expect(plan('planner-1')).rejects.toThrow(/dropped the connection/);
    const afterFirst = await runs.getRun('all', run.run_id);
    await expect(plan('planner-2')).rejects.toThrow(/dropped the connection/);
    const last = await plan('planner-3');

    // A planner that fails gives its lease up at once, still naming itself: the next one counts it.
    expect(afterFirst).toMatchObject({ status: 'running', planner: { owner: 'planner-1', attempts: 1, failures: 0, last_error: 'the warehouse dropped the connection' } });
    expect(last.kind).toBe('gave_up');
    const stored = await runs.getRun('all', run.run_id);
    expect(stored.status).toBe('failed');
    expect(stored.error).toBe('the planner stopped 2 times before finishing (crashed, timed out or ran out of memory); the last one said: the warehouse dropped the connection');
    expect(await runs.activeRuns()).toEqual([]);
  });

  it('hands a run over when its time runs short, and the next planner finishes it', async () => {
    const { runs, invoker } = await setup(600, null);
    const run = newRun(newRunId(), 'all', ['churn'], 'cli', { chunkSize: 100, concurrency: 1, retries: 0 });
    await runs.createRun(run);
    let dispatched = 0;
    const counting: WorkerInvoker = { invoke: (p) => (dispatched++, invoker.invoke(p)) };

    const first = await planSegmentRun('all', run.run_id, { members: members(600), runs, invoker: counting, owner: 'p1', lease, retryBackoffMs: 1, scan, timeLeftMs: () => (dispatched >= 2 ? 1000 : 900_000), handoffMarginMs: 180_000 });
    const second = await planSegmentRun('all', run.run_id, { members: members(600), runs, invoker, owner: 'p2', lease, retryBackoffMs: 1, scan });

    expect(first.kind).toBe('handed_off');
    expect(first.run.planner.owner).toBeNull();
    expect(second.kind).toBe('finished');
    expect(second.run.planner).toMatchObject({ attempts: 2, failures: 0, resumed_chunks: 2 });
    expect(second.run.progress.customers_scored).toBe(600);
  });
});

describe('segments at warehouse scale: chunks, the columnar path and the distributed map', () => {
  const n = 1234;
  const ids = Array.from({ length: n }, (_, i) => `c${String(i + 1).padStart(5, '0')}`);
  const matrix = (from: number, count: number) => Float64Array.from(Array.from({ length: count }, (_, i) => customerFeatures(from + i + 1).map((v) => v ?? NaN)).flat());
  /** A warehouse scan: every 7th member has no features row; batches of 100. */
  const source = (): MemberSource => ({
    countSegmentMembers: async () => n,
    async *scanSegmentFeatures() {
      for (let start = 0; start < n; start += 100) {
        const page = ids.slice(start, start + 100);
        const found = Uint8Array.from(page.map((_, i) => ((start + i + 1) % 7 === 0 ? 0 : 1)));
        const features = matrix(start, page.length).map((v, k) => (found[Math.floor(k / FEATURES.length)] ? v : NaN));
        yield { ids: page, features, found, asOf: page.map((_, i) => (start + i < 600 ? '2026-10-01' : '2026-11-01')) };
      }
    },
  });

  it('scores a chunk from its payload alone: no features query, and RFM on the fixed cut points (said so) when the planner sent no quintiles', async () => {
    let queries = 0;
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    const app = await testApp({ features: { getFeatures: async () => (queries++, new Map()) }, registry });
    const runs = new SegmentRunStore(tempFsStore());
    const chunk = { ids: ids.slice(0, 50), features: matrix(0, 50), found: new Uint8Array(50).fill(1), asOf: ids.slice(0, 50).map(() => null) };
    const result = await scoreChunk(WorkerPayloadSchema.parse({ run_id: newRunId(), segment_id: 'all', chunk: 1, types: ['churn', 'rfm'], customers: { inline: toInline(chunk) } }), { scoring: app.scoring, runs, deadlineMs: 10_000 });
    expect(result).toMatchObject({ chunk: 1, scored: 50, failed: 0 });
    expect(queries).toBe(0);
    expect(Object.keys(result.aggregate!.workerWarnings)).toEqual(['rfm_fixed_cut_points']);
    expect(result.aggregate!.rfm.n).toBe(50);
    // A chunk file is read only at its run's own key, and only if it holds the customers the planner listed.
    const runId = newRunId();
    const file = await runs.putChunkFile('all', runId, chunk, 2);
    const asFile = (customers: { file: string; count: number; fingerprint: string }) => scoreChunk(WorkerPayloadSchema.parse({ run_id: runId, segment_id: 'all', chunk: 2, types: ['churn'], customers }), { scoring: app.scoring, runs, deadlineMs: 10_000 });
    await expect(asFile({ file, count: 50, fingerprint: chunkFingerprint(chunk.ids) })).resolves.toMatchObject({ scored: 50 });
    await expect(asFile({ file, count: 50, fingerprint: chunkFingerprint(ids.slice(1, 51)) })).rejects.toThrow(/holds other customers/);
    await expect(asFile({ file: 'models/churn/aliases/production.json', count: 50, fingerprint: chunkFingerprint(chunk.ids) })).rejects.toThrow(/its run keeps it at/);
  });

  it('carries a chunk exactly, inline and as an Arrow file, and cuts a scan into chunks of the run size', async () => {
    const chunks = [];
    for await (const c of cutChunks(source().scanSegmentFeatures('all'), 300)) chunks.push(c);
    expect(chunks.map((c) => c.ids.length)).toEqual([300, 300, 300, 300, 34]);
    const second = chunks[1]!;
    expect(second.ids[0]).toBe('c00301');
    // c00301 has no features row (found 0, all NaN); c00302 has.
    expect(second.found[0]).toBe(0);
    expect(Array.from(second.features.subarray(FEATURES.length, 2 * FEATURES.length))).toEqual(customerFeatures(302).map((v) => v ?? NaN));
    for (const copy of [fromInline(JSON.parse(JSON.stringify(toInline(second)))), decodeChunkFile(encodeChunkFile(second))]) {
      expect(copy.ids).toEqual(second.ids);
      expect(Array.from(copy.features)).toEqual(Array.from(second.features));
      expect(Array.from(copy.found)).toEqual(Array.from(second.found));
      expect(copy.asOf).toEqual(second.asOf);
      expect(chunkFingerprint(copy.ids)).toBe(chunkFingerprint(second.ids));
    }
    expect(chunkFingerprint(second.ids)).not.toBe(chunkFingerprint([...second.ids.slice(0, -1), 'c99999']));
  });

  it('cuts batches of any size, larger or smaller than a chunk, into chunks that keep every row in order', async () => {
    const w = FEATURES.length;
    const sizes = [1, 7, 1000, 299, 301, 2, 650];
    const total = sizes.reduce((a, b) => a + b, 0);
    const all = Array.from({ length: total }, (_, i) => `m${i}`);
    async function* batches() {
      let at = 0;
      for (const size of sizes) {
        const rows = all.slice(at, at + size);
        yield { ids: rows, features: Float64Array.from({ length: size * w }, (_, k) => at * w + k), found: Uint8Array.from(rows, (_, i) => (at + i) % 5 ? 1 : 0), asOf: rows.map((_, i) => `d${at + i}`) };
        at += size;
      }
    }
    for (const size of [300, 1000, 4096]) {
      const chunks = [];
      for await (const c of cutChunks(batches(), size)) chunks.push(c);
      expect(chunks.map((c) => c.ids.length)).toEqual([...Array(Math.floor(total / size)).fill(size), ...(total % size ? [total % size] : [])]);
      expect(chunks.flatMap((c) => c.ids)).toEqual(all);
      expect(chunks.flatMap((c) => c.asOf)).toEqual(all.map((_, i) => `d${i}`));
      expect(chunks.flatMap((c) => Array.from(c.found))).toEqual(all.map((_, i) => (i % 5 ? 1 : 0)));
      expect(chunks.flatMap((c) => Array.from(c.features))).toEqual(Array.from({ length: total * w }, (_, k) => k));
    }
  });

  it('scores chunks as columns into statistics exactly equal to one pass over every customer, on both paths', async () => {
    const features = new MemoryFeatures(new Map(ids.map((id, i) => [id, customerFeatures(i + 1)] as const).filter((_, i) => (i + 1) % 7 !== 0)));
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    await publishTiny(registry, 'nbo', 'production', { acceptance: true });
    const app = await testApp({ features, registry });
    // The one pass: every customer through the batch API's scoring, one at a time into one aggregate.
    const onePass = emptyAggregate(FEATURES);
    const outcome = await app.scoring.score(ids, 'all', 60_000, { keepInputs: true });
    for (const { customer_id, result } of outcome.results) {
      const r = result as { churn: { churn_probability: number; churn_risk: 'low' | 'medium' | 'high' }; nbo: NboResult; rfm: { rfm_score: string; segment: string } };
      tallyModel(onePass.models, { model: 'churn', source: 'model', version: 1, alias: 'production' });
      tallyModel(onePass.models, { model: 'nbo', source: 'model', version: 1, alias: 'production' });
      const offerProbabilities = Object.fromEntries(r.nbo.offers.map((o) => [o.offer_id, o.probability]));
      addCustomer(onePass, { id: customer_id, churn: r.churn.churn_probability, risk: r.churn.churn_risk, offer: r.nbo.offer_id, confidence: r.nbo.confidence, offer_probabilities: offerProbabilities, rfm: r.rfm.rfm_score, rfm_segment: r.rfm.segment }, outcome.inputs.get(customer_id));
    }
    onePass.failed = outcome.errors.length;
    const expected = finalizeStatistics(onePass);
    // Which offers work best: every offer's mean P(accept), and the acceptance if everyone got their best offer.
    expect(expected.nbo!.offers).toHaveLength(8);
    expect(expected.nbo!.expected_acceptance_best_offer).toBeCloseTo(expected.nbo!.mean_confidence, 12);
    expect(expected.nbo!.offers![0]!.mean_probability).toBeGreaterThan(expected.nbo!.offers![7]!.mean_probability);

    const runs = new SegmentRunStore(tempFsStore());
    const invoker = new LocalWorkerInvoker((payload) => scoreChunk(WorkerPayloadSchema.parse(payload), { scoring: app.scoring, runs, deadlineMs: 10_000 }));
    const { drift: _noDrift, ...expectedFigures } = expected;
    let runNumber = 0;
    for (const [path, inlinePayloadBytes, mapThreshold] of [
      ['planner', 256 * 1024, 1_000_000],
      ['planner', 0, 1_000_000],
      ['distributed-map', 256 * 1024, 1000],
    ] as const) {
      const run = newRun(newRunId(), 'all', ['churn', 'nbo', 'rfm'], 'cli', { chunkSize: 250, concurrency: 3, retries: 1 });
      await runs.createRun(run);
      const map = new LocalMapRunner({ runs, invoker, concurrency: 3, retries: 1, toleratedFailurePercent: 0, merge: (segment, runId, error) => mergeMapped(runs, segment, runId, error) });
      // The planner reads the quintiles once and hands them to every chunk (here: the test profile's).
      const rfmQuintiles = async () => ({ ...PROFILE.quintiles, customers: PROFILE.customers });
      const outcome = await planSegmentRun('all', run.run_id, { members: source(), runs, invoker, map, rfmQuintiles, owner: 'p', lease: { leaseMs: 60_000, maxPlannerFailures: 3 }, retryBackoffMs: 1, scan: { fetchRows: 100, inlinePayloadBytes, mapThreshold } });
      const done = await runs.getRun('all', run.run_id);
      expect(outcome.kind).toBe(path === 'planner' ? 'finished' : 'mapped');
      expect(done.path?.kind).toBe(path);
      expect(done.status).toBe('completed');
      const stats = await runs.getStatistics('all', run.run_id);
      const { run_id: _r, segment_id: _s, status: _st, types: _t, started_at: _a, finished_at: _f, failed_chunks, drift, ...figures } = stats;
      expect(failed_chunks).toEqual([]);
      expect(figures).toEqual(expectedFigures);
      // The same customers scored again under the same versions: every comparison with the earlier runs is nil.
      runNumber++;
      const earlier = runNumber === 1 ? 0 : runNumber === 2 ? 1 : 2;
      expect(new Set(drift.map((d) => d.against)).size).toBe(earlier);
      expect(drift.length).toBe(earlier * 2 * (1 + FEATURES.length));
      expect(drift.every((d) => d.psi === 0 && d.level === 'stable')).toBe(true);
      expect(figures.customers).toEqual({ scored: n - Math.floor(n / 7), failed: Math.floor(n / 7) });
      const files = (await runs.store.list(`segment-chunks/all/${run.run_id}/`)).keys;
      expect(files.length).toBe(inlinePayloadBytes === 0 || path === 'distributed-map' ? (path === 'distributed-map' ? 6 : 5) : 0);
    }
  });
});

describe('the distributed map as its state machine definition runs it', () => {
  const n = 1000;
  const ids = Array.from({ length: n }, (_, i) => `c${String(i + 1).padStart(5, '0')}`);
  const source = (): MemberSource => ({
    countSegmentMembers: async () => n,
    async *scanSegmentFeatures() {
      for (let start = 0; start < n; start += 100) {
        const page = ids.slice(start, start + 100);
        yield { ids: page, features: Float64Array.from(page.flatMap((_, i) => customerFeatures(start + i + 1).map((v) => v ?? NaN))), found: new Uint8Array(page.length).fill(1), asOf: page.map(() => '2026-11-01') };
      }
    },
  });

  it('scores every manifest item with the worker and merges through the Merge state; a chunk failing past its retries goes through the Catch to the merge with the error', async () => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    await publishTiny(registry, 'nbo');
    const app = await testApp({ features: new MemoryFeatures(new Map(ids.map((id, i) => [id, customerFeatures(i + 1)] as const))), registry });
    const runs = new SegmentRunStore(tempFsStore());
    const service = new SegmentRunService({ runs, warehouse: async () => { throw new Error('the merge step needs no warehouse'); }, registry: new ModelRegistry(tempFsStore(), { actor: 'test' }), invoker: { invoke: async () => { throw new Error('unused'); } }, planners: { start: async () => undefined }, settings: loadConfig({ STAGE: 'test' }).segments });
    const chunkRetries = 2;
    // One item at a time, so which chunks a failing map left unscored does not depend on timing.
    const definition = segmentMapDefinition({ worker: 'arn:aws:lambda:eu-west-1:123456789012:function:w', merge: 'arn:aws:lambda:eu-west-1:123456789012:function:m', maxConcurrency: 1, toleratedFailurePercentage: 5, chunkRetries });

    for (const failing of [null, 4]) {
      const faults: FaultPlan[] = failing ? [{ failOnce: [2], failAlways: [failing] }] : [{ failOnce: [2], failAlways: [] }];
      const attempts = new Map<number, number>();
      let execution: Awaited<ReturnType<typeof runStateMachine>> | undefined;
      const map = {
        start: async (run: { segment_id: string; run_id: string }, manifestKey: string) => {
          execution = await runStateMachine(definition, { segment_id: run.segment_id, run_id: run.run_id, manifest: { bucket: 'results', key: manifestKey } }, {
            readObject: async (bucket, key) => {
              expect(bucket).toBe('results');
              return new TextDecoder().decode((await runs.store.get(key))!.body);
            },
            invoke: async (fn, payload) => {
              if (fn === 'm') return service.mergeStep(payload);
              // The map sends the manifest item as it is: the worker counts its own attempts here (for the fault plan).
              const item = WorkerPayloadSchema.parse(payload);
              const attempt = (attempts.get(item.chunk) ?? 0) + 1;
              attempts.set(item.chunk, attempt);
              return scoreChunk({ ...item, attempt }, { scoring: app.scoring, runs, deadlineMs: 10_000, faults }).catch((error: Error) => {
                throw Object.assign(new Error(error.message), { name: 'Error' });
              });
            },
          });
        },
      };
      const run = newRun(newRunId(), 'all', ['churn', 'nbo', 'rfm'], 'cli', { chunkSize: 250, concurrency: 3, retries: chunkRetries });
      await runs.createRun(run);
      const outcome = await planSegmentRun('all', run.run_id, { members: source(), runs, invoker: { invoke: async () => { throw new Error('the mapped planner invokes no worker'); } }, map, rfmQuintiles: async () => ({ ...PROFILE.quintiles, customers: PROFILE.customers }), owner: 'p', lease: { leaseMs: 60_000, maxPlannerFailures: 3 }, retryBackoffMs: 1, scan: { fetchRows: 100, inlinePayloadBytes: 256 * 1024, mapThreshold: 500 } });
      expect(outcome.kind).toBe('mapped');
      expect(execution!.error).toBeNull();
      const done = await runs.getRun('all', run.run_id);
      const workerCalls = execution!.calls.filter((c) => c.functionName === 'w');
      // Chunk 2 failed once and was retried by the state's Retry.
      expect(attempts.get(2)).toBe(2);
      if (failing === null) {
        expect(workerCalls.map((c) => (c.payload as { chunk: number }).chunk)).toEqual([1, 2, 2, 3, 4]);
        expect(execution!.calls.at(-1)).toEqual({ state: 'Merge', functionName: 'm', payload: { segment_id: 'all', run_id: run.run_id } });
        expect(execution!.output).toEqual({ StatusCode: 200, Payload: { run_id: run.run_id, status: 'completed', chunks_done: 4, chunks_failed: 0 } });
        expect(done).toMatchObject({ status: 'completed', progress: { customers_scored: n, customers_failed: 0 } });
        expect((await runs.getStatistics('all', run.run_id)).customers).toEqual({ scored: n, failed: 0 });
      } else {
        // The last chunk failed on every attempt (1 + its retries): the map failed (one item in four is more than the tolerated 5%).
        expect(attempts.get(failing)).toBe(chunkRetries + 1);
        const last = execution!.calls.at(-1)!;
        expect(last).toMatchObject({ state: 'MergeAfterMapFailure', functionName: 'm', payload: { segment_id: 'all', run_id: run.run_id, map_error: { Error: 'Error' } } });
        expect(String((last.payload as { map_error: { Cause: string } }).map_error.Cause)).toContain(`Injected fault for chunk ${failing}`);
        expect(done).toMatchObject({ status: 'partial', progress: { chunks_done: 3, chunks_failed: 1, customers_scored: 750, customers_failed: 250 } });
        expect(done.failed_chunks).toHaveLength(1);
        expect(done.failed_chunks[0]).toMatchObject({ chunk: failing, customer_ids: ids.slice(750) });
        expect(done.failed_chunks[0]!.error).toContain(`not scored by the distributed map: Error: Injected fault for chunk ${failing}`);
      }
    }
  });
});

/** The merge step as the service runs it, over a bare run store (no registry: no drift). */
async function mergeMapped(runs: SegmentRunStore, segmentId: string, runId: string, error?: string) {
  const service = new SegmentRunService({ runs, warehouse: async () => { throw new Error('the merge step needs no warehouse'); }, registry: new ModelRegistry(tempFsStore(), { actor: 'test' }), invoker: { invoke: async () => { throw new Error('unused'); } }, planners: { start: async () => undefined }, settings: loadConfig({ STAGE: 'test' }).segments });
  return service.mergeMapped(segmentId, runId, error);
}
