import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { ROUTES } from '../lib/http/contract';
import { json } from '../lib/http/index';
import { Refusal, RouteTable } from '../lib/http/routes';
import { observed } from '../lib/observability';

const table = new RouteTable(ROUTES.filter((r) => !r.local));

/**
 * The HTTP API's `$default` route: every request no route took. API Gateway alone would answer
 * `{"message":"Not Found"}` for a method the path does not have; this answers as the local front
 * door does, 405 with `Allow` or 404, in the API's error shape, never listing the routes. It reads
 * no body, touches no store and no warehouse.
 */
export const handler = observed<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(async (event) => {
  const method = event.requestContext?.http?.method ?? 'GET';
  const path = event.rawPath ?? '/';
  const matched = table.match(method, path);
  // A request that matches a documented route reached here only if the gateway's own matching
  // differs from ours (a case or encoding variant): a 404, never served.
  const refusal = matched instanceof Refusal ? matched : table.notFound(method, path);
  return json(refusal.status, { error: { code: refusal.code, message: refusal.message } }, refusal.headers);
});
