import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { z } from 'zod';
import { LoyaltyError, PayloadTooLargeError, publicMessage, ValidationError, type ErrorCode } from '../errors';
import { logger, observed } from '../observability';

/**
 * The middy stack every HTTP function shares: Powertools' logging, metrics and tracing (as every
 * function has), a body size limit, JSON parsing, validation against a declared schema, and one
 * error handler that turns every failure into `{"error": {"code", "message"}}` with the right
 * status. A 5xx answer carries a fixed sentence per error code: its details go to the log (with the
 * request id), never into the response.
 */
export interface HttpRequest<T> {
  body: T;
  event: APIGatewayProxyEventV2;
  context: Context;
}

export interface HttpResult {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

export function httpHandler<S extends z.ZodType>(
  options: { schema?: S; maxBodyBytes: number; optionalBody?: boolean },
  handle: (request: HttpRequest<z.infer<S>>) => Promise<HttpResult>,
): Handler {
  return observed<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(async (event, context) => {
    // Parsed by the route's own schema, so the handler's body has the schema's type (no schema: none).
    const body = options.schema ? parseBody(event, options.schema, options.maxBodyBytes, options.optionalBody ?? false) : (undefined as z.infer<S>);
    const result = await handle({ body, event, context });
    return json(result.status ?? 200, result.body, result.headers);
  }).use(errorResponses()) as unknown as Handler;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * A path parameter, percent-decoded. Gateways differ in whether they decode path parameters; an
 * undecodable one (a lone `%`) is the caller's mistake, not a 500.
 */
export function pathParam(event: Pick<APIGatewayProxyEventV2, 'pathParameters'>, name: string): string {
  const value = event.pathParameters?.[name];
  if (!value) throw new ValidationError(`Missing path parameter ${name}`, { code: 'invalid_path' });
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ValidationError(`Path parameter ${name} is not valid percent-encoding: ${JSON.stringify(value.slice(0, 80))}`, { code: 'invalid_path' });
  }
}

/**
 * How long a request may take, from the way it arrived. API Gateway's HTTP API cuts an integration
 * at 30 s and answers a bare 503, losing whatever finished; a Lambda function URL waits for the
 * function's own timeout. So: the HTTP API gets `httpApiMs` (28 s by default), a function URL gets
 * `batchMs` (60 s), and never more than the Lambda's remaining time less a second to answer.
 */
export function callerDeadlineMs(
  event: Pick<APIGatewayProxyEventV2, 'requestContext'>,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
  limits: { batchMs: number; httpApiMs: number },
): number {
  const viaFunctionUrl = /\.lambda-url\./.test(event.requestContext?.domainName ?? '');
  const cap = viaFunctionUrl ? limits.batchMs : Math.min(limits.batchMs, limits.httpApiMs);
  return Math.max(100, Math.min(cap, context.getRemainingTimeInMillis() - 1000));
}

/**
 * The request body checked and parsed by `schema`: size limit, JSON, an object, the schema's
 * rules; every failure a 4xx naming what is wrong. An empty body is `{}` where the body is optional.
 */
export function parseBody<S extends z.ZodType>(event: APIGatewayProxyEventV2, schema: S, maxBytes: number, optional: boolean): z.infer<S> {
  const text = bodyText(event);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw new PayloadTooLargeError(`Request body is ${bytes} bytes; the limit is ${maxBytes}`);
  // A body was sent but none arrived: serverless-offline turns a JSON `null` into no body at all.
  if (text.trim() === '' && Number(headerOf(event, 'content-length') ?? 0) > 0) {
    throw new ValidationError('Request body must be a JSON object, got null');
  }
  if (text.trim() === '' && optional) return schema.parse({});
  if (text.trim() === '') throw new ValidationError('Request body is empty; send a JSON object', { code: 'invalid_json' });
  const contentType = headerOf(event, 'content-type');
  if (contentType && !/json/i.test(contentType)) {
    throw new ValidationError(`Content-Type must be application/json, got ${contentType.slice(0, 80)}`, { code: 'unsupported_media_type' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(`Request body is not valid JSON: ${(error as Error).message.slice(0, 120)}`, { code: 'invalid_json' });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ValidationError(`Request body must be a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ValidationError(describeIssues(parsed.error.issues), { code: issueCode(parsed.error.issues) });
  return parsed.data;
}

/**
 * The body as the client sent it. API Gateway hands the function a string (base64 for binary).
 * serverless-offline parses a JSON body before building the event and hands on what it parsed:
 * a falsy value (`false`, `0`) as itself rather than text, and a top-level JSON string as the
 * string's contents. Both are turned back into the JSON the client sent: a non-string by
 * serialising it, a string by quoting it when its quoted form, not its contents, is the byte count
 * the client's Content-Length announced.
 */
export function bodyText(event: Pick<APIGatewayProxyEventV2, 'body' | 'isBase64Encoded' | 'headers'>): string {
  const raw: unknown = event.body;
  if (raw === undefined || raw === null) return '';
  if (typeof raw !== 'string') return JSON.stringify(raw) ?? '';
  if (event.isBase64Encoded) return Buffer.from(raw, 'base64').toString('utf8');
  const announced = Number(headerOf(event as APIGatewayProxyEventV2, 'content-length'));
  if (Number.isInteger(announced) && announced !== Buffer.byteLength(raw, 'utf8')) {
    const quoted = JSON.stringify(raw);
    if (Buffer.byteLength(quoted, 'utf8') === announced) return quoted;
  }
  return raw;
}

function errorResponses(): MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    onError: (request) => {
      const error = request.error;
      if (error instanceof LoyaltyError) {
        if (error.status >= 500) logger.error(`answered ${error.status} ${error.code}`, { error });
        else logger.info(`answered ${error.status} ${error.code}`, { reason: error.message });
        request.response = json(error.status, { error: { code: error.code, message: publicMessage(error) } });
        return;
      }
      logger.error('answered 500: unexpected error', { error });
      request.response = json(500, { error: { code: 'internal_error', message: 'Internal error' } });
    },
  };
}

function headerOf(event: APIGatewayProxyEventV2, name: string): string | undefined {
  for (const [key, value] of Object.entries(event.headers ?? {})) if (key.toLowerCase() === name) return value;
  return undefined;
}

/** A batch of the wrong size keeps its own code (as the service's own check gives it); anything else is invalid_request. */
function issueCode(issues: z.core.$ZodIssue[]): ErrorCode {
  const first = issues[0];
  return first && first.path.length === 1 && first.path[0] === 'customer_ids' && (first.code === 'too_big' || first.code === 'too_small') ? 'invalid_batch_size' : 'invalid_request';
}

function describeIssues(issues: z.core.$ZodIssue[]): string {
  const first = issues[0];
  if (!first) return 'Invalid request';
  const path = first.path.length ? first.path.join('.') : 'body';
  if (first.code === 'unrecognized_keys') return `${path}: unknown field${first.keys.length > 1 ? 's' : ''} ${first.keys.map((k) => `"${k}"`).join(', ')}`;
  return `${path}: ${first.message}`;
}
