import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { manifestJsonSchema } from '../../lib/registry/manifest';

describe('docs/manifest.schema.json', () => {
  it('is the schema the registry enforces (regenerate with npm run docs:schema)', () => {
    const committed = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../docs/manifest.schema.json'), 'utf8'));
    expect(committed).toEqual(manifestJsonSchema());
  });
});
