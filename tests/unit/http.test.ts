import fc from 'fast-check';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { setScoringApp as setApp, type ScoringApp as App } from '../../lib/app/scoring';
import { aliasKey, ModelRegistry, modelKey } from '../../lib/registry/index';
import { batch, legacy, single } from '../../functions/predict';
import { handler as modelsHandler } from '../../functions/models';
import { customerFeatures, MemoryFeatures, testApp } from '../support/app';
import { publishTiny, tinyModel } from '../support/models';
import { tempFsStore } from '../support/registry';
import { callerDeadlineMs, pathParam } from '../../lib/http/index';

const context = { getRemainingTimeInMillis: () => 65_000, awsRequestId: 'req-1' } as unknown as Context;

function event(body: string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }): APIGatewayProxyEventV2 {
  return { version: '2.0', routeKey: 'POST /x', rawPath: '/x', rawQueryString: '', headers, body, isBase64Encoded: false, requestContext: {} } as unknown as APIGatewayProxyEventV2;
}

async function call(handler: typeof legacy, body: unknown, raw = false) {
  const response = await handler(event(raw ? (body as string) : JSON.stringify(body)), context);
  return { status: response.statusCode!, body: JSON.parse(response.body!) };
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `c${i + 1}`);
let app: App;

beforeAll(async () => {
  const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
  await publishTiny(registry, 'churn');
  await publishTiny(registry, 'nbo');
  app = await testApp({ features: new MemoryFeatures(new Map(ids(150).map((id, i) => [id, customerFeatures(i + 1)]))), registry });
  setApp(app);
});

afterAll(() => setApp(undefined));

describe('the old contract (POST /config/ml/test/)', () => {
  it('answers one customer with the result fields at the top', async () => {
    const { status, body } = await call(legacy, { customer_id: 'c1', type: 'churn' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ type: 'churn', mode: 'single', customer_id: 'c1', churn_risk: expect.stringMatching(/^(low|medium|high)$/), warnings: [] });
    expect(body.churn_probability).toBeGreaterThanOrEqual(0);
  });

  it('answers one customer with all 8 ranked offers for nbo, and nothing internal', async () => {
    const nbo = await call(legacy, { customer_id: 'c3', type: 'nbo' });
    expect(Object.keys(nbo.body).sort()).toEqual(['confidence', 'customer_id', 'mode', 'offer_id', 'offer_name', 'offers', 'source', 'type', 'warnings']);
    expect(nbo.body.offers.map((o: { rank: number }) => o.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(nbo.body.offer_id).toBe(nbo.body.offers[0].offer_id);
    const all = await call(single, { customer_id: 'c3', type: 'all' });
    expect(Object.keys(all.body.nbo).sort()).toEqual(['confidence', 'customer_id', 'offer_id', 'offer_name', 'offers', 'source']);
    expect(all.body.nbo.offers).toHaveLength(8);
  });

  it("answers a batch in exactly the seed's format", async () => {
    const { status, body } = await call(legacy, { customer_ids: ['c1', 'c2', 'customer-uuid-3'], type: 'churn' });
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['duplicates', 'errors', 'failed', 'mode', 'results', 'successful', 'total', 'type', 'warnings']);
    expect(body).toMatchObject({ type: 'churn', mode: 'batch', total: 3, successful: 2, failed: 1 });
    expect(body.results[0]).toEqual({ customer_id: 'c1', result: expect.objectContaining({ customer_id: 'c1', churn_probability: expect.any(Number), churn_risk: expect.any(String) }) });
    expect(body.errors).toEqual([{ customer_id: 'customer-uuid-3', error: 'Customer not found in warehouse' }]);
  });

  it('refuses more than 100 listed ids (duplicates count), and none, with a 400 saying so', async () => {
    const tooMany = await call(legacy, { customer_ids: ids(101), type: 'rfm' });
    expect(tooMany).toEqual({ status: 400, body: { error: { code: 'invalid_batch_size', message: expect.stringMatching(/lists more than 100 ids; at most 100 are allowed per request \(duplicates count\)/) } } });
    expect((await call(batch, { customer_ids: [...ids(90), ...ids(20)], type: 'rfm' })).body.error.code).toBe('invalid_batch_size');
    const none = await call(batch, { customer_ids: [], type: 'rfm' });
    expect(none.status).toBe(400);
    expect(none.body.error.message).toMatch(/empty/);
    const dupes = await call(batch, { customer_ids: [...ids(80), ...ids(20)], type: 'rfm' });
    expect(dupes.status).toBe(200);
    expect(dupes.body.total).toBe(80);
    expect(dupes.body.duplicates).toHaveLength(20);
  });
});

describe('bad input', () => {
  it.each([
    ['malformed JSON', '{"customer_id": "c1", ', 400, 'invalid_json'],
    ['an empty body', '', 400, 'invalid_json'],
    ['a JSON array', '[1,2]', 400, 'invalid_request'],
    ['an unknown type', '{"customer_id": "c1", "type": "weather"}', 400, 'invalid_request'],
    ['a numeric id', '{"customer_id": 7, "type": "churn"}', 400, 'invalid_request'],
    ['both id fields', '{"customer_id": "c1", "customer_ids": ["c2"], "type": "rfm"}', 400, 'invalid_request'],
    ['ids as a string', '{"customer_ids": "c1,c2", "type": "rfm"}', 400, 'invalid_request'],
    ['a body over the size limit', JSON.stringify({ customer_ids: Array(5000).fill('x'.repeat(20)), type: 'rfm' }), 413, 'payload_too_large'],
  ])('%s', async (_, raw, status, code) => {
    const response = await call(legacy, raw, true);
    expect(response.status).toBe(status);
    expect(response.body.error.code).toBe(code);
    expect(typeof response.body.error.message).toBe('string');
  });

  // serverless-offline parses a JSON body before the event is built, and hands on falsy values as
  // themselves and a top-level string as its contents: the client still gets a 400 that names what it sent.
  it.each([
    ['false, as the emulator hands it on', false, '5', /must be a JSON object, got boolean/],
    ['0, as the emulator hands it on', 0, '1', /must be a JSON object, got number/],
    ['the JSON string "x", as its contents', 'x', '3', /must be a JSON object, got string/],
    ['the text x, which is no JSON', 'x', '1', /not valid JSON/],
  ])('%s', async (_, body, length, message) => {
    const response = await legacy({ ...event(undefined, { 'content-type': 'application/json', 'content-length': length }), body: body as string }, context);
    expect(response.statusCode).toBe(400);
    expect(JSON.parse(response.body!).error.message).toMatch(message);
  });

  it('404s one unknown customer', async () => {
    const { status, body } = await call(single, { customer_id: 'nobody', type: 'nbo' });
    expect(status).toBe(404);
    expect(body.error).toEqual({ code: 'customer_not_found', message: 'Customer not found in warehouse: nobody' });
  });

  it('never answers 5xx to thousands of random and malformed bodies', async () => {
    const values = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
      fc.record({ customer_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), type: fc.oneof(fc.constantFrom('churn', 'nbo', 'rfm', 'all'), fc.string()) }).map((v) => JSON.stringify(v)),
      fc.record({ customer_ids: fc.oneof(fc.array(fc.oneof(fc.string(), fc.constantFrom('c1', 'c2', 'c3')), { maxLength: 120 }), fc.jsonValue()), type: fc.constantFrom('churn', 'nbo', 'rfm', 'all', 'x') }).map((v) => JSON.stringify(v)),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    await fc.assert(
      fc.asyncProperty(values, fc.constantFrom(legacy, single, batch), async (raw, handler) => {
        const response = await handler(event(raw), context);
        expect(response.statusCode).toBeLessThan(500);
        const body = JSON.parse(response.body!);
        if (response.statusCode! >= 400) expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
      }),
      { numRuns: 2500 },
    );
  }, 120_000);
});

