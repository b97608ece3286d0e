import { parentPort, workerData } from 'node:worker_threads';
import { servePglite } from './embedded-serve';

/**
 * The embedded warehouse on a thread of its own: PGlite executes statements synchronously, so on
 * the main thread a segment scan's query work would stop everything else (parsing, scoring) while
 * it runs. Answers `{ port }` once listening, or `{ error }`; 'stop' closes it and exits.
 */
const { dataDir, port } = workerData as { dataDir: string; port: number };

servePglite(dataDir, port).then(
  (server) => {
    parentPort!.postMessage({ port: server.port });
    parentPort!.on('message', (message: unknown) => {
      if (message !== 'stop') return;
      void server.stop().finally(() => parentPort!.postMessage({ stopped: true }));
    });
  },
  (error: unknown) => parentPort!.postMessage({ error: error instanceof Error ? error.message : String(error) }),
);
