import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { manifestJsonSchema } from '../lib/registry/manifest';

/** Writes docs/manifest.schema.json from the schema the registry enforces. */
writeFileSync(resolve(import.meta.dirname, '../docs/manifest.schema.json'), `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
