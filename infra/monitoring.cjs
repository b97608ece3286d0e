// Alarms for every function (errors, throttles, duration near the timeout), for failed segment
// chunks (a metric the planner publishes) and for failed asynchronous invocations, all sent to the
// alarm topic.
module.exports = async ({ resolveVariable }) => {
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  const functions = await resolveVariable('self:functions');
  const defaultTimeout = Number(await resolveVariable('self:provider.timeout'));
  const topic = [{ Ref: 'AlarmTopic' }];
  const logical = (name) => `${name.charAt(0).toUpperCase()}${name.slice(1)}`;
  const resources = {};
  for (const [name, fn] of Object.entries(functions)) {
    const dimensions = [{ Name: 'FunctionName', Value: `${service}-${stage}-${name}` }];
    const base = { Namespace: 'AWS/Lambda', Dimensions: dimensions, Period: 300, EvaluationPeriods: 1, AlarmActions: topic, OKActions: topic, TreatMissingData: 'notBreaching' };
    const timeoutMs = Number(fn.timeout ?? defaultTimeout) * 1000;
    resources[`${logical(name)}ErrorsAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: { ...base, AlarmDescription: `${name}: function errors`, MetricName: 'Errors', Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' },
    };
    resources[`${logical(name)}ThrottlesAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: { ...base, AlarmDescription: `${name}: throttled invocations`, MetricName: 'Throttles', Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' },
    };
    resources[`${logical(name)}DurationAlarm`] = {
      Type: 'AWS::CloudWatch::Alarm',
      Properties: {
        ...base,
        AlarmDescription: `${name}: maximum duration above 80% of its ${timeoutMs / 1000} s timeout`,
        MetricName: 'Duration',
        Statistic: 'Maximum',
        Threshold: Math.round(timeoutMs * 0.8),
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      },
    };
  }
  resources.FailedSegmentChunksAlarm = {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: 'Segment runs ended partial: chunks failed after their retries',
      Namespace: 'loyalty-ml',
      MetricName: 'FailedSegmentChunks',
      Dimensions: [{ Name: 'Stage', Value: stage }],
      Statistic: 'Sum',
      Period: 3600,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: topic,
    },
  };
  resources.AsyncFailuresAlarm = {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: 'Asynchronous invocations failed (segment planner, nightly runs, training)',
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['AsyncFailureQueue', 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: topic,
    },
  };
  return { Resources: resources };
};
