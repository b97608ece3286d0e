import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import fc from 'fast-check';

/**
 * Requests generated from docs/openapi.json itself, for the schema-driven fuzz test: for every
 * operation, path and query parameters and a JSON body drawn from their schemas (patterns, enums,
 * bounds, oneOf), then half of them mutated out of the schema (a wrong type, a missing or unknown
 * field, a value off its pattern or range, a body that is no object). Whether a request is valid
 * is decided by the document's own schemas (ajv), never by the generator, so the server's answers
 * are judged against what the document says.
 */

type Schema = Record<string, unknown>;

interface Operation {
  method: string;
  path: string;
  parameters?: { name: string; in: 'path' | 'query'; required?: boolean; schema: Schema }[];
  requestBody?: { required?: boolean; content: { 'application/json': { schema: Schema } } };
}

export interface FuzzRequest {
  method: string;
  template: string;
  path: string;
  /** undefined: no body sent. */
  body: string | undefined;
  valid: boolean;
  /** What was mutated, for the failure message. */
  mutation: string | null;
}

const DOC = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };
const ajv = new Ajv2020({ strict: false, allErrors: false });
const validators = new Map<Schema, ValidateFunction>();

function validate(schema: Schema, value: unknown): boolean {
  let v = validators.get(schema);
  if (!v) {
    v = ajv.compile({ ...schema, components: DOC.components });
    validators.set(schema, v);
  }
  return v(value);
}

function deref(schema: Schema): Schema {
  let s = schema;
  while (typeof s.$ref === 'string') s = DOC.components.schemas[s.$ref.replace('#/components/schemas/', '')]!;
  return s;
}

/** Values drawn from a schema (mostly valid: bounds and patterns followed; ajv decides). */
export function arbitraryOf(input: Schema, depth = 0): fc.Arbitrary<unknown> {
  const schema = deref(input);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  if (schema.const !== undefined) return fc.constant(schema.const);
  const alternatives = (schema.anyOf ?? (schema.type === undefined ? schema.oneOf : undefined)) as Schema[] | undefined;
  if (alternatives) return fc.oneof(...alternatives.map((a) => arbitraryOf(a, depth + 1)));
  const type = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined];
  if (type.length > 1) return fc.oneof(...type.map((t) => arbitraryOf({ ...schema, type: t }, depth + 1)));
  switch (type[0]) {
    case 'string': {
      const min = (schema.minLength as number | undefined) ?? 0;
      const max = Math.min((schema.maxLength as number | undefined) ?? 40, 40);
      if (typeof schema.pattern === 'string') return fc.stringMatching(new RegExp(schema.pattern)).filter((v) => v.length >= min && v.length <= ((schema.maxLength as number | undefined) ?? Infinity));
      return fc.string({ minLength: min, maxLength: Math.max(min, max) });
    }
    case 'integer':
      return fc.integer({ min: (schema.minimum as number | undefined) ?? -1000, max: (schema.maximum as number | undefined) ?? 1000 });
    case 'number':
      return fc.double({ min: (schema.minimum as number | undefined) ?? -1e6, max: (schema.maximum as number | undefined) ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array': {
      const items = (schema.items as Schema | undefined) ?? {};
      const minLength = (schema.minItems as number | undefined) ?? 0;
      const maxLength = Math.min((schema.maxItems as number | undefined) ?? 5, depth > 2 ? minLength + 1 : 120);
      return fc.array(arbitraryOf(items, depth + 1), { minLength, maxLength: Math.max(minLength, maxLength) });
    }
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set((schema.required as string[] | undefined) ?? []);
      // Fields a oneOf of `required` lists makes exactly one of.
      const choices = ((schema.oneOf as Schema[] | undefined) ?? []).map((o) => (o.required as string[] | undefined) ?? []).filter((r) => r.length);
      const record = fc.record(
        Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, arbitraryOf(v, depth + 1)])),
        { requiredKeys: [...required].filter((k) => k in properties) },
      );
      if (!choices.length) return record;
      return fc.tuple(record, fc.nat(choices.length - 1)).map(([value, pick]) => {
        const out = { ...(value as Record<string, unknown>) };
        choices.forEach((keys, i) => {
          if (i !== pick) for (const k of keys) delete out[k];
        });
        return out;
      });
    }
    default:
      return fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null));
  }
}

