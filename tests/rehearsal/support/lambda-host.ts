import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { DeployedFunction } from './stack';

/**
 * Runs deployed functions as Lambda would, for the rehearsal. Each instance is a fresh Node 22
 * process started in the unzipped artifact with the function's environment (as moto reports it),
 * the credentials of the function's own role (sts:AssumeRole, IAM enforced by moto), and the
 * variables Lambda's runtime sets. Instances stay warm between invocations; concurrent
 * invocations start more of them, up to the function's reserved concurrency (beyond it: throttled).
 * An invocation that outlives the function's timeout kills its instance, as Lambda does.
 * Asynchronous invocations are retried per the function's event invoke config and then sent to its
 * on-failure queue, with the function role's credentials (Lambda sends them with the execution role).
 */
export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

export type InvokeOutcome =
  | { ok: true; result: unknown; requestId: string }
  | { ok: false; error: { errorType: string; errorMessage: string; trace?: string[] }; requestId: string };

export class ThrottledError extends Error {}

interface RuntimeMessage {
  type: string;
  requestId?: string;
  result?: unknown;
  error?: { errorType: string; errorMessage: string; trace?: string[] };
}

interface Instance {
  id: number;
  child: ChildProcess;
  ready: Promise<void>;
  busy: boolean;
  pending: Map<string, (message: RuntimeMessage) => void>;
}

export interface LogLine {
  function: string;
  instance: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

const BOOTSTRAP = resolve(import.meta.dirname, 'bootstrap.cjs');

export class LambdaHost {
  private readonly instances = new Map<string, Instance[]>();
  private readonly minimumMs = new Map<string, number>();
  private readonly asyncWork = new Set<Promise<void>>();
  private nextInstance = 1;
  readonly logs: LogLine[] = [];
  /** Every invocation, for assertions: function, kind and outcome. */
  readonly invocations: { functionName: string; kind: 'sync' | 'async'; requestId: string; ok: boolean }[] = [];

  constructor(
    private readonly options: {
      functions: Map<string, DeployedFunction>;
      credentials: Map<string, RoleCredentials>;
      region: string;
      /** What every instance needs besides Lambda's variables: the local endpoints. */
      glue: () => Record<string, string>;
      /** Pause before async retry n (Lambda waits about a minute, then two). */
      retryDelaysMs: number[];
      sqs: (credentials: RoleCredentials) => SQSClient;
      /** The URL of a queue named by its ARN (a destination). */
      queueUrl: (arn: string) => string;
    },
  ) {}

  byName(functionName: string): DeployedFunction {
    const fn = [...this.options.functions.values()].find((f) => f.functionName === functionName || f.arn === functionName || f.name === functionName);
    if (!fn) throw new Error(`no function ${functionName}`);
    return fn;
  }

  /** A synchronous invocation (RequestResponse). Throws ThrottledError beyond reserved concurrency. */
  async invoke(functionName: string, event: unknown, requestId: string = randomUUID()): Promise<InvokeOutcome> {
    const fn = this.byName(functionName);
    const outcome = await this.run(fn, event, requestId);
    this.invocations.push({ functionName: fn.functionName, kind: 'sync', requestId, ok: outcome.ok });
    return outcome;
  }

