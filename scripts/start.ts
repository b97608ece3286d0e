/**
 * `npm start`: the whole service on this machine. Checks its port first; starts the embedded
 * warehouse (loading the demo customer base on first run) unless `WAREHOUSE_URL` names another;
 * makes sure the registry (`MODEL_REGISTRY_URI`, by default a local folder) has production churn
 * and NBO models, training them on first run; then runs the API through serverless-offline on
 * internal ports behind one front door on `PORT` (3000): the console at /console/, the API
 * reference at /docs and the API itself under /api/. Ctrl-C stops everything.
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { freePort } from '../devkit/postgres';
import { createScoringApp } from '../lib/app/scoring';
import { createTrainingApp } from '../lib/app/training';
import type { Config } from '../lib/config';
import { LocalWorkerInvoker } from '../lib/segments/invokers';
import { SCORE_TYPES } from '../lib/segments/runs';
import { ProgressReporter, processIo, trainingProgress } from '../lib/cli/runtime';
import { DEFAULT_DATA_DIR, loadConfig } from '../lib/config';
import { startConsoleServer, type ConsoleServer } from '../lib/console/server';
import { advanceDemoData, loadDemoData } from '../lib/warehouse/demo-load';
import { openEmbeddedWarehouse, type EmbeddedServer } from '../lib/warehouse/embedded';

const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(root, process.env.LOYALTY_ML_DATA_DIR ?? DEFAULT_DATA_DIR);
const port = Number(process.env.PORT ?? '3000');
/** The demo base a first start loads (LOYALTY_ML_DEMO_CUSTOMERS: a smaller one starts sooner). */
const demoCustomers = Number(process.env.LOYALTY_ML_DEMO_CUSTOMERS ?? '50000');

