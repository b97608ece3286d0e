import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiGatewayV2Client, CreateApiCommand, CreateIntegrationCommand, CreateRouteCommand, CreateStageCommand } from '@aws-sdk/client-apigatewayv2';
import { CloudFormationClient, CreateStackCommand, ListStackResourcesCommand, UpdateStackCommand, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { EventBridgeClient, ListRulesCommand, ListTargetsByRuleCommand } from '@aws-sdk/client-eventbridge';
import { GetRolePolicyCommand, IAMClient, ListRolePoliciesCommand, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import {
  CreateFunctionUrlConfigCommand,
  GetFunctionCommand,
  ListLayersCommand,
  GetFunctionEventInvokeConfigCommand,
  LambdaClient,
  PutFunctionConcurrencyCommand,
  PutFunctionEventInvokeConfigCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { DeleteBucketPolicyCommand, GetObjectCommand, PutBucketPolicyCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { PolicyDocument } from './iam';

/**
 * Creates the packaged stack in moto the way the Serverless Framework deploys it: the create
 * template (which makes the deployment bucket), the artifacts uploaded to that bucket, then the
 * update template. moto's CloudFormation skips some resource types; those are created through
 * their own service APIs from the same template, with their references resolved, and every
 * function environment value that referenced one of them is filled in. What had to be done that
 * way is recorded, so the rehearsal can say so.
 */
export interface Template {
  Conditions?: Record<string, unknown>;
  Resources: Record<string, { Type: string; Properties?: any; Condition?: string }>;
  Outputs?: Record<string, unknown>;
}

export interface DeployedFunction {
  /** The template's key without its suffix: predict, segmentPlanner, … */
  name: string;
  functionName: string;
  arn: string;
  handler: string;
  roleName: string;
  rolePolicies: PolicyDocument[];
  timeoutSeconds: number;
  memoryMb: number;
  environment: Record<string, string>;
  reservedConcurrency: number | null;
  /** The unzipped artifact, as downloaded from the deployment bucket. */
  codeDir: string;
  /** The function's layers, unzipped from the deployment bucket (Lambda's /opt), in order. */
  layerDirs: string[];
  asyncConfig: { maximumRetryAttempts: number; onFailureQueueArn: string | null };
}

export interface DeployedStack {
  region: string;
  accountId: string;
  stackName: string;
  registryBucket: string;
  secretArn: string;
  failureQueueUrl: string;
  apiId: string;
  batchFunctionUrlId: string;
  functions: Map<string, DeployedFunction>;
  schedules: { ruleName: string; expression: string; functionName: string; input: unknown }[];
  /** Resources moto's CloudFormation skipped, created through their own APIs ("Logical (Type)"). */
  createdThroughApis: string[];
  /** Function settings moto dropped and the rehearsal filled in from the template. */
  filledIn: string[];
  /** What moto cannot evaluate and the rehearsal therefore applied differently (bucket policies' conditions). */
  adjusted: string[];
  template: Template;
}

export interface AwsClients {
  cloudformation: CloudFormationClient;
  s3: S3Client;
  lambda: LambdaClient;
  iam: IAMClient;
  sts: STSClient;
  secrets: SecretsManagerClient;
  sqs: SQSClient;
  apigw: ApiGatewayV2Client;
  cloudwatch: CloudWatchClient;
  events: EventBridgeClient;
}

export function awsClients(endpoint: string, region: string, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): AwsClients {
  const common = { endpoint, region, credentials };
  return {
    cloudformation: new CloudFormationClient(common),
    s3: new S3Client({ ...common, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }),
    lambda: new LambdaClient(common),
    iam: new IAMClient(common),
    sts: new STSClient(common),
    secrets: new SecretsManagerClient(common),
    sqs: new SQSClient(common),
    apigw: new ApiGatewayV2Client(common),
    cloudwatch: new CloudWatchClient(common),
    events: new EventBridgeClient(common),
  };
}

export async function deployStack(aws: AwsClients, options: { packageDir: string; stackName: string; region: string; workDir: string }): Promise<DeployedStack> {
  const { packageDir, stackName, region } = options;
  const createTemplate = readFileSync(join(packageDir, 'cloudformation-template-create-stack.json'), 'utf8');
  const template = JSON.parse(readFileSync(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  const accountId = (await aws.sts.send(new GetCallerIdentityCommand({}))).Account!;
  const capabilities = ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] as const;

  // 1. The create template, 2. the artifacts into its deployment bucket, 3. the update template.
  await aws.cloudformation.send(new CreateStackCommand({ StackName: stackName, TemplateBody: createTemplate, Capabilities: [...capabilities] }));
  const deploymentBucket = (await stackResources(aws, stackName)).find((r) => r.LogicalResourceId === 'ServerlessDeploymentBucket')!.PhysicalResourceId!;
  const adjusted: string[] = [];
  // moto evaluates bucket policies but no Bool or Null conditions: a conditional Deny (TLS only,
  // conditional writes only) would deny every request. Those statements are left out in moto; a
  // template test checks them instead.
  const createPolicy = (JSON.parse(createTemplate) as Template).Resources.ServerlessDeploymentBucketPolicy;
  if (createPolicy) {
    const first = new Resolver({ Resources: {} }, { region, accountId, stackName });
    first.define('ServerlessDeploymentBucket', deploymentBucket, { Arn: `arn:aws:s3:::${deploymentBucket}` });
    adjusted.push(await applyBucketPolicy(aws, 'ServerlessDeploymentBucketPolicy', deploymentBucket, first.resolve(createPolicy.Properties.PolicyDocument) as PolicyDocument));
  }
  const artifacts = new Set<string>();
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type === 'AWS::Lambda::Function') artifacts.add(resource.Properties.Code.S3Key as string);
    if (resource.Type === 'AWS::Lambda::LayerVersion') artifacts.add(resource.Properties.Content.S3Key as string);
  }
  for (const key of artifacts) {
    const body = readFileSync(join(packageDir, key.split('/').pop()!));
    await aws.s3.send(new PutObjectCommand({ Bucket: deploymentBucket, Key: key, Body: body, ContentLength: body.byteLength }));
  }
  await aws.cloudformation.send(new UpdateStackCommand({ StackName: stackName, TemplateBody: JSON.stringify(template), Capabilities: [...capabilities] }));
  const created = await stackResources(aws, stackName);

  const resolver = new Resolver(template, { region, accountId, stackName });
  for (const r of created) await resolver.learn(aws, r);

  const createdThroughApis: string[] = [];
  const filledIn: string[] = [];
  const skipped = (logical: string) => !created.some((r) => r.LogicalResourceId === logical);
  // The skipped types, in an order that satisfies their references.
  const order = [
    'AWS::SecretsManager::Secret',
    'AWS::S3::BucketPolicy',
    'AWS::ApiGatewayV2::Api',
    'AWS::ApiGatewayV2::Stage',
    'AWS::ApiGatewayV2::Integration',
    'AWS::ApiGatewayV2::Route',
    'AWS::Lambda::Url',
    'AWS::Lambda::EventInvokeConfig',
    'AWS::CloudWatch::Alarm',
    'AWS::SNS::Subscription',
  ];
  const unhandled = Object.entries(template.Resources).filter(([logical, r]) => skipped(logical) && !order.includes(r.Type) && resolver.conditionHolds(r.Condition));
  if (unhandled.length) throw new Error(`moto's CloudFormation skipped resources the rehearsal cannot create: ${unhandled.map(([l, r]) => `${l} (${r.Type})`).join(', ')}`);
  for (const type of order) {
    for (const [logical, resource] of Object.entries(template.Resources)) {
      if (resource.Type !== type || !skipped(logical)) continue;
      if (!resolver.conditionHolds(resource.Condition)) continue;
      if (type === 'AWS::S3::BucketPolicy') {
        const p = resolver.resolve(resource.Properties) as { Bucket: string; PolicyDocument: PolicyDocument };
        adjusted.push(await applyBucketPolicy(aws, logical, p.Bucket, p.PolicyDocument));
      } else await createThroughApi(aws, resolver, logical, resource, stackName);
      createdThroughApis.push(`${logical} (${type})`);
    }
  }

  // moto's CloudFormation stores a role's inline policies as Python text, not JSON, and its own IAM
  // checks then cannot read them: put them again, as the template has them. One adaptation: moto
  // authorises Secrets Manager calls against the resource "*" only, so a grant scoped to the
  // warehouse secret's ARN (as the template has it, and a template test checks) would deny every
  // read; in moto that grant names "*". Roles without the grant still cannot read the secret.
  const widened: string[] = [];
  const widenedStates: string[] = [];
  for (const [logical, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::IAM::Role') continue;
    const roleName = resolver.ref(logical);
    const policies = resolver.resolve(resource.Properties.Policies ?? []) as { PolicyName: string; PolicyDocument: PolicyDocument }[];
    for (const p of policies) {
      const statements = [p.PolicyDocument.Statement].flat().map((st) => {
        const secretsOnly = [st.Action].flat().every((a) => a.startsWith('secretsmanager:'));
        // moto checks Step Functions' actions against "*" too (the planner's grant to start the map).
        const statesOnly = [st.Action].flat().every((a) => a.startsWith('states:'));
        if ((!secretsOnly && !statesOnly) || st.Resource === '*') return st;
        (secretsOnly ? widened : widenedStates).push(logical);
        return { ...st, Resource: '*' };
      });
      await aws.iam.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: p.PolicyName, PolicyDocument: JSON.stringify({ ...p.PolicyDocument, Statement: statements }) }));
    }
  }
  adjusted.push('every role\'s inline policies put again as JSON (moto\'s CloudFormation stored them as Python text)');
  if (widened.length) adjusted.push(`the warehouse secret grant of ${widened.join(', ')} names "*" (moto checks Secrets Manager against "*" only)`);
  if (widenedStates.length) adjusted.push(`the Step Functions grants of ${[...new Set(widenedStates)].join(', ')} name "*" (moto checks Step Functions against "*" only)`);

  // Function settings moto dropped (environment values that Ref a skipped resource, reserved concurrency).
  const functions = new Map<string, DeployedFunction>();
  const artifactDirs = new Map<string, string>();
  const dropped = new Map<string, string[]>();
  for (const [logical, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const props = resource.Properties;
    const functionName = props.FunctionName as string;
    const wanted = resolver.resolve(props.Environment?.Variables ?? {}) as Record<string, string>;
    let fn = await aws.lambda.send(new GetFunctionCommand({ FunctionName: functionName }));
    const actual = fn.Configuration?.Environment?.Variables ?? {};
    const missing = Object.keys(wanted).filter((k) => actual[k] !== wanted[k]);
    if (missing.length) {
      await aws.lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: functionName, Environment: { Variables: wanted } }));
      for (const k of missing) dropped.set(k, [...(dropped.get(k) ?? []), logical]);
    }
    if (props.ReservedConcurrentExecutions !== undefined && fn.Concurrency?.ReservedConcurrentExecutions !== Number(props.ReservedConcurrentExecutions)) {
      await aws.lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: functionName, ReservedConcurrentExecutions: Number(props.ReservedConcurrentExecutions) }));
      dropped.set('ReservedConcurrentExecutions', [...(dropped.get('ReservedConcurrentExecutions') ?? []), logical]);
    }
    fn = await aws.lambda.send(new GetFunctionCommand({ FunctionName: functionName }));
    const config = fn.Configuration!;
    const roleName = config.Role!.split('/').pop()!;
    // The code that runs is the artifact in the deployment bucket, not the local package folder.
    const unzipped = async (key: string): Promise<string> => {
      let dir = artifactDirs.get(key);
      if (!dir) {
        const object = await aws.s3.send(new GetObjectCommand({ Bucket: deploymentBucket, Key: key }));
        const zip = Buffer.from(await object.Body!.transformToByteArray());
        const digest = createHash('sha256').update(zip).digest('hex').slice(0, 16);
        dir = join(options.workDir, 'artifacts', digest);
        if (!existsSync(join(dir, '.complete'))) {
          mkdirSync(dir, { recursive: true });
          const zipPath = join(options.workDir, 'artifacts', `${digest}.zip`);
          writeFileSync(zipPath, zip);
          execFileSync('unzip', ['-q', '-o', zipPath, '-d', dir]);
          writeFileSync(join(dir, '.complete'), '');
        }
        artifactDirs.set(key, dir);
      }
      return dir;
    };
    const codeDir = await unzipped(props.Code.S3Key as string);
    // Layers: the versions the deployed function names, their content from the deployment bucket.
    const layerRefs = (props.Layers ?? []) as { Ref: string }[];
    const wantedLayers = layerRefs.map((l) => template.Resources[l.Ref]!);
    if ((config.Layers ?? []).length !== wantedLayers.length) {
      // moto's CloudFormation creates the layer version (named <stack>-<logical id>-<suffix>, with no
      // physical id) but leaves it off the function: found by name and set as the template has it.
      const listed = (await aws.lambda.send(new ListLayersCommand({}))).Layers ?? [];
      const arns = layerRefs.map((l) => {
        const found = listed.find((x) => x.LayerName?.startsWith(`${stackName}-${l.Ref}-`));
        if (!found?.LatestMatchingVersion?.LayerVersionArn) throw new Error(`moto's CloudFormation did not create the layer ${l.Ref}`);
        return found.LatestMatchingVersion.LayerVersionArn;
      });
      await aws.lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: functionName, Layers: arns }));
      const layers = (await aws.lambda.send(new GetFunctionCommand({ FunctionName: functionName }))).Configuration?.Layers ?? [];
      if (layers.length !== wantedLayers.length) throw new Error(`${functionName} has ${layers.length} layers after setting them; the template names ${wantedLayers.length}`);
      dropped.set('Layers', [...(dropped.get('Layers') ?? []), logical]);
    }
    const layerDirs: string[] = [];
    for (const layer of wantedLayers) layerDirs.push(await unzipped(layer.Properties.Content.S3Key as string));
    let asyncConfig: DeployedFunction['asyncConfig'] = { maximumRetryAttempts: 2, onFailureQueueArn: null };
    try {
      const eic = await aws.lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: functionName }));
      asyncConfig = { maximumRetryAttempts: eic.MaximumRetryAttempts ?? 2, onFailureQueueArn: eic.DestinationConfig?.OnFailure?.Destination ?? null };
    } catch {
      /* no configuration: Lambda's defaults (two retries, no destination) */
    }
    const name = logical.replace(/LambdaFunction$/, '');
    functions.set(name.charAt(0).toLowerCase() + name.slice(1), {
      name: name.charAt(0).toLowerCase() + name.slice(1),
      functionName,
      arn: config.FunctionArn!,
      handler: config.Handler!,
      roleName,
      rolePolicies: await rolePolicies(aws, roleName),
      timeoutSeconds: config.Timeout ?? 3,
      memoryMb: config.MemorySize ?? 128,
      environment: config.Environment?.Variables ?? {},
      reservedConcurrency: fn.Concurrency?.ReservedConcurrentExecutions ?? null,
      codeDir,
      layerDirs,
      asyncConfig,
    });
  }
  for (const [key, logicals] of dropped) filledIn.push(`${key} on ${logicals.length} functions`);

  const schedules: DeployedStack['schedules'] = [];
  for (const rule of (await aws.events.send(new ListRulesCommand({}))).Rules ?? []) {
    if (!rule.ScheduleExpression) continue;
    for (const target of (await aws.events.send(new ListTargetsByRuleCommand({ Rule: rule.Name! }))).Targets ?? []) {
      const fn = [...functions.values()].find((f) => f.arn === target.Arn || target.Arn?.startsWith(`${f.arn}:`));
      if (fn) schedules.push({ ruleName: rule.Name!, expression: rule.ScheduleExpression, functionName: fn.functionName, input: target.Input ? JSON.parse(target.Input) : null });
    }
  }

  const queueUrl = resolver.ref('AsyncFailureQueue');
  return {
    region,
    accountId,
    stackName,
    registryBucket: resolver.ref('RegistryBucket'),
    secretArn: resolver.ref('WarehouseSecret'),
    failureQueueUrl: queueUrl,
    apiId: resolver.ref('HttpApi'),
    batchFunctionUrlId: resolver.attribute('PredictBatchLambdaFunctionUrl', 'UrlId'),
    functions,
    schedules,
    createdThroughApis,
    filledIn,
    adjusted,
    template,
  };
}

