import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { startConsoleServer } from '../lib/console/server';
import { freePort } from './postgres';

const ROOT = resolve(import.meta.dirname, '..');

export interface Offline {
  /** The front door (what npm start and npm run offline answer on): routes, limits and concurrency as deployed. */
  baseUrl: string;
  /** serverless-offline itself, behind it. */
  apiUrl: string;
  lambdaEndpoint: string;
  /** The emulator's process group (it and every worker it starts). */
  pgid: number;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * Runs the service as `npm run offline` does: serverless-offline (`osls offline start`) on free
 * ports with the given environment, behind the API front door (lib/console/gateway.ts) on another.
 * Resolves once serverless-offline reports "Server ready".
 */
export async function startOffline(env: Record<string, string>): Promise<Offline> {
  const [port, lambdaPort] = [await freePort(), await freePort()];
  // Each instance builds in its own folder: two services starting side by side (tests run in
  // parallel) would otherwise install their packages into one another's bundle.
  const workFolder = `.esbuild-offline-${port}`;
  const child: ChildProcess = spawn(resolve(ROOT, 'node_modules/.bin/osls'), ['offline', 'start', '--stage', 'local'], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, STAGE: 'local', PORT: String(port), LAMBDA_PORT: String(lambdaPort), AWS_ENDPOINT_URL_LAMBDA: `http://localhost:${lambdaPort}`, ESBUILD_WORK_FOLDER: workFolder, ONNXRUNTIME_NODE_INSTALL: 'skip', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`serverless-offline did not start in 90 s:\n${log}`)), 90_000);
    const watch = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Server ready')) {
        clearTimeout(timer);
        ready();
      }
    };
    child.stdout!.on('data', watch);
    child.stderr!.on('data', watch);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`serverless-offline exited with ${code}:\n${log}`));
    });
  });
  const front = await startConsoleServer({ port: 0, apiUrl: `http://localhost:${port}`, console: false, maxBodyBytes: Number(env.MAX_BODY_BYTES ?? process.env.MAX_BODY_BYTES ?? 65_536) });
  return {
    baseUrl: front.url,
    apiUrl: `http://localhost:${port}`,
    lambdaEndpoint: `http://localhost:${lambdaPort}`,
    pgid: child.pid!,
    output: () => log,
    stop: async () => {
      await front.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        try {
          process.kill(-child.pid!, 'SIGTERM');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        } catch {
          // already gone
        }
      }
      await rm(resolve(ROOT, workFolder), { recursive: true, force: true });
    },
  };
}
