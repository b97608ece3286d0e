import { createHash } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsoleServer, type ConsoleServer } from '../../lib/console/server';
import { apiSigner, regionOfApiUrl } from '../../lib/console/sigv4';
import { ApiGateway, FunctionGate, functionConcurrency } from '../../lib/console/gateway';

/** A stand-in for the deployed API: records what reached it and answers like the API. */
let upstream: Server;
let received: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
let front: ConsoleServer;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.writeHead(req.url!.includes('nobody') ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url!.includes('nobody') ? { error: { code: 'customer_not_found', message: 'no such customer' } } : { ok: true }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const sign = apiSigner({ region: 'eu-west-1', service: 'execute-api', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' } });
  front = await startConsoleServer({ port: 0, apiUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`, sign, label: 'prod' });
});

afterAll(async () => {
  await front.close();
  await new Promise((r) => upstream.close(r));
});

function rawGet(path: string): Promise<number> {
  return new Promise((done, fail) => request(`${front.url}${path}`, (res) => (res.resume(), done(res.statusCode!))).on('error', fail).end());
}

describe("the console's front door for a deployed stage", () => {
  it('passes API calls through, signed with SigV4 for execute-api, body and status intact', async () => {
    received = [];
    const body = JSON.stringify({ customer_ids: ['demo-000001'], type: 'all' });
    const answer = await fetch(`${front.url}/api/loyalty/v1/ml/predict/batch?x=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect([answer.status, await answer.json()]).toEqual([200, { ok: true }]);
    const [seen] = received;
    expect(seen).toMatchObject({ method: 'POST', url: '/api/loyalty/v1/ml/predict/batch?x=1', body });
    expect(seen!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/);
    expect(seen!.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    expect(seen!.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);

    const missing = await fetch(`${front.url}/api/loyalty/v1/segments/nobody/ml/stats/`);
    expect([missing.status, ((await missing.json()) as { error: { code: string } }).error.code]).toEqual([404, 'customer_not_found']);
  });

  it('is read-only without a local registry, and says how to promote instead', async () => {
    const answer = await fetch(`${front.url}/console/actions/models/churn/aliases/production`, { method: 'POST', body: '{"action":"promote","version":2}' });
    const body = (await answer.json()) as { error: { code: string; message: string } };
    expect([answer.status, body.error.code]).toEqual([403, 'read_only']);
    expect(body.error.message).toContain('loyalty-ml promote');
    expect(await (await fetch(`${front.url}/console/settings.json`)).json()).toEqual({ label: 'prod', actions: false, segments: ['all'] });
  });

  it('serves the console, the API reference and the OpenAPI document, and nothing outside them', async () => {
    expect((await fetch(`${front.url}/console/`)).headers.get('content-type')).toContain('text/html');
    expect(await (await fetch(`${front.url}/console/charts.js`)).text()).toContain('export function rocChart');
    expect((await fetch(`${front.url}/console/vendor/uplot.js`)).status).toBe(200);
    expect(await (await fetch(`${front.url}/docs`)).text()).toContain('/api/loyalty/v1/openapi.json');
    const document = (await (await fetch(`${front.url}/api/loyalty/v1/openapi.json`)).json()) as { openapi: string; servers: { url: string }[] };
    expect(document.openapi).toBe('3.1.0');
    // The reference's server is the one it was opened on, whatever port that is.
    expect(document.servers).toEqual([{ url: front.url, description: 'this server' }]);
    expect(await rawGet('/console/%2e%2e/package.json')).toBe(404);
    expect(await rawGet('/console/vendor/..%2f..%2fpackage.json')).toBe(404);
    expect(await rawGet('/elsewhere')).toBe(404);
  });

  it('answers 503 with Retry-After (a documented status), not a hang, when the API does not answer', async () => {
    const dead = await startConsoleServer({ port: 0, apiUrl: 'http://127.0.0.1:9/' });
    try {
      const answer = await fetch(`${dead.url}/api/loyalty/v1/ml/models`);
      expect([answer.status, ((await answer.json()) as { error: { code: string } }).error.code]).toEqual([503, 'api_unreachable']);
      expect(answer.headers.get('retry-after')).toBe('1');
    } finally {
      await dead.close();
    }
  });

  it("finds the region in a deployed API's host name", () => {
    expect(regionOfApiUrl(new URL('https://a1b2c3.execute-api.eu-west-1.amazonaws.com'))).toBe('eu-west-1');
    expect(regionOfApiUrl(new URL('https://abcdef.lambda-url.us-east-2.on.aws/'))).toBe('us-east-2');
    expect(regionOfApiUrl(new URL('http://localhost:3000'))).toBeNull();
  });
});

describe('the front door in front of a local API (what API Gateway and Lambda do when deployed)', () => {
  /** A stand-in for serverless-offline: slow when asked, and able to answer as the emulator does when a function times out. */
  let local: Server;
  let door: ConsoleServer;
  const seen: string[] = [];

  beforeAll(async () => {
    local = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url}`);
        const wait = /"slow"/.test(body) ? 300 : 0;
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          if (/"timeout"/.test(body)) res.end(JSON.stringify({ errorMessage: '[504] - Lambda timeout.', errorType: 'LambdaTimeout', stackTrace: ['at /work/x/node_modules/serverless-offline/src/lambda.js:12'] }));
          else res.end(JSON.stringify({ ok: true, path: req.url }));
        }, wait);
      });
    });
    await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
    const gateway = new ApiGateway({ ...functionConcurrency(), predict: 1 }, { queuePerSlot: 1, maxWaitMs: 5000, retryAfterSeconds: 2 });
    door = await startConsoleServer({ port: 0, apiUrl: `http://127.0.0.1:${(local.address() as AddressInfo).port}/`, console: false, maxBodyBytes: 65_536, gateway });
  });

  afterAll(async () => {
    await door.close();
    await new Promise((r) => local.close(r));
  });

  const post = (path: string, body: string | Buffer) => fetch(`${door.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('answers an undeclared method 405 with Allow, and an unknown path 404 without listing the routes', async () => {
    const wrong = await post('/api/loyalty/v1/ml/models', '{}');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
    const unknown = await fetch(`${door.url}/api/loyalty/v1/nowhere`);
    const text = await unknown.text();
    expect(unknown.status).toBe(404);
    expect(text).not.toContain('/ml/predict');
    expect(JSON.parse(text).error.code).toBe('not_found');
  });

  it('matches a route with or without its trailing slash and forwards it in its own form', async () => {
    seen.length = 0;
    expect((await post('/api/loyalty/v1/config/ml/test', '{"type":"churn","customer_id":"c1"}')).status).toBe(200);
    expect((await post('/api/loyalty/v1/ml/predict/', '{"type":"churn","customer_id":"c1"}')).status).toBe(200);
    expect(seen).toEqual(['POST /api/loyalty/v1/config/ml/test/', 'POST /api/loyalty/v1/ml/predict']);
  });

  it('answers 413 naming the limit at every size, never a connection reset', async () => {
    for (const size of [65_537, 1024 * 1024, 7 * 1024 * 1024]) {
      const answer = await post('/api/loyalty/v1/ml/predict/batch', Buffer.alloc(size, 0x20));
      expect(answer.status, `${size} bytes`).toBe(413);
      expect(((await answer.json()) as { error: { message: string } }).error.message).toBe(`Request body is ${size} bytes; the limit is 65536`);
    }
  });

  it("applies the function's concurrency with a bounded queue: beyond it 429 with Retry-After, nothing more reaches the API", async () => {
    seen.length = 0;
    const answers = await Promise.all(Array.from({ length: 4 }, () => post('/api/loyalty/v1/ml/predict', '{"slow":true}')));
    const statuses = answers.map((a) => a.status).sort();
    // One running, one waiting, two refused at once.
    expect(statuses).toEqual([200, 200, 429, 429]);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_requests');
    expect(seen).toHaveLength(2);
  });

  it("answers the emulator's own error body (a Lambda timeout with a stack trace) 503 with nothing of its internals", async () => {
    const answer = await post('/api/loyalty/v1/ml/predict', '{"timeout":true}');
    const text = await answer.text();
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(text).not.toMatch(/stackTrace|node_modules|Lambda timeout/);
    expect(JSON.parse(text).error.code).toBe('function_unavailable');
  });
});

describe('the function gate', () => {
  it('answers 503 with Retry-After to a request that waited too long for a slot', async () => {
    const gate = new FunctionGate('predictBatch', 1, { queuePerSlot: 5, maxWaitMs: 50, retryAfterSeconds: 3 });
    const leave = await gate.enter();
    await expect(gate.enter()).rejects.toMatchObject({ status: 503, code: 'busy', headers: { 'retry-after': '3' } });
    expect(gate.load).toEqual({ running: 1, waiting: 0 });
    leave();
    leave(); // twice is once
    expect(gate.load).toEqual({ running: 0, waiting: 0 });
  });
});