/** Puts a bucket policy without its conditional Deny statements (see above); says what was left out. */
async function applyBucketPolicy(aws: AwsClients, logical: string, bucket: string, policy: PolicyDocument): Promise<string> {
  const statements = [policy.Statement].flat();
  const kept = statements.filter((st) => !(st.Effect === 'Deny' && st.Condition));
  const left = statements.filter((st) => !kept.includes(st)).map((st) => (st as { Sid?: string }).Sid ?? 'a conditional Deny');
  if (kept.length) await aws.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify({ ...policy, Statement: kept }) }));
  else await aws.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
  return `${logical} without ${left.join(', ')}`;
}

async function stackResources(aws: AwsClients, stackName: string): Promise<StackResourceSummary[]> {
  const out: StackResourceSummary[] = [];
  let token: string | undefined;
  do {
    const page = await aws.cloudformation.send(new ListStackResourcesCommand({ StackName: stackName, NextToken: token }));
    out.push(...(page.StackResourceSummaries ?? []).filter((r) => r.LogicalResourceId));
    token = page.NextToken;
  } while (token);
  return out;
}

/** A role's inline policies, as IAM holds them. */
export async function rolePolicies(aws: AwsClients, roleName: string): Promise<PolicyDocument[]> {
  const names = (await aws.iam.send(new ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames ?? [];
  const docs: PolicyDocument[] = [];
  for (const policyName of names) {
    const doc = (await aws.iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }))).PolicyDocument!;
    docs.push(JSON.parse(decodeURIComponent(doc)) as PolicyDocument);
  }
  return docs;
}

