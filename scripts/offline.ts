/**
 * `npm run offline`: the API alone, as deployed stages route and limit it, on `PORT` (3000):
 * serverless-offline on internal ports (the Lambda invoke endpoint on `LAMBDA_PORT`, 3002) behind
 * the API front door (routes from the contract, 405 and 404, each function's reserved concurrency
 * with a bounded queue, 413 at any size). It uses whatever MODEL_REGISTRY_URI and WAREHOUSE_URL say,
 * with none of `npm start`'s first-run work and no console. Ctrl-C stops both.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { freePort } from '../devkit/postgres';
import { processIo } from '../lib/cli/runtime';
import { loadConfig } from '../lib/config';
import { startConsoleServer } from '../lib/console/server';

const root = resolve(import.meta.dirname, '..');

async function main(): Promise<void> {
  const say = (m: string) => processIo.err(`offline: ${m}`);
  const config = loadConfig({ ...process.env, STAGE: 'local' });
  const port = Number(process.env.PORT ?? '3000');
  const lambdaPort = Number(process.env.LAMBDA_PORT ?? '3002');
  const apiPort = await freePort();
  const child = spawn(resolve(root, 'node_modules/.bin/osls'), ['offline', 'start', '--stage', 'local'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, STAGE: 'local', PORT: String(apiPort), LAMBDA_PORT: String(lambdaPort), AWS_ENDPOINT_URL_LAMBDA: `http://localhost:${lambdaPort}` },
  });
  const front = await startConsoleServer({ port, apiUrl: `http://localhost:${apiPort}`, console: false, maxBodyBytes: config.maxBodyBytes });
  say(`the API on ${front.url}/api/loyalty/v1/ (serverless-offline behind it on port ${apiPort}; Lambda invoke endpoint on ${lambdaPort})`);
  const stop = async (code: number) => {
    await front.close().catch(() => undefined);
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
    process.exit(code);
  };
  child.once('exit', (code) => void stop(code ?? 1));
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
}

main().catch((error: unknown) => {
  processIo.err(`offline: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
