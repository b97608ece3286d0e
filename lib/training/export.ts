import { ModelRejectedError } from '../errors';
import { createSession, ort } from '../inference/session';
import { OnnxGraphBuilder } from '../onnx/writer';
import type { GbtModel } from './gbt';
import { buildDesign, emitDesign, type Design } from './design';
import { predict, type DenseNet } from './nn';

export const INPUT_NAME = 'features';
export const OUTPUT_NAME = 'probabilities';
/** Largest difference allowed between onnxruntime and the trainer's own forward pass. */
export const EXPORT_TOLERANCE = 1e-5;

/**
 * A trained network (logistic regression is one with no hidden layer) with its design: the
 * column transforms from raw features to the network's inputs.
 */
export interface NetModel {
  kind: 'net';
  design: Design;
  net: DenseNet;
  classes: number;
}

/** Rounds every weight to float32, the precision the exported graph computes in. */
export function toFloat32(model: NetModel): NetModel {
  return {
    ...model,
    net: {
      output: model.net.output,
      layers: model.net.layers.map((l) => ({ ...l, W: Float64Array.from(l.W, Math.fround), b: Float64Array.from(l.b, Math.fround) })),
    },
  };
}

/**
 * The trainer's own forward pass from raw rows (NaN = missing) to class probabilities
 * [rows][classes] (binary: [P(negative), P(positive)]).
 */
export function netProbabilities(model: NetModel, X: Float64Array, rows: number): Float64Array {
  const raw = predict(model.net, buildDesign(model.design, X.subarray(0, rows * model.design.inputs)), rows);
  if (model.classes > 2) return raw;
  const out = new Float64Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    out[2 * r] = 1 - raw[r]!;
    out[2 * r + 1] = raw[r]!;
  }
  return out;
}

/** Writes a network with its design into a graph: raw features in, probabilities [N, classes] out. */
export function emitNet(g: OnnxGraphBuilder, x: string, model: NetModel, prefix = 'net'): string {
  let h = emitDesign(g, x, model.design, `${prefix}_design`);
  model.net.layers.forEach((layer, i) => {
    const [mm] = g.node('MatMul', [h, g.constant(`${prefix}_dense${i}_W`, [layer.inputs, layer.outputs], Float32Array.from(layer.W))]);
    h = g.node('Add', [mm!, g.constant(`${prefix}_dense${i}_b`, [layer.outputs], Float32Array.from(layer.b))])[0]!;
    if (i < model.net.layers.length - 1) h = g.node('Relu', [h])[0]!;
  });
  if (model.net.output === 'independent') return g.node('Sigmoid', [h])[0]!;
  if (model.net.output === 'sigmoid') {
    const [p] = g.node('Sigmoid', [h]);
    const [q] = g.node('Sub', [g.constant(`${prefix}_one`, [1], [1]), p!]);
    return g.node('Concat', [q!, p!], { attributes: { axis: { int: 1 } } })[0]!;
  }
  return g.node('Softmax', [h], { attributes: { axis: { int: 1 } } })[0]!;
}

/** Rows of X as float32 values (what the served graph receives), row-major. */
export function float32Rows(X: Float64Array, rows: Uint32Array, D: number): Float64Array {
  const out = new Float64Array(rows.length * D);
  rows.forEach((r, i) => {
    for (let j = 0; j < D; j++) out[i * D + j] = Math.fround(X[r * D + j]!);
  });
  return out;
}

/** Writes a network with its design as one ONNX graph. */
export function exportNet(model: NetModel, meta: ExportMeta): Uint8Array {
  return exportGraph(model.design.inputs, model.classes, meta, (g, x) => emitNet(g, x, model));
}

export interface ExportMeta {
  name: string;
  producerVersion: string;
  metadata?: Record<string, string>;
}

/**
 * One ONNX graph with input `features` [N, inputs] (float32, NaN for missing) and output
 * `probabilities` [N, classes], whose body `emit` writes.
 */
export function exportGraph(inputs: number, classes: number, meta: ExportMeta, emit: (g: OnnxGraphBuilder, x: string) => string): Uint8Array {
  const g = new OnnxGraphBuilder(meta.name);
  const x = g.input(INPUT_NAME, 'float32', ['N', inputs]);
  const probs = emit(g, x);
  g.node('Identity', [probs], { outputs: [OUTPUT_NAME] });
  g.output(OUTPUT_NAME, 'float32', ['N', classes]);
  return g.build({ producerVersion: meta.producerVersion, metadata: meta.metadata });
}

/**
 * Runs the exported graph in onnxruntime-node on the given rows and compares with the trainer's
 * own probabilities. Throws (the export fails) when any value differs by more than 1e-5.
 */
