import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError, WarehouseUnavailableError } from '../errors';

let client: SecretsManagerClient | undefined;

/**
 * Builds the warehouse URL from a Secrets Manager secret, read once at cold start. The secret is
 * either `{"url": "postgres://..."}` or the layout RDS and Redshift use for their managed secrets:
 * `{"host", "port", "username", "password", "dbname"}`.
 */
export async function warehouseUrlFromSecret(arn: string, sm: SecretsManagerClient = (client ??= new SecretsManagerClient({}))): Promise<string> {
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
  if (typeof secret.url === 'string' && /^postgres(ql)?:\/\//.test(secret.url)) return secret.url;
  const { host, port, username, password, dbname } = secret;
  if (typeof host !== 'string' || typeof username !== 'string' || typeof password !== 'string') {
    throw new ConfigError('WAREHOUSE_SECRET_ARN: the secret needs "url", or "host", "username" and "password" (and "port", "dbname")');
  }
  const db = typeof dbname === 'string' ? dbname : 'dev';
  return `postgres://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${host}:${Number(port ?? 5439)}/${encodeURIComponent(db)}`;
}