describe('faults', () => {
  it('turns an unexpected failure into a bare 500 without internals', async () => {
    const spy = vi.spyOn(app.scoring, 'score').mockRejectedValueOnce(new Error('password=hunter2 at /srv/secret.ts:12'));
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const response = await call(single, { customer_id: 'c1', type: 'churn' });
    spy.mockRestore();
    log.mockRestore();
    expect(response).toEqual({ status: 500, body: { error: { code: 'internal_error', message: 'Internal error' } } });
  });
});

describe('GET /ml/models', () => {
  it('reports production versions, checksums and what this instance has loaded', async () => {
    await call(single, { customer_id: 'c1', type: 'churn' });
    const response = await modelsHandler(event(undefined, {}), context);
    const body = JSON.parse(response.body!);
    expect(response.statusCode).toBe(200);
    const churn = body.models.find((m: { name: string }) => m.name === 'churn');
    expect(churn).toMatchObject({ mode: 'model', loaded: true, loaded_version: 1, production: { version: 1, file_exists: true, checksum_verified: true }, staging: null });
    expect(churn.load_ms).toBeGreaterThan(0);
    const nbo = body.models.find((m: { name: string }) => m.name === 'nbo');
    expect(nbo).toMatchObject({ loaded: true, error: null, production: { version: 1, checksum_verified: true } });
  });

  it('reports a corrupt or missing production file without failing the status route', async () => {
    const store = tempFsStore();
    const registry = new ModelRegistry(store, { actor: 'test' });
    await publishTiny(registry, 'churn');
    await publishTiny(registry, 'nbo');
    await store.put(modelKey('churn', 1), new TextEncoder().encode('not the model'));
    await store.delete(modelKey('nbo', 1));
    setApp(await testApp({ features: new MemoryFeatures(new Map()), registry, mockMode: 'off' }));
    try {
      const response = await modelsHandler(event(undefined, {}), context);
      const body = JSON.parse(response.body!);
      expect(response.statusCode).toBe(200);
      const churn = body.models.find((m: { name: string }) => m.name === 'churn');
      const nbo = body.models.find((m: { name: string }) => m.name === 'nbo');
      expect(churn.production).toMatchObject({ file_exists: true, checksum_verified: false, problem: expect.stringMatching(/does not match its manifest/) });
      expect(nbo.production).toMatchObject({ file_exists: false, checksum_verified: false, problem: expect.stringMatching(/model.onnx is missing/) });
      expect(churn).toMatchObject({ mode: 'unavailable', loaded: false });
    } finally {
      setApp(app);
    }
  });

  it('reports "unavailable", not "model", for a verified version this instance cannot load, and names an alias pointing at nothing', async () => {
    const store = tempFsStore();
    const registry = new ModelRegistry(store, { actor: 'test' });
    // A churn model that takes a column the warehouse lacks, promoted before promotion checked it.
    const { bytes, draft } = await tinyModel('churn');
    draft.input.features = draft.input.features.map((f, i) => (i === 0 ? { ...f, name: 'shoe_size' } : f));
    const odd = await registry.publish('churn', bytes, draft);
    await expect(registry.promote('churn', 'production', odd.version)).rejects.toThrow(/cannot be promoted.*takes shoe_size, which the warehouse does not provide/);
    const alias = { schema_version: 1, name: 'churn', alias: 'production', version: odd.version, updated_at: '2026-01-01T00:00:00Z', updated_by: 'old', history: [] };
    await store.put(aliasKey('churn', 'production'), new TextEncoder().encode(JSON.stringify(alias)));
    await store.put(aliasKey('nbo', 'production'), new TextEncoder().encode(JSON.stringify({ ...alias, name: 'nbo', version: 7 })));
    setApp(await testApp({ features: new MemoryFeatures(new Map()), registry, mockMode: 'off' }));
    try {
      const body = JSON.parse((await modelsHandler(event(undefined, {}), context)).body!);
      const churn = body.models.find((m: { name: string }) => m.name === 'churn');
      expect(churn).toMatchObject({ mode: 'unavailable', loaded: false, production: { version: 1, checksum_verified: true } });
      expect(churn.error).toMatch(/needs columns the warehouse does not provide: shoe_size/);
      const nbo = body.models.find((m: { name: string }) => m.name === 'nbo');
      expect(nbo).toMatchObject({ mode: 'unavailable', loaded: false });
      expect(nbo.error).toMatch(/production alias points at a version that does not exist/);
    } finally {
      setApp(app);
    }
  });

  it('says plainly when a model is not published (mock mode off)', async () => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    await publishTiny(registry, 'churn');
    setApp(await testApp({ features: new MemoryFeatures(new Map()), registry, mockMode: 'off' }));
    try {
      const body = JSON.parse((await modelsHandler(event(undefined, {}), context)).body!);
      const nbo = body.models.find((m: { name: string }) => m.name === 'nbo');
      expect(nbo).toMatchObject({ mode: 'unavailable', loaded: false, production: null });
      expect(nbo.error).toMatch(/no production version.*loyalty-ml train nbo --promote production/);
      expect(body.models.find((m: { name: string }) => m.name === 'churn')).toMatchObject({ mode: 'model', loaded: true, error: null });
    } finally {
      setApp(app);
    }
  });
});

