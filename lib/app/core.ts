import type { LambdaClient } from '@aws-sdk/client-lambda';
import { config as processConfig, type Config } from '../config';
import { configureObservability, logger, tracer } from '../observability';
import { ModelRegistry } from '../registry/index';
import { defaultLambdaClient, invokeAsync, LambdaPlannerStarter, LambdaWorkerInvoker, StepFunctionsMapStarter } from '../segments/invokers';
import type { PlannerStarter, WorkerInvoker } from '../segments/planner';
import { SegmentRunStore } from '../segments/runs';
import { MonitoringService } from '../services/monitoring';
import { SegmentRunService } from '../services/segment-runs';
import { openObjectStore, type ObjectStore } from '../storage/index';
import { openWarehouse, type WarehouseHandle } from '../warehouse/index';
import { perInstance } from './instance';

/**
 * The composition root: every function, CLI command, the start script and the benchmarks build
 * their app here, from a Config. This module holds what every function needs and nothing that
 * loads onnxruntime, so functions that do no inference (segment planning, run status, statistics,
 * the schedules) ship without it; lib/app/scoring.ts adds inference, lib/app/training.ts training.
 */
export interface CoreApp {
  config: Config;
  registry: ModelRegistry;
  /** Where segment runs, statistics, the prediction log and quality reports are kept. */
  results: ObjectStore;
  runs: SegmentRunStore;
  /** The warehouse, opened on first use (a secret read and a pool), then kept for the instance. */
  warehouse(): Promise<WarehouseHandle>;
  segments: SegmentRunService;
  /** Realised quality of served models: the prediction log against the warehouse's outcomes. */
  monitoring: MonitoringService;
  /** Closes what the app opened (the warehouse pool, an embedded warehouse). */
  close(): Promise<void>;
}

/** Parts a caller supplies instead of building them from the Config (tests, the CLI, benchmarks). */
export interface CoreParts {
  registryStore?: ObjectStore;
  resultsStore?: ObjectStore;
  warehouse?: WarehouseHandle;
  workerInvoker?: WorkerInvoker;
  planners?: PlannerStarter;
  lambdaClient?: LambdaClient;
}

export async function createCoreApp(cfg: Config = processConfig(), parts: CoreParts = {}): Promise<CoreApp> {
  configureObservability({ stage: cfg.stage });
  const [registryStore, resultsStore] = await Promise.all([
    parts.registryStore ?? openObjectStore(cfg.modelRegistryUri),
    parts.resultsStore ?? (cfg.resultsUri === cfg.modelRegistryUri ? undefined : openObjectStore(cfg.resultsUri)),
  ]);
  const registry = new ModelRegistry(registryStore, { actor: cfg.actor });
  const results = resultsStore ?? registryStore;
  const runs = new SegmentRunStore(results);
  const warehouse = lazyWarehouse(cfg, parts.warehouse);
  const lambda = parts.lambdaClient ?? (parts.workerInvoker && parts.planners ? undefined : instrument(defaultLambdaClient()));
  const segments = new SegmentRunService({
    runs,
    warehouse: warehouse.get,
    registry,
    invoker: parts.workerInvoker ?? new LambdaWorkerInvoker(cfg.segments.workerFunction, lambda),
    planners: parts.planners ?? new LambdaPlannerStarter(cfg.segments.plannerFunction, lambda),
    ...(cfg.segments.mapStateMachine ? { map: new StepFunctionsMapStarter(cfg.segments.mapStateMachine, results.location) } : {}),
    settings: cfg.segments,
    quintilesTtlMs: cfg.profileTtlMs,
  });
  const retrainFunction = cfg.monitoring.retrainFunction;
  const monitoring = new MonitoringService({
    results,
    registry,
    warehouse: warehouse.get,
    settings: { ...cfg.monitoring, servingAlias: cfg.servingAlias },
    segments: { runs, ids: cfg.segments.scheduled },
    ...(retrainFunction ? { retrain: (model: string) => invokeAsync(retrainFunction, { model, promote: 'staging' }, lambda ?? instrument(defaultLambdaClient())) } : {}),
  });
  return { config: cfg, registry, results, runs, warehouse: warehouse.get, segments, monitoring, close: warehouse.close };
}

/**
 * The warehouse the Config names, opened on first use: from the Secrets Manager secret (over TLS,
 * with the secret's CA if it has one) or from the URL (the embedded warehouse for `pglite:`).
 * A failed open is tried again on the next use.
 */
function lazyWarehouse(cfg: Config, given: WarehouseHandle | undefined): { get: () => Promise<WarehouseHandle>; close: () => Promise<void> } {
  let opening: Promise<WarehouseHandle> | undefined = given ? Promise.resolve(given) : undefined;
  const open = async (): Promise<WarehouseHandle> => {
    const options = { configPath: cfg.warehouseConfigPath, maxConnections: cfg.warehousePoolSize };
    if (cfg.warehouse.kind === 'url') return openWarehouse(cfg.warehouse.url, options);
    const { defaultSecretsClient, warehouseFromSecret } = await import('../warehouse/secret');
    const connection = await warehouseFromSecret(cfg.warehouse.secretArn, instrument(defaultSecretsClient()));
    logger.info('warehouse connection read from its secret', { tls: true, private_ca: connection.ca !== undefined });
    return openWarehouse(connection.url, { ...options, tls: { ca: connection.ca } });
  };
  return {
    get: () => {
      opening ??= open().catch((error: unknown) => {
        opening = undefined;
        throw error;
      });
      return opening;
    },
    close: async () => {
      const handle = await opening?.catch(() => undefined);
      opening = undefined;
      await handle?.close();
    },
  };
}

const instrumented = new WeakSet<object>();

/** Adds X-Ray subsegments to an AWS SDK client's calls (once per client; nothing when tracing is off). */
export function instrument<T extends object>(client: T): T {
  if (!instrumented.has(client)) {
    instrumented.add(client);
    tracer.captureAWSv3Client(client);
  }
  return client;
}

const instance = perInstance(() => createCoreApp());

/** This instance's core app, created on first use. */
export const coreApp = (): Promise<CoreApp> => instance.get();

/** Replaces this instance's core app (tests inject one built on their own stores). */
export const setCoreApp = (app: CoreApp | undefined): void => instance.set(app);
