// The runtime inside one rehearsal function instance, standing in for Lambda's Node.js runtime:
// it loads the handler named by _HANDLER from the unzipped artifact in LAMBDA_TASK_ROOT (as
// Lambda does: "file.export", file resolved with .js, .mjs or .cjs), then serves invocations one
// at a time, sent by the host over IPC, with a Lambda context object. Like Lambda it sets
// _X_AMZN_TRACE_ID for each invocation and keeps the process (and whatever the handler cached at
// module scope) between invocations: a warm instance.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { randomBytes } = require('node:crypto');

const root = process.env.LAMBDA_TASK_ROOT;
const [file, exportName] = (() => {
  const handler = process.env._HANDLER;
  const dot = handler.lastIndexOf('.');
  return [handler.slice(0, dot), handler.slice(dot + 1)];
})();

let handler;
try {
  const path = ['.js', '.mjs', '.cjs'].map((ext) => join(root, file + ext)).find((p) => existsSync(p));
  if (!path) throw new Error(`Cannot find module '${file}' in ${root}`);
  handler = require(path)[exportName];
  if (typeof handler !== 'function') throw new Error(`${process.env._HANDLER} is undefined or not exported`);
} catch (error) {
  process.send({ type: 'init-error', error: describe(error) });
  process.exit(1);
}
process.send({ type: 'ready' });

process.on('message', async (message) => {
  if (message.type !== 'invoke') return;
  const deadline = Date.now() + message.timeoutMs;
  const context = {
    awsRequestId: message.requestId,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: message.functionArn,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  process.env._X_AMZN_TRACE_ID = `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=1`;
  try {
    const result = await handler(message.event, context);
    process.send({ type: 'result', requestId: message.requestId, result: result === undefined ? null : result });
  } catch (error) {
    process.send({ type: 'error', requestId: message.requestId, error: describe(error) });
  }
});

function describe(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return { errorType: e.name, errorMessage: e.message, trace: String(e.stack || '').split('\n') };
}