describe('how long a request may take', () => {
  const limits = { batchMs: 60_000, httpApiMs: 28_000 };
  const via = (domainName: string) => ({ requestContext: { domainName } }) as unknown as APIGatewayProxyEventV2;
  const remaining = (ms: number) => ({ getRemainingTimeInMillis: () => ms });

  it('stops before API Gateway cuts an HTTP API integration at 30 s', () => {
    expect(callerDeadlineMs(via('abc123.execute-api.eu-west-1.amazonaws.com'), remaining(64_000), limits)).toBe(28_000);
  });

  it('takes the full 60 s through the function URL, never past the Lambda timeout', () => {
    expect(callerDeadlineMs(via('xyz.lambda-url.eu-west-1.on.aws'), remaining(64_000), limits)).toBe(60_000);
    expect(callerDeadlineMs(via('xyz.lambda-url.eu-west-1.on.aws'), remaining(20_000), limits)).toBe(19_000);
  });
});

describe('path parameters', () => {
  it('refuses an undecodable one as the caller\'s mistake (400), not a 500', () => {
    const error = (() => {
      try {
        pathParam({ pathParameters: { id: '%' } }, 'id');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toMatchObject({ status: 400, code: 'invalid_path' });
    expect(pathParam({ pathParameters: { id: 'high%2Dvalue' } }, 'id')).toBe('high-value');
  });
});