async function createThroughApi(aws: AwsClients, resolver: Resolver, logical: string, resource: Template['Resources'][string], stackName: string): Promise<void> {
  const p = resolver.resolve(resource.Properties ?? {}) as Record<string, any>;
  switch (resource.Type) {
    case 'AWS::SecretsManager::Secret': {
      const out = await aws.secrets.send(new CreateSecretCommand({ Name: p.Name, Description: p.Description, SecretString: p.SecretString }));
      resolver.define(logical, out.ARN!, { Id: out.ARN! });
      return;
    }
    case 'AWS::ApiGatewayV2::Api': {
      const out = await aws.apigw.send(new CreateApiCommand({ Name: p.Name, ProtocolType: p.ProtocolType, DisableExecuteApiEndpoint: p.DisableExecuteApiEndpoint }));
      resolver.define(logical, out.ApiId!, { ApiEndpoint: out.ApiEndpoint ?? '' });
      return;
    }
    case 'AWS::ApiGatewayV2::Stage':
      await aws.apigw.send(new CreateStageCommand({ ApiId: p.ApiId, StageName: p.StageName, AutoDeploy: p.AutoDeploy, DefaultRouteSettings: p.DefaultRouteSettings }));
      resolver.define(logical, p.StageName, {});
      return;
    case 'AWS::ApiGatewayV2::Integration': {
      const out = await aws.apigw.send(
        new CreateIntegrationCommand({ ApiId: p.ApiId, IntegrationType: p.IntegrationType, IntegrationUri: p.IntegrationUri, PayloadFormatVersion: p.PayloadFormatVersion, TimeoutInMillis: p.TimeoutInMillis }),
      );
      resolver.define(logical, out.IntegrationId!, {});
      return;
    }
    case 'AWS::ApiGatewayV2::Route': {
      const out = await aws.apigw.send(new CreateRouteCommand({ ApiId: p.ApiId, RouteKey: p.RouteKey, Target: p.Target, AuthorizationType: p.AuthorizationType }));
      resolver.define(logical, out.RouteId!, {});
      return;
    }
    case 'AWS::Lambda::Url': {
      const out = await aws.lambda.send(new CreateFunctionUrlConfigCommand({ FunctionName: p.TargetFunctionArn, AuthType: p.AuthType }));
      const urlId = new URL(out.FunctionUrl!).hostname.split('.')[0]!;
      resolver.define(logical, out.FunctionArn!, { FunctionUrl: out.FunctionUrl!, UrlId: urlId });
      return;
    }
    case 'AWS::Lambda::EventInvokeConfig':
      await aws.lambda.send(
        new PutFunctionEventInvokeConfigCommand({ FunctionName: p.FunctionName, Qualifier: p.Qualifier, MaximumRetryAttempts: p.MaximumRetryAttempts, DestinationConfig: p.DestinationConfig }),
      );
      resolver.define(logical, `${p.FunctionName}:${p.Qualifier}`, {});
      return;
    case 'AWS::CloudWatch::Alarm':
      await aws.cloudwatch.send(
        new PutMetricAlarmCommand({
          AlarmName: `${stackName}-${logical}`,
          AlarmDescription: p.AlarmDescription,
          Namespace: p.Namespace,
          MetricName: p.MetricName,
          Dimensions: p.Dimensions,
          Statistic: p.Statistic,
          Period: p.Period,
          EvaluationPeriods: p.EvaluationPeriods,
          Threshold: p.Threshold,
          ComparisonOperator: p.ComparisonOperator,
          TreatMissingData: p.TreatMissingData,
          AlarmActions: p.AlarmActions,
          OKActions: p.OKActions,
        }),
      );
      resolver.define(logical, `${stackName}-${logical}`, {});
      return;
    default:
      throw new Error(`the rehearsal cannot create ${logical} (${resource.Type})`);
  }
}

