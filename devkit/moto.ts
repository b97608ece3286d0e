import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './postgres';

/**
 * moto's server (`moto_server`, Python) on a free loopback port: S3 with conditional writes,
 * CloudFormation, IAM with policy enforcement, STS, Secrets Manager, SQS, SNS and more, all at one
 * endpoint. Tests, benchmarks and the deployment rehearsal start their own.
 */
export interface Moto {
  endpoint: string;
  region: string;
  /** An S3 client for this server (path-style, test credentials). */
  s3(): S3Client;
  /** Creates a bucket, versioned if asked. */
  createBucket(name: string, options?: { versioned?: boolean }): Promise<void>;
  /** From now on every request must be signed by a principal whose IAM policies allow it. */
  enforceIam(): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

export const TEST_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export async function startMoto(options: { region?: string } = {}): Promise<Moto> {
  const python = findMotoPython();
  const port = await freePort();
  const region = options.region ?? 'us-east-1';
  const child: ChildProcess = spawn(python, [resolve(import.meta.dirname, 'moto_server.py'), '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'true' },
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}:\n${log}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`);
      if (response.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`moto_server did not answer in 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  let client: S3Client | undefined;
  const s3 = () =>
    (client ??= new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: TEST_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    }));
  return {
    endpoint,
    region,
    s3,
    async createBucket(name, opts = {}) {
      await s3().send(new CreateBucketCommand({ Bucket: name }));
      if (opts.versioned) await s3().send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    },
    async enforceIam() {
      const response = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
      if (!response.ok) throw new Error(`moto refused to enforce IAM: ${response.status}`);
    },
    output: () => log,
    async stop() {
      client?.destroy();
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** A Python that has moto's server (the one `moto_server` runs with), or a clear message on how to get it. */
export function findMotoPython(): string {
  for (const python of ['python3', 'python']) {
    const probe = spawnSync(python, ['-c', 'import moto.server, flask'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  throw new Error("moto's server not found: install it with pip install 'moto[server]' (Python 3.9+)");
}
