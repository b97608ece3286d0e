/**
 * A Serverless Framework plugin (listed in serverless.yml) that fills the `onnxruntime` Lambda
 * layer's folder before packaging: onnxruntime-node's JavaScript and its linux/x64 native binary,
 * and onnxruntime-common, as Lambda's Node runtime finds them (`/opt/nodejs/node_modules`). Only
 * what `require('onnxruntime-node')` loads at run time: no other platforms' binaries, no install
 * script or its dependencies, no TypeScript sources or source maps.
 *
 * The binary alone is 45.8 MB and deflates to 17.5 MB, so a function zip that carries it cannot be
 * small; in one layer it is uploaded once per deploy for the six inference functions, whose zips
 * then hold their own bundle only.
 */
const { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } = require('node:fs');
const { dirname, join, relative } = require('node:path');

const LAYER_DIR = '.layers/onnxruntime';

/** Files of a package kept in the layer: package.json and what its `main` loads. */
const KEEP = {
  'onnxruntime-node': (path) => path === 'package.json' || (path.startsWith('dist/') && path.endsWith('.js')) || path.startsWith('bin/napi-v6/linux/x64/'),
  // dist/cjs/package.json says its files are CommonJS (the package's own is an ES module).
  'onnxruntime-common': (path) => path === 'package.json' || (path.startsWith('dist/cjs/') && (path.endsWith('.js') || path.endsWith('/package.json'))),
};

function files(dir, base = dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path, base) : [relative(base, path).split('\\').join('/')];
  });
}

/** Builds the layer folder under `root` from its node_modules; returns the folder. */
function buildLayer(root) {
  const target = join(root, LAYER_DIR, 'nodejs', 'node_modules');
  rmSync(join(root, LAYER_DIR), { recursive: true, force: true });
  for (const [name, keep] of Object.entries(KEEP)) {
    const source = join(root, 'node_modules', name);
    if (!existsSync(source)) throw new Error(`${name} is not installed (run npm ci): the onnxruntime layer needs it`);
    for (const file of files(source).filter(keep)) {
      mkdirSync(dirname(join(target, name, file)), { recursive: true });
      cpSync(join(source, file), join(target, name, file));
    }
  }
  if (!existsSync(join(target, 'onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1'))) {
    throw new Error('onnxruntime-node has no linux/x64 binary: the onnxruntime layer cannot be built');
  }
  return join(root, LAYER_DIR);
}

class OnnxruntimeLayer {
  constructor(serverless) {
    const build = () => {
      const dir = buildLayer(serverless.config.servicePath);
      serverless.cli.log(`onnxruntime layer: ${relative(serverless.config.servicePath, dir)}`);
    };
    this.hooks = {
      'before:package:createDeploymentArtifacts': build,
      'before:deploy:function:packageFunction': build,
    };
    // Packaging a layer asks CloudFormation for the deployed stack's layer hash, to skip uploading an
    // unchanged layer. Without AWS credentials (packaging only, as in CI) there is no stack to
    // compare with: the layer is packaged as new, as when the stack does not exist.
    for (const plugin of serverless.pluginManager.plugins) {
      if (typeof plugin.compareWithLastLayer !== 'function') continue;
      const compare = plugin.compareWithLastLayer.bind(plugin);
      plugin.compareWithLastLayer = async (name) => {
        try {
          return await compare(name);
        } catch (error) {
          if (error && error.code === 'AWS_CREDENTIALS_NOT_FOUND') return undefined;
          throw error;
        }
      };
    }
  }
}

module.exports = OnnxruntimeLayer;
module.exports.buildLayer = buildLayer;
