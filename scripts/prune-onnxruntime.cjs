/**
 * Runs (through serverless-esbuild's packagerOptions.scripts) in the folder where a function's
 * external dependencies were installed, before zipping: keeps only what onnxruntime-node loads on
 * Lambda (its JavaScript and the linux/x64 native binary), dropping the other platforms' binaries
 * (about 240 MB). Its dependencies stay: the packager checks the installed tree afterwards.
 */
const { existsSync, readdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(process.cwd(), 'node_modules');
const ort = join(root, 'onnxruntime-node');
if (existsSync(ort)) {
  const napi = join(ort, 'bin', 'napi-v6');
  for (const platform of readdirSync(napi)) {
    for (const arch of readdirSync(join(napi, platform))) {
      if (!(platform === 'linux' && arch === 'x64')) rmSync(join(napi, platform, arch), { recursive: true, force: true });
    }
    if (platform !== 'linux') rmSync(join(napi, platform), { recursive: true, force: true });
  }
  for (const extra of ['script', 'lib', 'README.md']) rmSync(join(ort, extra), { recursive: true, force: true });
}
