import { z } from 'zod';
import { ROUTES, type Route } from './contract';

type JsonSchema = Record<string, unknown>;

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas of `contract.ts` (JSON
 * Schema 2020-12, as OpenAPI 3.1 uses). Named schemas (`.meta({ id })`) become components and are
 * referenced; everything else is inlined. Deterministic: the same code gives the same bytes.
 */
export function openApiDocument(version: string, examples: Record<string, unknown> = {}): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    paths[route.path] ??= {};
    paths[route.path]![route.method] = operation(route, components, examples);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'loyalty-ml',
      version,
      description:
        'Customer scoring for loyalty programmes: churn risk, next best offer (8 offers) and RFM segments, served from a versioned ONNX model registry. Every route is IAM-protected when deployed (SigV4, `execute-api:Invoke`); serverless-offline skips the authorizer locally. Errors are `{"error": {"code", "message"}}`.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: 'http://localhost:3000', description: 'npm start' }],
    security: [{ sigv4: [] }],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { sigv4: { type: 'apiKey', name: 'Authorization', in: 'header', description: 'AWS Signature Version 4 (execute-api)' } },
    },
  };
}

/** `examples` are real answers keyed `METHOD /path status` (docs/api-examples.json, recorded by the end-to-end tests). */
function operation(route: Route, components: Record<string, JsonSchema>, examples: Record<string, unknown>): Record<string, unknown> {
  const parameters: Record<string, unknown>[] = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => {
    const p = route.params?.[m[1]!];
    if (!p) throw new Error(`${route.method} ${route.path}: path parameter ${m[1]} has no pattern`);
    return { name: m[1], in: 'path', required: true, description: p.description, schema: { type: 'string', pattern: p.pattern.source } };
  });
  for (const [name, p] of Object.entries(route.query ?? {})) parameters.push({ name, in: 'query', required: false, description: p.description, schema: { type: 'string', pattern: p.pattern.source } });
  const op: Record<string, unknown> = {
    operationId: operationId(route),
    ...(route.local ? { tags: ['console (local only)'] } : {}),
    summary: route.summary,
    description: route.description,
  };
  if (parameters.length) op.parameters = parameters;
  if (route.request) {
    op.requestBody = { required: !route.requestOptional, content: { 'application/json': { schema: convert(route.request, 'input', components) } } };
  }
  op.responses = Object.fromEntries(
    Object.entries(route.responses).map(([status, r]) => {
      const example = examples[`${route.method.toUpperCase()} ${route.path} ${status}`];
      const content = { schema: convert(r.schema, 'output', components), ...(example === undefined ? {} : { example }) };
      return [status, { description: r.description, content: { 'application/json': content } }];
    }),
  );
  return op;
}

function operationId(route: Route): string {
  const words = route.path
    .replace('/api/loyalty/v1/', '')
    .replace(/^\/console\//, 'console/')
    .split('/')
    .filter(Boolean)
    .map((w) => (w.startsWith('{') ? `by_${w.slice(1, -1)}` : w));
  return [route.method, ...words].join('_').replace(/\W+/g, '_');
}

/** One zod schema as JSON Schema, its named parts moved to `components` and referenced from there. */
function convert(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  // A schema may carry what its refinements enforce for JSON Schema too (`.meta({ openapi: {...} })`, e.g. a oneOf).
  const json = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    target: 'draft-2020-12',
    override: (ctx) => {
      const extra = (ctx.zodSchema as unknown as z.ZodType).meta?.()?.openapi as JsonSchema | undefined;
      if (!extra) return;
      Object.assign(ctx.jsonSchema, extra);
      delete (ctx.jsonSchema as JsonSchema).openapi;
    },
  }) as JsonSchema;
  const defs = (json.$defs ?? {}) as Record<string, JsonSchema>;
  delete json.$defs;
  delete json.$schema;
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (node && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = k === '$ref' && typeof v === 'string' ? v.replace('#/$defs/', '#/components/schemas/') : rewrite(v);
      return out;
    }
    return node;
  };
  for (const [name, def] of Object.entries(defs)) {
    const converted = rewrite(def) as JsonSchema;
    delete converted.id;
    components[name] ??= converted;
  }
  const root = rewrite(json) as JsonSchema;
  const id = root.id;
  if (typeof id === 'string') {
    delete root.id;
    components[id] ??= root;
    return { $ref: `#/components/schemas/${id}` };
  }
  return root;
}
