/**
 * `npm run build:kernels`: compiles lib/training/gbt-kernels.wat into lib/training/gbt-kernels.ts
 * (the WebAssembly bytes, base64), which the trainer loads. A test fails when the two disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { compileKernels, kernelsModuleSource } from './kernels';

const root = resolve(import.meta.dirname, '..');
const wat = readFileSync(resolve(root, 'lib/training/gbt-kernels.wat'), 'utf8');
writeFileSync(resolve(root, 'lib/training/gbt-kernels.ts'), kernelsModuleSource(await compileKernels(wat)));
process.stderr.write('build:kernels: lib/training/gbt-kernels.ts written\n');
