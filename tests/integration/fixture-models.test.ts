import { describe, expect, it } from 'vitest';
import { ModelRejectedError } from '../../lib/errors';
import { createSession, ort } from '../../lib/inference/session';
import { prepareModel } from '../../lib/inference/validate';
import { ModelRegistry } from '../../lib/registry/index';
import { publishExternalModel } from '../../lib/training/publish';
import { onnxFixture, onnxFixtures, type OnnxFixture, type TensorVector } from '../support/fixtures';
import { tempFsStore } from '../support/registry';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** What each foreign model must do: publish and reproduce its outputs, or be refused with a reason. */
const EXPECTED: Record<string, { refused?: RegExp }> = {
  keras_bank_churn_mlp: {},
  pytorch_linear_legacy: { refused: /opset 6.*Re-export/s },
  sklearn_gbt_binary_treecl2: {},
  sklearn_gbt_treecl: {},
  sklearn_lightgbm_iris: {},
  sklearn_logreg_iris: {},
  sklearn_rf_iris: {},
  sklearn_titanic_pipeline_nozipmap: {},
  sklearn_titanic_pipeline_zipmap: {},
  sklearn_tree_treecl3: { refused: /does not hold probabilities.*raw scores/s },
  sklearn_xgboost_iris: {},
};

/** The feature list a publisher would give: one name per column, or the input names. */
function featureNames(fixture: OnnxFixture): string[] {
  const inputs = Object.entries(fixture.vectors.inputs);
  if (inputs.length > 1) return inputs.map(([name]) => name);
  if (fixture.vectors.raw_features) return fixture.vectors.raw_features.columns;
  const width = inputs[0]![1].dims[1]!;
  return Array.from({ length: width }, (_, i) => `f${i}`);
}

function tensorOf(v: TensorVector): ort.Tensor {
  switch (v.type) {
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from(v.data.map((x) => (x === null ? NaN : Number(x)))), v.dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(v.data.map((x) => BigInt(x as number))), v.dims);
    case 'string':
      return new ort.Tensor('string', v.data.map(String), v.dims);
    default:
      throw new Error(`fixture input type ${v.type}`);
  }
}

/** Expected probabilities as a row-major matrix in the manifest's class order. */
function expectedMatrix(v: TensorVector, classes: string[]): number[] {
  if (v.type.startsWith('seq(map')) return (v.data as Record<string, number>[]).flatMap((row) => classes.map((c) => row[c]!));
  return v.data as number[];
}

