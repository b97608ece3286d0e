import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Whether the X-Ray SDK runs in automatic mode (an async hook on every promise) once the tracer is loaded. */
function automaticMode(env: Record<string, string>): boolean {
  const script = `import('./lib/observability.ts').then(async () => { const { default: x } = await import('aws-xray-sdk-core'); process.stdout.write(String(x.isAutomaticMode())); });`;
  const { AWS_LAMBDA_FUNCTION_NAME: _f, POWERTOOLS_TRACE_ENABLED: _t, AWS_XRAY_MANUAL_MODE: _m, ...rest } = process.env;
  return execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...rest, ...env }, encoding: 'utf8' }).trim() === 'true';
}

describe('tracing mode', () => {
  it('leaves the X-Ray SDK without its promise hook where nothing is traced, and keeps it in a tracing Lambda', () => {
    expect(automaticMode({})).toBe(false);
    expect(automaticMode({ AWS_LAMBDA_FUNCTION_NAME: 'loyalty-ml-dev-predict', POWERTOOLS_TRACE_ENABLED: 'false' })).toBe(false);
    expect(automaticMode({ AWS_LAMBDA_FUNCTION_NAME: 'loyalty-ml-dev-predict' })).toBe(true);
  });
});
