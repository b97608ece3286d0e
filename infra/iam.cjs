// One IAM role per group of functions, each granted only what its functions do:
// - prediction and status functions read models/ (and the warehouse secret);
// - segment functions read and write segments/ and segment-parts/ as their step needs;
// - only the planner may invoke the worker; the start functions and the sweeper invoke the planner;
// - only training writes models/ (versions and aliases);
// - prediction functions and segment workers append to predictions/, only the quality check writes monitoring/.
// Every role that reads keys which may be absent also lists their prefix: without s3:ListBucket,
// S3 answers 403 AccessDenied instead of 404 for a missing key, and "not there yet" (a first
// history.json, an unknown run) would look like an outage.
// The only wildcard resources are the log streams of this service's own log groups, X-Ray (whose
// actions take no resource) and, when the functions run in a VPC, AWS's managed policy for network
// interfaces (which requires them).

const bucketArn = { 'Fn::GetAtt': ['RegistryBucket', 'Arn'] };
const objects = (prefix) => ({ 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] });
const list = (...prefixes) => ({ Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn, Condition: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } } });
const read = (...prefixes) => ({ Effect: 'Allow', Action: 's3:GetObject', Resource: prefixes.map(objects) });
const write = (...prefixes) => ({ Effect: 'Allow', Action: 's3:PutObject', Resource: prefixes.map(objects) });
const remove = (...prefixes) => ({ Effect: 'Allow', Action: 's3:DeleteObject', Resource: prefixes.map(objects) });
const arn = (service, resource) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:${service}:`, { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${resource}`]],
});

module.exports = async ({ resolveVariable }) => {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const inVpc = Boolean((process.env.VPC_SUBNET_IDS ?? '').trim());
  const fn = (name) => `${service}-${stage}-${name}`;
  const logs = (names) => ({
    Effect: 'Allow',
    Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    Resource: names.map((n) => arn('logs', `log-group:/aws/lambda/${fn(n)}:*`)),
  });
  const xray = { Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' };
  const secret = { Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: 'WarehouseSecret' } };
  const failures = { Effect: 'Allow', Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': ['AsyncFailureQueue', 'Arn'] } };
  const invoke = (name) => ({ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: arn('lambda', `function:${fn(name)}`) });

  const role = (functions, statements) => ({
    Type: 'AWS::IAM::Role',
    Properties: {
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      },
      ...(inVpc ? { ManagedPolicyArns: [{ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']] }] } : {}),
      Policies: [{ PolicyName: 'least-privilege', PolicyDocument: { Version: '2012-10-17', Statement: [logs(functions), xray, ...statements] } }],
    },
  });

  return {
    Resources: {
      // Prediction functions also append to the prediction log; the status function reads the
      // stored quality reports.
      PredictRole: role(['predict', 'predictBatch', 'legacyTest', 'models'], [read('models/', 'monitoring/'), list('models/', 'monitoring/'), write('predictions/'), secret]),
      // Creating a run also probes the store's conditional writes (segments/_probe/) and indexes it
      // as unfinished (segments/_active/); a run whose planner cannot start leaves that index.
      SegmentStartRole: role(['segmentStart', 'segmentNightly'], [
        read('segments/'),
        write('segments/'),
        remove('segments/_probe/', 'segments/_active/'),
        list('segments/'),
        invoke('segmentPlanner'),
        secret,
        failures,
      ]),
      SegmentReadRole: role(['segmentRunStatus', 'segmentStats'], [read('segments/'), list('segments/'), secret]),
      SegmentPlannerRole: role(['segmentPlanner'], [
        read('segments/', 'segment-parts/', 'segment-chunks/', 'models/'),
        write('segments/', 'segment-chunks/'),
        remove('segments/_active/'),
        list('segments/', 'segment-parts/', 'segment-chunks/', 'models/'),
        invoke('segmentWorker'),
        invoke('segmentPlanner'),
        { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: 'SegmentMapStateMachine' } },
        secret,
        failures,
      ]),
      // The distributed map's merge step: reads the manifest, parts and chunk files of failed
      // chunks, writes statistics, history and the run; no warehouse.
      SegmentMergeRole: role(['segmentMerge'], [
        read('segments/', 'segment-parts/', 'segment-chunks/', 'models/'),
        write('segments/'),
        remove('segments/_active/'),
        list('segments/', 'segment-parts/', 'segment-chunks/', 'models/'),
      ]),
      // Workers score the features their chunk carries: no warehouse secret.
      SegmentWorkerRole: role(['segmentWorker'], [read('models/', 'segment-chunks/'), list('models/', 'segment-chunks/'), write('segment-parts/', 'predictions/')]),
      // The quality check reads the log, manifests and segment drift, writes reports, and (with
      // MONITOR_RETRAIN=on) starts training.
      QualityCheckRole: role(['qualityCheck'], [
        read('predictions/', 'models/', 'monitoring/', 'segments/'),
        list('predictions/', 'models/', 'monitoring/', 'segments/'),
        write('monitoring/'),
        invoke('train'),
        secret,
        failures,
      ]),
      SegmentSweeperRole: role(['segmentSweeper'], [
        read('segments/'),
        write('segments/'),
        remove('segments/_active/'),
        list('segments/'),
        invoke('segmentPlanner'),
        failures,
      ]),
      // The $default route's function answers 404/405 from the contract: no bucket, no warehouse.
      FallbackRole: role(['fallback'], []),
      TrainRole: role(['train'], [read('models/'), write('models/'), remove('models/'), list('models/'), secret, failures]),
    },
  };
};
