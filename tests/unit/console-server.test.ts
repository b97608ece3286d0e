import { createHash } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsoleServer, type ConsoleServer } from '../../lib/console/server';
import { apiSigner, regionOfApiUrl } from '../../lib/console/sigv4';

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
    expect(await (await fetch(`${front.url}/console/settings.json`)).json()).toEqual({ label: 'prod', actions: false });
  });

  it('serves the console, the API reference and the OpenAPI document, and nothing outside them', async () => {
    expect((await fetch(`${front.url}/console/`)).headers.get('content-type')).toContain('text/html');
    expect(await (await fetch(`${front.url}/console/charts.js`)).text()).toContain('export function rocChart');
    expect((await fetch(`${front.url}/console/vendor/uplot.js`)).status).toBe(200);
    expect(await (await fetch(`${front.url}/docs`)).text()).toContain('/api/loyalty/v1/openapi.json');
    expect(((await (await fetch(`${front.url}/api/loyalty/v1/openapi.json`)).json()) as { openapi: string }).openapi).toBe('3.1.0');
    expect(await rawGet('/console/%2e%2e/package.json')).toBe(404);
    expect(await rawGet('/console/vendor/..%2f..%2fpackage.json')).toBe(404);
    expect(await rawGet('/elsewhere')).toBe(404);
  });

  it('answers 502, not a hang, when the API does not answer', async () => {
    const dead = await startConsoleServer({ port: 0, apiUrl: 'http://127.0.0.1:9/' });
    try {
      const answer = await fetch(`${dead.url}/api/loyalty/v1/ml/models`);
      expect([answer.status, ((await answer.json()) as { error: { code: string } }).error.code]).toEqual([502, 'api_unreachable']);
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