async function main(): Promise<void> {
  const say = (m: string) => processIo.err(`start: ${m}`);
  if (!Number.isSafeInteger(demoCustomers) || demoCustomers < 500 || demoCustomers > 5_000_000) {
    throw new Error(`LOYALTY_ML_DEMO_CUSTOMERS must be a whole number from 500 to 5,000,000; got ${process.env.LOYALTY_ML_DEMO_CUSTOMERS}`);
  }
  await assertPortFree(port);

  const ownWarehouse = !process.env.WAREHOUSE_URL;
  const ownRegistry = !process.env.MODEL_REGISTRY_URI;
  let server: EmbeddedServer | null = null;
  if (ownWarehouse) {
    server = await openEmbeddedWarehouse(resolve(dataDir, 'warehouse'));
    if (!server.owned) throw new Error(`another process already serves ${resolve(dataDir, 'warehouse')} (is npm start running elsewhere?)`);
  }
  const warehouseUrl = process.env.WAREHOUSE_URL ?? server!.url;
  const registryUri = process.env.MODEL_REGISTRY_URI ?? resolve(dataDir, 'registry');

  let child: ReturnType<typeof spawn> | null = null;
  let front: ConsoleServer | null = null;
  let closeApp: (() => Promise<void>) | null = null;
  const stop = async (code: number) => {
    stopping = true;
    if (background && background.exitCode === null) background.kill('SIGTERM');
    if (child && child.exitCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    await front?.close().catch(() => undefined);
    await closeApp?.().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const app = await createTrainingApp(loadConfig({ ...process.env, STAGE: 'local', MODEL_REGISTRY_URI: registryUri, WAREHOUSE_URL: warehouseUrl, LOYALTY_ML_ACTOR: 'npm-start' }));
  closeApp = () => app.close();
  const warehouse = await app.warehouse();
  let customers = await warehouse.warehouse.countCustomers().catch(() => 0);
  const firstRun = customers === 0 && ownWarehouse;
  if (firstRun) {
    say(`first run: loading the demo customer base (${demoCustomers.toLocaleString('en-US')} customers) into the embedded warehouse`);
    const progress = new ProgressReporter(processIo, 'demo-data: customers');
    await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: demoCustomers, seed: 42, onProgress: (d, t) => progress.update(d, t) });
    customers = await warehouse.warehouse.countCustomers();
  } else if (customers === 0) {
    say(`the warehouse at WAREHOUSE_URL has no customers: load some (npx loyalty-ml demo-data) or point it at another`);
  } else say(`warehouse: ${customers.toLocaleString('en-US')} customers${ownWarehouse ? ' (embedded)' : ''}`);

  const quicklyTrained: ('churn' | 'nbo')[] = [];
  for (const model of ['churn', 'nbo'] as const) {
    const production = await app.registry.getAlias(model, 'production');
    if (production) {
      say(`${model}: serving production v${production.version}`);
      continue;
    }
    if (!ownRegistry || customers === 0) {
      say(`${model}: no production version in ${registryUri}; train one with npx loyalty-ml train ${model} --promote production`);
      continue;
    }
    // Churn: boosted trees alone take seconds; the full search (every family, every customer) follows
    // in the background. NBO's default is boosted-tree heads already: trained once, in full.
    const quick = model === 'churn';
    say(`first run: training ${model}${quick ? ' (boosted trees only, for a short first start)' : ''} and promoting it to production`);
    const outcome = await app.training.train({ model, promote: 'production' }, { families: quick ? ['gbt'] : undefined, onProgress: trainingProgress(processIo, `train ${model}`, false) });
    if (!outcome.promoted) say(`${model} v${outcome.manifest.version} was refused by its gates: ${outcome.manifest.refusal_reasons.join('; ')}; the API answers ${model} in mock mode`);
    else if (quick) quicklyTrained.push(model);
  }
  if (firstRun && ownRegistry) await demoHistory(app.config, say);

  // The overview shows the warehouse's segments (the demo's five, or a real warehouse's).
  const segments = await warehouse.warehouse.listSegments().then((list) => list.map((s) => s.id), () => ['all']);
  const [apiPort, lambdaPort] = [await freePort(), Number(process.env.LAMBDA_PORT ?? (await freePort()))];
  say(`starting the API (serverless-offline on internal port ${apiPort})`);
  child = spawn(resolve(root, 'node_modules/.bin/osls'), ['offline', 'start', '--stage', 'local'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      STAGE: 'local',
      PORT: String(apiPort),
      LAMBDA_PORT: String(lambdaPort),
      AWS_ENDPOINT_URL_LAMBDA: `http://localhost:${lambdaPort}`,
      WAREHOUSE_URL: warehouseUrl,
      MODEL_REGISTRY_URI: registryUri,
      ML_MOCK_MODE: process.env.ML_MOCK_MODE ?? 'auto',
      // The packaging step installs onnxruntime-node beside the bundle: its CPU files ship in the package (no CUDA download).
      ONNXRUNTIME_NODE_INSTALL: 'skip',
    },
  });
  // serverless-offline's banner names its internal ports: keep it back (shown if it fails), then relay its request log.
  let announced = false;
  let banner = '';
  const relay = (target: NodeJS.WriteStream) => (chunk: Buffer) => {
    if (announced) {
      target.write(chunk);
      return;
    }
    banner += chunk.toString();
    if (banner.includes('Server ready')) {
      announced = true;
      void startConsoleServer({ port, apiUrl: `http://localhost:${apiPort}`, registry: app.registry, actor: 'console', label: ownRegistry ? 'local' : registryUri, segments: segments.slice(0, 12), maxBodyBytes: app.config.maxBodyBytes }).then(
        (started) => {
          front = started;
          process.stdout.write(examples(String(port)));
          if (quicklyTrained.length) trainInBackground(quicklyTrained, { WAREHOUSE_URL: warehouseUrl, MODEL_REGISTRY_URI: registryUri }, say);
        },
        (error: unknown) => {
          say(`could not open port ${port}: ${(error as Error).message}`);
          void stop(1);
        },
      );
    }
  };
  child.stdout!.on('data', relay(process.stdout));
  child.stderr!.on('data', relay(process.stderr));
  child.on('exit', (code) => {
    if (!announced) process.stderr.write(banner);
    void stop(code ?? 1);
  });
}

/**
 * After a first start: the full default training (every family, chosen by cross-validation) of the
 * models trained quickly, one after the other in a child process (the console and the API stay
 * responsive), each promoted only if its gates pass, including not being worse than the quick
 * model. Its log goes to a file; one line says how it ended.
 */
