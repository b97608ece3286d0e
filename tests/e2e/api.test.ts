import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ModelRegistry } from '../../lib/registry/index';
import { FsObjectStore } from '../../lib/storage/fs';
import { trainFromWarehouse } from '../../lib/training/run';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { publishTiny } from '../support/models';
import { startOffline, type Offline } from '../support/offline';
import { createTestDatabase } from '../support/postgres';
import { tempDir } from '../support/registry';

let offline: Offline;
let warehouse: WarehouseHandle;
let registry: ModelRegistry;
const API = '/api/loyalty/v1';

async function post(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${offline.baseUrl}${API}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

const demo = (n: number) => `demo-${String(n).padStart(6, '0')}`;

beforeAll(async () => {
  const url = await createTestDatabase(inject('postgresUrl'), 'e2e_api');
  warehouse = await openWarehouse(url);
  await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: 3000, seed: 8 });
  // The old warehouse bug, reproduced for a few customers: recency defaulted to 999.
  await warehouse.pool.query(`UPDATE customer_features SET days_since_last_transaction = 999 WHERE customer_id BETWEEN 'demo-002901' AND 'demo-002920'`);
  const registryDir = tempDir();
  registry = new ModelRegistry(new FsObjectStore(registryDir), { actor: 'e2e' });
  for (const model of ['churn', 'nbo']) {
    const outcome = await trainFromWarehouse(model, { registry, warehouse }, { promote: 'production' });
    expect(outcome.promoted).not.toBeNull();
  }
  offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', MODEL_ALIAS_TTL_SECONDS: '1' });
}, 180_000);

afterAll(async () => {
  await offline?.stop();
  await warehouse?.close();
});

describe('the API through serverless-offline', () => {
  it("answers the seed's single-customer request", async () => {
    const { status, body } = await post('/config/ml/test/', { customer_id: demo(1), type: 'churn' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ type: 'churn', mode: 'single', customer_id: demo(1), churn_risk: expect.stringMatching(/^(low|medium|high)$/) });
    expect(body.source).toEqual({ type: 'model', name: 'churn', version: 1, alias: 'production' });
  });

  it("answers the seed's batch request in the seed's format, with partial success", async () => {
    const { status, body } = await post('/config/ml/test', { customer_ids: [demo(1), demo(2), 'customer-uuid-3'], type: 'churn' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ type: 'churn', mode: 'batch', total: 3, successful: 2, failed: 1, warnings: [] });
    expect(body.results.map((r: { customer_id: string }) => r.customer_id)).toEqual([demo(1), demo(2)]);
    expect(body.results[0].result).toMatchObject({ customer_id: demo(1), churn_probability: expect.any(Number), churn_risk: expect.any(String) });
    expect(body.errors).toEqual([{ customer_id: 'customer-uuid-3', error: 'Customer not found in warehouse' }]);
  });

  it('scores nbo, rfm and all three together', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => demo(i + 1));
    const { status, body } = await post('/ml/predict/batch', { customer_ids: ids, type: 'all' });
    expect(status).toBe(200);
    expect(body.successful).toBe(40);
    const first = body.results[0].result;
    expect(first.nbo.offers).toHaveLength(8);
    expect(first.nbo.source).toMatchObject({ type: 'model', name: 'nbo' });
    expect(first.rfm).toMatchObject({ rfm_score: expect.stringMatching(/^[1-5]{3}$/), source: { type: 'rules', name: 'rfm', cut_points: 'quintiles' } });
    const offers = new Set(body.results.map((r: { result: { nbo: { offer_id: string } } }) => r.result.nbo.offer_id));
    const segments = new Set(body.results.map((r: { result: { rfm: { segment: string } } }) => r.result.rfm.segment));
    expect(offers.size).toBeGreaterThan(1);
    expect(segments.size).toBeGreaterThan(2);
    expect(body.warnings).toEqual([]);
  });

  it('refuses a batch of 101 with a 400 saying so', async () => {
    const { status, body } = await post('/ml/predict/batch', { customer_ids: Array.from({ length: 101 }, (_, i) => demo(i + 1)), type: 'rfm' });
    expect(status).toBe(400);
    expect(body.error.message).toMatch(/101 distinct ids; at most 100/);
  });

  it('warns when recency is the 999 default for the whole batch, and not otherwise', async () => {
    const defaulted = Array.from({ length: 20 }, (_, i) => demo(2901 + i));
    const { body } = await post('/ml/predict/batch', { customer_ids: defaulted, type: 'rfm' });
    expect(body.warnings).toEqual([expect.objectContaining({ code: 'defaulted_feature', feature: 'days_since_last_transaction' })]);
    expect(body.results.every((r: { result: { r_score: number } }) => r.result.r_score === 1)).toBe(true);
  });

  it('reports models, and picks up a promotion (a collapsed model is flagged) without a redeploy', async () => {
    const models = (await (await fetch(`${offline.baseUrl}${API}/ml/models`)).json()) as any;
    expect(models.models.map((m: { name: string; production: { checksum_verified: boolean } }) => [m.name, m.production.checksum_verified])).toEqual([
      ['churn', true],
      ['nbo', true],
    ]);

    const collapsed = await publishTiny(registry, 'churn', 'production', { constant: true });
    await new Promise((r) => setTimeout(r, 1500));
    const ids = Array.from({ length: 15 }, (_, i) => demo(i + 100));
    const after = await post('/ml/predict/batch', { customer_ids: ids, type: 'churn' });
    expect(after.body.results[0].result.source.version).toBe(collapsed.version);
    expect(after.body.warnings.map((w: { code: string }) => w.code)).toContain('collapsed_predictions');

    await registry.rollback('churn', 'production');
    await new Promise((r) => setTimeout(r, 1500));
    const restored = await post('/ml/predict/batch', { customer_ids: ids, type: 'churn' });
    expect(restored.body.results[0].result.source.version).toBe(1);
    expect(restored.body.warnings.map((w: { code: string }) => w.code)).not.toContain('collapsed_predictions');
  });

  it('answers malformed requests with 4xx errors, never 5xx', async () => {
    const response = await fetch(`${offline.baseUrl}${API}/ml/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"customer_id": ' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as any).error.code).toBe('invalid_json');
    const unknown = await post('/ml/predict', { customer_id: 'nobody', type: 'churn' });
    expect(unknown.status).toBe(404);
  });
});