/** A value made unlike its schema in one way; ajv says afterwards whether it really left it. */
function mutate(value: unknown, schema: Schema): fc.Arbitrary<{ value: unknown; mutation: string }> {
  const s = deref(schema);
  const options: fc.Arbitrary<{ value: unknown; mutation: string }>[] = [
    fc.constantFrom<unknown>(null, false, 0, 'x', [], [1, 2], 3.5).map((v) => ({ value: v, mutation: `body replaced by ${JSON.stringify(v)}` })),
  ];
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    const keys = Object.keys(props);
    if (keys.length) {
      options.push(
        fc.constantFrom(...keys).chain((k) =>
          fc.oneof(
            fc.constantFrom<unknown>(null, true, -1, 1e9, '', 'UPPER CASE', ' padded ', [], {}, 'x'.repeat(300)).map((v) => ({ value: { ...obj, [k]: v }, mutation: `${k} = ${JSON.stringify(v).slice(0, 40)}` })),
            fc.constant({ value: Object.fromEntries(Object.entries(obj).filter(([key]) => key !== k)), mutation: `${k} removed` }),
            arbitraryOf(props[k]!).chain((inner) => mutate(inner, props[k]!)).map((m) => ({ value: { ...obj, [k]: m.value }, mutation: `${k}: ${m.mutation}` })),
          ),
        ),
      );
    }
    options.push(fc.constant({ value: { ...obj, unexpected_field: 1 }, mutation: 'an unknown field' }));
  }
  if (Array.isArray(value)) {
    options.push(fc.constant({ value: [...value, ...Array.from({ length: 120 }, (_, i) => (value[0] === undefined ? `extra-${i}` : value[i % value.length]))], mutation: 'array grown past its bounds' }));
    options.push(fc.constant({ value: [], mutation: 'array emptied' }));
  }
  if (typeof value === 'string') options.push(fc.constantFrom('', 'Ä bad', '../x', 'x'.repeat(300), 'a b').map((v) => ({ value: v, mutation: `string ${JSON.stringify(v.slice(0, 20))}` })));
  return fc.oneof(...options);
}

/** Path parameter values: drawn from their pattern, or known to exist (the segments, models and runs the test set up). */
function parameterArbitrary(schema: Schema, known: readonly string[]): fc.Arbitrary<string> {
  const drawn = arbitraryOf(schema) as fc.Arbitrary<string>;
  return known.length ? fc.oneof(fc.constantFrom(...known), drawn) : drawn;
}

export interface KnownValues {
  /** Per path parameter name: values that exist in the test's service. */
  params: Record<string, string[]>;
}

/** Requests for every operation of the document, valid and invalid, as ajv judges them against the document. */
export function requestArbitrary(known: KnownValues): fc.Arbitrary<FuzzRequest> {
  const operations = Object.entries(DOC.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ ...op, method: method.toUpperCase(), path })));
  return fc.constantFrom(...operations).chain((op) => {
    const params = op.parameters ?? [];
    const pathParams = params.filter((p) => p.in === 'path');
    const query = params.filter((p) => p.in === 'query');
    const bodySchema = op.requestBody?.content['application/json'].schema;
    const values = fc.record(Object.fromEntries(pathParams.map((p) => [p.name, parameterArbitrary(p.schema, known.params[p.name] ?? [])])));
    const queryValues = fc.record(Object.fromEntries(query.map((p) => [p.name, parameterArbitrary(p.schema, known.params[p.name] ?? [])])), { requiredKeys: [] });
    const body = bodySchema ? arbitraryOf(bodySchema).map((v) => ({ value: v as unknown, sent: true })) : fc.constant({ value: undefined as unknown, sent: false });
    return fc.tuple(values, queryValues, body, fc.nat(9)).chain(([pv, qv, b, roll]) => {
      // Three in ten requests are mutated: a body out of its schema, or a path parameter off its pattern.
      const base = { pv: pv as Record<string, string>, qv: qv as Record<string, string>, body: b };
      if (roll >= 3) return fc.constant({ ...base, mutation: null as string | null });
      if (bodySchema && (roll < 2 || !pathParams.length)) return mutate(b.value, bodySchema).map((m) => ({ ...base, body: { value: m.value, sent: true }, mutation: m.mutation as string | null }));
      if (pathParams.length) {
        return fc.tuple(fc.constantFrom(...pathParams), fc.constantFrom('UPPER', 'with space', '.hidden', '-lead', 'x'.repeat(200), '%', 'é')).map(([p, v]) => ({ ...base, pv: { ...base.pv, [p.name]: v }, mutation: `path ${p.name} = ${JSON.stringify(v.slice(0, 20))}` as string | null }));
      }
      return fc.constant({ ...base, mutation: null as string | null });
    }).map(({ pv, qv, body: b, mutation }) => {
      let valid = true;
      for (const p of pathParams) if (!validate(p.schema, pv[p.name])) valid = false;
      for (const p of query) if (qv[p.name] !== undefined && !validate(p.schema, qv[p.name])) valid = false;
      if (bodySchema && b.sent && !validate(bodySchema, b.value)) valid = false;
      if (bodySchema && !b.sent && op.requestBody?.required) valid = false;
      const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => (pv[name] === '%' ? '%' : encodeURIComponent(pv[name]!)));
      const search = Object.entries(qv).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
      return { method: op.method, template: op.path, path: search ? `${path}?${search}` : path, body: b.sent ? JSON.stringify(b.value) : undefined, valid, mutation };
    });
  });
}
