import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config';
import type { WorkerPayload } from '../segments/worker';
import { createScoringApp } from './scoring';

/**
 * A worker thread of a local segment run (see ThreadWorkerInvoker): one scoring app built from the
 * parent's configuration, scoring the chunks it is sent as the worker Lambda does, and answering
 * each by its message id.
 */
const app = createScoringApp(workerData as Config);

parentPort!.on('message', ({ id, payload }: { id: number; payload: WorkerPayload }) => {
  app
    .then((a) => a.chunks.score(payload))
    .then(
      (result) => parentPort!.postMessage({ id, result }),
      (error: unknown) => parentPort!.postMessage({ id, error: error instanceof Error ? error.message : String(error) }),
    );
});
