import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';

/**
 * Runs the segment map's state machine with aws-local-stepfunctions, an interpreter of the Amazon
 * States Language: its states, Parameters, ResultSelector, Retry and Catch run as written, and each
 * `arn:aws:states:::lambda:invoke` task calls `invoke` with the function and payload its Parameters
 * select, answering `{ StatusCode, Payload }` as the Lambda integration does (a function error is
 * thrown with its type as the error name, which Retry and Catch match).
 *
 * Two parts of a distributed map the interpreter does not run are played here, and said so:
 * - the ItemReader: the manifest is read at the Bucket and Key its Parameters select from the
 *   execution input, parsed as a JSON array (`InputType` JSON), and handed to the Map as its items;
 * - ToleratedFailurePercentage: an item that still fails after its retries fails the Map, as it
 *   does in Step Functions once more than the tolerated share of items failed (tests that send the
 *   map to its Catch fail more than that share).
 */
export interface StateMachineRun {
  /** The execution's output (the last state's), or its error. */
  output: unknown;
  error: { name: string; message: string } | null;
  /** Each task state's invocations in order: the state, the function, the payload. */
  calls: { state: string; functionName: string; payload: unknown }[];
}

export interface StateMachineDeps {
  readObject(bucket: string, key: string): Promise<string>;
  /** A synchronous invocation; throws an error named after the function error's type. */
  invoke(functionName: string, payload: unknown): Promise<unknown>;
}

/** The repository's definition with its placeholders filled as CloudFormation's Fn::Sub would. */
export function segmentMapDefinition(values: { worker: string; merge: string; maxConcurrency: number; toleratedFailurePercentage: number; chunkRetries: number }): Record<string, any> {
  const text = readFileSync(join(import.meta.dirname, '../../infra/segment-map.asl.json'), 'utf8');
  const by: Record<string, string> = {
    WorkerFunctionArn: values.worker,
    MergeFunctionArn: values.merge,
    MaxConcurrency: String(values.maxConcurrency),
    ToleratedFailurePercentage: String(values.toleratedFailurePercentage),
    ChunkRetries: String(values.chunkRetries),
  };
  return fillDefinition(text, by);
}

/** A definition's `${Name}` placeholders filled from `values` (as CloudFormation's Fn::Sub does); an unfilled one is an error. */
export function fillDefinition(text: string, values: Record<string, string>): Record<string, any> {
  return JSON.parse(
    text.replace(/\$\{(\w+)\}/g, (_, key: string) => {
      if (!(key in values)) throw new Error(`the definition has a placeholder nothing fills: ${key}`);
      return values[key]!;
    }),
  );
}

export async function runStateMachine(definition: Record<string, any>, input: Record<string, unknown>, deps: StateMachineDeps): Promise<StateMachineRun> {
  const def = structuredClone(definition);
  const map = def.States[def.StartAt];
  if (map?.Type !== 'Map' || !map.ItemReader) throw new Error('the definition does not start with a Map state reading its items');
  const reader = map.ItemReader;
  if (reader.Resource !== 'arn:aws:states:::s3:getObject' || reader.ReaderConfig?.InputType !== 'JSON') throw new Error('only an S3 JSON ItemReader is played here');
  const items = JSON.parse(await deps.readObject(String(select(reader.Parameters, 'Bucket', input)), String(select(reader.Parameters, 'Key', input))));
  if (!Array.isArray(items)) throw new Error('the manifest is not a JSON array');
  delete map.ItemReader;
  const itemsField = '__items_from_item_reader';
  map.ItemsPath = `$.${itemsField}`;

  const calls: StateMachineRun['calls'] = [];
  const handlers: Record<string, (request: { FunctionName: string; Payload: unknown }) => Promise<unknown>> = {};
  const retryIntervals: Record<string, number> = {};
  for (const [name, state] of taskStates(def)) {
    if (state.Resource !== 'arn:aws:states:::lambda:invoke') throw new Error(`task ${name} is not a Lambda invocation`);
    handlers[name] = async ({ FunctionName, Payload }) => {
      const functionName = FunctionName.split(':').pop()!;
      calls.push({ state: name, functionName, payload: Payload });
      return { StatusCode: 200, Payload: await deps.invoke(functionName, Payload) };
    };
    retryIntervals[name] = 0;
  }
  const machine = new StateMachine(def as any, { validationOptions: { checkPaths: true } });
  const execution = machine.run({ ...input, [itemsField]: items }, { overrides: { taskResourceLocalHandlers: handlers as any, retryIntervalOverrides: retryIntervals } });
  try {
    return { output: await execution.result, error: null, calls };
  } catch (error) {
    const e = error as Error;
    return { output: null, error: { name: e.name, message: e.message }, calls };
  }
}

/** A `Field.$` parameter's value: only plain paths (`$.a.b`) are read here. */
function select(parameters: Record<string, unknown>, field: string, input: Record<string, unknown>): unknown {
  const path = parameters[`${field}.$`];
  if (typeof path !== 'string') return parameters[field];
  if (!/^\$(\.[A-Za-z_][\w]*)+$/.test(path)) throw new Error(`the path ${path} is not a plain path`);
  let value: unknown = input;
  for (const key of path.slice(2).split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  if (value === undefined) throw new Error(`the path ${path} selects nothing in the execution input`);
  return value;
}

function* taskStates(def: Record<string, any>): Generator<[string, Record<string, any>]> {
  for (const [name, state] of Object.entries<Record<string, any>>(def.States)) {
    if (state.Type === 'Task') yield [name, state];
    const inner = state.ItemProcessor ?? state.Iterator;
    if (inner) yield* taskStates(inner);
    for (const branch of state.Branches ?? []) yield* taskStates(branch);
  }
}
