import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ROUTES, type Route } from '../http/contract';
import { Refusal, RouteTable, type Matched } from '../http/routes';

/**
 * What API Gateway and Lambda do in front of the functions when deployed, done locally in front of
 * serverless-offline (which does none of it): routes matched from the API contract, a method a
 * path does not have answered 405 with `Allow`, an unknown path 404 without a list of routes, and
 * each function's reserved concurrency applied (infra/concurrency.json, as serverless.yml
 * reserves it) with a bounded queue in front: a request beyond it is answered 429 with
 * `Retry-After` at once, one that waited too long 503 with `Retry-After`, and nothing reaches the
 * emulator beyond the limit. Pure bookkeeping: no sockets here.
 */

/** Reserved concurrency per serverless.yml function key (segment reads share one setting, each function its own budget). */
export function functionConcurrency(file = resolve(import.meta.dirname, '../../infra/concurrency.json')): Record<string, number> {
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  return {
    predict: c.predict!,
    predictBatch: c.predictBatch!,
    legacyTest: c.legacyTest!,
    models: c.models!,
    segmentStart: c.segmentStart!,
    segmentRunStatus: c.segmentRead!,
    segmentStats: c.segmentRead!,
  };
}

export interface GateOptions {
  /** Requests that may wait per running slot (the queue holds concurrency x this). */
  queuePerSlot: number;
  /** How long a request may wait for a slot before it is answered 503. */
  maxWaitMs: number;
  /** Seconds a 429 or 503 tells the client to wait. */
  retryAfterSeconds: number;
}

export const DEFAULT_GATE: GateOptions = { queuePerSlot: 2, maxWaitMs: 20_000, retryAfterSeconds: 1 };

/** One function's slots and queue. */
export class FunctionGate {
  private running = 0;
  private readonly waiting: { admit: () => void; timer: NodeJS.Timeout }[] = [];

  constructor(
    readonly name: string,
    readonly concurrency: number,
    private readonly options: GateOptions,
  ) {}

  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** Waits for a slot; resolves with the function that frees it, or rejects with a Refusal (429 full, 503 waited too long). */
  enter(): Promise<() => void> {
    const leave = () => {
      this.running--;
      const next = this.waiting.shift();
      if (next) {
        clearTimeout(next.timer);
        next.admit();
      }
    };
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve(once(leave));
    }
    const limit = this.concurrency * this.options.queuePerSlot;
    const retry = { 'retry-after': String(this.options.retryAfterSeconds) };
    if (this.waiting.length >= limit) {
      return Promise.reject(new Refusal(429, 'too_many_requests', `${this.name} is at its concurrency (${this.concurrency} running) and its queue is full (${limit} waiting); retry after ${this.options.retryAfterSeconds} s`, retry));
    }
    return new Promise((admitted, refused) => {
      const entry = {
        admit: () => {
          this.running++;
          admitted(once(leave));
        },
        timer: setTimeout(() => {
          const at = this.waiting.indexOf(entry);
          if (at >= 0) this.waiting.splice(at, 1);
          refused(new Refusal(503, 'busy', `${this.name} was busy: waited ${Math.round(this.options.maxWaitMs / 1000)} s for one of its ${this.concurrency} slots; retry after ${this.options.retryAfterSeconds} s`, retry));
        }, this.options.maxWaitMs),
      };
      this.waiting.push(entry);
    });
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}

/**
 * The contract's routes, matched as API Gateway matches them (a trailing slash or not), each
 * function with its gate. Local-only routes (the console's actions) are matched but not gated.
 */
export class ApiGateway {
  private readonly gates = new Map<string, FunctionGate>();
  private readonly routes: RouteTable;

  constructor(
    concurrency: Record<string, number> = functionConcurrency(),
    options: GateOptions = DEFAULT_GATE,
    routes: readonly Route[] = ROUTES,
  ) {
    this.routes = new RouteTable(routes, '; the API reference is at /docs');
    for (const route of routes) {
      if (route.local || this.gates.has(route.function)) continue;
      const limit = concurrency[route.function];
      if (!limit) throw new Error(`no concurrency for function ${route.function} (infra/concurrency.json)`);
      this.gates.set(route.function, new FunctionGate(route.function, limit, options));
    }
  }

  /** The route for a method and path, or the Refusal (see RouteTable.match). */
  match(method: string, path: string): Matched | Refusal {
    return this.routes.match(method, path);
  }

  gate(route: Route): FunctionGate | null {
    return this.gates.get(route.function) ?? null;
  }
}
