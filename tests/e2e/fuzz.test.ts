import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { startOffline, type Offline } from '../../devkit/offline';
import { createTestDatabase } from '../../devkit/postgres';
import { startConsoleServer, type ConsoleServer } from '../../lib/console/server';
import { ModelRegistry } from '../../lib/registry/index';
import { FsObjectStore } from '../../lib/storage/fs';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { requestArbitrary, type FuzzRequest } from '../support/fuzz';
import { publishTiny } from '../support/models';
import { assertMatchesContract } from '../support/openapi';
import { tempDir } from '../support/registry';

/**
 * The schema-driven fuzz test: requests generated from docs/openapi.json itself (every operation,
 * valid and mutated, seeded) against the service as `npm run offline` runs it (serverless-offline
 * behind the front door) and the console's own action. It fails on any 5xx, any answer off its
 * documented schema, any request the document calls invalid that the service accepts, and any
 * request the document calls valid that the service refuses as malformed (400).
 */
vi.setConfig({ testTimeout: 300_000 });

let offline: Offline;
let front: ConsoleServer;
let warehouse: WarehouseHandle;
let runId: string;

beforeAll(async () => {
  const url = await createTestDatabase(inject('postgresUrl'), 'e2e_fuzz');
  warehouse = await openWarehouse(url);
  await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: 300, seed: 3 });
  const registryDir = tempDir();
  const registry = new ModelRegistry(new FsObjectStore(registryDir), { actor: 'fuzz' });
  await publishTiny(registry, 'churn');
  await publishTiny(registry, 'nbo', 'production', { acceptance: true });
  offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', PREDICTION_LOG: 'off', SEGMENT_CHUNK_SIZE: '100' });
  front = await startConsoleServer({ port: 0, apiUrl: offline.apiUrl, registry, actor: 'fuzz' });
  const started = (await (await fetch(`${offline.baseUrl}/api/loyalty/v1/segments/new/ml/predict/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { run_id: string };
  runId = started.run_id;
}, 240_000);

afterAll(async () => {
  await front?.close();
  await offline?.stop();
  await warehouse?.close();
});

async function send(request: FuzzRequest): Promise<{ status: number; body: unknown; text: string }> {
  const base = request.template.startsWith('/console/') ? front.url : offline.baseUrl;
  const response = await fetch(`${base}${request.path}`, {
    method: request.method,
    headers: request.body === undefined ? {} : { 'content-type': 'application/json' },
    body: request.body,
  });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body, text };
}

describe('the API under a fuzzer generating from its own document', () => {
  it('never answers 5xx or off its schema, refuses every invalid request, and takes every valid one', async () => {
    const tally = { requests: 0, valid: 0, invalid: 0, statuses: new Map<number, number>() };
    const known = { params: { name: ['churn', 'nbo'], alias: ['staging', 'production'], id: ['all', 'new', 'dormant', 'high-value'], run_id: [runId] } };
    await fc.assert(
      fc.asyncProperty(requestArbitrary(known), async (request) => {
        const answer = await send(request);
        tally.requests++;
        tally[request.valid ? 'valid' : 'invalid']++;
        tally.statuses.set(answer.status, (tally.statuses.get(answer.status) ?? 0) + 1);
        const what = `${request.method} ${request.path} ${request.body?.slice(0, 200) ?? '(no body)'}${request.mutation ? ` [${request.mutation}]` : ''} -> ${answer.status} ${answer.text.slice(0, 300)}`;
        expect(answer.status, what).toBeLessThan(500);
        expect(() => assertMatchesContract(request.method, request.path, answer.status, answer.body), what).not.toThrow();
        if (!request.valid) expect(answer.status, `accepted an invalid request: ${what}`).toBeGreaterThanOrEqual(400);
        else expect(answer.status, `refused a valid request as malformed: ${what}`).not.toBe(400);
      }),
      { numRuns: 1500, seed: 20261206, endOnFailure: true },
    );
    process.stderr.write(`fuzz: ${tally.requests} requests (${tally.valid} valid, ${tally.invalid} invalid); statuses ${JSON.stringify([...tally.statuses.entries()].sort())}\n`);
    expect(tally.valid).toBeGreaterThan(500);
    expect(tally.invalid).toBeGreaterThan(200);
  });
});
