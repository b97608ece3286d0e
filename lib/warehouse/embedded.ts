import { promises as fsp } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';

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
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite-socket'),
  ]);
  await fsp.mkdir(dirname(dataDir), { recursive: true });
  const db = await PGlite.create({ dataDir });
  // Every local function (one worker thread each) keeps its own pool: allow plenty of connections;
  // PGlite runs their queries one at a time anyway.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 100 });
  await server.start();
  const actualPort = Number(server.getServerConn().split(':').pop());
  const file = serverFile(dataDir);
  await fsp.writeFile(file, JSON.stringify({ pid: process.pid, port: actualPort } satisfies ServerFile));
  let stopped = false;
  return {
    url: urlFor(actualPort),
    owned: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await fsp.rm(file, { force: true });
      await server.stop();
      await db.close();
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
