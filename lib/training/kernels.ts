import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GBT_KERNELS_WASM } from './gbt-kernels';

/**
 * The boosted-trees trainer's WebAssembly kernels (gbt-kernels.wat) over one shared memory, and a
 * second thread that runs half of each large kernel call: half of a node's rows into a histogram of
 * its own (the two are then added), or half of the rows' gradients. The memory is sized once for a
 * training run and shared with the helper thread. Small calls stay on one thread (the hand-over
 * costs a few microseconds). A helper that does not answer is dropped and its half is done here,
 * so a training run never waits on a broken thread.
 */
export interface KernelExports {
  exp(x: number): number;
  gradBinary(score: number, y: number, w: number, gh: number, start: number, end: number): void;
  histAll(order: number, start: number, end: number, bins: number, cols: number, gh: number, hist: number, from: number, to: number): void;
  histActive(order: number, start: number, end: number, bins: number, cols: number, gh: number, hist: number, active: number, from: number, to: number): void;
  partition(order: number, start: number, end: number, column: number, splitBin: number, missingLeft: number, scratch: number): number;
  addLeaf(order: number, start: number, end: number, score: number, outputs: number, k: number, value: number): void;
  zero(at: number, bytes: number): void;
  bestSplit(hist: number, nBins: number, active: number, features: number, G: number, H: number, count: number, lambda: number, minCount: number, minHess: number, out: number): number;
  add(a: number, b: number, count: number): void;
  subtract(a: number, b: number, count: number): void;
}

interface WasmMemory {
  buffer: ArrayBuffer;
}

// Node's WebAssembly API (the project's TypeScript library settings carry no DOM types for it).
const wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: unknown };
      Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
    };
  }
).WebAssembly;

let compiled: object | undefined;
const module = () => (compiled ??= new wasm.Module(Buffer.from(GBT_KERNELS_WASM, 'base64')));

/** Bytes reserved at the start of the memory for the helper's control words. */
const CONTROL_BYTES = 64;
/** Row-features below which a histogram stays on one thread. */
const PARALLEL_MIN = 400_000;
/** Rows below which gradients stay on one thread. */
const PARALLEL_GRADIENTS_MIN = 50_000;
const HELPER_TIMEOUT_MS = 30_000;
/** Polls of the control word before a thread sleeps on it (a few hundred microseconds). */
const SPIN_LIMIT = 100_000;

enum State {
  Idle = 0,
  Posted = 1,
  Done = 2,
  Unbind = 3,
}

/** What the helper is asked to run (control word 1). */
enum Op {
  Histogram = 0,
  Gradients = 1,
}

export class KernelRuntime {
  readonly k: KernelExports;
  readonly memory: WasmMemory;
  private readonly control: Int32Array;
  private helper: Helper | null;

  /** A runtime whose memory holds `bytes` bytes for the caller, from offset `base`. */
  constructor(bytes: number, options: { threads?: number } = {}) {
    const pages = Math.ceil((bytes + CONTROL_BYTES) / 65_536) + 1;
    this.memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
    this.k = new wasm.Instance(module(), { env: { memory: this.memory } }).exports as KernelExports;
    this.control = new Int32Array(this.memory.buffer, 0, CONTROL_BYTES / 4);
    this.helper = (options.threads ?? defaultThreads()) >= 2 ? Helper.bind(this.memory, module()) : null;
  }

  /** The first byte the caller may use. */
  get base(): number {
    return CONTROL_BYTES;
  }

  /**
   * Builds the histogram of rows order[start..end) into `hist` (already zeroed). A large node's
   * features are split between this thread and the helper: each fills its own features' bins.
   */
  histogram(at: { order: number; bins: number; gh: number; active: number }, cols: number, features: number, start: number, end: number, hist: number): void {
    const { k } = this;
    const run = (from: number, to: number) =>
      features === cols ? k.histAll(at.order, start, end, at.bins, cols, at.gh, hist, from, to) : k.histActive(at.order, start, end, at.bins, cols, at.gh, hist, at.active, from, to);
    if (!this.helper || features < 2 || (end - start) * features < PARALLEL_MIN) {
      run(0, features);
      return;
    }
    const half = features >> 1;
    this.share(Op.Histogram, [at.order, start, end, at.bins, cols, at.gh, hist, at.active, features, half], () => run(0, half), () => run(half, features));
  }

