import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { z } from 'zod';
import { LoyaltyError, PayloadTooLargeError, publicMessage, ValidationError, type ErrorCode } from '../errors';
import { AliasActionSchema } from '../http/contract';
import type { ModelRegistry } from '../registry/index';
import { Refusal } from '../http/routes';
import { ApiGateway } from './gateway';

/**
 * The operators' front door on one port: the console (`/console/`), the API reference (`/docs`),
 * the OpenAPI document (`/api/loyalty/v1/openapi.json`) and every other `/api/...` request passed
 * through to the API (serverless-offline locally; a deployed stage through `sign`, which adds the
 * operator's SigV4 signature so credentials never reach the browser). With a `registry`, the
 * console may also promote and roll back (`POST /console/actions/...`): only ever on the local
 * registry, never through a deployed API. In front of serverless-offline (no `sign`) it does what
 * API Gateway and Lambda do when deployed (`gateway.ts`): routes from the contract, 405 and 404,
 * each function's concurrency with a bounded queue, and a body over `maxBodyBytes` answered 413
 * whatever its size. `console: false` serves the API alone (`npm run offline`).
 */
export interface ConsoleServerOptions {
  port: number;
  host?: string;
  /** Where the API answers, e.g. `http://localhost:3001` or a deployed stage's base URL. */
  apiUrl: string;
  /** Signs a request to a deployed API (headers in, headers out). */
  sign?: (request: { method: string; url: URL; headers: Record<string, string>; body: Buffer }) => Promise<Record<string, string>>;
  /** The local registry: enables promote and roll back from the console. */
  registry?: ModelRegistry;
  actor?: string;
  /** What the console says it is looking at ("local", a stage name). */
  label?: string;
  /** The segments the overview shows (their latest runs and trends); default: the scheduled ones, or "all". */
  segments?: string[];
  /** Serve the console and the API reference (default), or only the API (`npm run offline`). */
  console?: boolean;
  /** The largest request body passed on (MAX_BODY_BYTES); larger ones are answered 413 here. */
  maxBodyBytes?: number;
  /** Routes and per-function concurrency in front of a local API (default: the contract's, infra/concurrency.json). */
  gateway?: ApiGateway;
}

export interface ConsoleServer {
  url: string;
  close(): Promise<void>;
}

const ROOT = resolve(import.meta.dirname, '../..');
const CONSOLE_DIR = join(ROOT, 'console');
const OPENAPI_FILE = join(ROOT, 'docs/openapi.json');

