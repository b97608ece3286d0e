import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { z } from 'zod';
import { LoyaltyError, PayloadTooLargeError, publicMessage, ValidationError } from '../errors';

/**
 * The middy stack every HTTP function shares: body size limit, JSON parsing, validation against a
 * declared schema, and one error handler that turns every failure into
 * `{"error": {"code", "message"}}` with the right status. Unexpected errors become a bare 500:
 * their details go to the log, never into the response.
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
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(errorResponses())
    .use(jsonBody(options.maxBodyBytes, options.schema, options.optionalBody ?? false))
    .handler(async (event, context) => {
      const parsed = (event as unknown as { parsedBody: z.infer<S> }).parsedBody;
      const result = await handle({ body: parsed, event, context });
      return json(result.status ?? 200, result.body, result.headers);
    }) as unknown as Handler;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

function jsonBody(maxBytes: number, schema: z.ZodType | undefined, optional: boolean): MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    name: 'jsonBody',
    before: (request) => {
      const event = request.event;
      if (!schema) return;
      const raw = event.body ?? '';
      const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > maxBytes) throw new PayloadTooLargeError(`Request body is ${bytes} bytes; the limit is ${maxBytes}`);
      if (text.trim() === '' && optional) {
        (event as unknown as { parsedBody: unknown }).parsedBody = schema.parse({});
        return;
      }
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
      const parsed = schema.safeParse(value);
      if (!parsed.success) throw new ValidationError(describeIssues(parsed.error.issues));
      (event as unknown as { parsedBody: unknown }).parsedBody = parsed.data;
    },
  };
}

function errorResponses(): MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    name: 'errorResponses',
    onError: (request) => {
      const error = request.error;
      if (error instanceof LoyaltyError) {
        if (error.status >= 500) logError(request.context, error);
        request.response = json(error.status, { error: { code: error.code, message: publicMessage(error) } });
        return;
      }
      logError(request.context, error);
      request.response = json(500, { error: { code: 'internal_error', message: 'Internal error' } });
    },
  };
}

function logError(context: Context | undefined, error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  const cause = (e as { cause?: unknown }).cause;
  console.error(
    JSON.stringify({
      level: 'error',
      request_id: context?.awsRequestId,
      error: e.name,
      message: e.message,
      cause: cause instanceof Error ? `${cause.name}: ${cause.message}` : undefined,
      stack: e.stack,
    }),
  );
}

function headerOf(event: APIGatewayProxyEventV2, name: string): string | undefined {
  for (const [key, value] of Object.entries(event.headers ?? {})) if (key.toLowerCase() === name) return value;
  return undefined;
}

function describeIssues(issues: z.core.$ZodIssue[]): string {
  const first = issues[0];
  if (!first) return 'Invalid request';
  const path = first.path.length ? first.path.join('.') : 'body';
  return `${path}: ${first.message}`;
}
