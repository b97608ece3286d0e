/**
 * Segment runs at 1M, 10M and 50M customers on paper: each figure derived from what `npm run bench`
 * measured (section 5, in bench/results/latest.json) plus the AWS prices and latencies stated
 * below. Prints README's cost table: `npx tsx bench/segment-cost.ts`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

interface Row {
  section: string;
  metric: string;
  ours: number;
  unit: string;
  peer: { label: string; value: number } | null;
}

const results = JSON.parse(readFileSync(resolve(import.meta.dirname, 'results/latest.json'), 'utf8')) as { date: string; rows: Row[]; machine: { cpu: string } };
const segment = results.rows.filter((r) => r.section.startsWith('5.'));
const scanRow = segment.find((r) => r.metric.includes('one scan') && r.metric.includes('log on'));
const chunkRow = segment.find((r) => r.metric.startsWith('one worker chunk'));
if (!scanRow || !chunkRow) throw new Error('bench/results/latest.json has no section 5 of this version: run npm run bench');

// Measured here (bench section 5).
const measured = {
  /** Customers/s the one warehouse scan delivered (PostgreSQL 15 on the same 2 cores). */
  scanRate: scanRow.peer!.value,
  /** A worker's own work on a chunk of 1,000: decode, score, aggregate, encode and write part and log (local folder). */
  chunkMs: chunkRow.ours,
};

// Stated AWS figures (us-east-1 list prices; latencies assumed, not measured here).
const aws = {
  lambdaGbSecond: 0.0000166667,
  lambdaRequest: 0.2 / 1e6,
  s3Put: 0.005 / 1000,
  s3Get: 0.0004 / 1000,
  stateTransition: 0.025 / 1000,
  /** An S3 PUT or GET of a few hundred KB from Lambda in the bucket's region. */
  s3PutMs: 30,
  s3GetMs: 20,
  workerGb: 1769 / 1024,
  plannerGb: 1024 / 1024,
  /** Workers at once: the worker's reserved concurrency and the map's MaxConcurrency. */
  concurrency: 32,
  /** Parallel S3 writes and reads of the planner and the merge step. */
  ioParallel: 16,
};
const CHUNK = 1000;
const THRESHOLD = 5_000_000;

function estimate(customers: number) {
  const mapped = customers > THRESHOLD;
  const chunks = Math.ceil(customers / CHUNK);
  const scanS = customers / measured.scanRate;
  // A worker: its own work, the part and log written side by side, and (mapped) its chunk file read first.
  const workerMs = measured.chunkMs + aws.s3PutMs + (mapped ? aws.s3GetMs : 0);
  const workerGbS = chunks * (workerMs / 1000) * aws.workerGb;
  const scoringS = (chunks * workerMs) / 1000 / aws.concurrency;
  // Mapped: the planner writes every chunk file while it scans; the merge step reads every part.
  const fileWritesS = mapped ? (chunks * aws.s3PutMs) / 1000 / aws.ioParallel : 0;
  const plannerS = mapped ? Math.max(scanS, fileWritesS) : Math.max(scanS, scoringS);
  const mergeS = mapped ? (chunks * aws.s3GetMs) / 1000 / aws.ioParallel : 0;
  const wallS = mapped ? plannerS + scoringS + mergeS : plannerS;
  const gbS = workerGbS + (plannerS + mergeS) * aws.plannerGb;
  const puts = chunks * (mapped ? 3 : 2) + 10;
  const gets = mapped ? chunks * 2 + 1 : 0;
  const transitions = mapped ? chunks * 2 + 6 : 0;
  const lambdaCost = gbS * aws.lambdaGbSecond + (chunks + 2) * aws.lambdaRequest;
  const s3Cost = puts * aws.s3Put + gets * aws.s3Get;
  return { customers, mapped, chunks, scanS, gbS, lambdaCost, puts, gets, s3Cost, transitions, sfnCost: transitions * aws.stateTransition, wallS };
}

const money = (v: number) => (v < 0.01 ? `$${v.toFixed(4)}` : `$${v.toFixed(2)}`);
const secs = (s: number) => (s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(1)} min`);
const lines = [
  `| customers | path | warehouse: one scan | worker invocations | Lambda GB-s (cost) | S3 requests (cost) | Step Functions transitions (cost) | total | wall time at ${aws.concurrency} workers |`,
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const n of [1_000_000, 10_000_000, 50_000_000]) {
  const e = estimate(n);
  lines.push(
    `| ${(n / 1e6).toFixed(0)}M | ${e.mapped ? 'distributed map' : 'one planner'} | ${secs(e.scanS)} | ${e.chunks.toLocaleString('en-US')} | ${e.gbS.toFixed(0)} (${money(e.lambdaCost)}) | ${(e.puts + e.gets).toLocaleString('en-US')} (${money(e.s3Cost)}) | ${e.transitions.toLocaleString('en-US')} (${money(e.sfnCost)}) | ${money(e.lambdaCost + e.s3Cost + e.sfnCost)} | ${secs(e.wallS)} |`,
  );
}
process.stdout.write(
  `${lines.join('\n')}\n\nFrom npm run bench of ${results.date.slice(0, 10)} (${results.machine.cpu}): the scan at ${Math.round(measured.scanRate).toLocaleString('en-US')} customers/s, a worker's own work ${measured.chunkMs.toFixed(1)} ms per chunk of ${CHUNK.toLocaleString('en-US')}.\n`,
);
