import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** The committed OpenAPI document, and a check of any answer against it (by method, path and status). */
const DOC = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs/openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, { responses: Record<string, { content: { 'application/json': { schema: object } } }> }>>;
  components: object;
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
const compiled = new Map<string, ValidateFunction>();

function templateOf(path: string): string | undefined {
  const clean = path.split('?')[0]!;
  return Object.keys(DOC.paths).find((t) => new RegExp(`^${t.replace(/\{\w+\}/g, '[^/]+').replace(/\/$/, '/?')}$`).test(clean));
}

/** Throws, naming every mismatch, when `body` is not what the document promises for this answer. */
export function assertMatchesContract(method: string, path: string, status: number, body: unknown): void {
  const template = templateOf(path);
  if (!template) throw new Error(`${method} ${path} is not in docs/openapi.json`);
  const operation = DOC.paths[template]![method.toLowerCase()];
  if (!operation) throw new Error(`${method} ${template} is not in docs/openapi.json`);
  const response = operation.responses[String(status)];
  if (!response) throw new Error(`${method} ${template} answered ${status}, which docs/openapi.json does not list (${Object.keys(operation.responses).join(', ')})`);
  const key = `${method} ${template} ${status}`;
  let validate = compiled.get(key);
  if (!validate) {
    validate = ajv.compile({ ...response.content['application/json'].schema, components: DOC.components });
    compiled.set(key, validate);
  }
  if (!validate(body)) throw new Error(`${key}: the answer does not match docs/openapi.json: ${ajv.errorsText(validate.errors, { separator: '; ' })}`);
}
