import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../support/fixtures';
import { tempDir } from '../support/registry';
import { ROUTE_KEYS } from '../support/routes';
import aslValidator from 'asl-validator';
import { ROUTES } from '../../lib/http/contract';
import { functionConcurrency } from '../../lib/console/gateway';
import { fillDefinition } from '../support/state-machine';

const ROOT = resolve(import.meta.dirname, '../..');
const INFERENCE = ['predict', 'predictBatch', 'legacyTest', 'models', 'segmentWorker', 'train'];
const NO_INFERENCE = ['segmentStart', 'segmentRunStatus', 'segmentStats', 'segmentPlanner', 'segmentMerge', 'segmentNightly', 'segmentSweeper', 'qualityCheck', 'fallback'];
const MB = 1024 * 1024;

let out: string;
let template: { Resources: Record<string, { Type: string; Properties: any; Condition?: string }>; Outputs: Record<string, unknown> };

const resources = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
const zipEntries = (fn: string) =>
  execFileSync('unzip', ['-Z1', join(out, `${fn}.zip`)], { encoding: 'utf8' })
    .trim()
    .split('\n');
const unzippedBytes = (fn: string) => Number(/(\d+)\s+\d+ files?$/m.exec(execFileSync('unzip', ['-l', join(out, `${fn}.zip`)], { encoding: 'utf8' }).trim())![1]);

beforeAll(() => {
  out = tempDir('loyalty-ml-package-');
  // As an operator without AWS credentials would: no AWS_* variables at all.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const result = spawnSync(join(ROOT, 'node_modules/.bin/osls'), ['package', '--stage', 'ci', '--package', out], {
    cwd: ROOT,
    env: { ...env, ESBUILD_WORK_FOLDER: '.esbuild-package', ONNXRUNTIME_NODE_INSTALL: 'skip' },
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`osls package failed:\n${result.stdout}\n${result.stderr}`);
  template = JSON.parse(readFileSync(join(out, 'cloudformation-template-update-stack.json'), 'utf8'));
}, 300_000);

