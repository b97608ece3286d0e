/**
 * The deployment rehearsal (`npm run rehearse`, also part of `npm test`): the packaged stack
 * created in moto from the generated templates, each function run from its zip in a fresh Node 22
 * process under its own role with IAM enforced, the warehouse a TLS-only PostgreSQL whose
 * credentials exist only in the stack's secret. See README, "The deployment rehearsal".
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { AttachUserPolicyCommand, CreateAccessKeyCommand, CreatePolicyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../../devkit/moto';
import { startTlsPostgres, type TlsPostgres } from '../../devkit/postgres';
import { tempDir } from '../../devkit/temp';
import { ModelRegistry } from '../../lib/registry/index';
import { S3ObjectStore } from '../../lib/storage/s3';
import { advanceDemoData, loadDemoData } from '../../lib/warehouse/demo-load';
import { loadWarehouseConfig } from '../../lib/warehouse/schema';
import { runCli, type CliResult } from '../support/cli';
import { ROUTE_KEYS } from '../support/routes';
import { HttpApiGateway } from './support/gateway';
import { InvokeEndpoint } from './support/invoke-endpoint';
import { LambdaHost, type RoleCredentials } from './support/lambda-host';
import { awsClients, deployStack, rolePolicies, type AwsClients, type DeployedStack } from './support/stack';
import { runStateMachine } from '../support/state-machine';
import type { PolicyDocument } from './support/iam';

const ROOT = resolve(import.meta.dirname, '../..');
const REGION = 'eu-west-1';
const API = '/api/loyalty/v1';
const CUSTOMERS = 3000;
const ALIAS_TTL_SECONDS = 3;
const LEASE_SECONDS = 4;
const demo = (n: number) => `demo-${String(n).padStart(6, '0')}`;

let work: string;
let moto: Moto;
let warehouse: TlsPostgres;
let admin: pg.Pool;
let stack: DeployedStack;
let operator: AwsClients;
let operatorEnv: Record<string, string>;
let host: LambdaHost;
let endpoint: InvokeEndpoint;
let gateway: HttpApiGateway;
const credentials = new Map<string, RoleCredentials>();
/** The distributed map's state machine and the role Step Functions runs it under. */
let segmentMap: { arn: string; roleName: string; policies: PolicyDocument[] };
const say = (line: string) => process.stdout.write(`rehearsal: ${line}\n`);

async function membersOf(segment: string): Promise<number> {
  return Number((await admin.query('SELECT COUNT(*) AS n FROM segment_members WHERE segment_id = $1', [segment])).rows[0].n);
}

async function cli(args: string[]): Promise<CliResult> {
  return runCli(args, operatorEnv);
}

const post = (path: string, body: unknown) => gateway.request('POST', `${API}${path}`, JSON.stringify(body));
const get = (path: string) => gateway.request('GET', `${API}${path}`);

/** Starts a segment run through the API (with `clicks` > 1, that many POSTs at once: one run, every answer naming it), waits until every invocation it caused has ended, reads status and stats. */
async function runSegment(segment: string, clicks = 1): Promise<{ run_id: string; status: any; stats: any }> {
  const answers = await Promise.all(Array.from({ length: clicks }, () => post(`/segments/${segment}/ml/predict/`, {})));
  for (const answer of answers) expect(answer.status).toBe(202);
  expect(new Set(answers.map((a) => a.body.run_id)).size).toBe(1);
  const started = answers[0]!;
  await host.idle();
  const status = await get(`/segments/${segment}/ml/runs/${started.body.run_id}`);
  const stats = await get(`/segments/${segment}/ml/stats/`);
  return { run_id: started.body.run_id, status: status.body, stats: stats.body };
}

