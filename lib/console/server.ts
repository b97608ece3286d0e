import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';
import { z } from 'zod';
import { LoyaltyError, PayloadTooLargeError, publicMessage, ValidationError } from '../errors';
import type { ModelRegistry } from '../registry/index';

/**
 * The operators' front door on one port: the console (`/console/`), the API reference (`/docs`),
 * the OpenAPI document (`/api/loyalty/v1/openapi.json`) and every other `/api/...` request passed
 * through to the API (serverless-offline locally; a deployed stage through `sign`, which adds the
 * operator's SigV4 signature so credentials never reach the browser). With a `registry`, the
 * console may also promote and roll back (`POST /console/actions/...`): only ever on the local
 * registry, never through a deployed API.
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

const ActionSchema = z.strictObject({
  action: z.enum(['promote', 'rollback']),
  version: z.number().int().positive().optional(),
  reason: z.string().max(500).optional(),
});

export async function startConsoleServer(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const server = createServer((req, res) => {
    handle(options, req, res).catch((error: unknown) => sendError(res, error));
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

async function handle(options: ConsoleServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (path === '/' || path === '/console') return redirect(res, '/console/');
  if (path === '/docs' || path === '/docs/') return sendFile(res, join(CONSOLE_DIR, 'docs.html'));
  if (path === '/api/loyalty/v1/openapi.json') return sendFile(res, OPENAPI_FILE);
  if (path === '/console/settings.json') {
    return sendJson(res, 200, { label: options.label ?? 'local', actions: options.registry !== undefined });
  }
  if (path.startsWith('/console/vendor/')) {
    const file = VENDOR[path.slice('/console/vendor/'.length)];
    return file ? sendFile(res, join(ROOT, file)) : sendJson(res, 404, errorBody('not_found', `No such file: ${path}`));
  }
  const action = /^\/console\/actions\/models\/([^/]+)\/aliases\/([^/]+)$/.exec(path);
  if (action && req.method === 'POST') return aliasAction(options, req, res, decodeURIComponent(action[1]!), decodeURIComponent(action[2]!));
  if (path.startsWith('/console/')) {
    const relative = path === '/console/' ? 'index.html' : decodeURIComponent(path.slice('/console/'.length));
    const file = resolve(CONSOLE_DIR, relative);
    if (!file.startsWith(CONSOLE_DIR + sep)) return sendJson(res, 404, errorBody('not_found', `No such file: ${path}`));
    return sendFile(res, file);
  }
  if (path.startsWith('/api/')) return proxy(options, req, res, url);
  sendJson(res, 404, errorBody('not_found', `Nothing at ${path}: try /console/, /docs or /api/loyalty/v1/...`));
}

async function aliasAction(options: ConsoleServerOptions, req: IncomingMessage, res: ServerResponse, name: string, alias: string): Promise<void> {
  if (!options.registry) {
    return sendJson(res, 403, errorBody('read_only', 'This console is read-only: promote and roll back with `npx loyalty-ml promote|rollback` against a deployed registry'));
  }
  const raw = await readBody(req, 16_384);
  let parsed: z.infer<typeof ActionSchema>;
  try {
    parsed = ActionSchema.parse(JSON.parse(raw.toString('utf8') || '{}'));
  } catch (error) {
    throw new ValidationError(`Send {"action": "promote" | "rollback", "version"?: number, "reason"?: string}: ${(error as Error).message}`, { code: 'invalid_request' });
  }
  const reason = parsed.reason ?? `from the console by ${options.actor ?? 'an operator'}`;
  const record =
    parsed.action === 'promote'
      ? await options.registry.promote(name, alias, requireVersion(parsed.version), reason)
      : await options.registry.rollback(name, alias, parsed.version ?? null, reason);
  sendJson(res, 200, record);
}

function requireVersion(version: number | undefined): number {
  if (version === undefined) throw new ValidationError('promote needs a version', { code: 'invalid_request' });
  return version;
}

/** Passes an API request through unchanged (signed for a deployed stage), streaming the answer back. */
async function proxy(options: ConsoleServerOptions, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const body = await readBody(req, 6 * 1024 * 1024);
  const base = new URL(options.apiUrl);
  const target = new URL(url.pathname.replace(/^\//, base.pathname.replace(/\/?$/, '/')) + url.search, base);
  let headers: Record<string, string> = { accept: req.headers.accept ?? 'application/json' };
  if (req.headers['content-type']) headers['content-type'] = req.headers['content-type'];
  if (body.length) headers['content-length'] = String(body.length);
  if (options.sign) headers = await options.sign({ method: req.method ?? 'GET', url: target, headers: { ...headers, host: target.host }, body });
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  await new Promise<void>((done) => {
    const upstream = send(target, { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json', 'cache-control': 'no-store' });
      answer.pipe(res);
      answer.on('end', done);
      answer.on('error', () => done());
    });
    upstream.on('error', () => {
      sendJson(res, 502, errorBody('api_unreachable', `The API at ${base.origin} did not answer; is it running?`));
      done();
    });
    upstream.end(body);
  });
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        fail(new PayloadTooLargeError(`The request body is larger than ${max} bytes`));
        req.destroy();
      } else parts.push(chunk);
    });
    req.on('end', () => ok(Buffer.concat(parts)));
    req.on('error', fail);
  });
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

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof LoyaltyError && error.status < 500) return sendJson(res, error.status, errorBody(error.code, error.message));
  const status = error instanceof LoyaltyError ? error.status : 500;
  const code = error instanceof LoyaltyError ? error.code : 'internal_error';
  sendJson(res, status, errorBody(code, publicMessage(error)));
}