  /** An asynchronous invocation (Event): accepted at once, retried and dead-lettered like Lambda. */
  invokeAsync(functionName: string, event: unknown): string {
    const fn = this.byName(functionName);
    const requestId = randomUUID();
    const work = (async () => {
      const attempts = fn.asyncConfig.maximumRetryAttempts + 1;
      let last: InvokeOutcome | null = null;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1) await new Promise((r) => setTimeout(r, this.options.retryDelaysMs[attempt - 2] ?? 1000));
        try {
          last = await this.run(fn, event, requestId);
        } catch (error) {
          last = { ok: false, requestId, error: { errorType: error instanceof ThrottledError ? 'TooManyRequestsException' : 'Error', errorMessage: (error as Error).message } };
        }
        this.invocations.push({ functionName: fn.functionName, kind: 'async', requestId, ok: last.ok });
        if (last.ok) return;
      }
      if (fn.asyncConfig.onFailureQueueArn && last && !last.ok) await this.deadLetter(fn, event, last, attempts);
    })();
    this.asyncWork.add(work);
    void work.finally(() => this.asyncWork.delete(work));
    return requestId;
  }

  /** Waits until no asynchronous invocation is in flight (or queued for a retry). */
  async idle(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.asyncWork.size) {
      if (Date.now() > deadline) throw new Error(`asynchronous invocations still running after ${timeoutMs} ms`);
      await Promise.race([Promise.allSettled([...this.asyncWork]), new Promise((r) => setTimeout(r, 250))]);
    }
  }

  /** Kills every instance of a function at once (a crash, an out-of-memory kill). Returns how many. */
  kill(functionName: string): number {
    const fn = this.byName(functionName);
    const list = this.instances.get(fn.functionName) ?? [];
    for (const instance of list) instance.child.kill('SIGKILL');
    this.instances.set(fn.functionName, []);
    return list.length;
  }

  /**
   * Makes every later invocation of a function take at least this long (0: as long as it takes),
   * as a slow dependency would: a scenario that must catch a run mid-way slows its workers.
   */
  slowDown(functionName: string, ms: number): void {
    this.minimumMs.set(this.byName(functionName).functionName, ms);
  }

  /** Whether an instance of the function is working on an invocation now. */
  busy(functionName: string): boolean {
    return (this.instances.get(this.byName(functionName).functionName) ?? []).some((i) => i.busy);
  }

  /** Log lines a function printed (JSON lines parsed, others skipped). */
  jsonLogs(functionName?: string): Record<string, unknown>[] {
    const fn = functionName ? this.byName(functionName).functionName : undefined;
    return this.logs
      .filter((l) => !fn || l.function === fn)
      .flatMap((l) => {
        try {
          const value = JSON.parse(l.text) as unknown;
          return value && typeof value === 'object' ? [value as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      });
  }

  async stop(): Promise<void> {
    await this.idle(5000).catch(() => undefined);
    for (const list of this.instances.values()) for (const i of list) i.child.kill('SIGKILL');
    this.instances.clear();
  }

  private async run(fn: DeployedFunction, event: unknown, requestId: string): Promise<InvokeOutcome> {
    const instance = await this.acquire(fn);
    instance.busy = true;
    const minimum = this.minimumMs.get(fn.functionName) ?? 0;
    const started = Date.now();
    try {
      const outcome = await new Promise<InvokeOutcome>((done) => {
        const timer = setTimeout(() => {
          instance.pending.delete(requestId);
          this.retire(fn, instance);
          done({ ok: false, requestId, error: { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds` } });
        }, fn.timeoutSeconds * 1000);
        instance.pending.set(requestId, (message) => {
          clearTimeout(timer);
          if (message.type === 'result') done({ ok: true, requestId, result: message.result });
          else done({ ok: false, requestId, error: message.error ?? { errorType: 'Error', errorMessage: 'unknown failure' } });
        });
        instance.child.send({ type: 'invoke', requestId, event, timeoutMs: fn.timeoutSeconds * 1000, functionArn: fn.arn });
      });
      const wait = minimum - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      return outcome;
    } finally {
      instance.busy = false;
    }
  }

  private async acquire(fn: DeployedFunction): Promise<Instance> {
    const list = this.instances.get(fn.functionName) ?? [];
    this.instances.set(fn.functionName, list);
    const idle = list.find((i) => !i.busy && i.child.exitCode === null && i.child.signalCode === null);
    if (idle) {
      await idle.ready;
      return idle;
    }
    if (fn.reservedConcurrency !== null && list.length >= fn.reservedConcurrency) {
      throw new ThrottledError(`Rate Exceeded: ${fn.functionName} is at its reserved concurrency (${fn.reservedConcurrency})`);
    }
    const instance = this.start(fn);
    list.push(instance);
    instance.busy = true;
    try {
      await instance.ready;
    } catch (error) {
      this.retire(fn, instance);
      throw error;
    } finally {
      instance.busy = false;
    }
    return instance;
  }

  private start(fn: DeployedFunction): Instance {
    const credentials = this.options.credentials.get(fn.roleName);
    if (!credentials) throw new Error(`no credentials for role ${fn.roleName}`);
    const id = this.nextInstance++;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      LAMBDA_TASK_ROOT: fn.codeDir,
      LAMBDA_RUNTIME_DIR: fn.codeDir,
      // Lambda's Node runtime: each layer's nodejs/node_modules (what /opt/nodejs/node_modules is when deployed).
      NODE_PATH: fn.layerDirs.map((d) => join(d, 'nodejs', 'node_modules')).join(':'),
      _HANDLER: fn.handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      AWS_LAMBDA_FUNCTION_NAME: fn.functionName,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMb),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `rehearsal/[$LATEST]${id}`,
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_REGION: this.options.region,
      AWS_DEFAULT_REGION: this.options.region,
      ...fn.environment,
      ...this.options.glue(),
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_SESSION_TOKEN: credentials.sessionToken,
    };
    const child = fork(BOOTSTRAP, [], { cwd: fn.codeDir, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [] });
    const instance: Instance = { id, child, busy: false, pending: new Map(), ready: Promise.resolve() };
    const capture = (stream: 'stdout' | 'stderr') => {
      let rest = '';
      return (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const text of lines) if (text.trim()) this.logs.push({ function: fn.functionName, instance: id, stream, text });
      };
    };
    child.stdout!.on('data', capture('stdout'));
    child.stderr!.on('data', capture('stderr'));
    instance.ready = new Promise<void>((ready, fail) => {
      child.on('message', (message: RuntimeMessage) => {
        if (message.type === 'ready') ready();
        else if (message.type === 'init-error') fail(new Error(`${fn.functionName} failed to initialise: ${message.error?.errorType}: ${message.error?.errorMessage}`));
        else if (message.requestId) instance.pending.get(message.requestId)?.(message);
      });
      child.on('exit', (code, signal) => {
        fail(new Error(`${fn.functionName} exited during init (${signal ?? code})`));
        for (const [requestId, settle] of instance.pending) {
          settle({ type: 'error', error: { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: ${signal ? `signal: ${signal}` : `exit status ${code}`}` } });
        }
        instance.pending.clear();
        this.retire(fn, instance);
      });
    });
    instance.ready.catch(() => undefined);
    return instance;
  }

  private retire(fn: DeployedFunction, instance: Instance): void {
    if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill('SIGKILL');
    const list = this.instances.get(fn.functionName) ?? [];
    this.instances.set(
      fn.functionName,
      list.filter((i) => i !== instance),
    );
  }

  private async deadLetter(fn: DeployedFunction, event: unknown, last: InvokeOutcome & { ok: false }, attempts: number): Promise<void> {
    const queueArn = fn.asyncConfig.onFailureQueueArn!;
    const credentials = this.options.credentials.get(fn.roleName)!;
    const record = {
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: { requestId: last.requestId, functionArn: `${fn.arn}:$LATEST`, condition: 'RetriesExhausted', approximateInvokeCount: attempts },
      requestPayload: event,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: last.error,
    };
    await this.options.sqs(credentials).send(new SendMessageCommand({ QueueUrl: this.options.queueUrl(queueArn), MessageBody: JSON.stringify(record) }));
  }
}