beforeAll(async () => {
  work = tempDir('loyalty-ml-rehearsal-');
  const packageDir = join(work, 'package');

  // 1. `npm run package`, as an operator would, with the settings this rehearsal deploys with.
  const noAws = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  const packaged = spawnSync('npm', ['run', '--silent', 'package', '--', '--package', packageDir], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      ...noAws,
      ESBUILD_WORK_FOLDER: '.esbuild-rehearsal',
      ONNXRUNTIME_NODE_INSTALL: 'skip',
      MODEL_ALIAS_TTL_SECONDS: String(ALIAS_TTL_SECONDS),
      SEGMENT_CHUNK_SIZE: '200',
      SEGMENT_CONCURRENCY: '2',
      SEGMENT_CHUNK_RETRIES: '1',
      SEGMENT_LEASE_SECONDS: String(LEASE_SECONDS),
      SCHEDULED_SEGMENTS: 'high-value,new',
      // Above every demo segment (the largest, "all", has CUSTOMERS): only the segment the map
      // scenario adds (every customer and 100 unknown ids) takes the distributed map.
      SEGMENT_MAP_THRESHOLD: String(CUSTOMERS + 50),
      // The map's MaxConcurrency, as the planner's above: two workers at a time.
      SEGMENT_MAP_CONCURRENCY: '2',
      MONITOR_RETRAIN: 'on',
    },
  });
  if (packaged.status !== 0) throw new Error(`npm run package failed:\n${packaged.stdout}\n${packaged.stderr}`);

  // 2. The warehouse: TLS only, demo customers loaded by its administrator over the Unix socket.
  const password = randomBytes(12).toString('hex');
  [warehouse, moto] = await Promise.all([startTlsPostgres({ user: 'loyalty_app', password, database: 'warehouse' }), startMoto({ region: REGION })]);
  admin = new pg.Pool(warehouse.admin);
  // Offers sent uniformly: a small targeted history cannot show, at 95%, that a learnt NBO policy beats
  // the campaign rules, and the gate refuses it (tested in training); here the models must be promoted.
  await loadDemoData(admin, loadWarehouseConfig(), { customers: CUSTOMERS, seed: 11, offerPolicy: 'uniform' });
  await admin.query('GRANT SELECT ON ALL TABLES IN SCHEMA public TO loyalty_app');

  // 3. The stack, created in moto from the generated templates.
  const bootstrap = awsClients(moto.endpoint, REGION, { accessKeyId: 'bootstrap', secretAccessKey: 'bootstrap' });
  stack = await deployStack(bootstrap, { packageDir, stackName: 'loyalty-ml-prod', region: REGION, workDir: work });
  const byType = new Map<string, string[]>();
  for (const r of stack.createdThroughApis) {
    const [, logical, type] = /^(\S+) \((.+)\)$/.exec(r)!;
    byType.set(type!, [...(byType.get(type!) ?? []), logical!]);
  }
  say("created through their own APIs, since moto's CloudFormation skips them:");
  for (const [type, logicals] of byType) say(`  ${type}: ${logicals.length > 4 ? `${logicals.length} (${logicals.slice(0, 3).join(', ')}, ...)` : logicals.join(', ')}`);
  say(`filled in from the template (moto dropped them): ${stack.filledIn.join('; ') || 'nothing'}`);
  for (const a of new Set(stack.adjusted)) say(`applied differently in moto: ${a}`);

  // 4. Lambda assumes each function's role; an operator gets an administrator's access key.
  for (const roleName of new Set([...stack.functions.values()].map((f) => f.roleName))) {
    const out = await bootstrap.sts.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${stack.accountId}:role/${roleName}`, RoleSessionName: 'lambda', DurationSeconds: 3600 }));
    credentials.set(roleName, { accessKeyId: out.Credentials!.AccessKeyId!, secretAccessKey: out.Credentials!.SecretAccessKey!, sessionToken: out.Credentials!.SessionToken! });
  }
  // Step Functions assumes the state machine's role: the map reads its manifest and invokes the functions with it.
  const { SFNClient, ListStateMachinesCommand, DescribeStateMachineCommand } = await import('@aws-sdk/client-sfn');
  const sfn = new SFNClient({ endpoint: moto.endpoint, region: REGION, credentials: { accessKeyId: 'bootstrap', secretAccessKey: 'bootstrap' } });
  const machineArn = (await sfn.send(new ListStateMachinesCommand({}))).stateMachines!.find((m) => m.name === 'loyalty-ml-prod-segment-map')!.stateMachineArn!;
  const mapRoleArn = (await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: machineArn }))).roleArn!;
  const mapRole = await bootstrap.sts.send(new AssumeRoleCommand({ RoleArn: mapRoleArn, RoleSessionName: 'states', DurationSeconds: 3600 }));
  const mapRoleName = mapRoleArn.split('/').pop()!;
  credentials.set(mapRoleName, { accessKeyId: mapRole.Credentials!.AccessKeyId!, secretAccessKey: mapRole.Credentials!.SecretAccessKey!, sessionToken: mapRole.Credentials!.SessionToken! });
  segmentMap = { arn: machineArn, roleName: mapRoleName, policies: await rolePolicies(bootstrap, mapRoleName) };
  await bootstrap.iam.send(new CreateUserCommand({ UserName: 'operator' }));
  const policy = await bootstrap.iam.send(new CreatePolicyCommand({ PolicyName: 'operator-admin', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }) }));
  await bootstrap.iam.send(new AttachUserPolicyCommand({ UserName: 'operator', PolicyArn: policy.Policy!.Arn! }));
  const key = (await bootstrap.iam.send(new CreateAccessKeyCommand({ UserName: 'operator' }))).AccessKey!;
  // From here on every request to moto must be signed by a principal its policies allow.
  await moto.enforceIam();
  operator = awsClients(moto.endpoint, REGION, { accessKeyId: key.AccessKeyId!, secretAccessKey: key.SecretAccessKey! });
  operatorEnv = {
    MODEL_REGISTRY_URI: `s3://${stack.registryBucket}`,
    WAREHOUSE_SECRET_ARN: stack.secretArn,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: key.AccessKeyId!,
    AWS_SECRET_ACCESS_KEY: key.SecretAccessKey!,
    LOYALTY_ML_ACTOR: 'operator',
  };

  // 5. The operator puts the warehouse connection into the secret, the only place it exists.
  await operator.secrets.send(
    new PutSecretValueCommand({
      SecretId: stack.secretArn,
      SecretString: JSON.stringify({ host: '127.0.0.1', port: warehouse.port, username: 'loyalty_app', password, dbname: 'warehouse', ca: warehouse.ca }),
    }),
  );

  // 6. Lambda: instances from the artifacts, the Invoke API, the HTTP API in front.
  const principals = new Map([...credentials].map(([roleName, c]) => [c.accessKeyId, roleName]));
  const policies = new Map([...[...stack.functions.values()].map((f) => [f.roleName, f.rolePolicies] as const), [segmentMap.roleName, segmentMap.policies] as const]);
  host = new LambdaHost({
    functions: stack.functions,
    credentials,
    region: REGION,
    // The only additions to what Lambda provides: where AWS is (moto) and where Lambda's Invoke API is.
    glue: () => ({ AWS_ENDPOINT_URL: moto.endpoint, AWS_ENDPOINT_URL_LAMBDA: endpoint.url }),
    retryDelaysMs: [500, 1000],
    sqs: (c) => new SQSClient({ endpoint: moto.endpoint, region: REGION, credentials: c }),
    queueUrl: () => stack.failureQueueUrl,
  });
  endpoint = new InvokeEndpoint(host, principals, policies, stack.accountId, REGION);
  await endpoint.start();
  gateway = new HttpApiGateway(host, { apigw: operator.apigw, apiId: stack.apiId, region: REGION, accountId: stack.accountId });
  await gateway.load();
}, 900_000);

