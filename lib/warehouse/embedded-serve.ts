import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';

/** PGlite in `dataDir`, served over the PostgreSQL wire protocol on a loopback port (0: any free one). */
export async function servePglite(dataDir: string, port: number): Promise<{ port: number; stop(): Promise<void> }> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
  await fsp.mkdir(dirname(dataDir), { recursive: true });
  const db = await PGlite.create({ dataDir });
  // Every local function (one worker thread each) keeps its own pool: allow plenty of connections;
  // PGlite runs their queries one at a time anyway.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port, maxConnections: 100 });
  await server.start();
  return {
    port: Number(server.getServerConn().split(':').pop()),
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