function trainInBackground(models: ('churn' | 'nbo')[], env: Record<string, string>, say: (m: string) => void): void {
  const log = resolve(dataDir, 'first-run-training.log');
  const out = openSync(log, 'w');
  say(`training ${models.join(' and ')} in full in the background (a few minutes; log: ${log}); the quick models serve meanwhile`);
  const next = (i: number) => {
    const model = models[i];
    if (!model || stopping) return;
    const child = spawn(resolve(root, 'node_modules/.bin/tsx'), [resolve(root, 'bin/loyalty-ml.ts'), 'train', model, '--promote', 'production'], {
      cwd: root,
      env: { ...process.env, ...env, STAGE: 'local', LOYALTY_ML_ACTOR: 'npm-start' },
      stdio: ['ignore', out, out],
    });
    background = child;
    child.on('exit', (code) => {
      if (stopping) return;
      say(code === 0 ? `background training: ${model} trained in full and promoted to production` : `background training: ${model} kept its quick model (exit ${code}; see ${log})`);
      next(i + 1);
    });
  };
  next(0);
}

/**
 * A first start's history, so the console opens on something to look at: what two months of the
 * scheduled scoring would have left. Each demo segment is scored, the demo moves a month forward
 * (outcomes, offers and responses arrive) and realised quality is measured; then the same again on
 * the new features: two runs per segment and two quality reports per model.
 * Every figure is computed by the service itself from the demo base.
 */
async function demoHistory(cfg: Config, say: (m: string) => void): Promise<void> {
  const app = await createScoringApp(cfg);
  try {
    const handle = await app.warehouse();
    const segments = (await handle.warehouse.listSegments()).map((s) => s.id);
    const invoker = new LocalWorkerInvoker((payload) => app.chunks.score(payload));
    for (let month = 1; month <= 2; month++) {
      for (const segment of segments) {
        const total = await handle.warehouse.countSegmentMembers(segment);
        const progress = new ProgressReporter(processIo, `first run, month ${month}: score-segment ${segment}`);
        const { run } = await app.segments.runHere(segment, SCORE_TYPES, {
          settings: { chunkSize: app.config.segments.chunkSize, concurrency: app.config.segments.concurrency, retries: app.config.segments.retries },
          invoker,
          owner: 'npm-start',
          onProgress: (r) => progress.update(r.progress.customers_scored + r.progress.customers_failed, total),
        });
        if (run.status !== 'completed') say(`first run: ${segment} ended ${run.status}${run.error ? ` (${run.error})` : ''}`);
      }
      const progress = new ProgressReporter(processIo, `first run, month ${month}: demo-data --advance 30d`);
      await advanceDemoData(handle.pool, handle.warehouse.cfg, { months: 1, onProgress: (d, t) => progress.update(d, t) });
      for (const model of ['churn', 'nbo'] as const) {
        const files = new ProgressReporter(processIo, `first run, month ${month}: monitor ${model}: log files`);
        await app.monitoring.report(model, { onProgress: (d, t) => files.update(d, t) });
      }
    }
    say(`first run: ${segments.length} segments scored and realised quality measured, twice, a demo month apart (the console's overview shows them)`);
  } finally {
    await app.close();
  }
}

/** The background training's current child, stopped with everything else. */
let background: ReturnType<typeof spawn> | null = null;
let stopping = false;

/** Fails before any long first-run work when something already listens on the port. */
function assertPortFree(p: number): Promise<void> {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.once('error', () => fail(new Error(`port ${p} is in use (another npm start?); free it or run PORT=3100 npm start`)));
    probe.listen(p, '127.0.0.1', () => probe.close(() => ok()));
  });
}

function examples(port: string): string {
  const base = `http://localhost:${port}/api/loyalty/v1`;
  return `
loyalty-ml is running:

  console        http://localhost:${port}/console/
  API reference  http://localhost:${port}/docs

Try:

  curl -s -X POST ${base}/config/ml/test/ -H 'content-type: application/json' \\
       -d '{"customer_id": "demo-000001", "type": "churn"}'
  curl -s -X POST ${base}/config/ml/test/ -H 'content-type: application/json' \\
       -d '{"customer_ids": ["demo-000001", "demo-000002", "nobody"], "type": "all"}'
  curl -s -X POST ${base}/ml/predict/batch -H 'content-type: application/json' \\
       -d '{"customer_ids": ["demo-000003", "demo-000004"], "type": "nbo"}'
  curl -s ${base}/ml/models
  curl -s -X POST ${base}/segments/high-value/ml/predict/      # then GET the status_url it returns
  curl -s ${base}/segments/high-value/ml/stats/

Ctrl-C stops the API, the console and the embedded warehouse.
`;
}

main().catch((error: unknown) => {
  processIo.err(`start: ${(error as Error).message}`);
  process.exit(1);
});
