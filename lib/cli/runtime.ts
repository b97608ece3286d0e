import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LoyaltyError, ValidationError } from '../errors';

/** Exit codes of every loyalty-ml command. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** A command-line mistake: wrong flags, missing arguments, bad values. Exit code 2. */
export class UsageError extends ValidationError {
  constructor(message: string) {
    super(message, { code: 'usage' });
  }
}

export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stderr is a terminal (progress redraws one line) or a log (progress prints lines). */
  interactive: boolean;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[], io: CommandIo): Promise<number>;
}

export const processIo: CommandIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  interactive: Boolean(process.stderr.isTTY),
};

/** parseArgs with errors turned into UsageError, so every command reports them the same way. */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  positionals: { min: number; max: number; names: string },
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const count = parsed.positionals.length;
  if (count < positionals.min) throw new UsageError(`Missing argument: expected ${positionals.names}`);
  if (count > positionals.max) throw new UsageError(`Unexpected argument "${parsed.positionals[positionals.max]}"`);
  return parsed;
}

/** Parses a whole-number option, with its flag name in the error. */
export function intOption(value: string | undefined, flag: string, fallback: number, range: [number, number]): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < range[0] || n > range[1]) throw new UsageError(`${flag} must be from ${range[0]} to ${range[1]}, got ${n}`);
  return n;
}

/** Prints an error the way every command does and returns the exit code it deserves. */
export function reportError(error: unknown, io: CommandIo): number {
  if (error instanceof LoyaltyError) {
    io.err(`error: ${error.message}`);
    if (error instanceof UsageError) io.err('Run with --help for usage.');
    return error.userFault ? EXIT.usage : EXIT.failure;
  }
  io.err(`error: unexpected failure: ${error instanceof Error ? error.message : String(error)}`);
  if (process.env.LOYALTY_ML_DEBUG && error instanceof Error) io.err(error.stack ?? '');
  return EXIT.failure;
}

/** Formats rows as an aligned text table. */
export function formatTable(headers: string[], rows: (string | number | null)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/**
 * Progress of long work on stderr: one redrawn line on a terminal, or a line every 10% (and at
 * the end) in logs, so CI output stays readable.
 */
export class ProgressReporter {
  private readonly started = Date.now();
  private lastDecile = -1;
  private finished = false;

  constructor(
    private readonly io: CommandIo,
    private readonly label: string,
  ) {}

  update(done: number, total: number, detail = ''): void {
    if (this.finished) return;
    if (done >= total) this.finished = true;
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    const elapsed = ((Date.now() - this.started) / 1000).toFixed(1);
    const line = `${this.label}: ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${pct}%) ${elapsed}s${detail ? ` ${detail}` : ''}`;
    if (this.io.interactive) {
      process.stderr.write(`\r\x1b[K${line}${done >= total ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor(pct / 10);
    if (decile !== this.lastDecile || done >= total) {
      this.lastDecile = decile;
      this.io.err(line);
    }
  }

  /** A free-form progress message (e.g. an epoch's validation loss). */
  note(message: string): void {
    if (this.io.interactive) process.stderr.write('\r\x1b[K');
    this.io.err(`${this.label}: ${message}`);
  }
}

/**
 * Training's progress on stderr: each family's search as one line redrawn in place on a terminal
 * (in logs only its result), the steps that matter as lines; `--verbose` prints every message.
 */
export function trainingProgress(io: CommandIo, label: string, verbose: boolean): (message: string) => void {
  if (verbose) return (m) => io.err(`${label}: ${m}`);
  let drawn = false;
  return (m) => {
    // A family's search steps (an NBO head's are prefixed by its offer) redraw one line; its result stays.
    const step = m.replace(/^[a-z0-9_]+: (?=(logistic|mlp|gbt|blend of)\b)/, '');
    const detail = /^(logistic|mlp|gbt|blend of)[: ]/.test(step) || m.startsWith('reading ') || m.startsWith('logging policy: half');
    const result = /^(logistic|mlp|gbt): out-of-fold [^;]*\(\d+(?:\.\d+)?s\)$/.test(step) && step === m;
    if (detail && !result) {
      if (io.interactive) {
        process.stderr.write(`\r\x1b[K${`${label}: ${m}`.slice(0, (process.stderr.columns || 100) - 1)}`);
        drawn = true;
      }
      return;
    }
    if (drawn) {
      process.stderr.write('\r\x1b[K');
      drawn = false;
    }
    io.err(`${label}: ${m}`);
  };
}
