import { userInfo } from 'node:os';
import { ConfigError } from './errors';

/**
 * Every environment variable the service reads, read once and typed. An invalid value fails at
 * cold start with the variable's name instead of surfacing later as a confusing runtime error.
 */
export interface Config {
  /** Where models live: `s3://bucket/prefix` or a local folder. */
  modelRegistryUri: string;
  /** `postgres://…` for a real warehouse, or `pglite:<folder>` for the embedded one. */
  warehouseUrl: string;
  /** JSON file naming the warehouse tables and columns; the bundled models/warehouse.json when unset. */
  warehouseConfigPath: string | undefined;
  /** Who is acting, recorded in manifests and alias history. */
  actor: string;
}

export const DEFAULT_DATA_DIR = '.data';

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

  const warehouseUrl = optional(env, 'WAREHOUSE_URL') ?? `pglite:${DEFAULT_DATA_DIR}/warehouse`;
  if (!/^(postgres|postgresql):\/\//.test(warehouseUrl) && !warehouseUrl.startsWith('pglite:')) {
    throw new ConfigError(`WAREHOUSE_URL must be postgres://… or pglite:<folder>, got ${redactUrl(warehouseUrl)}`);
  }

  return {
    modelRegistryUri: registry,
    warehouseUrl,
    warehouseConfigPath: optional(env, 'WAREHOUSE_CONFIG'),
    actor: optional(env, 'LOYALTY_ML_ACTOR') ?? defaultActor(env),
  };
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
