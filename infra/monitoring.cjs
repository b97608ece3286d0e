// Alarms for every function (errors, throttles, duration near the timeout), for what an operator
// must act on in the service's own metrics (lib/observability.ts: EMF, namespace loyalty-ml,
// dimensions service and Stage) and for failed asynchronous invocations, all sent to the alarm topic.
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
  // Each of these alarms fires on the first occurrence within its period.
  const alarmOnce = ({ description, namespace, metric, dimensions, statistic = 'Sum', period = 300 }) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      Namespace: namespace,
      MetricName: metric,
      Dimensions: dimensions,
      Statistic: statistic,
      Period: period,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: topic,
    },
  });
  // The service's own metrics.
  const serviceAlarm = (metric, description, period) =>
    alarmOnce({ description, namespace: 'loyalty-ml', metric, period, dimensions: [{ Name: 'service', Value: 'loyalty-ml' }, { Name: 'Stage', Value: stage }] });
  resources.MockPredictionsAlarm = serviceAlarm('MockPredictions', 'Answers came from the rule-based mock baseline, not a trained model (ML_MOCK_MODE or no production version)', 300);
  resources.StaleModelAnswersAlarm = serviceAlarm('StaleModelAnswers', 'Answers came from a model version kept after its refresh failed (registry unreachable or the new version corrupt)', 300);
  resources.FailedSegmentChunksAlarm = serviceAlarm('SegmentChunksFailed', 'Segment runs ended partial or failed: chunks failed after their retries', 3600);
  resources.SegmentRunsFailedAlarm = serviceAlarm('SegmentRunsFailed', 'Segment runs failed (every chunk failed, or their planners kept dying)', 3600);
  resources.SegmentRunsPastLeaseAlarm = serviceAlarm('SegmentRunsPastLease', "A segment run's planner died (crash, timeout, out of memory) and the sweeper found its lease expired", 3600);
  resources.PredictionLogWriteFailuresAlarm = serviceAlarm('PredictionLogWriteFailures', 'Prediction log files could not be written after retries (the answers were returned; their log records are lost)', 300);
  resources.RealisedQualityAlarm = serviceAlarm('RealisedQualityAlarms', "A served model's realised AUC fell more than MONITOR_AUC_MARGIN below its holdout AUC, or its scores drifted majorly", 86400);
  resources.AsyncFailuresAlarm = alarmOnce({
    description: 'Asynchronous invocations failed (segment planner, nightly runs, training)',
    namespace: 'AWS/SQS',
    metric: 'ApproximateNumberOfMessagesVisible',
    dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['AsyncFailureQueue', 'QueueName'] } }],
    statistic: 'Maximum',
  });
  // A distributed map whose execution failed: its merge step may not have finished the run, which
  // then stays running (the sweeper leaves mapped runs to their state machine). The state machine
  // sets no timeout, and an aborted execution is an operator's own act.
  resources.SegmentMapExecutionsFailedAlarm = alarmOnce({
    description: "A segment run's distributed map (Step Functions) failed: check the run and its execution",
    namespace: 'AWS/States',
    metric: 'ExecutionsFailed',
    dimensions: [{ Name: 'StateMachineArn', Value: { Ref: 'SegmentMapStateMachine' } }],
  });
  return { Resources: resources };
};
