import { existsSync, promises as fsp } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { servePglite } from './embedded-serve';

/**
 * The embedded warehouse: PGlite (PostgreSQL compiled to WebAssembly) in a local folder, served on
 * a loopback port through the PostgreSQL wire protocol, so loyalty-ml reaches it with the same `pg`
 * code as a real warehouse. Only one process may open a PGlite folder; the process serving it writes
 * `server.json` beside the data, and other processes (the CLI while `npm start` runs) connect to
 * that server instead of opening the folder themselves.
 */
export interface EmbeddedServer {
  url: string;
  /** True when this process started the server (and must stop it). */
  owned: boolean;
  stop(): Promise<void>;
}

interface ServerFile {
  pid: number;
  port: number;
}

/** Connects to the server already running for `dir`, or starts one in this process. */
export async function openEmbeddedWarehouse(dir: string, options: { port?: number } = {}): Promise<EmbeddedServer> {
  const dataDir = resolve(dir);
  const running = await findRunningServer(dataDir);
  if (running) return { url: urlFor(running.port), owned: false, stop: async () => undefined };
  return startServer(dataDir, options.port ?? 0);
}

async function startServer(dataDir: string, port: number): Promise<EmbeddedServer> {
  const server = (await startOnThread(dataDir, port)) ?? (await servePglite(dataDir, port));
  const file = serverFile(dataDir);
  await fsp.writeFile(file, JSON.stringify({ pid: process.pid, port: server.port } satisfies ServerFile));
  let stopped = false;
  return {
    url: urlFor(server.port),
    owned: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await fsp.rm(file, { force: true });
      await server.stop();
    },
  };
}

/**
 * Serves the warehouse from a worker thread when this process can load the thread's module (run
 * from source with a TypeScript loader, as the CLI and `npm start` are); otherwise (a bundle, a test
 * runner's own loader) null, and the caller serves it on this thread.
 */
async function startOnThread(dataDir: string, port: number): Promise<{ port: number; stop(): Promise<void> } | null> {
  const entry = new URL('./embedded-thread.ts', import.meta.url);
  if (entry.protocol !== 'file:' || !existsSync(fileURLToPath(entry)) || !process.execArgv.some((a) => /tsx/.test(a))) return null;
  const thread = new Worker(entry, { workerData: { dataDir, port }, execArgv: process.execArgv });
  const started = await new Promise<{ port?: number; error?: string }>((done) => {
    thread.once('message', done);
    thread.once('error', (error) => done({ error: error.message }));
    thread.once('exit', (code) => done({ error: `the warehouse thread exited (${code})` }));
  });
  if (started.port === undefined) {
    await thread.terminate();
    // PGlite may have failed for a reason the main thread will report as clearly (a locked folder).
    return null;
  }
  thread.unref();
  return {
    port: started.port,
    stop: async () => {
      const done = new Promise<void>((resolve) => {
        thread.once('message', () => resolve());
        thread.once('exit', () => resolve());
      });
      thread.postMessage('stop');
      await done;
      await thread.terminate();
    },
  };
}

async function findRunningServer(dataDir: string): Promise<ServerFile | null> {
  let info: ServerFile;
  try {
    info = JSON.parse(await fsp.readFile(serverFile(dataDir), 'utf8')) as ServerFile;
  } catch {
    return null;
  }
  if (!processAlive(info.pid) || !(await portOpen(info.port))) return null;
  return info;
}

function serverFile(dataDir: string): string {
  return join(dataDir, 'server.json');
}

function urlFor(port: number): string {
  return `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      done(false);
    });
  });
}
