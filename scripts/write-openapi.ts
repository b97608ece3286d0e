/** Writes docs/openapi.json from the API's zod schemas (`npm run docs:openapi`); a test checks it is current. */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { openApiDocument } from '../lib/http/openapi';

const root = resolve(import.meta.dirname, '..');
const { version } = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
const examples = JSON.parse(readFileSync(resolve(root, 'docs/api-examples.json'), 'utf8')) as Record<string, unknown>;
writeFileSync(resolve(root, 'docs/openapi.json'), `${JSON.stringify(openApiDocument(version, examples), null, 2)}\n`);
console.log('wrote docs/openapi.json');