export async function verifyExport(
  bytes: Uint8Array,
  X: Float64Array,
  rows: number,
  cols: number,
  expected: Float64Array,
): Promise<{ maxAbsDiff: number; rows: number }> {
  const session = await createSession(bytes, { threads: 2 });
  try {
    let maxAbsDiff = 0;
    const batch = 8192;
    for (let start = 0; start < rows; start += batch) {
      const n = Math.min(batch, rows - start);
      const input = new ort.Tensor('float32', Float32Array.from(X.subarray(start * cols, (start + n) * cols)), [n, cols]);
      const out = (await session.run({ [INPUT_NAME]: input }))[OUTPUT_NAME]!;
      const data = out.data as Float32Array;
      const width = data.length / n;
      for (let i = 0; i < data.length; i++) {
        const diff = Math.abs(data[i]! - expected[start * width + i]!);
        if (!(diff <= maxAbsDiff)) maxAbsDiff = Number.isNaN(diff) ? Infinity : diff;
      }
    }
    if (maxAbsDiff > EXPORT_TOLERANCE) {
      throw new ModelRejectedError(
        `Export verification failed: onnxruntime's probabilities differ from the trainer's by up to ${maxAbsDiff.toExponential(2)} (limit ${EXPORT_TOLERANCE})`,
      );
    }
    return { maxAbsDiff, rows };
  } finally {
    await session.release();
  }
}

/**
 * Writes boosted trees as one ai.onnx.ml TreeEnsembleClassifier (tensor outputs only: a label,
 * left unused, and probabilities [N, classes]), laid out as skl2onnx and onnxmltools write theirs. Missing values
 * follow each split's learned side (`nodes_missing_value_tracks_true`), so the graph takes raw
 * features with NaN for missing values, like the network graphs. Returns the probabilities.
 */
export function emitGbt(g: OnnxGraphBuilder, x: string, model: GbtModel, classLabels: string[], prefix = 'trees'): string {
  return emitTrees(g, x, { base: model.base, trees: model.trees, transform: model.classes === 2 ? 'LOGISTIC' : 'SOFTMAX' }, classLabels, prefix);
}

/**
 * Trees as one TreeEnsembleClassifier: each tree adds to the raw score of its output, and the
 * transform turns the scores into probabilities. SOFTMAX: classes that share one distribution;
 * LOGISTIC with more than two labels: a sigmoid of each output on its own (independent
 * probabilities, such as one acceptance model per offer folded into one node).
 */
export function emitTrees(
  g: OnnxGraphBuilder,
  x: string,
  model: { base: number[]; trees: GbtModel['trees']; transform: 'LOGISTIC' | 'SOFTMAX' },
  classLabels: string[],
  prefix = 'trees',
): string {
  const n = { treeids: [] as number[], nodeids: [] as number[], featureids: [] as number[], modes: [] as string[], values: [] as number[], trueids: [] as number[], falseids: [] as number[], missing: [] as number[] };
  const c = { treeids: [] as number[], nodeids: [] as number[], ids: [] as number[], weights: [] as number[] };
  model.trees.forEach((tree, t) => {
    tree.nodes.forEach((node, id) => {
      n.treeids.push(t);
      n.nodeids.push(id);
      if (node.feature < 0) {
        n.featureids.push(0);
        n.modes.push('LEAF');
        n.values.push(0);
        n.trueids.push(0);
        n.falseids.push(0);
        n.missing.push(0);
        c.treeids.push(t);
        c.nodeids.push(id);
        c.ids.push(tree.output);
        c.weights.push(node.value);
      } else {
        n.featureids.push(node.feature);
        n.modes.push('BRANCH_LEQ');
        n.values.push(node.threshold);
        n.trueids.push(node.left);
        n.falseids.push(node.right);
        n.missing.push(node.missingLeft ? 1 : 0);
      }
    });
  });
  const [, probabilities] = g.node('TreeEnsembleClassifier', [x], {
    outputs: [`${prefix}_label`, `${prefix}_probabilities`],
    domain: 'ai.onnx.ml',
    opset: 1,
    attributes: {
      base_values: { floats: model.base },
      class_ids: { ints: c.ids },
      class_nodeids: { ints: c.nodeids },
      class_treeids: { ints: c.treeids },
      class_weights: { floats: c.weights },
      classlabels_strings: { strings: classLabels },
      nodes_falsenodeids: { ints: n.falseids },
      nodes_featureids: { ints: n.featureids },
      nodes_missing_value_tracks_true: { ints: n.missing },
      nodes_modes: { strings: n.modes },
      nodes_nodeids: { ints: n.nodeids },
      nodes_treeids: { ints: n.treeids },
      nodes_truenodeids: { ints: n.trueids },
      nodes_values: { floats: n.values },
      post_transform: { string: model.transform },
    },
  });
  return probabilities!;
}

/** Writes boosted trees on raw features as one ONNX graph. */
export function exportGbt(model: GbtModel, classLabels: string[], meta: ExportMeta): Uint8Array {
  return exportGraph(model.features, model.classes, meta, (g, x) => emitGbt(g, x, model, classLabels));
}
