import { cpus, freemem, totalmem } from 'node:os';

/**
 * Measurement helpers for the benchmarks: repetitions after a warm-up, medians and percentiles,
 * and result rows that always carry the peer or limit measured in the same run.
 */
export interface Sample {
  median: number;
  p99: number;
  min: number;
  reps: number;
}

/** Times `fn` (milliseconds) `reps` times after `warmup` untimed calls. */
export async function measure(fn: () => Promise<unknown> | unknown, options: { reps: number; warmup?: number }): Promise<Sample> {
  for (let i = 0; i < (options.warmup ?? Math.min(5, options.reps)); i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < options.reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return summarize(times);
}

export function summarize(times: number[]): Sample {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  const mid = sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
  return { median: mid, p99: at(0.99), min: sorted[0]!, reps: sorted.length };
}

/** One line of the results: our figure, the peer or limit beside it, their ratio, and the target. */
export interface BenchRow {
  section: string;
  metric: string;
  ours: number;
  unit: string;
  peer: { label: string; value: number } | null;
  /** ours / peer for times, peer / ours for rates: always "how many times slower than the peer". */
  ratio: number | null;
  target: { text: string; met: boolean } | null;
  note?: string;
}

export function machine(): Record<string, string | number> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    free_memory_gib: Math.round(freemem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

export function fmt(value: number, unit: string): string {
  if (unit === 'ms') return value >= 100 ? `${value.toFixed(0)} ms` : value >= 1 ? `${value.toFixed(2)} ms` : `${(value * 1000).toFixed(0)} µs`;
  if (unit === 'customers/s') return `${Math.round(value).toLocaleString('en-US')}/s`;
  if (unit === 's') return `${value.toFixed(1)} s`;
  if (unit === 'MB') return `${value.toFixed(1)} MB`;
  if (unit === 'AUC' || unit === 'rate') return value.toFixed(4);
  if (unit === 'ns') return `${value.toFixed(1)} ns`;
  if (unit === 'positives') return String(Number(value.toFixed(1)));
  return `${value} ${unit}`;
}

/** The Markdown table of BENCHMARKS.md. */
export function markdown(rows: BenchRow[]): string {
  const sections = [...new Set(rows.map((r) => r.section))];
  const out: string[] = [];
  for (const section of sections) {
    out.push(`### ${section}`, '', '| measure | loyalty-ml | peer or limit (same run) | ratio | target |', '| --- | --- | --- | --- | --- |');
    for (const r of rows.filter((x) => x.section === section)) {
      const peer = r.peer ? `${fmt(r.peer.value, r.unit)} (${r.peer.label})` : '-';
      const ratio = r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`;
      const target = r.target ? `${r.target.text}: ${r.target.met ? '**met**' : '**missed**'}` : '-';
      out.push(`| ${r.metric}${r.note ? ` (${r.note})` : ''} | ${fmt(r.ours, r.unit)} | ${peer} | ${ratio} | ${target} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** A plain-text table for the terminal. */
export function table(rows: BenchRow[]): string {
  const lines = rows.map((r) => [
    r.section.split(' ')[0]!,
    r.metric,
    fmt(r.ours, r.unit),
    r.peer ? `${fmt(r.peer.value, r.unit)} ${r.peer.label}` : '-',
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
    r.target ? `${r.target.text} ${r.target.met ? 'MET' : 'MISSED'}` : '-',
  ]);
  const header = ['#', 'measure', 'loyalty-ml', 'peer/limit', 'ratio', 'target'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}