/** Files the pages load from npm packages, under fixed names (nothing else of node_modules is served). */
const VENDOR: Record<string, string> = {
  'uplot.js': 'node_modules/uplot/dist/uPlot.iife.min.js',
  'uplot.css': 'node_modules/uplot/dist/uPlot.min.css',
  'swagger-ui.js': 'node_modules/swagger-ui-dist/swagger-ui-bundle.js',
  'swagger-ui.css': 'node_modules/swagger-ui-dist/swagger-ui.css',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Bodies read past the limit only to answer 413 cleanly (not a connection reset); beyond this the connection is closed. */
const DRAIN_LIMIT = 1024 * 1024 * 1024;

export async function startConsoleServer(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const gateway: ApiGateway | null = options.gateway ?? (options.sign ? null : new ApiGateway());
  const server = createServer((req, res) => {
    handle({ ...options, gateway }, req, res).catch((error: unknown) => sendError(res, error));
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port, options.host ?? '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

type Served = Omit<ConsoleServerOptions, 'gateway'> & { gateway: ApiGateway | null };

async function handle(options: Served, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    await drain(req);
    return sendJson(res, 400, errorBody('invalid_path', 'The request target is not a valid path'));
  }
  const path = url.pathname;
  if (path.startsWith('/api/') && path !== '/api/loyalty/v1/openapi.json') return proxy(options, req, res, url);
  if (options.console === false) {
    await drain(req);
    return sendJson(res, 404, errorBody('not_found', `No route ${req.method} ${path.slice(0, 200)}; this serves the API under /api/loyalty/v1/`));
  }
  if (path === '/' || path === '/console') return redirect(res, '/console/');
  if (path === '/docs' || path === '/docs/') return sendFile(res, join(CONSOLE_DIR, 'docs.html'));
  if (path === '/api/loyalty/v1/openapi.json') return sendOpenApi(req, res);
  if (path === '/console/settings.json') {
    return sendJson(res, 200, { label: options.label ?? 'local', actions: options.registry !== undefined, segments: options.segments ?? ['all'] });
  }
  if (path.startsWith('/console/vendor/')) {
    const file = VENDOR[path.slice('/console/vendor/'.length)];
    return file ? sendFile(res, join(ROOT, file)) : sendJson(res, 404, errorBody('not_found', `No such file: ${path}`));
  }
  const action = /^\/console\/actions\/models\/([^/]+)\/aliases\/([^/]+)$/.exec(path);
  if (action) {
    if (req.method !== 'POST') {
      await drain(req);
      return sendJson(res, 405, errorBody('method_not_allowed', `${req.method} is not allowed on ${path.slice(0, 200)}; allowed: POST`), { allow: 'POST' });
    }
    return aliasAction(options, req, res, decodePart(action[1]!), decodePart(action[2]!));
  }
  if (path.startsWith('/console/')) {
    const relative = path === '/console/' ? 'index.html' : decodeURIComponent(path.slice('/console/'.length));
    const file = resolve(CONSOLE_DIR, relative);
    if (!file.startsWith(CONSOLE_DIR + sep)) return sendJson(res, 404, errorBody('not_found', `No such file: ${path}`));
    return sendFile(res, file);
  }
  sendJson(res, 404, errorBody('not_found', `Nothing at ${path.slice(0, 200)}: try /console/, /docs or /api/loyalty/v1/...`));
}

function decodePart(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ValidationError(`Path segment ${JSON.stringify(value.slice(0, 80))} is not valid percent-encoding`, { code: 'invalid_path' });
  }
}

async function aliasAction(options: Served, req: IncomingMessage, res: ServerResponse, name: string, alias: string): Promise<void> {
  if (!options.registry) {
    return sendJson(res, 403, errorBody('read_only', 'This console is read-only: promote and roll back with `npx loyalty-ml promote|rollback` against a deployed registry'));
  }
  const raw = await readBody(req, 16_384);
  let parsed: z.infer<typeof AliasActionSchema>;
  try {
    parsed = AliasActionSchema.parse(JSON.parse(raw.toString('utf8') || '{}'));
  } catch (error) {
    const detail = error instanceof z.ZodError ? error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') : (error as Error).message;
    throw new ValidationError(`Send {"action": "promote" | "rollback", "version"?: number, "reason"?: string}: ${detail}`, { code: 'invalid_request' });
  }
  const reason = parsed.reason ?? `from the console by ${options.actor ?? 'an operator'}`;
  const record =
    parsed.action === 'promote'
      ? await options.registry.promote(name, alias, parsed.version, reason)
      : await options.registry.rollback(name, alias, parsed.version ?? null, reason);
  sendJson(res, 200, record);
}


/**
 * Passes an API request through (signed for a deployed stage), streaming the answer back. In front
 * of a local API it first routes, limits and gates the request (see `gateway.ts`), and answers for
 * the emulator when it fails: an unreachable API, or an error body of its own (a Lambda timeout
 * with a stack trace, answered 200), is a 503 that says nothing of its internals.
 */
async function proxy(options: Served, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const gateway = options.gateway;
  let forwardPath = url.pathname;
  let leave: (() => void) | null = null;
  let gate = null;
  let hasBody = true;
  if (gateway) {
    const matched = gateway.match(req.method ?? 'GET', url.pathname);
    if (matched instanceof Refusal) {
      await drain(req);
      return sendJson(res, matched.status, errorBody(matched.code, matched.message), matched.headers);
    }
    forwardPath = matched.path;
    hasBody = !!matched.route.request;
    gate = gateway.gate(matched.route);
  }
  const limit = options.maxBodyBytes ?? 6 * 1024 * 1024;
  let body: Buffer = Buffer.alloc(0);
  if (hasBody) body = await readBody(req, limit);
  else await drain(req);
  if (gate) {
    try {
      leave = await gate.enter();
    } catch (refusal) {
      if (refusal instanceof Refusal) return sendJson(res, refusal.status, errorBody(refusal.code, refusal.message), refusal.headers);
      throw refusal;
    }
  }
  try {
    await forward(options, req, res, new URL(forwardPath + url.search, 'http://localhost'), body, gateway !== null);
  } finally {
    leave?.();
  }
}

async function forward(options: Served, req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer, local: boolean): Promise<void> {
  const base = new URL(options.apiUrl);
  const target = new URL(url.pathname.replace(/^\//, base.pathname.replace(/\/?$/, '/')) + url.search, base);
  let headers: Record<string, string> = { accept: req.headers.accept ?? 'application/json' };
  if (req.headers['content-type']) headers['content-type'] = req.headers['content-type'];
  if (body.length) headers['content-length'] = String(body.length);
  if (options.sign) headers = await options.sign({ method: req.method ?? 'GET', url: target, headers: { ...headers, host: target.host }, body });
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  await new Promise<void>((done) => {
    const upstream = send(target, { method: req.method, headers }, (answer) => {
      const pass = (text?: Buffer) => {
        const out: Record<string, string> = { 'content-type': answer.headers['content-type'] ?? 'application/json', 'cache-control': 'no-store' };
        for (const h of ['retry-after', 'server-timing', 'allow']) if (typeof answer.headers[h] === 'string') out[h] = answer.headers[h] as string;
        res.writeHead(answer.statusCode ?? 502, out);
        if (text) res.end(text);
        else answer.pipe(res);
      };
      if (!local) {
        pass();
        answer.on('end', done);
        answer.on('error', () => done());
        return;
      }
      // Locally the answer is read whole, to catch the emulator answering with an error of its own.
      const parts: Buffer[] = [];
      answer.on('data', (c: Buffer) => parts.push(c));
      answer.on('error', () => {
        sendJson(res, 503, errorBody('function_unavailable', 'The function did not answer; retry later'), { 'retry-after': '1' });
        done();
      });
      answer.on('end', () => {
        const text = Buffer.concat(parts);
        const status = answer.statusCode ?? 0;
        if (emulatorFailure(status, text)) sendJson(res, 503, errorBody('function_unavailable', 'The function failed or timed out before it answered; retry later (details in the log)'), { 'retry-after': '1' });
        else if (status >= 400 && !ourError(text)) sendJson(res, status, errorBody(status === 413 ? 'payload_too_large' : 'invalid_request', `The request was refused before it reached the function (${status})`));
        else pass(text);
        done();
      });
    });
    upstream.on('error', () => {
      sendJson(res, 503, errorBody('api_unreachable', `The API at ${base.origin} did not answer; is it running?`), { 'retry-after': '1' });
      done();
    });
    upstream.end(body);
  });
}

/**
 * Whether an answer comes from the emulator rather than the function: serverless-offline answers a
 * Lambda timeout or crash with `{"errorMessage", "errorType", "stackTrace"}` (status 200 for HTTP
 * APIs, or 502), and an unknown route with an HTML or text page; the functions always answer JSON
 * with `error` on failure.
 */
function emulatorFailure(status: number, text: Buffer): boolean {
  let body: unknown;
  try {
    body = JSON.parse(text.toString('utf8'));
  } catch {
    return true;
  }
  if (!body || typeof body !== 'object') return true;
  if ('errorMessage' in body || 'stackTrace' in body || 'errorType' in body) return true;
  return status >= 500 && !('error' in body);
}

/** Whether an error answer is the functions' own `{"error": {"code", "message"}}`, not the emulator's. */
function ourError(text: Buffer): boolean {
  try {
    const body = JSON.parse(text.toString('utf8')) as { error?: { code?: unknown; message?: unknown } };
    return typeof body?.error?.code === 'string' && typeof body.error.message === 'string';
  } catch {
    return false;
  }
}

/** The body up to `max` bytes; a larger one is read to its end (not kept) and refused with 413, so the client gets the answer rather than a reset. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) parts.push(chunk);
      else if (size > DRAIN_LIMIT) req.destroy();
    });
    req.on('end', () => (size > max ? fail(new PayloadTooLargeError(`Request body is ${size} bytes; the limit is ${max}`)) : ok(Buffer.concat(parts))));
    req.on('error', fail);
  });
}

/** Reads and drops whatever body came with a request that is answered without it. */
function drain(req: IncomingMessage): Promise<void> {
  return readBody(req, DRAIN_LIMIT).then(
    () => undefined,
    () => undefined,
  );
}

/**
 * The OpenAPI document with this server as its server: the reference's "try it out" calls go to the
 * port it was opened on (`PORT`), and for a deployed stage through this signing console.
 */
function sendOpenApi(req: IncomingMessage, res: ServerResponse): void {
  const document = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as { servers?: unknown };
  const host = req.headers.host;
  if (host) document.servers = [{ url: `http://${host}`, description: 'this server' }];
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-cache' });
  res.end(JSON.stringify(document));
}

function sendFile(res: ServerResponse, file: string): void {
  if (!existsSync(file) || !statSync(file).isFile()) {
    sendJson(res, 404, errorBody('not_found', `No such file: ${file.slice(ROOT.length + 1)}`));
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
  createReadStream(file).pipe(res);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, { location });
  res.end();
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof LoyaltyError && error.status < 500) return sendJson(res, error.status, errorBody(error.code, error.message));
  const status = error instanceof LoyaltyError ? error.status : 500;
  const code = error instanceof LoyaltyError ? error.code : 'internal_error';
  sendJson(res, status, errorBody(code, publicMessage(error)));
}
