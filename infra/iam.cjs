// One IAM role per group of functions, each granted only what its functions do:
// - prediction and status functions read models/ (and the warehouse secret);
// - segment functions read and write segments/ and segment-parts/ as their step needs;
// - only the planner may invoke the worker, only the start functions may invoke the planner;
// - only training writes models/ (versions and aliases).
// The only wildcard resources are the log streams of this service's own log groups and, when the
// functions run in a VPC, AWS's managed policy for network interfaces (which requires them).

const bucketArn = { 'Fn::GetAtt': ['RegistryBucket', 'Arn'] };
const objects = (prefix) => ({ 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] });
const listPrefix = (prefix) => ({ Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn, Condition: { StringLike: { 's3:prefix': [`${prefix}*`] } } });
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
      Policies: [{ PolicyName: 'least-privilege', PolicyDocument: { Version: '2012-10-17', Statement: [logs(functions), ...statements] } }],
    },
  });

  return {
    Resources: {
      PredictRole: role(['predict', 'predictBatch', 'legacyTest', 'models'], [
        { Effect: 'Allow', Action: 's3:GetObject', Resource: objects('models/') },
        listPrefix('models/'),
        secret,
      ]),
      SegmentStartRole: role(['segmentStart', 'segmentNightly'], [
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: objects('segments/') },
        invoke('segmentPlanner'),
        secret,
        failures,
      ]),
      SegmentReadRole: role(['segmentRunStatus', 'segmentStats'], [
        { Effect: 'Allow', Action: 's3:GetObject', Resource: objects('segments/') },
        secret,
      ]),
      SegmentPlannerRole: role(['segmentPlanner'], [
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: objects('segments/') },
        { Effect: 'Allow', Action: 's3:GetObject', Resource: [objects('segment-parts/'), objects('models/')] },
        invoke('segmentWorker'),
        secret,
        failures,
      ]),
      SegmentWorkerRole: role(['segmentWorker'], [
        { Effect: 'Allow', Action: 's3:GetObject', Resource: objects('models/') },
        listPrefix('models/'),
        { Effect: 'Allow', Action: 's3:PutObject', Resource: objects('segment-parts/') },
        secret,
      ]),
      TrainRole: role(['train'], [
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], Resource: objects('models/') },
        listPrefix('models/'),
        secret,
        failures,
      ]),
    },
  };
};
