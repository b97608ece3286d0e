import { userInfo } from 'node:os';
import { ConfigError } from './errors';

/**
 * Every environment variable the service reads, read once and typed. An invalid value fails at
 * cold start with the variable's name instead of surfacing later as a confusing runtime error.
 */
export interface Config {
  /** Where models live: `s3://bucket/prefix` or a local folder. */
  modelRegistryUri: string;
  /** Where the warehouse connection comes from: a URL, or (deployed stages) a Secrets Manager secret. */
  warehouse: WarehouseSource;
  /** Connections each instance's warehouse pool may open (the connection budget is per instance). */
  warehousePoolSize: number;
  /** JSON file naming the warehouse tables and columns; the bundled models/warehouse.json when unset. */
  warehouseConfigPath: string | undefined;
  /** Who is acting, recorded in manifests and alias history. */
  actor: string;
  /** Deployment stage; `local` (the default) enables development conveniences such as mock mode auto. */
  stage: string;
  /** auto: rule-based answers labelled `mock` when a model has no published version; on: always; off: 503. */
  mockMode: 'auto' | 'on' | 'off';
  /** The alias the API serves (production by default). */
  servingAlias: string;
  /** How long a resolved alias is trusted before it is checked again (a promotion takes effect after this). */
  aliasTtlMs: number;
  /** How long warehouse-wide statistics (RFM quintiles, feature value shares) are cached. */
  profileTtlMs: number;
  /** Batch deadline; never more than the Lambda's remaining time. */
  batchDeadlineMs: number;
  /** Deadline for requests that came through API Gateway's HTTP API, which cuts integrations at 30 s. */
  httpApiDeadlineMs: number;
  /** Most distinct customers in one batch request. */
  batchMaxCustomers: number;
  /** Churn risk bands: below the first is low, from the second on high. */
  churnRiskThresholds: [number, number];
  /** RFM scoring: quintiles of the whole customer base, or the fixed cut points in models/rfm.json. */
  rfmCutPoints: 'quintiles' | 'fixed';
  /** Largest accepted request body. */
  maxBodyBytes: number;
  /** Where segment runs and statistics are kept (the registry's store by default, under segments/). */
  resultsUri: string;
  /** The prediction log (results store, below predictions/) and champion-challenger shadow scoring. */
  predictionLog: {
    enabled: boolean;
    /** Share of single-customer answers logged; batch, legacy batch and segment answers are all logged. */
    singleSampleRate: number;
    /** The challenger's alias, scored beside the served model and logged with shadow: true (null: none). */
    shadowAlias: string | null;
    /** Share of logged batch requests the challenger also scores (segment runs: every customer). */
    shadowSampleRate: number;
  };
  /** Realised quality: how predictions meet their outcomes, and when the scheduled check raises the alarm. */
  monitoring: {
    /** A prediction's churn outcome is the customer's first churn snapshot this many days from its features' date. */
    outcomeHorizonDays: number;
    /** The alarm fires when realised AUC is this far below the version's holdout AUC. */
    aucMargin: number;
    /** Days of the log a report reads when no --since is given (the outcome horizon plus the weeks to report). */
    windowDays: number;
    /** Log files read per day at most; busier days are sampled evenly. */
    maxFilesPerDay: number;
    /** The training function the scheduled check starts when quality drops (null: it only alarms). */
    retrainFunction: string | null;
  };
  segments: {
    chunkSize: number;
    concurrency: number;
    retries: number;
    /** Pause before retry n of a chunk is n times this. */
    retryBackoffMs: number;
    /** How long a planner's claim on a run lasts without a heartbeat; after it a sweeper resumes the run. */
    leaseMs: number;
    /** A run whose planner died (crash, timeout, out of memory) this many times is marked failed instead of resumed. */
    maxPlannerFailures: number;
    workerFunction: string;
    plannerFunction: string;
    /** Segments the nightly schedule scores. */
    scheduled: string[];
    /** Test hook (local and test stages only): injected worker faults, e.g. "fail-once:1,3;fail-always:2". */
    faults: string | undefined;
    /** Rows per FETCH of the run's one warehouse scan (a single-node Redshift cluster allows 1,000). */
    fetchRows: number;
    /** A chunk's features travel in the worker's payload up to this many bytes; larger chunks go as a file. */
    inlinePayloadBytes: number;
    /** Runs of more customers than this take the distributed map (Step Functions) instead of one planner. */
    mapThreshold: number;
    /** The state machine of the distributed map (its ARN); without one (local stages) large runs are mapped in this process. */
    mapStateMachine: string | undefined;
    /** The local distributed map's tolerated failure percentage (the deployed one's is in its definition). */
    mapToleratedFailurePercent: number;
  };
}

