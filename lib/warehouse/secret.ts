import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, WarehouseUnavailableError } from '../errors';

let client: SecretsManagerClient | undefined;

/** The process-wide Secrets Manager client, built once. */
export function defaultSecretsClient(): SecretsManagerClient {
  client ??= new SecretsManagerClient({});
  return client;
}

/** Where the warehouse is and how to trust its certificate. */
export interface WarehouseConnection {
  url: string;
  /** PEM certificate authority for the warehouse's TLS certificate, when it is not publicly trusted. */
  ca: string | undefined;
}

/**
 * Reads the warehouse connection from a Secrets Manager secret, once at cold start. The secret is
 * either `{"url": "postgres://..."}` or the layout RDS and Redshift use for their managed secrets:
 * `{"host", "port", "username", "password", "dbname"}`; either may add `"ca"`, the PEM certificate
 * authority of a warehouse whose certificate is not publicly trusted (a private CA).
 */
export async function warehouseFromSecret(arn: string, sm: SecretsManagerClient = defaultSecretsClient()): Promise<WarehouseConnection> {
  let text: string | undefined;
  try {
    text = (await sm.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString;
  } catch (error) {
    throw new WarehouseUnavailableError(`Could not read the warehouse secret (${(error as Error).name})`, { cause: error });
  }
  let secret: Record<string, unknown>;
  try {
    secret = JSON.parse(text ?? '') as Record<string, unknown>;
  } catch {
    throw new ConfigError('WAREHOUSE_SECRET_ARN: the secret is not JSON');
  }
  const ca = typeof secret.ca === 'string' && secret.ca.includes('BEGIN CERTIFICATE') ? secret.ca : undefined;
  if (typeof secret.url === 'string' && /^postgres(ql)?:\/\//.test(secret.url)) return { url: secret.url, ca };
  const { host, port, username, password, dbname } = secret;
  if (typeof host !== 'string' || typeof username !== 'string' || typeof password !== 'string') {
    throw new ConfigError('WAREHOUSE_SECRET_ARN: the secret needs "url", or "host", "username" and "password" (and "port", "dbname")');
  }
  const db = typeof dbname === 'string' ? dbname : 'dev';
  return { url: `postgres://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${host}:${Number(port ?? 5439)}/${encodeURIComponent(db)}`, ca };
}
