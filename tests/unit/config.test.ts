import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { ConfigError, WarehouseUnavailableError } from '../../lib/errors';
import { warehouseFromSecret } from '../../lib/warehouse/secret';

describe('where the warehouse comes from', () => {
  it('defaults to the embedded warehouse in the local and test stages', () => {
    expect(loadConfig({}).warehouse).toEqual({ kind: 'url', url: 'pglite:.data/warehouse' });
    expect(loadConfig({ STAGE: 'test' }).warehouse.kind).toBe('url');
  });

  it('refuses a deployed stage with no warehouse setting, naming the variable', () => {
    expect(() => loadConfig({ STAGE: 'prod' })).toThrow(ConfigError);
    expect(() => loadConfig({ STAGE: 'prod' })).toThrow(/^WAREHOUSE_SECRET_ARN is not set: stage "prod" reads its warehouse connection from that Secrets Manager secret/);
  });

  it('refuses the embedded warehouse in a deployed stage, even beside a secret', () => {
    expect(() => loadConfig({ STAGE: 'prod', WAREHOUSE_URL: 'pglite:.data/warehouse', WAREHOUSE_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' })).toThrow(
      /^WAREHOUSE_URL is pglite:\.data\/warehouse, but the embedded warehouse \(pglite:\) is for the local and test stages only/,
    );
  });

  it('takes the secret in a deployed stage (its connection then goes over TLS)', () => {
    const cfg = loadConfig({ STAGE: 'prod', WAREHOUSE_URL: '', WAREHOUSE_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' });
    expect(cfg.warehouse).toEqual({ kind: 'secret', secretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' });
  });
});

describe('the warehouse secret', () => {
  const sm = mockClient(SecretsManagerClient);
  const client = new SecretsManagerClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  afterEach(() => sm.reset());

  it('builds the connection from the layout RDS and Redshift use, with a private CA when it has one', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ host: 'dw.example', port: 5439, username: 'ml user', password: 'p@ss/word', dbname: 'dw', ca }) });

    const connection = await warehouseFromSecret('arn:x', client);

    expect(connection).toEqual({ url: 'postgres://ml%20user:p%40ss%2Fword@dw.example:5439/dw', ca });
  });

  it('says plainly when the secret cannot be read or holds no connection', async () => {
    sm.on(GetSecretValueCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await expect(warehouseFromSecret('arn:x', client)).rejects.toThrow(WarehouseUnavailableError);
    sm.reset();
    sm.on(GetSecretValueCommand).resolves({ SecretString: '{"host": "set-me"}' });
    await expect(warehouseFromSecret('arn:x', client)).rejects.toThrow(/needs "url", or "host", "username" and "password"/);
  });
});