/** CloudFormation's intrinsic functions, over what moto created and what the rehearsal created. */
class Resolver {
  private readonly refs = new Map<string, string>();
  private readonly attrs = new Map<string, Record<string, string>>();

  constructor(
    private readonly template: Template,
    private readonly pseudo: { region: string; accountId: string; stackName: string },
  ) {}

  /** Records what a resource moto created resolves to. */
  async learn(aws: AwsClients, r: StackResourceSummary): Promise<void> {
    const id = r.PhysicalResourceId!;
    const { region, accountId } = this.pseudo;
    switch (r.ResourceType) {
      case 'AWS::S3::Bucket':
        this.define(r.LogicalResourceId!, id, { Arn: `arn:aws:s3:::${id}`, DomainName: `${id}.s3.amazonaws.com` });
        break;
      case 'AWS::IAM::Role': {
        const name = id.startsWith('arn:') ? id.split('/').pop()! : id;
        this.define(r.LogicalResourceId!, name, { Arn: `arn:aws:iam::${accountId}:role/${name}` });
        break;
      }
      case 'AWS::Lambda::Function':
        this.define(r.LogicalResourceId!, id, { Arn: `arn:aws:lambda:${region}:${accountId}:function:${id}` });
        break;
      case 'AWS::SQS::Queue': {
        const url = id.startsWith('http') ? id : (await aws.sqs.send(new GetQueueUrlCommand({ QueueName: id }))).QueueUrl!;
        const attributes = (await aws.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))).Attributes!;
        this.define(r.LogicalResourceId!, url, { Arn: attributes.QueueArn!, QueueName: url.split('/').pop()!, QueueUrl: url });
        break;
      }
      default:
        this.define(r.LogicalResourceId!, id, { Arn: id });
    }
  }

  define(logical: string, ref: string, attrs: Record<string, string>): void {
    this.refs.set(logical, ref);
    this.attrs.set(logical, attrs);
  }

  ref(logical: string): string {
    const value = this.refs.get(logical);
    if (value === undefined) throw new Error(`Ref to ${logical}, which neither moto nor the rehearsal created`);
    return value;
  }

  attribute(logical: string, attr: string): string {
    const value = this.attrs.get(logical)?.[attr];
    if (value === undefined) throw new Error(`Fn::GetAtt ${logical}.${attr} is unknown`);
    return value;
  }

  conditionHolds(name: string | undefined): boolean {
    if (!name) return true;
    return Boolean(this.resolve(this.template.Conditions?.[name]));
  }

  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [fn, arg] = entries[0]!;
      switch (fn) {
        case 'Ref':
          return this.pseudoOrRef(arg as string);
        case 'Fn::GetAtt': {
          const [logical, attr] = Array.isArray(arg) ? (arg as string[]) : (arg as string).split('.');
          return this.attribute(logical!, attr!);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).join(sep);
        }
        case 'Fn::Sub':
          return (arg as string).replace(/\$\{([^}]+)\}/g, (_, name: string) => (name.includes('.') ? this.attribute(name.split('.')[0]!, name.split('.')[1]!) : this.pseudoOrRef(name)));
        case 'Fn::If': {
          const [cond, a, b] = arg as [string, unknown, unknown];
          return this.conditionHolds(cond) ? this.resolve(a) : this.resolve(b);
        }
        case 'Fn::Equals': {
          const [a, b] = this.resolve(arg) as [unknown, unknown];
          return a === b;
        }
        case 'Fn::Not':
          return !(this.resolve(arg) as unknown[])[0];
        default:
          break;
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v)]));
  }

  private pseudoOrRef(name: string): string {
    switch (name) {
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::Region':
        return this.pseudo.region;
      case 'AWS::AccountId':
        return this.pseudo.accountId;
      case 'AWS::StackName':
        return this.pseudo.stackName;
      default:
        return this.ref(name);
    }
  }
}

/** The files a function's artifact holds (to check what was deployed). */
export function artifactFiles(codeDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${prefix}${entry.name}/`);
      else out.push(`${prefix}${entry.name}`);
    }
  };
  walk(codeDir, '');
  return out;
}
