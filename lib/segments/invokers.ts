import { z } from 'zod';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ConfigError } from '../errors';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mapExecutionName, type MapStarter, type PlannerStarter, type WorkerInvoker } from './planner';
import type { SegmentRun, SegmentRunStore } from './runs';
import { WorkerPayloadSchema, WorkerResultSchema, type WorkerPayload, type WorkerResult } from './worker';

let defaultClient: LambdaClient | undefined;

/**
 * The process-wide Lambda client, built once. `AWS_ENDPOINT_URL_LAMBDA` points it elsewhere (the
 * local invoke endpoint of serverless-offline). Retries are the planner's job, so the SDK makes one
 * attempt, and a chunk may take up to the worker's own timeout.
 */
export function defaultLambdaClient(): LambdaClient {
  const local = Boolean(process.env.AWS_ENDPOINT_URL_LAMBDA) && !process.env.AWS_ACCESS_KEY_ID;
  defaultClient ??= new LambdaClient({
    maxAttempts: 1,
    // A local invoke endpoint (serverless-offline) checks no signature but the SDK insists on signing.
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, region: process.env.AWS_REGION ?? 'us-east-1' } : {}),
    requestHandler: new NodeHttpHandler({ requestTimeout: 900_000, connectionTimeout: 5_000 }),
  });
  return defaultClient;
}

/** Invokes the worker function synchronously; a function error or a transport failure throws. */
export class LambdaWorkerInvoker implements WorkerInvoker {
  private readonly client: LambdaClient;

  constructor(
    private readonly functionName: string,
    client?: LambdaClient,
  ) {
    this.client = client ?? defaultLambdaClient();
  }

  async invoke(payload: WorkerPayload): Promise<WorkerResult> {
    const out = await this.client
      .send(new InvokeCommand({ FunctionName: this.functionName, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify(payload)) }))
      .catch((error: unknown) => {
        throw misconfiguration(error, this.functionName) ?? error;
      });
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
    if (out.FunctionError) {
      let message = text;
      try {
        message = (JSON.parse(text) as { errorMessage?: string }).errorMessage ?? text;
      } catch {
        /* keep the raw text */
      }
      throw new Error(`worker failed: ${message.slice(0, 500)}`);
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* reported below */
    }
    const result = WorkerResultSchema.safeParse(parsed);
    if (!result.success) throw new Error(`worker answered without a result: ${text.slice(0, 200)}`);
    return result.data;
  }
}

/** Errors that say the invoker itself is misconfigured (retrying cannot help), as a ConfigError naming the settings. */
const CONFIGURATION_ERRORS = new Set(['ResourceNotFoundException', 'CredentialsProviderError', 'UnrecognizedClientException', 'InvalidSignatureException', 'AccessDeniedException', 'AccessDeniedError']);

function misconfiguration(error: unknown, functionName: string): ConfigError | null {
  const name = (error as { name?: string }).name ?? '';
  const message = (error as Error).message ?? String(error);
  if (!CONFIGURATION_ERRORS.has(name) && !/Region is missing/i.test(message)) return null;
  return new ConfigError(
    `cannot invoke the worker function ${functionName}: ${message} (set AWS_REGION and credentials for a deployed stage, SEGMENT_WORKER_FUNCTION for another name, or AWS_ENDPOINT_URL_LAMBDA for serverless-offline)`,
    { cause: error },
  );
}

/** Starts a function asynchronously (InvocationType Event): the planner, from the HTTP function. */
export async function invokeAsync(functionName: string, payload: unknown, client: LambdaClient = defaultLambdaClient()): Promise<void> {
  const out = await client.send(new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(JSON.stringify(payload)) }));
  if (out.StatusCode !== 202) throw new Error(`asynchronous invocation of ${functionName} answered ${out.StatusCode}`);
}

/** Starts the planner function for a run, asynchronously (the start route, the schedule, the sweeper). */
export class LambdaPlannerStarter implements PlannerStarter {
  private readonly client: LambdaClient;