describe('foreign ONNX models from tests/fixtures/onnx', () => {
  const fixtures = onnxFixtures();

  it('covers every fixture folder', () => {
    expect(fixtures.map((f) => f.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s publishes and reproduces its outputs, or is refused clearly', async (name, fixture) => {
    const registry = new ModelRegistry(tempFsStore(), { actor: 'test' });
    const expectation = EXPECTED[name]!;

    const attempt = publishExternalModel(registry, { name: 'model', bytes: fixture.bytes, features: featureNames(fixture) });

    if (expectation.refused) {
      await expect(attempt).rejects.toBeInstanceOf(ModelRejectedError);
      await expect(attempt).rejects.toThrow(expectation.refused);
      expect(await registry.listVersions('model')).toEqual([]);
      return;
    }
    const manifest = await attempt;
    const { bytes } = await registry.readModel('model', manifest.version);
    const session = await createSession(bytes);
    const feeds = Object.fromEntries(Object.entries(fixture.vectors.inputs).map(([n, v]) => [n, tensorOf(v)]));
    const outputs = await session.run(feeds);

    const probability = outputs[manifest.output.probability_tensor]!;
    const expected = fixture.vectors.expected[manifest.output.probability_tensor]!;
    const want = expectedMatrix(expected, manifest.output.classes);
    const got = Array.from(probability.data as Float32Array);
    expect(got).toHaveLength(want.length);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(fixture.vectors.float_tolerance);
    if (manifest.output.label_tensor) {
      const labels = Array.from(outputs[manifest.output.label_tensor]!.data as BigInt64Array, Number);
      expect(labels).toEqual(fixture.vectors.expected[manifest.output.label_tensor]!.data);
    }
    const zipmap = fixture.vectors.expected[manifest.output.probability_tensor]!.type.startsWith('seq');
    expect(manifest.model.rewrites.length > 0).toBe(zipmap);
    await session.release();
  });

  it('matches the ZipMap rewrite against the upstream graphs with ZipMap removed by the onnx package', async () => {
    for (const name of ['sklearn_logreg_iris', 'sklearn_rf_iris', 'sklearn_xgboost_iris', 'sklearn_lightgbm_iris']) {
      const fixture = onnxFixture(name);
      const derived = new Uint8Array(readFileSync(join(fixture.dir, 'DERIVED_model.nozipmap.onnx')));
      const ours = await prepareModel(fixture.bytes, featureNames(fixture));
      const theirs = await prepareModel(derived, featureNames(fixture));
      const run = async (bytes: Uint8Array, output: string) => {
        const s = await createSession(bytes);
        const feeds = Object.fromEntries(Object.entries(fixture.vectors.inputs).map(([n, v]) => [n, tensorOf(v)]));
        const out = Array.from((await s.run(feeds))[output]!.data as Float32Array);
        await s.release();
        return out;
      };
      expect(await run(ours.bytes, ours.output.probability_tensor)).toEqual(await run(theirs.bytes, theirs.output.probability_tensor));
      expect(ours.output.classes).toEqual(['0', '1', '2']);
    }
  });

  it('records the Keras scaler-free MLP as a binary model reporting P(class 1)', async () => {
    const fixture = onnxFixture('keras_bank_churn_mlp');
    const prepared = await prepareModel(fixture.bytes, featureNames(fixture));
    expect(prepared.output).toMatchObject({ kind: 'binary', probability_layout: 'positive_column', positive_class: '1' });
    expect(prepared.input.features.map((f) => f.name)).toEqual(fixture.vectors.raw_features!.columns);
  });
});

describe('models that must be refused', () => {
  const logreg = onnxFixture('sklearn_logreg_iris');

  it.each([
    ['truncated bytes', logreg.bytes.subarray(0, logreg.bytes.length - 50), /not a valid ONNX file/],
    ['random bytes', Uint8Array.from({ length: 300 }, (_, i) => (i * 7919) % 251), /not a valid ONNX file|onnxruntime could not load/],
    ['a JSON file', new TextEncoder().encode('{"model": "churn"}'), /not a valid ONNX file|onnxruntime could not load/],
  ])('%s', async (_, bytes, message) => {
    await expect(prepareModel(bytes, ['a', 'b'])).rejects.toThrow(message);
  });

  it('a feature name with control characters, but not one with spaces or parentheses', async () => {
    await expect(prepareModel(logreg.bytes, ['Sepal width (cm)', 'Petal width (cm)'])).resolves.toMatchObject({ input: { features: [{ name: 'Sepal width (cm)' }, { name: 'Petal width (cm)' }] } });
    await expect(prepareModel(logreg.bytes, ['a\nb', 'c'])).rejects.toThrow(/Invalid feature name/);
    await expect(prepareModel(logreg.bytes, ['a', 'a'])).rejects.toThrow(/listed twice/);
  });

  it('a feature list of the wrong length, naming both counts', async () => {
    await expect(prepareModel(logreg.bytes, ['a', 'b', 'c'])).rejects.toThrow(/takes 2 features .* has 3/);
  });

  it('a feature list that does not name the inputs of a one-input-per-feature model', async () => {
    const titanic = onnxFixture('sklearn_titanic_pipeline_nozipmap');
    await expect(prepareModel(titanic.bytes, ['pclass', 'sex', 'age', 'fare', 'port'])).rejects.toThrow(/missing: embarked; not inputs of the model: port/);
  });

  it('a tree model asked to run on fewer features than its trees read', async () => {
    const treecl = onnxFixture('sklearn_gbt_treecl');
    await expect(prepareModel(treecl.bytes, ['a', 'b', 'c'])).rejects.toThrow(/read feature column \d+ but the feature list has only 3/);
  });
});
