// The distributed map of segment runs beyond one planner (AWS Step Functions): the state machine
// (its definition is infra/segment-map.asl.json, with the worker and merge functions and the
// map's limits substituted) and its role. The role may read the run manifests and chunk files'
// prefix, invoke the worker and the merge function, and run its own child executions (a
// distributed map starts one per batch of items).

const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const arn = (service, resource) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:${service}:`, { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${resource}`]],
});

module.exports = async ({ resolveVariable }) => {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const maxConcurrency = Number(await resolveVariable('self:custom.segmentMap.maxConcurrency'));
  const tolerated = Number(await resolveVariable('self:custom.segmentMap.toleratedFailurePercentage'));
  const retries = Number(await resolveVariable('self:custom.segmentMap.chunkRetries'));
  const name = `${service}-${stage}-segment-map`;
  const fn = (f) => arn('lambda', `function:${service}-${stage}-${f}`);
  const definition = readFileSync(join(__dirname, 'segment-map.asl.json'), 'utf8');
  return {
    Resources: {
      SegmentMapStateMachine: {
        Type: 'AWS::StepFunctions::StateMachine',
        Properties: {
          StateMachineName: name,
          RoleArn: { 'Fn::GetAtt': ['SegmentMapRole', 'Arn'] },
          DefinitionString: {
            'Fn::Sub': [
              definition,
              { WorkerFunctionArn: fn('segmentWorker'), MergeFunctionArn: fn('segmentMerge'), MaxConcurrency: String(maxConcurrency), ToleratedFailurePercentage: String(tolerated), ChunkRetries: String(retries) },
            ],
          },
        },
      },
      SegmentMapRole: {
        Type: 'AWS::IAM::Role',
        Properties: {
          AssumeRolePolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'states.amazonaws.com' }, Action: 'sts:AssumeRole' }] },
          Policies: [
            {
              PolicyName: 'least-privilege',
              PolicyDocument: {
                Version: '2012-10-17',
                Statement: [
                  { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: [fn('segmentWorker'), fn('segmentMerge')] },
                  { Effect: 'Allow', Action: 's3:GetObject', Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['RegistryBucket', 'Arn'] }, '/segment-chunks/*']] } },
                  { Effect: 'Allow', Action: 's3:ListBucket', Resource: { 'Fn::GetAtt': ['RegistryBucket', 'Arn'] }, Condition: { StringLike: { 's3:prefix': ['segment-chunks/*'] } } },
                  { Effect: 'Allow', Action: 'states:StartExecution', Resource: arn('states', `stateMachine:${name}`) },
                  { Effect: 'Allow', Action: ['states:DescribeExecution', 'states:StopExecution'], Resource: arn('states', `execution:${name}/*`) },
                ],
              },
            },
          ],
        },
      },
    },
    Outputs: { SegmentMapStateMachineArn: { Value: { Ref: 'SegmentMapStateMachine' } } },
  };
};
