import { randomUUID } from 'node:crypto';
import { ApiGatewayV2Client, GetIntegrationsCommand, GetRoutesCommand } from '@aws-sdk/client-apigatewayv2';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { LambdaHost } from './lambda-host';

/**
 * API Gateway's HTTP API and a Lambda function URL as the rehearsal's callers see them: a request
 * is matched against the routes deployed in moto, turned into the payload-format-2.0 event API
 * Gateway sends (path parameters decoded, as HTTP APIs do), and given to the integration's
 * function. Like the HTTP API, the gateway cuts an integration at 30 seconds and answers 503 with
 * its own bare body; a function URL waits for the function.
 */
export interface GatewayResponse {
  status: number;
  headers: Record<string, string>;
  body: any;
  /** Milliseconds from request to answer. */
  ms: number;
}

const INTEGRATION_TIMEOUT_MS = 30_000;

export class HttpApiGateway {
  private routes: { method: string; pattern: RegExp; params: string[]; routeKey: string; functionArn: string }[] = [];
  /** The `$default` route's function: every request no route takes. */
  private fallbackArn: string | null = null;

  constructor(
    private readonly host: LambdaHost,
    private readonly options: { apigw: ApiGatewayV2Client; apiId: string; region: string; accountId: string },
  ) {}

  /** Reads the deployed routes and integrations from the API. */
  async load(): Promise<void> {
    const { apigw, apiId } = this.options;
    const integrations = new Map(((await apigw.send(new GetIntegrationsCommand({ ApiId: apiId }))).Items ?? []).map((i) => [i.IntegrationId!, i.IntegrationUri!]));
    const all = (await apigw.send(new GetRoutesCommand({ ApiId: apiId }))).Items ?? [];
    const fallback = all.find((r) => r.RouteKey === '$default');
    this.fallbackArn = fallback ? (integrations.get(fallback.Target!.replace(/^integrations\//, '')) ?? null) : null;
    if (fallback && !this.fallbackArn) throw new Error('route $default has no integration');
    this.routes = all.filter((r) => r !== fallback).map((route) => {
      const [method, path] = route.RouteKey!.split(' ') as [string, string];
      const params: string[] = [];
      const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_, name: string) => (params.push(name), '([^/]+)'))}$`);
      const functionArn = integrations.get(route.Target!.replace(/^integrations\//, ''));
      if (!functionArn) throw new Error(`route ${route.RouteKey} has no integration`);
      return { method, pattern, params, routeKey: route.RouteKey!, functionArn };
    });
  }

  get routeKeys(): string[] {
    return [...this.routes.map((r) => r.routeKey), ...(this.fallbackArn ? ['$default'] : [])].sort();
  }

  /** A request through the HTTP API (path with an optional query string, body as JSON text). */
  async request(method: string, pathAndQuery: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<GatewayResponse> {
    const started = Date.now();
    const [rawPath, rawQuery = ''] = pathAndQuery.split('?') as [string, string?];
    // HTTP APIs match and pass the path decoded.
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      path = rawPath;
    }
    const route = this.routes.find((r) => r.method === method && r.pattern.test(path));
    // No route: the `$default` route's function, or API Gateway's own 404 when there is none.
    const functionArn = route?.functionArn ?? this.fallbackArn;
    if (!functionArn) return { status: 404, headers: {}, body: { message: 'Not Found' }, ms: Date.now() - started };
    const domainName = `${this.options.apiId}.execute-api.${this.options.region}.amazonaws.com`;
    const event = apiEvent({ method, rawPath: path, rawQuery, body, headers, routeKey: route?.routeKey ?? '$default', domainName, apiId: this.options.apiId, accountId: this.options.accountId });
    if (route?.params.length) {
      const values = route.pattern.exec(path)!.slice(1);
      event.pathParameters = Object.fromEntries(route.params.map((p, i) => [p, values[i]!]));
    }
    const outcome = await Promise.race([
      this.host.invoke(functionArn, event).then((o) => ({ kind: 'answered' as const, o })),
      new Promise<{ kind: 'cut' }>((r) => setTimeout(() => r({ kind: 'cut' }), INTEGRATION_TIMEOUT_MS).unref()),
    ]);
    if (outcome.kind === 'cut') return { status: 503, headers: {}, body: { message: 'Service Unavailable' }, ms: Date.now() - started };
    return { ...toResponse(outcome.o), ms: Date.now() - started };
  }

  /** A request to a function's URL (no route matching, no 30-second cut). */
  async functionUrl(functionName: string, urlId: string, method: string, path: string, body?: string): Promise<GatewayResponse> {
    const started = Date.now();
    const domainName = `${urlId}.lambda-url.${this.options.region}.on.aws`;
    const event = apiEvent({ method, rawPath: path, rawQuery: '', body, headers: { 'content-type': 'application/json' }, routeKey: '$default', domainName, apiId: urlId, accountId: this.options.accountId });
    return { ...toResponse(await this.host.invoke(functionName, event)), ms: Date.now() - started };
  }
}

function apiEvent(r: { method: string; rawPath: string; rawQuery: string; body?: string; headers: Record<string, string>; routeKey: string; domainName: string; apiId: string; accountId: string }): APIGatewayProxyEventV2 {
  const now = new Date();
  return {
    version: '2.0',
    routeKey: r.routeKey,
    rawPath: r.rawPath,
    rawQueryString: r.rawQuery,
    headers: { host: r.domainName, 'user-agent': 'loyalty-ml-rehearsal', ...Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), v])) },
    ...(r.rawQuery ? { queryStringParameters: Object.fromEntries(new URLSearchParams(r.rawQuery)) } : {}),
    requestContext: {
      accountId: r.accountId,
      apiId: r.apiId,
      domainName: r.domainName,
      domainPrefix: r.domainName.split('.')[0]!,
      http: { method: r.method, path: r.rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'loyalty-ml-rehearsal' },
      requestId: randomUUID(),
      routeKey: r.routeKey,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
    body: r.body,
    isBase64Encoded: false,
  };
}

function toResponse(outcome: Awaited<ReturnType<LambdaHost['invoke']>>): Omit<GatewayResponse, 'ms'> {
  if (!outcome.ok) return { status: 502, headers: {}, body: { message: 'Internal Server Error' } };
  const result = outcome.result as { statusCode: number; headers?: Record<string, string>; body?: string };
  return { status: result.statusCode, headers: result.headers ?? {}, body: result.body ? JSON.parse(result.body) : null };
}