/**
 * The warehouse connection's origin. A secret (deployed stages) holds the connection and is always
 * reached over TLS with certificate checks; a URL is used as given (sslmode in the URL).
 */
export type WarehouseSource = { kind: 'secret'; secretArn: string } | { kind: 'url'; url: string };

export const DEFAULT_DATA_DIR = '.data';

/** Stages for development on one machine: the embedded warehouse, mock answers and fault hooks are allowed. */
export const LOCAL_STAGES: readonly string[] = ['local', 'test'];

type Env = Record<string, string | undefined>;

/** Reads the configuration from an environment (process.env by default). */
export function loadConfig(env: Env = process.env): Config {
  const registry = optional(env, 'MODEL_REGISTRY_URI') ?? `${DEFAULT_DATA_DIR}/registry`;
  if (registry.startsWith('s3://')) {
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(registry)) {
      throw new ConfigError(`MODEL_REGISTRY_URI is not a valid s3://bucket/prefix URI: ${registry}`);
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(registry) && !registry.startsWith('file://')) {
    throw new ConfigError(`MODEL_REGISTRY_URI must be s3://bucket/prefix or a local folder, got ${registry}`);
  }

  const stage = optional(env, 'STAGE') ?? 'local';
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(stage)) throw new ConfigError(`STAGE must be a short lowercase name, got "${stage}"`);
  const local = LOCAL_STAGES.includes(stage);
  return {
    modelRegistryUri: registry,
    warehouse: warehouseSource(env, stage, local),
    warehousePoolSize: seconds(env, 'WAREHOUSE_POOL_SIZE', 2, 1, 20),
    warehouseConfigPath: optional(env, 'WAREHOUSE_CONFIG'),
    actor: optional(env, 'LOYALTY_ML_ACTOR') ?? defaultActor(env),
    stage,
    mockMode: oneOf(env, 'ML_MOCK_MODE', ['auto', 'on', 'off'], stage === 'local' ? 'auto' : 'off'),
    servingAlias: optional(env, 'MODEL_ALIAS') ?? 'production',
    aliasTtlMs: seconds(env, 'MODEL_ALIAS_TTL_SECONDS', 60, 0, 86_400) * 1000,
    profileTtlMs: seconds(env, 'PROFILE_TTL_SECONDS', 3600, 0, 7 * 86_400) * 1000,
    batchDeadlineMs: seconds(env, 'BATCH_DEADLINE_SECONDS', 60, 1, 900) * 1000,
    httpApiDeadlineMs: seconds(env, 'HTTP_API_DEADLINE_SECONDS', 28, 1, 29) * 1000,
    batchMaxCustomers: seconds(env, 'BATCH_MAX_CUSTOMERS', 100, 1, 100),
    churnRiskThresholds: riskThresholds(env),
    rfmCutPoints: oneOf(env, 'RFM_CUT_POINTS', ['quintiles', 'fixed'], 'quintiles'),
    maxBodyBytes: seconds(env, 'MAX_BODY_BYTES', 65_536, 1024, 6_000_000),
    resultsUri: optional(env, 'RESULTS_URI') ?? registry,
    predictionLog: {
      enabled: oneOf(env, 'PREDICTION_LOG', ['on', 'off'], 'on') === 'on',
      singleSampleRate: fraction(env, 'PREDICTION_LOG_SINGLE_SAMPLE', 1),
      shadowAlias: shadowAlias(env),
      shadowSampleRate: fraction(env, 'SHADOW_SAMPLE_RATE', 0.1),
    },
    monitoring: {
      outcomeHorizonDays: seconds(env, 'OUTCOME_HORIZON_DAYS', 35, 1, 400),
      aucMargin: fraction(env, 'MONITOR_AUC_MARGIN', 0.05),
      windowDays: seconds(env, 'MONITOR_WINDOW_DAYS', 63, 1, 800),
      maxFilesPerDay: seconds(env, 'MONITOR_MAX_FILES_PER_DAY', 2000, 1, 1_000_000),
      retrainFunction: optional(env, 'MONITOR_RETRAIN_FUNCTION') ?? null,
    },
    segments: {
      chunkSize: seconds(env, 'SEGMENT_CHUNK_SIZE', 1000, 1, 10_000),
      concurrency: seconds(env, 'SEGMENT_CONCURRENCY', 4, 1, 1000),
      retries: seconds(env, 'SEGMENT_CHUNK_RETRIES', 2, 0, 10),
      retryBackoffMs: seconds(env, 'SEGMENT_RETRY_BACKOFF_MS', 1000, 0, 60_000),
      leaseMs: seconds(env, 'SEGMENT_LEASE_SECONDS', 120, 2, 900) * 1000,
      maxPlannerFailures: seconds(env, 'SEGMENT_MAX_PLANNER_FAILURES', 3, 1, 10),
      workerFunction: optional(env, 'SEGMENT_WORKER_FUNCTION') ?? `loyalty-ml-${stage}-segmentWorker`,
      plannerFunction: optional(env, 'SEGMENT_PLANNER_FUNCTION') ?? `loyalty-ml-${stage}-segmentPlanner`,
      scheduled: (optional(env, 'SCHEDULED_SEGMENTS') ?? 'all').split(',').map((s) => s.trim()).filter(Boolean),
      faults: local ? optional(env, 'SEGMENT_WORKER_FAULTS') : undefined,
      fetchRows: seconds(env, 'SEGMENT_FETCH_ROWS', 10_000, 100, 100_000),
      inlinePayloadBytes: seconds(env, 'SEGMENT_INLINE_PAYLOAD_BYTES', 256 * 1024, 0, 6 * 1024 * 1024),
      mapThreshold: seconds(env, 'SEGMENT_MAP_THRESHOLD', 5_000_000, 1, 1_000_000_000),
      mapStateMachine: optional(env, 'SEGMENT_MAP_STATE_MACHINE'),
      mapToleratedFailurePercent: seconds(env, 'SEGMENT_MAP_TOLERATED_FAILURE_PERCENT', 5, 0, 100),
    },
  };
}