afterAll(async () => {
  // REHEARSAL_LOG_FILE=path keeps every function's output (one JSON line each) for reading afterwards.
  if (process.env.REHEARSAL_LOG_FILE && host) writeFileSync(process.env.REHEARSAL_LOG_FILE, host.logs.map((l) => JSON.stringify(l)).join('\n'));
  await host?.stop();
  await endpoint?.stop();
  await admin?.end();
  warehouse?.stop();
  await moto?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the deployment rehearsal on moto', () => {
  it('creates the packaged stack from its templates, naming what moto skipped, with every route and schedule', async () => {
    expect(stack.functions.size).toBe(15);
    expect(stack.createdThroughApis).toEqual(expect.arrayContaining(['WarehouseSecret (AWS::SecretsManager::Secret)', 'HttpApi (AWS::ApiGatewayV2::Api)', 'RegistryBucketPolicy (AWS::S3::BucketPolicy)']));
    expect(stack.createdThroughApis.some((r) => r.endsWith('(AWS::CloudWatch::Alarm)'))).toBe(true);
    expect(stack.filledIn.some((f) => f.startsWith('WAREHOUSE_SECRET_ARN on 15 functions'))).toBe(true);
    for (const fn of stack.functions.values()) {
      expect(fn.environment.WAREHOUSE_SECRET_ARN, fn.functionName).toBe(stack.secretArn);
      expect(fn.environment.WAREHOUSE_URL ?? '', fn.functionName).toBe('');
      expect(fn.reservedConcurrency, fn.functionName).toBeGreaterThan(0);
    }
    expect(gateway.routeKeys).toEqual(['$default', ...ROUTE_KEYS]);
    expect(stack.schedules.map((s) => [s.functionName.replace('loyalty-ml-prod-', ''), s.expression]).sort()).toEqual([
      ['qualityCheck', 'cron(0 5 * * ? *)'],
      ['segmentNightly', 'cron(0 2 * * ? *)'],
      ['segmentSweeper', 'rate(5 minutes)'],
      ['train', 'cron(0 3 ? * SUN *)'],
      ['train', 'cron(30 3 ? * SUN *)'],
    ]);
    const alarms = (await operator.cloudwatch.send(new DescribeAlarmsCommand({ MaxRecords: 100 }))).MetricAlarms ?? [];
    expect(alarms.map((a) => a.MetricName)).toEqual(expect.arrayContaining(['MockPredictions', 'StaleModelAnswers', 'SegmentChunksFailed', 'SegmentRunsPastLease', 'PredictionLogWriteFailures', 'RealisedQualityAlarms']));
  });

  it('reaches the warehouse only over TLS, with the credentials that exist only in the secret', async () => {
    const plain = new pg.Client({ host: '127.0.0.1', port: warehouse.port, user: 'loyalty_app', password: 'wrong', database: 'warehouse', ssl: false });
    await expect(plain.connect()).rejects.toThrow(/no pg_hba.conf entry|SSL off/);
    const unverified = new pg.Client({ host: '127.0.0.1', port: warehouse.port, user: 'loyalty_app', database: 'warehouse', ssl: { rejectUnauthorized: true } });
    await expect(unverified.connect()).rejects.toThrow(/self.signed|certificate/);
  });

  it('ends a run failed, not partial, when every chunk failed (no model published yet)', async () => {
    const { status } = await runSegment('new');
    expect(status.status).toBe('failed');
    expect(status.error).toMatch(/^every one of the \d+ chunks failed/);
    expect(status.failed_chunks.length).toBe(status.progress.chunks_planned);
    // The worker said why, by name, in its JSON log (class names survive bundling).
    const errors = host.jsonLogs('segmentWorker').filter((l) => l.level === 'ERROR');
    expect(JSON.stringify(errors)).toMatch(/ModelUnavailableError/);
    const metric = host.jsonLogs('segmentPlanner').find((l) => l._aws && 'SegmentChunksFailed' in l);
    expect(metric).toMatchObject({ service: 'loyalty-ml', Stage: 'prod', SegmentRunsFailed: 1 });
  });

  it('lets an operator check the stage, then train through the secret and promote with the CLI against the deployed bucket', async () => {
    const before = await cli(['doctor', '--json']);
    expect(before.code).toBe(1);
    const checks = Object.fromEntries(before.json().checks.map((c: { check: string; ok: boolean }) => [c.check, c.ok]));
    expect(checks).toMatchObject({ 'registry reachable': true, 'registry conditional writes': true, warehouse: true, 'model churn': false });

    for (const model of ['churn', 'nbo']) {
      const trained = await cli(['train', model, '--promote', 'production', '--json']);
      expect(trained.code, trained.stderr).toBe(0);
      expect(trained.json()).toMatchObject({ manifest: { version: 1, status: 'ready' }, promoted: { alias: 'production', version: 1 } });
    }
    const after = await cli(['doctor']);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toMatch(/ok {4}model churn: production is v1/);
    expect(after.stdout).toMatch(/honours If-None-Match and If-Match/);
  });

  it('answers API Gateway v2 events on predict, predictBatch, legacyTest and models', async () => {
    const single = await post('/ml/predict', { customer_id: demo(1), type: 'churn' });
    expect(single.status).toBe(200);
    expect(single.body).toMatchObject({ type: 'churn', mode: 'single', customer_id: demo(1), source: { type: 'model', name: 'churn', version: 1, alias: 'production' } });

    const legacy = await post('/config/ml/test/', { customer_ids: [demo(1), demo(2), 'nobody'], type: 'all' });
    expect(legacy.status).toBe(200);
    expect(legacy.body).toMatchObject({ mode: 'batch', total: 3, successful: 2, failed: 1, errors: [{ customer_id: 'nobody', error: 'Customer not found in warehouse' }] });

    const ids = Array.from({ length: 100 }, (_, i) => demo(i + 1));
    const batch = await post('/ml/predict/batch', { customer_ids: ids, type: 'nbo' });
    expect(batch.status).toBe(200);
    expect(batch.body.successful).toBe(100);
    expect(new Set(batch.body.results.map((r: any) => r.result.offer_id)).size).toBeGreaterThan(1);
    const viaUrl = await gateway.functionUrl('predictBatch', stack.batchFunctionUrlId, 'POST', '/', JSON.stringify({ customer_ids: ids.slice(0, 5), type: 'rfm' }));
    expect(viaUrl.status).toBe(200);
    expect(viaUrl.body.successful).toBe(5);

    const models = await get('/ml/models');
    expect(models.status).toBe(200);
    expect(models.body.models.map((m: any) => [m.name, m.mode, m.loaded, m.production?.checksum_verified])).toEqual([
      ['churn', 'model', true, true],
      ['nbo', 'model', true, true],
    ]);

    // Every log line is JSON with the request id and function; metrics are EMF in one namespace.
    const lines = host.jsonLogs('predict').filter((l) => l.message === 'scored');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatchObject({ service: 'loyalty-ml', stage: 'prod', function_name: 'loyalty-ml-prod-predict', function_request_id: expect.any(String), cold_start: expect.any(Boolean) });
    const emf = host.jsonLogs('predictBatch').find((l) => l.Predictions !== undefined && l.Source === 'model');
    expect(emf).toMatchObject({ _aws: { CloudWatchMetrics: [{ Namespace: 'loyalty-ml' }] }, Model: 'nbo', Source: 'model', Stage: 'prod' });

    // Every answer went to the prediction log under the function's own role: one file per invocation.
    const logged = await listKeys('predictions/dt=');
    expect(logged.length).toBeGreaterThanOrEqual(4);
    for (const fn of ['predict', 'predictBatch', 'legacyTest']) expect(host.jsonLogs(fn).filter((l) => /prediction log/.test(String(l.message))), fn).toEqual([]);
  });

  it('answers 400, never 500, for an undecodable path and for start bodies that are null or carry unknown keys; 405 and 404 through the $default route', async () => {
    const percent = await get('/segments/%25/ml/stats/');
    expect(percent.status).toBe(400);
    expect(percent.body.error.code).toBe('invalid_path');
    const nullBody = await gateway.request('POST', `${API}/segments/high-value/ml/predict/`, 'null');
    expect(nullBody.status).toBe(400);
    const unknown = await post('/segments/high-value/ml/predict/', { types: ['churn'], dry_run: true });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unknown field "dry_run"/);
    expect(await get('/segments/high-value/ml/runs/20260101T000000000Z-abcdef')).toMatchObject({ status: 404, body: { error: { code: 'run_not_found' } } });
    // What no route takes goes to the $default route's function: 405 with Allow, 404, in the API's error shape.
    const wrongMethod = await get('/ml/predict');
    expect(wrongMethod).toMatchObject({ status: 405, headers: { allow: 'POST' }, body: { error: { code: 'method_not_allowed' } } });
    const nowhere = await gateway.request('DELETE', '/api/loyalty/v1/nowhere');
    expect(nowhere).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(JSON.stringify(nowhere.body)).not.toMatch(/\/ml\/predict|\/segments\//);
  });

  it('runs a segment start -> planner -> workers -> status -> stats, twice (the second a double click that starts one run): history created, then appended', async () => {
    const members = await membersOf('high-value');
    const first = await runSegment('high-value');
    expect(first.status).toMatchObject({ status: 'completed', progress: { customers_scored: members, chunks_failed: 0 } });
    expect(first.stats).toMatchObject({ run_id: first.run_id, customers: { scored: members, failed: 0 }, history: [] });
    // A double click on the start route: one run, both answers naming it.
    const second = await runSegment('high-value', 2);
    expect(second.stats.run_id).toBe(second.run_id);
    expect(second.stats.history.map((h: any) => h.run_id)).toEqual([first.run_id]);
    expect(second.stats.models.map((m: any) => m.label).sort()).toEqual(['churn v1 (production)', 'nbo v1 (production)']);
    // The workers logged every customer of each run, one file per chunk.
    expect((await listKeys('predictions/dt=')).filter((k) => k.includes(`/segment-high-value-${second.run_id}-c`)).length).toBe(Math.ceil(members / 200));
  });

  it('runs a segment above the threshold through the distributed map: planner scan, chunk files and manifest, the state machine started, workers without the warehouse, the merge step', async () => {
    // The warehouse gains a segment larger than the threshold: every customer, and 100 ids it has no features for.
    await admin.query(`INSERT INTO segments (segment_id, name, description) VALUES ('mapped', 'Mapped', 'Every customer and 100 unknown ids')`);
    await admin.query(`INSERT INTO segment_members (segment_id, customer_id) SELECT 'mapped', customer_id FROM customer_features`);
    await admin.query(`INSERT INTO segment_members (segment_id, customer_id) SELECT 'mapped', 'unknown-' || g FROM generate_series(1, 100) g`);
    const workerLogsBefore = host.jsonLogs('segmentWorker').length;
    const started = await post('/segments/mapped/ml/predict/', {});
    expect(started.status).toBe(202);
    await host.idle();
    const runId: string = started.body.run_id;
    const planned = (await get(`/segments/mapped/ml/runs/${runId}`)).body;
    expect(planned).toMatchObject({ status: 'running', path: { kind: 'distributed-map', members: CUSTOMERS + 100, threshold: CUSTOMERS + 50 }, progress: { planning_complete: true, chunks_planned: Math.ceil((CUSTOMERS + 100) / 200) } });

    // The planner started one execution of the state machine, on the manifest it wrote.
    const { SFNClient, ListStateMachinesCommand, ListExecutionsCommand, DescribeExecutionCommand, DescribeStateMachineCommand } = await import('@aws-sdk/client-sfn');
    const sfn = new SFNClient({ endpoint: moto.endpoint, region: REGION, credentials: operator.s3.config.credentials });
    const machine = (await sfn.send(new ListStateMachinesCommand({}))).stateMachines!.find((m) => m.name === 'loyalty-ml-prod-segment-map')!;
    const executions = (await sfn.send(new ListExecutionsCommand({ stateMachineArn: machine.stateMachineArn }))).executions!;
    expect(executions).toHaveLength(1);
    const input = JSON.parse((await sfn.send(new DescribeExecutionCommand({ executionArn: executions[0]!.executionArn }))).input!);
    expect(input).toEqual({ segment_id: 'mapped', run_id: runId, manifest: { bucket: stack.registryBucket, key: `segment-chunks/mapped/${runId}/manifest.json` } });
    const definition = JSON.parse((await sfn.send(new DescribeStateMachineCommand({ stateMachineArn: machine.stateMachineArn }))).definition!);
    const map = definition.States[definition.StartAt];
    const workerName = (map.ItemProcessor.States[map.ItemProcessor.StartAt].Parameters.FunctionName as string).split(':').pop()!;
    const mergeName = (definition.States[map.Next].Parameters.FunctionName as string).split(':').pop()!;
    expect([workerName, mergeName]).toEqual([stack.functions.get('segmentWorker')!.functionName, stack.functions.get('segmentMerge')!.functionName]);

    // Step Functions' part (moto records executions but runs no states): the definition moto holds
    // runs in an interpreter of the States Language under the state machine's role. Its ItemReader
    // reads the manifest from S3 with that role; each task invokes its function through Lambda's
    // Invoke API signed with that role (IAM checks both); each item is the worker's payload as it is.
    const asMap = credentials.get(segmentMap.roleName)!;
    const s3AsMap = awsClients(moto.endpoint, REGION, asMap).s3;
    const { LambdaClient, InvokeCommand } = await import('@aws-sdk/client-lambda');
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const lambdaAsMap = new LambdaClient({ endpoint: endpoint.url, region: REGION, credentials: asMap });
    const execution = await runStateMachine(definition, input, {
      readObject: async (bucket, key) => (await s3AsMap.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString(),
      invoke: async (functionName, payload) => {
        const out = await lambdaAsMap.send(new InvokeCommand({ FunctionName: functionName, Payload: JSON.stringify(payload) })).catch((error: Error) => {
          throw Object.assign(new Error(error.message), { name: `Lambda.${error.name}` });
        });
        const answer = JSON.parse(new TextDecoder().decode(out.Payload));
        if (out.FunctionError) throw Object.assign(new Error(answer.errorMessage), { name: answer.errorType });
        return answer;
      },
    });
    expect(execution.error).toBeNull();
    const workerCalls = execution.calls.filter((c) => c.functionName === workerName);
    expect(workerCalls).toHaveLength(planned.progress.chunks_planned);
    const manifest = workerCalls.map((c) => c.payload as { chunk: number; customers: { count: number } });
    expect(manifest.map((m) => m.chunk).sort((x, y) => x - y)).toEqual(Array.from({ length: planned.progress.chunks_planned }, (_, i) => i + 1));
    expect(manifest.reduce((n, m) => n + m.customers.count, 0)).toBe(CUSTOMERS + 100);
    expect(execution.calls.at(-1)).toEqual({ state: 'Merge', functionName: mergeName, payload: { segment_id: 'mapped', run_id: runId } });
    expect(execution.output).toMatchObject({ StatusCode: 200, Payload: { status: 'completed', chunks_done: manifest.length, chunks_failed: 0 } });
    // Under the map's role, nothing was denied; the role may not read outside the chunk files' prefix.
    expect(endpoint.denied.filter((d) => d.caller === segmentMap.roleName)).toEqual([]);
    const outside = await s3AsMap.send(new GetObjectCommand({ Bucket: stack.registryBucket, Key: 'models/churn/aliases/production.json' })).then(
      () => 'read',
      (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode,
    );
    expect(outside).toBe(403);

    const done = (await get(`/segments/mapped/ml/runs/${runId}`)).body;
    expect(done).toMatchObject({ status: 'completed', progress: { customers_scored: CUSTOMERS, customers_failed: 100 } });
    const stats = (await get(`/segments/mapped/ml/stats/`)).body;
    expect(stats).toMatchObject({ run_id: runId, customers: { scored: CUSTOMERS, failed: 100 } });
    expect(stats.models.map((m: any) => m.label).sort()).toEqual(['churn v1 (production)', 'nbo v1 (production)']);
    // The workers logged every customer, one columnar file per chunk with answers (the last chunk
    // holds only the unknown ids, which sort after every demo id); none of them touched the warehouse.
    expect((await listKeys('predictions/dt=')).filter((k) => k.includes(`/segment-mapped-${runId}-c`)).length).toBe(manifest.length - 1);
    // (Every worker answer was ok, above; nothing the workers logged during this run is an error or about a warehouse.)
    expect(host.jsonLogs('segmentWorker').slice(workerLogsBefore).filter((l) => l.level === 'ERROR' || /warehouse/i.test(String(l.message)))).toEqual([]);
    const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    const asWorker = new SecretsManagerClient({ endpoint: moto.endpoint, region: REGION, credentials: credentials.get(stack.functions.get('segmentWorker')!.roleName)! });
    // moto answers a JSON service's denial in XML, which the SDK cannot parse: the status says it.
    const denied = (await asWorker.send(new GetSecretValueCommand({ SecretId: stack.secretArn })).then(
      () => null,
      (error: unknown) => error,
    )) as { $metadata?: { httpStatusCode?: number }; $response?: { statusCode?: number } } | null;
    expect(denied?.$response?.statusCode ?? denied?.$metadata?.httpStatusCode).toBe(403);
    // A repeated merge (Step Functions retries a step) changes nothing: not the run, not its statistics.
    expect(await host.invoke(mergeName, { segment_id: 'mapped', run_id: runId })).toMatchObject({ ok: true, result: { status: 'completed' } });
    expect((await get(`/segments/mapped/ml/runs/${runId}`)).body.updated_at).toBe(done.updated_at);
    expect((await get(`/segments/mapped/ml/stats/`)).body).toEqual(stats);
  });

  it('starts each scheduled segment once when the nightly event is delivered twice', async () => {
    const nightly = stack.schedules.find((s) => s.functionName.endsWith('segmentNightly'))!;
    const event = { version: '0', id: randomBytes(8).toString('hex'), 'detail-type': 'Scheduled Event', source: 'aws.events', account: stack.accountId, time: '2026-11-23T02:00:00Z', region: REGION, resources: [`arn:aws:events:${REGION}:${stack.accountId}:rule/${nightly.ruleName}`], detail: {} };
    host.invokeAsync(nightly.functionName, event);
    host.invokeAsync(nightly.functionName, event);
    await host.idle();
    for (const segment of ['high-value', 'new']) {
      const keys = await listKeys(`segments/${segment}/runs/20261123T020000000Z-`);
      expect(keys.filter((k) => k.endsWith('/run.json')), segment).toHaveLength(1);
    }
  });

  it('trains from the warehouse through the secret when the training schedule fires, and publishes', async () => {
    const schedule = stack.schedules.find((s) => s.functionName.endsWith('-train') && (s.input as { model: string }).model === 'churn')!;
    host.invokeAsync(schedule.functionName, schedule.input);
    await host.idle(300_000);
    const registry = operatorRegistry();
    expect((await registry.getAlias('churn', 'staging'))?.version).toBe(2);
    expect((await registry.getManifest('churn', 2)).lineage.data_source).toMatch(/customer_churn_history/);
    expect(host.jsonLogs('train').find((l) => l.message === 'warehouse connection read from its secret')).toMatchObject({ tls: true, private_ca: true });
  });

  it('serves a promotion after the alias TTL, without a redeploy', async () => {
    const ask = async () => (await post('/ml/predict', { customer_id: demo(7), type: 'churn' })).body.source.version;
    expect(await ask()).toBe(1);
    const resolvedAt = Date.now();
    await operatorRegistry().promote('churn', 'production', 2, 'rehearsal');
    const soon = await ask();
    if (Date.now() - resolvedAt < ALIAS_TTL_SECONDS * 1000) expect(soon).toBe(1);
    await new Promise((r) => setTimeout(r, ALIAS_TTL_SECONDS * 1000 + 500));
    expect(await ask()).toBe(2);
  });

  it('resumes a run whose planner was killed mid-run, after its lease, losing nothing and counting nothing twice', async () => {
    const members = await membersOf('all');
    // Workers no longer query the warehouse: a run of 3,000 takes well under a second. Slow workers
    // (300 ms a chunk, as a loaded stage's would be) leave time to kill the planner mid-run.
    host.slowDown('segmentWorker', 300);
    const started = await post('/segments/all/ml/predict/', { types: ['churn', 'rfm'] });
    expect(started.status).toBe(202);
    const runId = started.body.run_id as string;
    // Kill the planner once a few chunks are done.
    for (let i = 0; ; i++) {
      const status = (await get(`/segments/all/ml/runs/${runId}`)).body;
      if (status.progress.chunks_done >= 3 && host.busy('segmentPlanner')) break;
      if (i > 600) throw new Error(`the run never got going: ${JSON.stringify(status)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(host.kill('segmentPlanner')).toBeGreaterThanOrEqual(1);
    await host.idle();
    const killed = (await get(`/segments/all/ml/runs/${runId}`)).body;
    expect(killed.status).toBe('running');

    // The sweeper leaves a live lease alone, and resumes the run once the lease has expired.
    const sweeper = stack.schedules.find((s) => s.functionName.endsWith('segmentSweeper'))!.functionName;
    const early = await host.invoke(sweeper, {});
    expect(early.ok && (early.result as any).resumed).toEqual([]);
    await new Promise((r) => setTimeout(r, LEASE_SECONDS * 1000 + 500));
    const sweep = await host.invoke(sweeper, {});
    expect(sweep.ok && (sweep.result as any).resumed).toEqual([{ segment_id: 'all', run_id: runId }]);
    await host.idle();

    const done = (await get(`/segments/all/ml/runs/${runId}`)).body;
    expect(done).toMatchObject({ status: 'completed', planner: { attempts: 2, failures: 1, owner: null } });
    expect(done.planner.resumed_chunks).toBeGreaterThanOrEqual(3);
    expect(done.progress).toMatchObject({ customers_scored: members, customers_failed: 0, chunks_failed: 0 });
    const stats = (await get(`/segments/all/ml/stats/?run_id=${runId}`)).body;
    expect(stats.customers).toEqual({ scored: members, failed: 0 });
    expect(stats.churn.customers).toBe(members);
    host.slowDown('segmentWorker', 0);
    // The killed invocation went to the failure queue, as its destination says.
    const messages = await operator.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.failureQueueUrl, MaxNumberOfMessages: 10 }));
    const dead = (messages.Messages ?? []).map((m) => JSON.parse(m.Body!));
    expect(dead.some((d) => d.requestPayload?.run_id === runId && /Runtime exited/.test(d.responsePayload?.errorMessage))).toBe(true);
  });

  it('holds each function to its own role: no model writes from predict, no planner invocations from the worker', async () => {
    const predictRole = credentials.get(stack.functions.get('predict')!.roleName)!;
    const s3 = new S3Client({ endpoint: moto.endpoint, region: REGION, forcePathStyle: true, credentials: predictRole });
    await expect(s3.send(new PutObjectCommand({ Bucket: stack.registryBucket, Key: 'models/churn/aliases/production.json', Body: '{}' }))).rejects.toThrow(/Access Denied|AccessDenied/);
    await expect(s3.send(new PutObjectCommand({ Bucket: stack.registryBucket, Key: 'monitoring/churn/latest.json', Body: '{}' }))).rejects.toThrow(/Access Denied|AccessDenied/);
    const worker = await host.invoke('segmentWorker', {}); // a bad payload is refused by the worker itself
    expect(worker.ok).toBe(false);
    const { LambdaClient, InvokeCommand } = await import('@aws-sdk/client-lambda');
    const asWorker = new LambdaClient({ endpoint: endpoint.url, region: REGION, credentials: credentials.get(stack.functions.get('segmentWorker')!.roleName)! });
    await expect(asWorker.send(new InvokeCommand({ FunctionName: stack.functions.get('segmentPlanner')!.functionName, InvocationType: 'Event', Payload: new TextEncoder().encode('{}') }))).rejects.toThrow(/not authorized to perform: lambda:InvokeFunction/);
    expect(endpoint.denied).toContainEqual({ caller: stack.functions.get('segmentWorker')!.roleName, target: stack.functions.get('segmentPlanner')!.functionName });
  });

  it('measures realised quality when the daily check fires, serves it, and starts training when drift is major', async () => {
    expect((await get('/ml/models/churn/performance'))).toMatchObject({ status: 404, body: { error: { code: 'performance_not_measured' } } });
    // A month passes in the warehouse: outcomes for everything predicted so far.
    await advanceDemoData(admin, loadWarehouseConfig(), { months: 1 });
    // The watched segment is scored, then 30% of its customers stop buying for half a year, and it is scored again.
    await runSegment('high-value');
    await admin.query(`UPDATE customer_features SET days_since_last_transaction = days_since_last_transaction + 180
      WHERE customer_id IN (SELECT customer_id FROM segment_members WHERE segment_id = 'high-value' ORDER BY md5(customer_id)
        LIMIT (SELECT COUNT(*) * 3 / 10 FROM segment_members WHERE segment_id = 'high-value'))`);
    await runSegment('high-value');
    const check = stack.schedules.find((s) => s.functionName.endsWith('qualityCheck'))!;
    const event = { version: '0', id: randomBytes(8).toString('hex'), 'detail-type': 'Scheduled Event', source: 'aws.events', account: stack.accountId, time: '2026-12-02T05:00:00Z', region: REGION, resources: [], detail: {} };
    const result = await host.invoke(check.functionName, event);
    if (!result.ok) throw new Error(`the quality check failed: ${result.error.errorMessage}`);
    const churn = (result.result as any[]).find((c) => c.model === 'churn');
    expect(churn, JSON.stringify({ alarms: churn.alarms, drift: churn.drift.filter((d: any) => d.level !== 'stable') })).toMatchObject({ version: 2, realised_auc: expect.any(Number), retraining: true });
    expect(churn.alarms.join(' ')).toMatch(/major drift of input days_since_last_transaction in segment high-value against its (baseline|previous) run/);
    await host.idle(300_000);

    const performance = await get('/ml/models/churn/performance');
    expect(performance.status).toBe(200);
    const served = performance.body.latest.versions.filter((v: any) => !v.shadow).map((v: any) => v.version);
    expect(served).toEqual(expect.arrayContaining([1, 2]));
    // The retraining the check started ran under the training role, gates and all, into staging.
    const registry = operatorRegistry();
    expect((await registry.getAlias('churn', 'staging'))?.version).toBe(3);
    expect(host.jsonLogs('qualityCheck').find((l) => l.message === 'model quality alarm')).toMatchObject({ model: 'churn' });
  }, 420_000);

  it('answers a batch through the HTTP API within its deadline when the warehouse hangs, before the gateway cuts at 30 s', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => demo(i + 201));
    expect((await post('/ml/predict/batch', { customer_ids: ids, type: 'churn' })).status).toBe(200); // a warm instance with an open connection
    warehouse.pause();
    let answer;
    try {
      answer = await post('/ml/predict/batch', { customer_ids: ids, type: 'churn' });
    } finally {
      warehouse.resume();
    }
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeLessThan(30_000);
    expect(answer.body).toMatchObject({ successful: 0, failed: 10 });
    expect(answer.body.errors[0].error).toBe('Timed out: not scored within 28 s (waiting for the warehouse)');
  }, 120_000);
});

function operatorRegistry(): ModelRegistry {
  const s3 = new S3Client({ endpoint: moto.endpoint, region: REGION, forcePathStyle: true, credentials: operator.s3.config.credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  return new ModelRegistry(new S3ObjectStore({ bucket: stack.registryBucket, client: s3 }), { actor: 'operator' });
}

async function listKeys(prefix: string): Promise<string[]> {
  const out = await operator.s3.send(new ListObjectsV2Command({ Bucket: stack.registryBucket, Prefix: prefix }));
  return (out.Contents ?? []).map((c) => c.Key!);
}
