import { Worker } from 'node:worker_threads';
import type { WorkerInvoker } from './planner';
import { WorkerResultSchema, type WorkerPayload, type WorkerResult } from './worker';

interface Pending {
  payload: WorkerPayload;
  resolve: (result: WorkerResult) => void;
  reject: (error: Error) => void;
}

interface Slot {
  thread: Worker;
  /** Chunks sent to the thread and not answered yet, by message id. */
  busy: Map<number, Pending>;
}

/**
 * Chunks queued at a thread at once: a thread starts the next chunk as soon as it answers one,
 * without waiting for the main thread (busy parsing the scan) to send it more.
 */
const PER_THREAD = 3;

/**
 * Runs chunks on worker threads of this process (the CLI and benchmarks): the segment worker's
 * code, each thread with its own app (models, results store), receiving the same payloads a worker
 * Lambda receives. The planner's scan keeps the main thread; scoring, parts and log files use the
 * other cores. A thread that dies fails its chunk (the planner retries it) and is replaced.
 */
export class ThreadWorkerInvoker implements WorkerInvoker {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private closed = false;
  private nextId = 0;

  /**
   * `entry` is the thread's module (it builds an app from `workerData` and answers
   * `{ id, payload }` messages); `execArgv` lets a thread load TypeScript as its parent does.
   */
  constructor(
    private readonly options: { threads: number; entry: URL; workerData: unknown; execArgv?: string[] },
  ) {
    for (let i = 0; i < Math.max(1, options.threads); i++) this.slots.push(this.spawn());
  }

  invoke(payload: WorkerPayload): Promise<WorkerResult> {
    if (this.closed) return Promise.reject(new Error('the worker threads are closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ payload, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('the worker threads were closed'));
    await Promise.all(this.slots.map((s) => s.thread.terminate()));
  }

  private spawn(): Slot {
    const thread = new Worker(this.options.entry, { workerData: this.options.workerData, execArgv: this.options.execArgv ?? process.execArgv });
    const slot: Slot = { thread, busy: new Map() };
    thread.on('message', (message: { id: number; result?: unknown; error?: string }) => {
      const job = slot.busy.get(message.id);
      slot.busy.delete(message.id);
      if (job) {
        if (message.error !== undefined) job.reject(new Error(message.error));
        else {
          const parsed = WorkerResultSchema.safeParse(message.result);
          if (parsed.success) job.resolve(parsed.data);
          else job.reject(new Error('a worker thread answered without a result'));
        }
      }
      this.pump();
    });
    const died = (error: Error) => {
      for (const job of slot.busy.values()) job.reject(new Error(`a worker thread stopped: ${error.message}`));
      slot.busy.clear();
      const at = this.slots.indexOf(slot);
      if (at >= 0 && !this.closed) {
        this.slots[at] = this.spawn();
        this.pump();
      }
    };
    thread.on('error', died);
    thread.on('exit', (code) => {
      if (!this.closed && this.slots.includes(slot)) died(new Error(`exit code ${code}`));
    });
    thread.unref();
    return slot;
  }

  private pump(): void {
    for (let room = true; room && this.queue.length > 0; ) {
      // The least busy thread takes the next chunk.
      const slot = this.slots.reduce((a, b) => (b.busy.size < a.busy.size ? b : a));
      room = slot.busy.size < PER_THREAD;
      if (!room) break;
      const job = this.queue.shift()!;
      const id = this.nextId++;
      slot.busy.set(id, job);
      slot.thread.postMessage({ id, payload: job.payload });
    }
  }
}