/**
 * Local and test stages default to the embedded warehouse. Every other stage must name where its
 * warehouse is, and the embedded one is refused there: a deployed function silently opening an
 * empty local database is how the old system ended up answering from nothing.
 */
function warehouseSource(env: Env, stage: string, local: boolean): WarehouseSource {
  const secretArn = optional(env, 'WAREHOUSE_SECRET_ARN');
  const url = optional(env, 'WAREHOUSE_URL');
  if (url !== undefined && !/^(postgres|postgresql):\/\//.test(url) && !url.startsWith('pglite:')) {
    throw new ConfigError(`WAREHOUSE_URL must be postgres://… or pglite:<folder>, got ${redactUrl(url)}`);
  }
  if (!local && url?.startsWith('pglite:')) {
    throw new ConfigError(`WAREHOUSE_URL is ${url}, but the embedded warehouse (pglite:) is for the local and test stages only; stage "${stage}" reads its warehouse from WAREHOUSE_SECRET_ARN`);
  }
  if (secretArn !== undefined) return { kind: 'secret', secretArn };
  if (url !== undefined) return { kind: 'url', url };
  if (!local) {
    throw new ConfigError(`WAREHOUSE_SECRET_ARN is not set: stage "${stage}" reads its warehouse connection from that Secrets Manager secret (or set WAREHOUSE_URL to a postgres:// URL)`);
  }
  return { kind: 'url', url: `pglite:${DEFAULT_DATA_DIR}/warehouse` };
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

/** A whole number within a range (named seconds for its main use; also counts and sizes). */
function seconds(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

/** A share from 0 to 1. */
function fraction(env: Env, name: string, fallback: number): number {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new ConfigError(`${name} must be a number from 0 to 1, got "${value}"`);
  return n;
}

/** The challenger alias: staging unless SHADOW_ALIAS names another, or `none`. */
function shadowAlias(env: Env): string | null {
  const value = optional(env, 'SHADOW_ALIAS') ?? 'staging';
  if (value === 'none') return null;
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(value)) throw new ConfigError(`SHADOW_ALIAS must be an alias name or "none", got "${value}"`);
  return value;
}

function riskThresholds(env: Env): [number, number] {
  const value = optional(env, 'CHURN_RISK_THRESHOLDS');
  if (value === undefined) return [0.3, 0.6];
  const parts = value.split(',').map((v) => Number(v.trim()));
  if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v) || v <= 0 || v >= 1) || parts[0]! >= parts[1]!) {
    throw new ConfigError(`CHURN_RISK_THRESHOLDS must be two increasing probabilities like "0.3,0.6", got "${value}"`);
  }
  return [parts[0]!, parts[1]!];
}

let cached: Config | undefined;

/** The process-wide configuration, read on first use. */
export function config(): Config {
  cached ??= loadConfig();
  return cached;
}

/** Forget the cached configuration (tests change the environment between cases). */
export function resetConfig(): void {
  cached = undefined;
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function defaultActor(env: Env): string {
  if (env.AWS_LAMBDA_FUNCTION_NAME) return `lambda:${env.AWS_LAMBDA_FUNCTION_NAME}`;
  return `cli:${env.USER ?? env.LOGNAME ?? safeUsername()}`;
}

/** Hides a password in a connection URL before it is printed. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
