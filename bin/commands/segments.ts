import { createScoringApp } from '../../lib/app/scoring';
import { commandApp, commandConfig, registryOption, warehouseOption } from '../../lib/cli/context';
import { formatTable, intOption, parseCommandArgs, ProgressReporter, UsageError, type Command, type CommandIo } from '../../lib/cli/runtime';
import { availableParallelism } from 'node:os';
import { LambdaWorkerInvoker, LocalWorkerInvoker } from '../../lib/segments/invokers';
import { ThreadWorkerInvoker } from '../../lib/segments/threads';

/** The worker threads' module (each builds its own app from the command's configuration). */
const CHUNK_THREAD = new URL('../../lib/app/chunk-thread.ts', import.meta.url);
import { assertSegmentId, SCORE_TYPES, type ScoreType, type StoredStatistics } from '../../lib/segments/runs';

export const scoreSegment: Command = {
  name: 'score-segment',
  summary: 'score every customer of a segment and print its statistics',
  usage: `loyalty-ml score-segment SEGMENT [--types churn,nbo,rfm] [--chunk-size N] [--concurrency N] [--threads N] [--lambda] [--json]

Runs a segment scoring run: reads the segment's members with their features in one warehouse scan,
scores them in chunks (in this process: on the main thread, or on --threads N worker threads, worth
it with cores to spare beside the warehouse; or with --lambda through the worker Lambda function named by
SEGMENT_WORKER_FUNCTION: a deployed stage's with AWS_REGION and credentials, or serverless-offline's
with AWS_ENDPOINT_URL_LAMBDA=http://localhost:3002; a misconfiguration fails at once, unretried), shows
progress, merges the statistics, stores them with the run in the results store (RESULTS_URI,
default the registry) and prints them. Exit code 1 when the run ends partial or failed.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        types: { type: 'string' },
        'chunk-size': { type: 'string' },
        concurrency: { type: 'string' },
        retries: { type: 'string' },
        threads: { type: 'string' },
        lambda: { type: 'boolean' },
        json: { type: 'boolean' },
        ...registryOption,
        ...warehouseOption,
      },
      { min: 1, max: 1, names: 'SEGMENT' },
    );
    const segmentId = positionals[0]!;
    assertSegmentId(segmentId);
    const types = parseTypes(values.types);
    const cfg = commandConfig(values);
    const settings = {
      chunkSize: intOption(values['chunk-size'], '--chunk-size', cfg.segments.chunkSize, [1, 10_000]),
      concurrency: intOption(values.concurrency, '--concurrency', cfg.segments.concurrency, [1, 1000]),
      retries: intOption(values.retries, '--retries', cfg.segments.retries, [0, 10]),
    };
    if (values.lambda && !process.env.AWS_ENDPOINT_URL_LAMBDA && !process.env.AWS_ENDPOINT_URL && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION && !process.env.AWS_PROFILE) {
      throw new UsageError(
        `--lambda invokes the worker function ${cfg.segments.workerFunction} through AWS Lambda: set AWS_REGION (and credentials) for a deployed stage, or AWS_ENDPOINT_URL_LAMBDA=http://localhost:3002 for serverless-offline (npm run offline)`,
      );
    }
    const app = await createScoringApp(cfg);
    const closers: (() => Promise<void> | void)[] = [];
    try {
      const segment = await (await app.warehouse()).warehouse.getSegment(segmentId);
      const total = await (await app.warehouse()).warehouse.countSegmentMembers(segmentId);
      io.err(`score-segment: ${segment.name} (${segmentId}), ${total.toLocaleString('en-US')} customers, ${types.join('+')}, chunks of ${settings.chunkSize}, ${settings.concurrency} at a time`);
      const threads = intOption(values.threads, '--threads', 0, [0, Math.max(1, availableParallelism() * 2)]);
      const invoker = values.lambda
        ? new LambdaWorkerInvoker(cfg.segments.workerFunction)
        : threads > 0
          ? new ThreadWorkerInvoker({ threads, entry: CHUNK_THREAD, workerData: cfg })
          : new LocalWorkerInvoker((payload) => app.chunks.score(payload));
      closers.push(() => (invoker instanceof ThreadWorkerInvoker ? invoker.close() : undefined));
      const progress = new ProgressReporter(io, `score-segment ${segmentId}`);
      const started = Date.now();
      const { run: done, stats } = await app.segments.runHere(segmentId, types, {
        settings,
        invoker,
        owner: `cli:${process.pid}`,
        onProgress: (r) => progress.update(r.progress.customers_scored + r.progress.customers_failed, total, `${r.progress.chunks_done}/${r.progress.chunks_planned} chunks`),
      });
      const seconds = (Date.now() - started) / 1000;
      if (values.json) io.out(JSON.stringify({ run: done, stats: stats && withoutInputs(stats), seconds }, null, 2));
      else {
        io.out(`run ${done.run_id}: ${done.status} in ${seconds.toFixed(1)} s (${Math.round(done.progress.customers_scored / Math.max(seconds, 1e-3)).toLocaleString('en-US')} customers/s)`);
        if (done.error) io.out(`error: ${done.error}`);
        for (const c of done.failed_chunks) io.out(`failed chunk ${c.chunk} (${c.customer_ids.length} customers, ${c.attempts} attempts): ${c.error}`);
        if (stats) printStatistics(io, stats);
      }
      return done.status === 'completed' ? 0 : 1;
    } finally {
      for (const close of closers) await close();
      await app.close();
    }
  },
};