  constructor(
    private readonly functionName: string,
    client?: LambdaClient,
  ) {
    this.client = client ?? defaultLambdaClient();
  }

  start(segmentId: string, runId: string): Promise<void> {
    return invokeAsync(this.functionName, { segment_id: segmentId, run_id: runId }, this.client);
  }
}

/** Runs chunks in this process (the CLI and tests): the same worker code, no Lambda in between. */
export class LocalWorkerInvoker implements WorkerInvoker {
  constructor(private readonly run: (payload: WorkerPayload) => Promise<WorkerResult>) {}

  invoke(payload: WorkerPayload): Promise<WorkerResult> {
    return this.run(payload);
  }
}

let defaultSfn: SFNClient | undefined;

/**
 * Starts the Step Functions state machine of the distributed map for a run: its ItemReader reads
 * the manifest from the results bucket, the segment worker processes each item, and the merge step
 * finishes the run. The execution is named after the run, so a repeated start starts nothing twice.
 */
export class StepFunctionsMapStarter implements MapStarter {
  private readonly client: SFNClient;

  constructor(
    private readonly stateMachineArn: string,
    /** Where the results store keeps objects: `s3://bucket/` or `s3://bucket/prefix/`. */
    private readonly location: string,
    client?: SFNClient,
  ) {
    this.client = client ?? (defaultSfn ??= new SFNClient({}));
  }

  async start(run: SegmentRun, manifestKey: string): Promise<void> {
    const match = /^s3:\/\/([^/]+)\/(.*)$/.exec(this.location);
    if (!match) throw new ConfigError(`The distributed map reads its manifest from S3, but the results store is ${this.location}: set RESULTS_URI to an s3:// location`);
    const name = mapExecutionName(run);
    const input = { segment_id: run.segment_id, run_id: run.run_id, manifest: { bucket: match[1]!, key: `${match[2]!}${manifestKey}` } };
    try {
      await this.client.send(new StartExecutionCommand({ stateMachineArn: this.stateMachineArn, name, input: JSON.stringify(input) }));
    } catch (error) {
      // Started already (a repeated start of the same run): nothing to do.
      if (!(error instanceof ExecutionAlreadyExists)) throw error;
    }
  }
}

/**
 * The distributed map in this process (the CLI, tests, benchmarks): the same manifest, the same
 * worker payloads and the same merge step as the state machine, with its MaxConcurrency, retries
 * and ToleratedFailurePercentage. Returns once the run is merged.
 */
export class LocalMapRunner implements MapStarter {
  constructor(
    private readonly deps: {
      runs: SegmentRunStore;
      invoker: WorkerInvoker;
      concurrency: number;
      retries: number;
      toleratedFailurePercent: number;
      merge: (segmentId: string, runId: string, mapError?: string) => Promise<unknown>;
    },
  ) {}

  async start(run: SegmentRun, manifestKey: string): Promise<void> {
    const stored = await this.deps.runs.store.get(manifestKey);
    if (!stored) throw new Error(`the manifest ${manifestKey} is missing`);
    // The manifest as the map's ItemReader reads it: worker payloads, checked like the worker checks one.
    const items = z.array(WorkerPayloadSchema).parse(JSON.parse(new TextDecoder().decode(stored.body)));
    let next = 0;
    let failed = 0;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++]!;
        for (let attempt = 1; attempt <= this.deps.retries + 1; attempt++) {
          try {
            await this.deps.invoker.invoke({ ...item, attempt });
            break;
          } catch {
            if (attempt === this.deps.retries + 1) failed++;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency, items.length) }, worker));
    const tolerated = (failed / Math.max(1, items.length)) * 100 <= this.deps.toleratedFailurePercent;
    await this.deps.merge(run.segment_id, run.run_id, tolerated ? undefined : `${failed} of ${items.length} items failed, more than the tolerated ${this.deps.toleratedFailurePercent}%`);
  }
}