  /** Logistic-loss gradients and hessians of rows [0, rows) into `gh`. */
  gradients(at: { score: number; y: number; w: number; gh: number }, rows: number): void {
    const { k } = this;
    if (!this.helper || rows < PARALLEL_GRADIENTS_MIN) {
      k.gradBinary(at.score, at.y, at.w, at.gh, 0, rows);
      return;
    }
    const mid = rows >> 1;
    this.share(Op.Gradients, [at.score, at.y, at.w, at.gh, mid, rows], () => k.gradBinary(at.score, at.y, at.w, at.gh, 0, mid), () => k.gradBinary(at.score, at.y, at.w, at.gh, mid, rows));
  }

  /** Posts one half of a call to the helper, runs `mine`, waits; runs `theirs` here if the helper never answers. */
  private share(op: Op, args: number[], mine: () => void, theirs: () => void): void {
    const c = this.control;
    c.set([op, ...args], 1);
    Atomics.store(c, 0, State.Posted);
    Atomics.notify(c, 0);
    mine();
    // The helper usually finishes within microseconds of this thread: poll briefly before sleeping.
    for (let spins = 0; spins < SPIN_LIMIT && Atomics.load(c, 0) === State.Posted; spins++);
    if (Atomics.wait(c, 0, State.Posted, HELPER_TIMEOUT_MS) === 'timed-out' && Atomics.load(c, 0) === State.Posted) {
      // The helper never came: take its half back and carry on alone.
      this.helper?.abandon();
      this.helper = null;
      Atomics.store(c, 0, State.Idle);
      theirs();
      return;
    }
    Atomics.store(c, 0, State.Idle);
  }

  /** Releases the helper thread for the next runtime (it acknowledges by clearing the state). */
  close(): void {
    if (!this.helper) return;
    const c = this.control;
    Atomics.store(c, 0, State.Unbind);
    Atomics.notify(c, 0);
    if (Atomics.wait(c, 0, State.Unbind, HELPER_TIMEOUT_MS) === 'timed-out' && Atomics.load(c, 0) === State.Unbind) this.helper.abandon();
    else this.helper.release();
    this.helper = null;
  }
}

/** LOYALTY_ML_TRAINING_THREADS (1 or 2), else both of the machine's cores when it has two. */
function defaultThreads(): number {
  const configured = Number(process.env.LOYALTY_ML_TRAINING_THREADS);
  if (Number.isInteger(configured) && configured >= 1) return configured;
  return Math.min(2, availableParallelism());
}

const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', ({ module, memory }) => {
  const k = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const c = new Int32Array(memory.buffer, 0, 16);
  for (;;) {
    let state;
    // Poll for a moment before sleeping: waking a sleeping thread costs more than a short call.
    let spins = 0;
    while ((state = Atomics.load(c, 0)) === 0 || state === 2) {
      if (++spins > 100000) Atomics.wait(c, 0, state, 1000);
    }
    if (state === 3) break;
    if (c[1] === 0) {
      const [, , order, start, end, bins, cols, gh, hist, active, features, from] = c;
      if (features === cols) k.histAll(order, start, end, bins, cols, gh, hist, from, features);
      else k.histActive(order, start, end, bins, cols, gh, hist, active, from, features);
    } else {
      const [, , score, y, w, gh, start, end] = c;
      k.gradBinary(score, y, w, gh, start, end);
    }
    Atomics.store(c, 0, 2);
    Atomics.notify(c, 0);
  }
  Atomics.store(c, 0, 0);
  Atomics.notify(c, 0);
});
`;

/** The process's one helper thread, bound to one runtime's memory at a time. */
class Helper {
  private static current: Helper | null = null;
  private busy = false;
  private broken = false;

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('error', () => {
      this.broken = true;
    });
    worker.on('exit', () => {
      this.broken = true;
      if (Helper.current === this) Helper.current = null;
    });
  }

  /** The helper, bound to `memory`; null when it is busy with another runtime or cannot start. */
  static bind(memory: WasmMemory, compiledModule: object): Helper | null {
    try {
      Helper.current ??= new Helper(new Worker(HELPER_SOURCE, { eval: true }));
    } catch {
      return null;
    }
    const helper = Helper.current;
    if (helper.busy || helper.broken) return null;
    helper.busy = true;
    helper.worker.postMessage({ module: compiledModule, memory });
    return helper;
  }

  release(): void {
    this.busy = false;
  }

  abandon(): void {
    this.broken = true;
    void this.worker.terminate();
    if (Helper.current === this) Helper.current = null;
  }
}
