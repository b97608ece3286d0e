/**
 * `npm start`: the whole service on this machine. Starts the embedded warehouse (loading the demo
 * customer base on first run), makes sure the local registry has production churn and NBO models
 * (training and promoting them on first run), then runs the API through serverless-offline on
 * port 3000 and prints example requests. Ctrl-C stops everything.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createTrainingApp } from '../lib/app/training';
import { ProgressReporter, processIo } from '../lib/cli/runtime';
import { DEFAULT_DATA_DIR, loadConfig } from '../lib/config';
import { loadDemoData } from '../lib/warehouse/demo-load';
import { openEmbeddedWarehouse } from '../lib/warehouse/embedded';

const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(root, process.env.LOYALTY_ML_DATA_DIR ?? DEFAULT_DATA_DIR);
const port = process.env.PORT ?? '3000';

async function main(): Promise<void> {
  const say = (m: string) => processIo.err(`start: ${m}`);
  const server = await openEmbeddedWarehouse(resolve(dataDir, 'warehouse'));
  if (!server.owned) {
    throw new Error(`another process already serves ${resolve(dataDir, 'warehouse')} (is npm start running elsewhere?)`);
  }
  let child: ReturnType<typeof spawn> | null = null;
  const stop = async (code: number) => {
    if (child && child.exitCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    await server.stop().catch(() => undefined);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const registryUri = resolve(dataDir, 'registry');
  const app = await createTrainingApp(loadConfig({ ...process.env, STAGE: 'local', MODEL_REGISTRY_URI: registryUri, WAREHOUSE_URL: server.url, LOYALTY_ML_ACTOR: 'npm-start' }));
  try {
    const warehouse = await app.warehouse();
    const customers = await warehouse.warehouse.countCustomers().catch(() => 0);
    if (customers === 0) {
      say('first run: loading the demo customer base (50,000 customers) into the embedded warehouse');
      const progress = new ProgressReporter(processIo, 'demo-data: customers');
      await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: 50_000, seed: 42, onProgress: (d, t) => progress.update(d, t) });
    } else say(`embedded warehouse: ${customers.toLocaleString('en-US')} customers`);

    for (const model of ['churn', 'nbo'] as const) {
      const production = await app.registry.getAlias(model, 'production');
      if (production) {
        say(`${model}: serving production v${production.version}`);
        continue;
      }
      say(`first run: training ${model} and promoting it to production`);
      const progress = new ProgressReporter(processIo, `train ${model}`);
      const outcome = await app.training.train({ model, promote: 'production' }, { onProgress: (m) => progress.note(m) });
      if (!outcome.promoted) say(`${model} v${outcome.manifest.version} was refused by its gates: ${outcome.manifest.refusal_reasons.join('; ')}; the API answers ${model} in mock mode`);
    }
  } finally {
    await app.close();
  }

  say(`starting the API on http://localhost:${port} (serverless-offline)`);
  child = spawn(resolve(root, 'node_modules/.bin/osls'), ['offline', 'start', '--stage', 'local'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      STAGE: 'local',
      PORT: port,
      AWS_ENDPOINT_URL_LAMBDA: `http://localhost:${process.env.LAMBDA_PORT ?? '3002'}`,
      WAREHOUSE_URL: server.url,
      MODEL_REGISTRY_URI: registryUri,
      ML_MOCK_MODE: process.env.ML_MOCK_MODE ?? 'auto',
    },
  });
  let announced = false;
  const relay = (target: NodeJS.WriteStream) => (chunk: Buffer) => {
    target.write(chunk);
    if (!announced && chunk.toString().includes('Server ready')) {
      announced = true;
      process.stdout.write(examples(port));
    }
  };
  child.stdout!.on('data', relay(process.stdout));
  child.stderr!.on('data', relay(process.stderr));
  child.on('exit', (code) => void stop(code ?? 1));
}

function examples(port: string): string {
  const base = `http://localhost:${port}/api/loyalty/v1`;
  return `
loyalty-ml is running. Try:

  curl -s -X POST ${base}/config/ml/test/ -H 'content-type: application/json' \\
       -d '{"customer_id": "demo-000001", "type": "churn"}'
  curl -s -X POST ${base}/config/ml/test/ -H 'content-type: application/json' \\
       -d '{"customer_ids": ["demo-000001", "demo-000002", "nobody"], "type": "all"}'
  curl -s -X POST ${base}/ml/predict/batch -H 'content-type: application/json' \\
       -d '{"customer_ids": ["demo-000003", "demo-000004"], "type": "nbo"}'
  curl -s ${base}/ml/models
  curl -s -X POST ${base}/segments/high-value/ml/predict/      # then GET the status_url it returns
  curl -s ${base}/segments/high-value/ml/stats/

Ctrl-C stops the API and the embedded warehouse.
`;
}

main().catch((error: unknown) => {
  processIo.err(`start: ${(error as Error).message}`);
  process.exit(1);
});
