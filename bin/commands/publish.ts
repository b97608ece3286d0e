import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { FEATURES } from '../../lib/catalog';
import type { CoreApp } from '../../lib/app/core';
import { commandApp, registryOption, warehouseOption } from '../../lib/cli/context';
import { parseCsv } from '../../lib/csv';
import { ValidationError } from '../../lib/errors';
import { BACKGROUND_ROWS, BACKGROUND_SEED, parseBackgroundCsv, type BackgroundRows } from '../../lib/explain/background';
import { parseCommandArgs, UsageError, type Command } from '../../lib/cli/runtime';
import { assertName } from '../../lib/registry/index';
import { publishExternalModel } from '../../lib/training/publish';
import { describeManifest } from './show';

export const publish: Command = {
  name: 'publish',
  summary: 'publish an ONNX model trained elsewhere as a new version',
  usage: `loyalty-ml publish NAME --model FILE.onnx --features a,b,c [options]

Checks that onnxruntime loads the model, that it takes exactly the listed features and that its
outputs are probability tensors, then stores it as the next version of NAME. A scikit-learn model
ending in ZipMap is rewritten to return its probability tensor (recorded in the manifest); models
onnxruntime cannot run (ONNX opset 6 and older) are refused.

Options:
  --model FILE              the .onnx file (required)
  --features LIST           feature names in input order, comma-separated (or --features-file)
  --features-file FILE      a JSON array of feature names, or {"features": [...]} of names or of
                            {"name": ...} objects: models/features.json lists the warehouse's 10
                            features in the order a served churn or nbo model must take them
  --classes LIST            class labels in probability-column order (default: read from the model)
  --probability-output NAME the output holding probabilities (default: the float tensor output)
  --positive-class LABEL    binary models: the class whose probability is reported (default: 2nd)
  --output KIND             multilabel: one independent probability per class (an NBO acceptance
                            model, [n, 8] sigmoid outputs: P(accept | x, offer)); multiclass: one
                            distribution over the classes (softmax). Default: inferred (columns
                            that sum to 1 on every probe row are multiclass, others multilabel)
  --background FILE.csv     the customers its reasons (explain: true) are computed over: a header
                            naming exactly the model's features, one row per customer, empty for
                            missing (a few hundred at most: each costs model runs per answer).
                            Default: 100 customers drawn from the warehouse when the model takes
                            the warehouse's features; otherwise the version has no reasons
  --warehouse URL           the warehouse to draw that background from
  --notes TEXT              free text recorded in the manifest's lineage (e.g. where it was trained)
  --promote ALIAS           also point ALIAS (e.g. staging) at the new version
  --registry URI            registry location (default: MODEL_REGISTRY_URI or .data/registry)
  --json                    print the manifest as JSON`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        model: { type: 'string' },
        features: { type: 'string' },
        'features-file': { type: 'string' },
        classes: { type: 'string' },
        'probability-output': { type: 'string' },
        'positive-class': { type: 'string' },
        output: { type: 'string' },
        notes: { type: 'string' },
        background: { type: 'string' },
        ...warehouseOption,
        promote: { type: 'string' },
        json: { type: 'boolean' },
        ...registryOption,
      },
      { min: 1, max: 1, names: 'NAME' },
    );
    const name = positionals[0]!;
    assertName('model', name);
    if (values.promote !== undefined) assertName('alias', values.promote);
    if (!values.model) throw new UsageError('--model FILE is required');
    if (values.output !== undefined && values.output !== 'multiclass' && values.output !== 'multilabel') throw new UsageError(`--output must be multiclass or multilabel, got "${values.output}"`);
    const features = await readFeatureList(values.features, values['features-file']);
    const bytes = await readInput(values.model, 'model file');
    const app = await commandApp(values);
    try {
      const background = values.background !== undefined ? await readBackground(values.background, features) : await warehouseBackground(app, features);
      const registry = app.registry;
      const manifest = await publishExternalModel(registry, {
        name,
        bytes,
        features,
        output: {
          classes: splitList(values.classes),
          probabilityOutput: values['probability-output'],
          positiveClass: values['positive-class'],
          kind: values.output as 'multiclass' | 'multilabel' | undefined,
        },
        notes: values.notes ?? null,
        background,
      });
      const alias = values.promote ? await registry.promote(name, values.promote, manifest.version, 'published with --promote') : null;
      if (values.json) io.out(JSON.stringify({ manifest, alias }, null, 2));
      else {
        io.out(`Published ${name} v${manifest.version} to ${registry.location}`);
        io.out(describeManifest(manifest));
        if (alias) io.out(`Alias ${alias.alias} -> v${alias.version}`);
      }
    } finally {
      // The warehouse, when a background was drawn from it.
      await app.close().catch(() => undefined);
    }
    return 0;
  },
};

/** A background file: exactly the model's features as columns; a usage error names what is wrong. */
async function readBackground(path: string, features: string[]): Promise<{ rows: BackgroundRows; source: string }> {
  const text = new TextDecoder().decode(await readInput(path, 'background file'));
  try {
    const rows = parseBackgroundCsv(parseCsv(text, `--background ${path}`), features, `--background ${path}`);
    return { rows, source: `${rows.length} rows from ${basename(path)}` };
  } catch (error) {
    if (error instanceof ValidationError) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * Without --background: customers drawn from the warehouse when the model takes the warehouse's
 * features (in any order); otherwise, or when the warehouse cannot be read, no background and why.
 */
async function warehouseBackground(app: CoreApp, features: string[]): Promise<{ rows: BackgroundRows | null; source: string }> {
  const at = features.map((f) => (FEATURES as readonly string[]).indexOf(f));
  if (at.some((i) => i < 0)) return { rows: null, source: 'none: no --background was given and the model does not take the warehouse\'s features' };
  try {
    const handle = await app.warehouse();
    const drawn = await handle.warehouse.sampleFeatures(BACKGROUND_ROWS, BACKGROUND_SEED);
    if (drawn.length === 0) return { rows: null, source: 'none: no --background was given and the warehouse has no customers' };
    return { rows: drawn.map((row) => at.map((i) => row[i]!)), source: `${drawn.length} customers drawn from the warehouse (seed ${BACKGROUND_SEED})` };
  } catch (error) {
    return { rows: null, source: `none: no --background was given and the warehouse could not be read (${error instanceof Error ? error.message.split('\n')[0] : String(error)})` };
  }
}

async function readFeatureList(list: string | undefined, file: string | undefined): Promise<string[]> {
  if (list !== undefined && file !== undefined) throw new UsageError('Give --features or --features-file, not both');
  if (list !== undefined) return splitList(list) ?? [];
  if (file === undefined) throw new UsageError('--features LIST or --features-file FILE is required');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await readInput(file, 'features file')));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`--features-file ${file} is not valid JSON`);
  }
  const names = Array.isArray(json) ? json : (json as { features?: unknown })?.features;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' || (typeof n === 'object' && n && 'name' in n))) {
    throw new UsageError(`--features-file ${file} must hold an array of names or {"features": [...]}`);
  }
  return names.map((n) => (typeof n === 'string' ? n : String((n as { name: unknown }).name)));
}

function splitList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new UsageError(`Cannot read the ${what} ${path}${code === 'ENOENT' ? ': no such file' : code ? ` (${code})` : ''}`);
  }
}