export const segmentStats: Command = {
  name: 'segment-stats',
  summary: "show a segment's latest statistics and how they changed across runs",
  usage: `loyalty-ml segment-stats SEGMENT [--run RUN_ID] [--json]`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { run: { type: 'string' }, json: { type: 'boolean' }, ...registryOption }, { min: 1, max: 1, names: 'SEGMENT' });
    const segmentId = positionals[0]!;
    assertSegmentId(segmentId);
    const { runs } = await commandApp(values);
    const history = values.run ? [await runs.getStatistics(segmentId, values.run)] : await runs.history(segmentId);
    if (!history.length) throw new UsageError(`Segment ${segmentId} has never been scored; run loyalty-ml score-segment ${segmentId}`);
    if (values.json) {
      io.out(JSON.stringify({ latest: withoutInputs(history[0]!), history: history.slice(1) }, null, 2));
      return 0;
    }
    printStatistics(io, history[0]!);
    if (history.length > 1) {
      io.out('\nhistory');
      io.out(
        formatTable(
          ['run', 'status', 'customers', 'churn mean', 'churn p90', 'high risk', 'top offer'],
          history.map((s) => [s.run_id, s.status, s.customers.scored, s.churn ? s.churn.mean.toFixed(4) : null, s.churn ? s.churn.p90.toFixed(4) : null, s.churn?.risk_bands.high ?? null, s.nbo?.top_offers[0]?.offer_id ?? null]),
        ),
      );
    }
    return 0;
  },
};

function parseTypes(value: string | undefined): ScoreType[] {
  if (value === undefined) return [...SCORE_TYPES];
  const types = value.split(',').map((t) => t.trim());
  const bad = types.filter((t) => !(SCORE_TYPES as readonly string[]).includes(t));
  if (bad.length || !types.length) throw new UsageError(`--types takes a list of ${SCORE_TYPES.join(', ')}; got "${value}"`);
  return [...new Set(types)] as ScoreType[];
}

/** Statistics as the commands print them: the run's input histograms stay in the store. */
function withoutInputs(s: StoredStatistics): Omit<StoredStatistics, 'inputs'> {
  const { inputs: _inputs, ...shown } = s;
  return shown;
}

function printStatistics(io: CommandIo, s: StoredStatistics): void {
  io.out(`\n${s.segment_id}, run ${s.run_id} (${s.status}, finished ${s.finished_at}): ${s.customers.scored} scored, ${s.customers.failed} failed`);
  if (s.churn) {
    io.out(`churn: mean ${s.churn.mean.toFixed(4)}, median ${s.churn.median.toFixed(4)}, p90 ${s.churn.p90.toFixed(4)}; risk low ${s.churn.risk_bands.low}, medium ${s.churn.risk_bands.medium}, high ${s.churn.risk_bands.high}`);
    io.out(`  histogram: ${s.churn.histogram.counts.map((c, i) => `${(i / 10).toFixed(1)}:${c}`).join(' ')}`);
    const drivers = s.churn.contributions;
    if (drivers) {
      const points = (v: number) => `${v >= 0 ? '+' : '-'}${Math.abs(v * 100).toFixed(1)}`;
      io.out(`  what drives its risk (mean contribution in points over ${drivers.customers} customers, from a typical customer's ${(drivers.base * 100).toFixed(1)}%, 95% interval):`);
      for (const f of drivers.features.slice(0, 5)) io.out(`    ${f.feature} ${points(f.mean)} (${points(f.mean_ci95[0])} to ${points(f.mean_ci95[1])})`);
    }
  }
  if (s.nbo) {
    io.out(`next best offer (mean confidence ${s.nbo.mean_confidence.toFixed(4)}):`);
    io.out(formatTable(['offer', 'customers', 'share'], s.nbo.top_offers.map((o) => [o.offer_id, o.customers, `${(o.share * 100).toFixed(1)}%`])));
  }
  if (s.rfm) io.out(`RFM: ${s.rfm.segments.map((x) => `${x.segment} ${(x.share * 100).toFixed(1)}%`).join(', ')}`);
  io.out(`models: ${s.models.map((m) => `${m.label}: ${m.customers}`).join(', ') || 'none'}`);
  // Every score entry; of the inputs, those that moved (the stable ones counted).
  for (const d of s.drift) {
    if (d.kind === 'feature' && d.level === 'stable') continue;
    io.out(`drift ${d.model}${d.feature ? ` input ${d.feature}` : ' scores'}: PSI ${d.psi.toFixed(3)} (${d.level}) against ${d.reference}`);
  }
  const steady = s.drift.filter((d) => d.kind === 'feature' && d.level === 'stable').length;
  if (steady) io.out(`drift: ${steady} input comparison${steady === 1 ? '' : 's'} stable (PSI below 0.1)`);
  for (const w of s.warnings) io.out(`warning ${w.code}: ${w.message}`);
}

