import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../lib/http/openapi';
import { assertMatchesContract } from '../support/openapi';
import { ROUTE_KEYS } from '../support/routes';

const ROOT = resolve(import.meta.dirname, '../..');
const committed = JSON.parse(readFileSync(resolve(ROOT, 'docs/openapi.json'), 'utf8'));
const EXAMPLES = JSON.parse(readFileSync(resolve(ROOT, 'docs/api-examples.json'), 'utf8')) as Record<string, unknown>;

describe('the OpenAPI document', () => {
  it('is what the code generates (run npm run docs:openapi after changing a schema)', () => {
    const { version } = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(openApiDocument(version, EXAMPLES))));
  });

  it('carries a real answer as the example of most routes, each valid against its own schema', () => {
    const keys = Object.keys(EXAMPLES);
    expect(keys.length).toBeGreaterThanOrEqual(10);
    for (const key of keys) {
      const [method, path, status] = key.split(' ') as [string, string, string];
      expect(() => assertMatchesContract(method, path.replace(/\{\w+\}/g, 'x'), Number(status), EXAMPLES[key]), key).not.toThrow();
    }
  });

  it('lists exactly the routes the stack deploys, and the local console\'s own actions apart', () => {
    const operations = Object.entries(committed.paths as Record<string, Record<string, { tags?: string[] }>>).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]) => ({ key: `${m.toUpperCase()} ${path}`, local: op.tags?.includes('console (local only)') ?? false })));
    expect(operations.filter((o) => !o.local).map((o) => o.key).sort()).toEqual([...ROUTE_KEYS].sort());
    expect(operations.filter((o) => o.local).map((o) => o.key)).toEqual(['POST /console/actions/models/{name}/aliases/{alias}']);
  });

  it('catches an answer that breaks it (the check the end-to-end tests run on every answer)', () => {
    const churn = { type: 'churn', mode: 'single', customer_id: 'c1', churn_probability: 0.2, churn_risk: 'low', source: { type: 'model', name: 'churn', version: 1, alias: 'production' }, warnings: [] };
    expect(() => assertMatchesContract('POST', '/api/loyalty/v1/ml/predict', 200, churn)).not.toThrow();
    expect(() => assertMatchesContract('POST', '/api/loyalty/v1/ml/predict', 200, { ...churn, churn_risk: 'extreme' })).toThrow(/does not match docs\/openapi.json/);
    expect(() => assertMatchesContract('POST', '/api/loyalty/v1/ml/predict', 200, { ...churn, source: { type: 'oracle' } })).toThrow(/does not match/);
    expect(() => assertMatchesContract('POST', '/api/loyalty/v1/ml/predict', 418, {})).toThrow(/answered 418, which docs\/openapi.json does not list/);
    expect(() => assertMatchesContract('GET', '/api/loyalty/v1/segments/all/ml/stats/?run_id=x', 404, { error: { code: 'run_not_found', message: 'no' } })).not.toThrow();
    expect(() => assertMatchesContract('GET', '/api/loyalty/v1/nowhere', 200, {})).toThrow(/not in docs\/openapi.json/);
  });

  it('passes openapi-spec-validator', () => {
    const python = ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import openapi_spec_validator'], { stdio: 'ignore' }).status === 0);
    expect(python, 'openapi-spec-validator is not installed for python3: pip install openapi-spec-validator').toBeDefined();
    const result = spawnSync(python!, ['-m', 'openapi_spec_validator', resolve(ROOT, 'docs/openapi.json')], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toContain('OK');
    expect(result.status).toBe(0);
  });
});
