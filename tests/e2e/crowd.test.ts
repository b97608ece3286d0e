import { readdir, readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { startOffline, type Offline } from '../../devkit/offline';
import { createTestDatabase } from '../../devkit/postgres';
import { ModelRegistry } from '../../lib/registry/index';
import { FsObjectStore } from '../../lib/storage/fs';
import { loadDemoData } from '../../lib/warehouse/demo-load';
import { openWarehouse, type WarehouseHandle } from '../../lib/warehouse/index';
import { publishTiny } from '../support/models';
import { assertMatchesContract } from '../support/openapi';
import { tempDir } from '../support/registry';

/**
 * The crowd: 200 concurrent batch-of-100 requests at a service that has answered nothing yet (every
 * function cold), over loopback. Each must get a documented answer: 200 with the batch contract, or
 * 429/503 with Retry-After from the front door's per-function concurrency limit; never an emulator
 * error, a reset or a 5xx of another kind. The service must answer normally afterwards, and the
 * emulator's memory (all its processes) stays bounded.
 */
vi.setConfig({ testTimeout: 240_000 });

const CALLERS = 200;
const CUSTOMERS = 2_000;
const BATCH = '/api/loyalty/v1/ml/predict/batch';

let offline: Offline;
let warehouse: WarehouseHandle;

beforeAll(async () => {
  const url = await createTestDatabase(inject('postgresUrl'), 'e2e_crowd');
  warehouse = await openWarehouse(url);
  await loadDemoData(warehouse.pool, warehouse.warehouse.cfg, { customers: CUSTOMERS, seed: 5 });
  const registryDir = tempDir();
  const registry = new ModelRegistry(new FsObjectStore(registryDir), { actor: 'crowd' });
  await publishTiny(registry, 'churn');
  await publishTiny(registry, 'nbo', 'production', { acceptance: true });
  offline = await startOffline({ WAREHOUSE_URL: url, MODEL_REGISTRY_URI: registryDir, ML_MOCK_MODE: 'off', PREDICTION_LOG: 'off' });
}, 240_000);

afterAll(async () => {
  await offline?.stop();
  await warehouse?.close();
});

/** Resident memory of every process in a process group, in bytes (Linux /proc). */
async function groupRss(pgid: number): Promise<number> {
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      total += Number(fields[21]) * 4096;
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

const ids = (k: number) => Array.from({ length: 100 }, (_, i) => `demo-${String(((k * 100 + i) % CUSTOMERS) + 1).padStart(6, '0')}`);

interface Answer {
  status: number;
  retryAfter: string | null;
  text: string;
  ms: number;
}

/** One wave of the crowd: every caller at once; checks each answer and prints the wave's figures. */
async function wave(label: string): Promise<{ served: number; peak: number }> {
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await groupRss(offline.pgid));
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const started = performance.now();
  const answers: Answer[] = await Promise.all(
    Array.from({ length: CALLERS }, async (_, k) => {
      const t = performance.now();
      const response = await fetch(`${offline.baseUrl}${BATCH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ customer_ids: ids(k), type: 'all' }),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await response.text();
      return { status: response.status, retryAfter: response.headers.get('retry-after'), text, ms: performance.now() - t };
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  sampling = false;
  await sampler;

  const statuses = new Map<number, number>();
  for (const answer of answers) {
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    const what = `${label} ${answer.status} ${answer.text.slice(0, 300)}`;
    expect([200, 429, 503], what).toContain(answer.status);
    const body = JSON.parse(answer.text) as Record<string, unknown>;
    expect(() => assertMatchesContract('POST', BATCH, answer.status, body), what).not.toThrow();
    if (answer.status === 200) {
      expect(body.successful, what).toBe(100);
    } else {
      expect(Number(answer.retryAfter), what).toBeGreaterThan(0);
      expect(answer.text, what).not.toMatch(/\bat \S+ \(|node_modules|\.[cm]?[jt]s:\d|stack/i);
    }
  }
  const served = statuses.get(200) ?? 0;
  const ms = answers.filter((a) => a.status === 200).map((a) => a.ms).sort((a, b) => a - b);
  const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] ?? NaN;
  process.stderr.write(
    `crowd ${label}: ${CALLERS} callers in ${seconds.toFixed(1)} s; statuses ${JSON.stringify([...statuses.entries()].sort())}; ` +
      `${((served * 100) / seconds).toFixed(0)} customers/s served; p50 ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms of the 200s; ` +
      `peak memory ${(peak / 2 ** 30).toFixed(2)} GiB\n`,
  );
  return { served, peak };
}

describe('the local service under a crowd at cold start', () => {
  it('answers 200 concurrent batch-of-100 requests with documented statuses only, and is up afterwards', async () => {
    const cold = await wave('cold');
    // The concurrency limit lets at least one full wave through, and the queue turns nobody away
    // before a slot could have served them.
    expect(cold.served).toBeGreaterThanOrEqual(20);
    // Bounded memory: the crash came with 10-13 GB; a limit of 20 batch instances stays far below.
    expect(cold.peak).toBeGreaterThan(0);
    expect(cold.peak).toBeLessThan(8 * 2 ** 30);

    // Up afterwards: every function that was in the crowd answers at once.
    const after = await fetch(`${offline.baseUrl}${BATCH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer_ids: ids(0).slice(0, 5), type: 'churn' }) });
    expect(after.status).toBe(200);
    const single = await fetch(`${offline.baseUrl}/api/loyalty/v1/ml/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ customer_id: 'demo-000001', type: 'all' }) });
    expect(single.status).toBe(200);

    // Warm, the same crowd is served in full or turned away only by the documented limit.
    const warm = await wave('warm');
    expect(warm.served).toBeGreaterThanOrEqual(cold.served);
    expect(warm.peak).toBeLessThan(8 * 2 ** 30);
  });
});
