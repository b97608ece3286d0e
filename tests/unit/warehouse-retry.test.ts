import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { WarehouseUnavailableError } from '../../lib/errors';
import { loadWarehouseConfig, Warehouse, type SqlClient } from '../../lib/warehouse/index';

/** A SQL client that fails the first calls with the given errors, then answers. */
function flaky(errors: Error[]): SqlClient & { calls: number } {
  const client = {
    calls: 0,
    async query<R extends pg.QueryResultRow>(): Promise<pg.QueryResult<R>> {
      client.calls++;
      const error = errors.shift();
      if (error) throw error;
      return { rows: [{ customer_id: 'c1', days_since_last_transaction: 3 }] as unknown as R[], rowCount: 1, command: 'SELECT', oid: 0, fields: [] };
    },
  };
  return client;
}

const lost = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

describe('warehouse reads', () => {
  it('are tried once more when the connection was lost', async () => {
    const db = flaky([lost()]);
    const rows = await new Warehouse(db, loadWarehouseConfig()).getFeatures(['c1']);
    expect(db.calls).toBe(2);
    expect(rows.get('c1')!.features[0]).toBe(3);
  });

  it('report a connection lost twice, and SQL errors at once', async () => {
    const twice = flaky([lost(), new Error('Connection terminated unexpectedly')]);
    await expect(new Warehouse(twice, loadWarehouseConfig()).getFeatures(['c1'])).rejects.toBeInstanceOf(WarehouseUnavailableError);
    expect(twice.calls).toBe(2);
    const sql = flaky([Object.assign(new Error('relation "customer_features" does not exist'), { code: '42P01' })]);
    await expect(new Warehouse(sql, loadWarehouseConfig()).getFeatures(['c1'])).rejects.toThrow(/42P01/);
    expect(sql.calls).toBe(1);
  });
});