// The zips and their unpacked copy take a few hundred megabytes of temporary space.
const scratch: string[] = [];
afterAll(() => {
  for (const dir of [out, ...scratch]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the generated CloudFormation template', () => {
  it('has every route, each requiring IAM (SigV4) authentication', () => {
    const routes = resources('AWS::ApiGatewayV2::Route').map(([, r]) => [r.Properties.RouteKey, r.Properties.AuthorizationType]);
    expect(routes.sort()).toEqual(['$default', ...ROUTE_KEYS].map((k) => [k, 'AWS_IAM']));
    const urls = resources('AWS::Lambda::Url');
    expect(urls.map(([, u]) => [u.Properties.TargetFunctionArn['Fn::GetAtt'][0], u.Properties.AuthType])).toEqual([['PredictBatchLambdaFunction', 'AWS_IAM']]);
  });

  it('schedules nightly segment scoring, the run sweeper, the daily quality check and weekly training', () => {
    const schedules = resources('AWS::Events::Rule').map(([, r]) => [r.Properties.ScheduleExpression, r.Properties.State]);
    expect(schedules.sort()).toEqual([
      ['cron(0 2 * * ? *)', 'ENABLED'],
      ['cron(0 3 ? * SUN *)', 'ENABLED'],
      ['cron(0 5 * * ? *)', 'ENABLED'],
      ['cron(30 3 ? * SUN *)', 'ENABLED'],
      ['rate(5 minutes)', 'ENABLED'],
    ]);
  });

  it('runs every function on nodejs22.x x86_64 with its own least-privilege role and log retention', () => {
    const functions = resources('AWS::Lambda::Function');
    expect(functions).toHaveLength(15);
    for (const [, f] of functions) {
      expect(f.Properties.Runtime).toBe('nodejs22.x');
      expect(f.Properties.Architectures).toEqual(['x86_64']);
      expect(f.Properties.Role['Fn::GetAtt'][0]).toMatch(/Role$/);
      expect(f.Properties.Environment.Variables.WAREHOUSE_URL).toBe('');
      expect(f.Properties.Environment.Variables.WAREHOUSE_SECRET_ARN).toEqual({ Ref: 'WarehouseSecret' });
    }
    for (const [, g] of resources('AWS::Logs::LogGroup')) expect(g.Properties.RetentionInDays).toBe(30);
  });

  it('grants no wildcard actions or resources, and only the right roles write or invoke', () => {
    const roles = Object.fromEntries(resources('AWS::IAM::Role').map(([name, r]) => [name, r.Properties.Policies[0].PolicyDocument.Statement as any[]]));
    const grants = (role: string, action: string) =>
      roles[role]!.filter((s) => [s.Action].flat().includes(action)).flatMap((s) => [s.Resource].flat().map((r: unknown) => JSON.stringify(r)));
    for (const [name, statements] of Object.entries(roles)) {
      for (const s of statements) {
        for (const a of [s.Action].flat()) expect(a, name).not.toMatch(/\*/);
        // X-Ray's actions take no resource: the one place "*" is the only possible value.
        const xray = [s.Action].flat().every((a: string) => a.startsWith('xray:'));
        for (const r of [s.Resource].flat()) if (!xray) expect(JSON.stringify(r), name).not.toBe('"*"');
      }
    }
    const writers = Object.keys(roles).filter((r) => grants(r, 's3:PutObject').some((g) => g.includes('/models/')));
    expect(writers).toEqual(['TrainRole']);
    const invokers = Object.keys(roles).filter((r) => grants(r, 'lambda:InvokeFunction').some((g) => g.includes('segmentWorker')));
    expect(invokers).toEqual(['SegmentPlannerRole', 'SegmentMapRole']);
    const plannerStarters = Object.keys(roles).filter((r) => grants(r, 'lambda:InvokeFunction').some((g) => g.includes('segmentPlanner'))).sort();
    expect(plannerStarters).toEqual(['SegmentPlannerRole', 'SegmentStartRole', 'SegmentSweeperRole']);
    expect(grants('SegmentSweeperRole', 'secretsmanager:GetSecretValue')).toEqual([]);
    // Workers score the features their chunk carries: the warehouse is the planner's alone.
    expect(grants('SegmentWorkerRole', 'secretsmanager:GetSecretValue')).toEqual([]);
    expect(grants('SegmentPlannerRole', 'secretsmanager:GetSecretValue')).not.toEqual([]);
    expect(grants('SegmentMergeRole', 'secretsmanager:GetSecretValue')).toEqual([]);
    // Only the planner starts the distributed map, and only it; the map invokes only the worker and the merge step.
    const mapStarters = Object.keys(roles).filter((r) => grants(r, 'states:StartExecution').length > 0).sort();
    expect(mapStarters).toEqual(['SegmentMapRole', 'SegmentPlannerRole']);
    expect(grants('SegmentPlannerRole', 'states:StartExecution')).toEqual([JSON.stringify({ Ref: 'SegmentMapStateMachine' })]);
    expect(grants('SegmentMapRole', 'lambda:InvokeFunction').map((g) => /function:[^"]*-(\w+)"/.exec(g)?.[1])).toEqual(['segmentWorker', 'segmentMerge']);
    expect(grants('SegmentMapRole', 's3:GetObject')).toEqual([expect.stringContaining('/segment-chunks/*')]);
    // Prediction functions write only the prediction log; only the quality check writes its reports.
    expect(grants('PredictRole', 's3:PutObject')).toEqual([expect.stringContaining('/predictions/*')]);
    const logWriters = Object.keys(roles).filter((r) => grants(r, 's3:PutObject').some((g) => g.includes('/predictions/'))).sort();
    expect(logWriters).toEqual(['PredictRole', 'SegmentWorkerRole']);
    const reportWriters = Object.keys(roles).filter((r) => grants(r, 's3:PutObject').some((g) => g.includes('/monitoring/')));
    expect(reportWriters).toEqual(['QualityCheckRole']);
    const trainers = Object.keys(roles).filter((r) => grants(r, 'lambda:InvokeFunction').some((g) => g.includes('-train')));
    expect(trainers).toEqual(['QualityCheckRole']);
    expect(grants('SegmentReadRole', 's3:PutObject')).toEqual([]);
    expect(grants('PredictRole', 's3:GetObject').every((g) => g.includes('/models/') || g.includes('/monitoring/'))).toBe(true);
    expect(grants('SegmentReadRole', 's3:GetObject').every((g) => g.includes('/segments/'))).toBe(true);
  });

  it('lets every role that reads keys which may be absent list their prefix, so S3 answers 404 and not 403', () => {
    const roles = Object.fromEntries(resources('AWS::IAM::Role').map(([name, r]) => [name, r.Properties.Policies[0].PolicyDocument.Statement as any[]]));
    for (const [name, statements] of Object.entries(roles)) {
      const readPrefixes = statements
        .filter((s) => [s.Action].flat().includes('s3:GetObject'))
        .flatMap((s) => [s.Resource].flat())
        .map((r: any) => /\/([a-z-]+\/)\*$/.exec(r['Fn::Join'][1].at(-1))![1]);
      const listed = statements.filter((s) => [s.Action].flat().includes('s3:ListBucket')).flatMap((s) => s.Condition.StringLike['s3:prefix'] as string[]);
      for (const prefix of readPrefixes) expect(listed, `${name} reads ${prefix}`).toContain(`${prefix}*`);
      // Listing is limited to those prefixes, never the whole bucket.
      for (const s of statements.filter((x) => [x.Action].flat().includes('s3:ListBucket'))) expect(s.Condition.StringLike['s3:prefix'].every((p: string) => p !== '*'), name).toBe(true);
    }
  });

  it('bounds concurrency: reserved concurrency x warehouse pool stays within the connection budget, and the HTTP API throttles', () => {
    const budget = 200;
    // Only functions whose role may read the warehouse secret can open connections (segment workers, the merge step and the sweeper cannot).
    const connects = (f: { Properties: any }) =>
      (template.Resources[f.Properties.Role['Fn::GetAtt'][0]]!.Properties.Policies[0].PolicyDocument.Statement as any[]).some((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'));
    const functions = resources('AWS::Lambda::Function').map(([name, f]) => ({
      name,
      reserved: Number(f.Properties.ReservedConcurrentExecutions),
      pool: connects(f) ? Number(f.Properties.Environment.Variables.WAREHOUSE_POOL_SIZE) : 0,
    }));
    expect(functions.filter((f) => f.pool === 0).map((f) => f.name).sort()).toEqual(['FallbackLambdaFunction', 'SegmentMergeLambdaFunction', 'SegmentSweeperLambdaFunction', 'SegmentWorkerLambdaFunction']);
    for (const f of functions) expect(f.reserved, f.name).toBeGreaterThan(0);
    const worstCase = functions.reduce((sum, f) => sum + f.reserved * f.pool, 0);
    expect(worstCase).toBeLessThanOrEqual(budget);
    const stage = template.Resources.HttpApiStage!.Properties;
    expect(stage.DefaultRouteSettings).toMatchObject({ ThrottlingRateLimit: expect.any(Number), ThrottlingBurstLimit: expect.any(Number) });
  });

  it('routes each documented operation to the function the local front door names, with the concurrency it applies', () => {
    // The local service limits each route by its function's concurrency (lib/console/gateway.ts); that
    // is only honest if the deployed route reaches the same function with the same reserved concurrency.
    const concurrency = functionConcurrency();
    const targetOf = (routeKey: string): string => {
      const route = resources('AWS::ApiGatewayV2::Route').find(([, r]) => r.Properties.RouteKey === routeKey);
      expect(route, routeKey).toBeDefined();
      const integration = JSON.stringify(route![1].Properties.Target).match(/"Ref":"([^"]+)"/)![1]!;
      const uri = JSON.stringify(template.Resources[integration]!.Properties.IntegrationUri);
      return /"Fn::GetAtt":\["([A-Za-z0-9]+)LambdaFunction"/.exec(uri)![1]!;
    };
    for (const route of ROUTES.filter((r) => !r.local)) {
      const key = `${route.method.toUpperCase()} ${route.path}`;
      const logical = targetOf(key);
      expect(logical, key).toBe(route.function[0]!.toUpperCase() + route.function.slice(1));
      const reserved = Number(template.Resources[`${logical}LambdaFunction`]!.Properties.ReservedConcurrentExecutions);
      expect(reserved, key).toBe(concurrency[route.function]);
    }
  });

  it('answers HTTP API requests before the gateway cuts at 30 s, and keeps 60 s for the batch function URL', () => {
    const fn = (name: string) => template.Resources[name]!.Properties;
    for (const name of ['PredictLambdaFunction', 'LegacyTestLambdaFunction', 'ModelsLambdaFunction', 'PredictBatchLambdaFunction']) {
      expect(Number(fn(name).Environment.Variables.HTTP_API_DEADLINE_SECONDS), name).toBeLessThanOrEqual(28);
    }
    expect(fn('LegacyTestLambdaFunction').Timeout).toBeLessThanOrEqual(30);
    expect(fn('PredictBatchLambdaFunction').Timeout).toBeGreaterThan(60);
    expect(Number(fn('PredictBatchLambdaFunction').Environment.Variables.BATCH_DEADLINE_SECONDS)).toBe(60);
  });

  it('defines the distributed map of large segment runs as a valid state machine over the manifest, the worker and the merge step', () => {
    const machines = resources('AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(1);
    const machine = machines[0]![1];
    const [text, values] = machine.Properties.DefinitionString['Fn::Sub'] as [string, Record<string, unknown>];
    // Substituted as CloudFormation would, with this account's function ARNs.
    const arnOf = (v: unknown) => JSON.stringify(v).match(/function:([^"]+)"/)![1]!;
    const definition = fillDefinition(text, Object.fromEntries(Object.entries(values).map(([k, v]) => [k, k.endsWith('Arn') ? `arn:aws:lambda:eu-west-1:123456789012:function:${arnOf(v)}` : String(v)])));
    const check = aslValidator(definition);
    expect(check.errorsText('\n')).toBe('');
    expect(check.isValid).toBe(true);
    // The validator does refuse a broken definition (a map whose processor has no start).
    const broken = structuredClone(definition);
    delete broken.States.ScoreChunks.ItemProcessor.StartAt;
    expect(aslValidator(broken).isValid).toBe(false);

    const map = definition.States[definition.StartAt];
    expect(map).toMatchObject({ Type: 'Map', ItemReader: { Resource: 'arn:aws:states:::s3:getObject', ReaderConfig: { InputType: 'JSON' } }, ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED' } } });
    const task = map.ItemProcessor.States[map.ItemProcessor.StartAt];
    expect(task.Parameters.FunctionName).toMatch(/-segmentWorker$/);
    // MaxConcurrency and ToleratedFailurePercentage take the planner's place: at most the worker's reserved concurrency.
    expect(map.MaxConcurrency).toBe(Number(template.Resources.SegmentWorkerLambdaFunction!.Properties.ReservedConcurrentExecutions));
    expect(map.ToleratedFailurePercentage).toBeGreaterThan(0);
    expect(definition.States[map.Next].Parameters.FunctionName).toMatch(/-segmentMerge$/);
    expect(definition.States[map.Catch[0].Next].Parameters.FunctionName).toMatch(/-segmentMerge$/);
    // The planner is told which state machine to start.
    expect(template.Resources.SegmentPlannerLambdaFunction!.Properties.Environment.Variables.SEGMENT_MAP_STATE_MACHINE).toEqual({ Ref: 'SegmentMapStateMachine' });
  });

  it('passes cfn-lint with no errors', () => {
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', join(out, 'cloudformation-template-update-stack.json')], { encoding: 'utf8' });
    expect(lint.error, 'cfn-lint must be installed (pip install cfn-lint)').toBeUndefined();
    const errors = lint.stdout.split('\n').filter((l) => /:E\d{4}:/.test(l));
    expect(errors).toEqual([]);
  });

  it('creates a versioned, encrypted, private, TLS-only registry bucket with lifecycle rules', () => {
    const bucket = template.Resources.RegistryBucket!.Properties;
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    // Chunk files hold customers' features: gone a week after their run.
    expect(bucket.LifecycleConfiguration.Rules.find((r: any) => r.Prefix === 'segment-chunks/')).toMatchObject({ Status: 'Enabled', ExpirationInDays: 7 });
    const parts = bucket.LifecycleConfiguration.Rules.find((r: any) => r.Prefix === 'segment-parts/');
    expect(parts.ExpirationInDays).toBe(30);
    const [tls, versions, aliases] = template.Resources.RegistryBucketPolicy!.Properties.PolicyDocument.Statement;
    expect(tls).toMatchObject({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } });
    // Even a writer that is not loyalty-ml cannot replace a version or move an alias without a condition.
    expect(versions).toMatchObject({ Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Condition: { Null: { 's3:if-none-match': 'true' } } });
    expect(versions.Resource['Fn::Join'][1][1]).toBe('/models/*/versions/*');
    expect(aliases).toMatchObject({ Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Condition: { Null: { 's3:if-none-match': 'true', 's3:if-match': 'true' } } });
    expect(aliases.Resource['Fn::Join'][1][1]).toBe('/models/*/aliases/*');
  });

  it('alarms on errors, throttles and durations of every function, failed chunks and failed async invocations', () => {
    const alarms = resources('AWS::CloudWatch::Alarm').map(([name]) => name);
    for (const fn of [...INFERENCE, ...NO_INFERENCE]) {
      const id = fn.charAt(0).toUpperCase() + fn.slice(1);
      expect(alarms).toEqual(expect.arrayContaining([`${id}ErrorsAlarm`, `${id}ThrottlesAlarm`, `${id}DurationAlarm`]));
    }
    expect(alarms).toEqual(expect.arrayContaining(['FailedSegmentChunksAlarm', 'AsyncFailuresAlarm', 'MockPredictionsAlarm', 'StaleModelAnswersAlarm', 'SegmentRunsPastLeaseAlarm', 'SegmentRunsFailedAlarm', 'PredictionLogWriteFailuresAlarm', 'RealisedQualityAlarm', 'SegmentMapExecutionsFailedAlarm']));
    expect(template.Resources.SegmentMapExecutionsFailedAlarm!.Properties).toMatchObject({ Namespace: 'AWS/States', MetricName: 'ExecutionsFailed', Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: 'SegmentMapStateMachine' } }] });
    // The service's alarms watch exactly what lib/observability.ts emits: namespace, metric and dimensions.
    const mock = template.Resources.MockPredictionsAlarm!.Properties;
    expect(mock).toMatchObject({ Namespace: 'loyalty-ml', MetricName: 'MockPredictions', Dimensions: [{ Name: 'service', Value: 'loyalty-ml' }, { Name: 'Stage', Value: 'ci' }] });
    const destinations = resources('AWS::Lambda::EventInvokeConfig').map(([, c]) => [c.Properties.FunctionName.Ref, c.Properties.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0]]);
    expect(destinations.sort()).toEqual([
      ['QualityCheckLambdaFunction', 'AsyncFailureQueue'],
      ['SegmentNightlyLambdaFunction', 'AsyncFailureQueue'],
      ['SegmentPlannerLambdaFunction', 'AsyncFailureQueue'],
      ['SegmentSweeperLambdaFunction', 'AsyncFailureQueue'],
      ['TrainLambdaFunction', 'AsyncFailureQueue'],
    ]);
    expect(Object.keys(template.Outputs)).toEqual(expect.arrayContaining(['RegistryBucketName', 'HttpApiUrl', 'PredictBatchLambdaFunctionUrl', 'ApiCallerPolicyArn', 'WarehouseSecretArn']));
  });
});

describe('the function artifacts', () => {
  it('ship onnxruntime once, in a layer the inference functions use: only its linux/x64 binary and run-time JavaScript', () => {
    const entries = zipEntries('onnxruntime');
    expect(entries).toContain('nodejs/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1');
    expect(entries).toContain('nodejs/node_modules/onnxruntime-common/dist/cjs/index.js');
    expect(entries.filter((e) => /napi-v6\/(darwin|win32|linux\/arm64)|\.map$|\.ts$|\/script\//.test(e))).toEqual([]);
    expect(statSync(join(out, 'onnxruntime.zip')).size).toBeLessThan(20 * MB);
    const layers = resources('AWS::Lambda::LayerVersion');
    expect(layers).toHaveLength(1);
    const [layerId, layer] = layers[0]!;
    expect(layer.Properties).toMatchObject({ CompatibleRuntimes: ['nodejs22.x'], CompatibleArchitectures: ['x86_64'] });
    const functions = Object.fromEntries(resources('AWS::Lambda::Function').map(([id, f]) => [id.replace(/LambdaFunction$/, '').replace(/^./, (c) => c.toLowerCase()), f.Properties.Layers ?? []]));
    for (const fn of INFERENCE) expect(functions[fn], fn).toEqual([{ Ref: layerId }]);
    for (const fn of NO_INFERENCE) expect(functions[fn], fn).toEqual([]);
  });

  it('keep inference zips under 16 MB: their own bundle, no source map, no onnxruntime, no embedded warehouse', () => {
    for (const fn of INFERENCE) {
      const zipped = statSync(join(out, `${fn}.zip`)).size;
      expect(zipped, fn).toBeLessThan(16 * MB);
      // Lambda's limit counts the function and its layers unzipped.
      expect(unzippedBytes(fn) + unzippedBytes('onnxruntime'), fn).toBeLessThan(250 * MB);
      const entries = zipEntries(fn);
      expect(entries.some((e) => e.includes('onnxruntime')), fn).toBe(false);
      expect(entries.some((e) => e.endsWith('.map')), fn).toBe(false);
      expect(entries.some((e) => e.includes('@electric-sql/pglite'))).toBe(false);
    }
  });

  it('ship functions that do no inference without onnxruntime', () => {
    for (const fn of NO_INFERENCE) {
      expect(statSync(join(out, `${fn}.zip`)).size, fn).toBeLessThan(5 * MB);
      expect(zipEntries(fn).some((e) => e.includes('onnxruntime')), fn).toBe(false);
    }
  });

  it('load and run onnxruntime from the packaged predict function with the layer', () => {
    const dir = tempDir('loyalty-ml-artifact-');
    scratch.push(dir);
    execFileSync('unzip', ['-q', join(out, 'predict.zip'), '-d', join(dir, 'task')]);
    execFileSync('unzip', ['-q', join(out, 'onnxruntime.zip'), '-d', join(dir, 'opt')]);
    const script = `
      require('./functions/predict.cjs');
      const ort = require('onnxruntime-node');
      const bytes = require('fs').readFileSync(${JSON.stringify(join(FIXTURES_DIR, 'onnx/keras_bank_churn_mlp/model.onnx'))});
      ort.InferenceSession.create(bytes).then(async (s) => {
        const out = await s.run({ input_layer: new ort.Tensor('float32', new Float32Array(11), [1, 11]) });
        console.log(JSON.stringify({ handler: typeof require('./functions/predict.cjs').batch, p: out.output_0.data[0] }));
      });`;
    // As Lambda runs it: the function in its task folder, the layer under /opt, found through NODE_PATH.
    const result = execFileSync(join(ROOT, 'node_modules/.bin/node'), ['-e', script], {
      cwd: join(dir, 'task'),
      env: { PATH: process.env.PATH, STAGE: 'ci', MODEL_REGISTRY_URI: dir, WAREHOUSE_URL: 'postgres://127.0.0.1:9/none', NODE_PATH: join(dir, 'opt/nodejs/node_modules') },
      encoding: 'utf8',
    });
    const parsed = JSON.parse(result.trim().split('\n').pop()!);
    expect(parsed.handler).toBe('function');
    expect(parsed.p).toBeGreaterThan(0);
    expect(parsed.p).toBeLessThan(1);
  });
});
