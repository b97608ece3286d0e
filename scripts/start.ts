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
import { createTrainingApp } from '../lib/app/training';
import { ProgressReporter, processIo, trainingProgress } from '../lib/cli/runtime';
import { DEFAULT_DATA_DIR, loadConfig } from '../lib/config';
import { startConsoleServer, type ConsoleServer } from '../lib/console/server';
import { loadDemoData } from '../lib/warehouse/demo-load';
import { openEmbeddedWarehouse, type EmbeddedServer } from '../lib/warehouse/embedded';

const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(root, process.env.LOYALTY_ML_DATA_DIR ?? DEFAULT_DATA_DIR);
const port = Number(process.env.PORT ?? '3000');

async function main(): Promise<void> {
  const say = (m: string) => processIo.err(`start: ${m}`);
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
  if (customers === 0 && ownWarehouse) {
    say('first run: loading the demo customer base (50,000 customers) into the embedded warehouse');
    const progress = new ProgressReporter(processIo, 'demo-data: customers');
    await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: 50_000, seed: 42, onProgress: (d, t) => progress.update(d, t) });
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
      void startConsoleServer({ port, apiUrl: `http://localhost:${apiPort}`, registry: app.registry, actor: 'console', label: ownRegistry ? 'local' : registryUri, maxBodyBytes: app.config.maxBodyBytes }).then(
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
