import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
  if (process.env.RECORD_API_EXAMPLES) record(key, body);
}

/**
 * `RECORD_API_EXAMPLES=1 npx vitest run tests/e2e/api.test.ts` keeps the smallest real answer per
 * route and status (under 8 KB) in docs/api-examples.json, which `npm run docs:openapi` puts into
 * the document as its examples.
 */
const EXAMPLES_FILE = resolve(import.meta.dirname, '../../docs/api-examples.json');
const recorded = new Map<string, string>();

function record(key: string, body: unknown): void {
  const text = JSON.stringify(body);
  if (text.length > 8192) return;
  const known = recorded.get(key);
  if (known !== undefined && text.length >= known.length) return;
  recorded.set(key, text);
  saveExamples(); // at once: test workers may end without an exit event
}

function saveExamples(): void {
  const existing = existsSync(EXAMPLES_FILE) ? (JSON.parse(readFileSync(EXAMPLES_FILE, 'utf8')) as Record<string, unknown>) : {};
  for (const [key, text] of recorded) {
    const kept = existing[key];
    if (kept === undefined || JSON.stringify(kept).length > text.length) existing[key] = JSON.parse(text);
  }
  const sorted = Object.fromEntries(Object.entries(existing).sort(([a], [b]) => a.localeCompare(b)));
  writeFileSync(EXAMPLES_FILE, `${JSON.stringify(sorted, null, 2)}\n`);
}
