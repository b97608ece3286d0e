import { createHash } from 'node:crypto';
import { ModelRejectedError, ValidationError } from '../errors';
import { inspectOnnx, OnnxFormatError, opsetVersion, removeZipMap, type OnnxModelInfo, type ZipMapRewrite } from '../onnx/model';
import type { FeatureSpec, InputSchema, OutputSchema } from '../registry/manifest';
import { createSession, makeTensor, ort, sessionIo, type SessionIo } from './session';

/** The oldest default-domain opset onnxruntime runs. */
const MIN_OPSET = 7;
const PROBE_ROWS = 8;

export interface OutputDescription {
  /** Name of the output holding probabilities; inferred when there is one float tensor output. */
  probabilityOutput?: string;
  /** Class labels in column order (offer ids for NBO); inferred from the graph when possible. */
  classes?: string[];
  /** Binary models: which class's probability is reported; the second class by default. */
  positiveClass?: string;
  /**
   * What the probability columns are. Absent: inferred (columns that sum to 1 on every probe row
   * are one distribution, multiclass; columns that do not are independent probabilities, multilabel).
   */
  kind?: 'multiclass' | 'multilabel';
}

/** A model checked and made servable: the bytes to store and the schemas to record. */
export interface PreparedModel {
  bytes: Uint8Array;
  sha256: string;
  producer: string;
  opsets: { domain: string; version: number }[];
  rewrites: ZipMapRewrite[];
  input: Omit<InputSchema, 'preprocessing'>;
  output: OutputSchema;
}

const REEXPORT_HINT =
  'Re-export it with tensor outputs only: skl2onnx `to_onnx(model, X, options={id(model): {"zipmap": False}})`, ' +
  'onnxmltools `convert_*(..., zipmap=False)`';

/**
 * Checks that a model file can be served as a loyalty-ml model and prepares it: it must parse as
 * ONNX, use an opset onnxruntime runs, load in onnxruntime-node, take exactly the features listed,
 * and produce tensor outputs holding probabilities. A skl2onnx ZipMap output is rewritten into the
 * probability tensor it wraps. Anything else is refused with a ModelRejectedError saying why and,
 * where there is one, what to do instead.
 */
export async function prepareModel(
  raw: Uint8Array,
  featureNames: string[],
  described: OutputDescription = {},
): Promise<PreparedModel> {
  validateFeatureNames(featureNames);
  let info: OnnxModelInfo;
  try {
    info = inspectOnnx(raw);
  } catch (error) {
    if (error instanceof OnnxFormatError) throw new ModelRejectedError(`The model file is ${error.message}`, { cause: error });
    throw error;
  }

  const opset = opsetVersion(info, '');
  if (opset !== undefined && opset < MIN_OPSET) {
    throw new ModelRejectedError(
      `The model uses ONNX opset ${opset}; onnxruntime runs opset ${MIN_OPSET} and later. ` +
        'Re-export it with a current exporter and a recent opset (for PyTorch: torch.onnx.export(..., opset_version=17)).',
    );
  }

  let bytes = raw;
  let rewrites: ZipMapRewrite[] = [];
  try {
    ({ bytes, rewrites } = removeZipMap(raw));
  } catch (error) {
    if (error instanceof OnnxFormatError) {
      throw new ModelRejectedError(`The model ends in a ZipMap that cannot be rewritten (${error.message}). ${REEXPORT_HINT}.`);
    }
    throw error;
  }

  let session: ort.InferenceSession;
  try {
    session = await createSession(bytes);
  } catch (error) {
    throw new ModelRejectedError(`onnxruntime could not load the model: ${firstLine(error)}`, { cause: error });
  }
  try {
    const io = sessionIo(session);
    const nonTensor = io.outputs.filter((o) => !o.isTensor);
    if (nonTensor.length > 0) {
      throw new ModelRejectedError(
        `The model has non-tensor outputs (${nonTensor.map((o) => o.name).join(', ')}), which onnxruntime-node cannot return. ${REEXPORT_HINT}.`,
      );
    }
    const input = mapFeatures(info, io, featureNames);
    const probe = await runProbe(session, input);
    const output = describeOutput(info, io, rewrites, probe, described);
    return {
      bytes,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      producer: [info.producerName, info.producerVersion].filter(Boolean).join(' '),
      opsets: info.opsets,
      rewrites,
      input,
      output,
    };
  } finally {
    await session.release();
  }
}

function validateFeatureNames(names: string[]): void {
  if (names.length === 0) throw new ValidationError('The feature list is empty');
  const seen = new Set<string>();
  for (const name of names) {
    // Any printable text: CSV headers such as "Total day minutes" or "Balance (EUR)" are feature names.
    if (name.trim() === '' || name.length > 128 || /[\x00-\x1f\x7f]/.test(name)) {
      throw new ValidationError(`Invalid feature name ${JSON.stringify(name)}: 1-128 printable characters`);
    }
    if (seen.has(name)) throw new ValidationError(`Feature "${name}" is listed twice`);
    seen.add(name);
  }
}

/** Maps the feature list onto the model's inputs: one [N, features] tensor, or one [N, 1] tensor per feature. */
function mapFeatures(info: OnnxModelInfo, io: SessionIo, names: string[]): Omit<InputSchema, 'preprocessing'> {
  const inputs = io.inputs;
  const tensors = inputs.map((i) => ({
    name: i.name,
    type: i.type ?? 'unknown',
    shape: (i.shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' && d !== '' ? d : null)),
  }));
  const unsupported = tensors.find((t) => !['float32', 'float64', 'int64', 'int32', 'string'].includes(t.type));
  if (unsupported) {
    throw new ModelRejectedError(`Input "${unsupported.name}" has type ${unsupported.type}; loyalty-ml feeds float32, float64, int32, int64 or string`);
  }

  if (tensors.length === 1) {
    const t = tensors[0]!;
    const width = t.shape.length >= 2 ? t.shape[t.shape.length - 1] : 1;
    if (t.shape.length > 2) throw new ModelRejectedError(`Input "${t.name}" has rank ${t.shape.length}; expected [N, features]`);
    if (typeof width === 'number' && width !== names.length) {
      throw new ModelRejectedError(
        `The model takes ${width} features (input "${t.name}" ${shapeText(t.shape)}) but the feature list has ${names.length}: ${names.join(', ')}`,
      );
    }
    const used = maxTreeFeature(info);
    if (used !== undefined && used >= names.length) {
      throw new ModelRejectedError(
        `The model's trees read feature column ${used} but the feature list has only ${names.length} features`,
      );
    }
    return { tensors, features: names.map((name, column) => ({ name, type: t.type, tensor: t.name, column })) };
  }

  const byName = new Map(tensors.map((t) => [t.name, t]));
  const missing = tensors.filter((t) => !names.includes(t.name)).map((t) => t.name);
  const extra = names.filter((n) => !byName.has(n));
  if (missing.length || extra.length || names.length !== tensors.length) {
    throw new ModelRejectedError(
      `The model has ${tensors.length} inputs (${tensors.map((t) => t.name).join(', ')}), one per feature; ` +
        `the feature list must name exactly those` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') +
        (extra.length ? `; not inputs of the model: ${extra.join(', ')}` : ''),
    );
  }
  for (const t of tensors) {
    const width = t.shape.length >= 2 ? t.shape[1] : 1;
    if (t.shape.length > 2 || (typeof width === 'number' && width !== 1)) {
      throw new ModelRejectedError(`Input "${t.name}" is ${shapeText(t.shape)}; a model with one input per feature needs [N, 1] inputs`);
    }
  }
  const features: FeatureSpec[] = names.map((name) => ({ name, type: byName.get(name)!.type, tensor: name, column: 0 }));
  return { tensors, features };
}

/** The highest feature column a tree ensemble reads, when the model is one. */
function maxTreeFeature(info: OnnxModelInfo): number | undefined {
  let max: number | undefined;
  for (const node of info.nodes) {
    if (!node.opType.startsWith('TreeEnsemble')) continue;
    for (const id of node.attributes.find((a) => a.name === 'nodes_featureids')?.ints ?? []) {
      max = max === undefined ? id : Math.max(max, id);
    }
  }
  return max;
}

interface ProbeResult {
  outputs: Record<string, { type: string; dims: readonly number[]; data: ArrayLike<unknown> }>;
}

/**
 * Runs the model on a small deterministic batch (zeros, ones, and values of several magnitudes).
 * This proves the input width works for models with dynamic shapes and lets the output be checked.
 */
async function runProbe(session: ort.InferenceSession, input: Omit<InputSchema, 'preprocessing'>): Promise<ProbeResult> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const tensor of input.tensors) {
    const columns = input.features.filter((f) => f.tensor === tensor.name).length;
    const values = probeValues(PROBE_ROWS * columns);
    const dims = tensor.shape.length >= 2 ? [PROBE_ROWS, columns] : [PROBE_ROWS];
    feeds[tensor.name] = makeTensor(tensor.type, values, dims);
  }
  try {
    const out = await session.run(feeds);
    const outputs: ProbeResult['outputs'] = {};
    for (const [name, t] of Object.entries(out)) outputs[name] = { type: t.type, dims: t.dims, data: t.data as ArrayLike<unknown> };
    return { outputs };
  } catch (error) {
    throw new ModelRejectedError(
      `The model failed on a probe batch of ${PROBE_ROWS} rows with the ${input.features.length} listed features: ${firstLine(error)}`,
      { cause: error },
    );
  }
}

function probeValues(n: number): number[] {
  // A fixed pattern: zeros, ones, then a spread of signs and magnitudes.
  const out: number[] = [];
  const pattern = [0, 1, -1, 2.5, -7, 40, 0.3, 1000];
  for (let i = 0; i < n; i++) out.push(pattern[Math.floor(i / Math.max(1, n / PROBE_ROWS)) % pattern.length]! * (1 + (i % 3) * 0.1));
  return out;
}

/** Builds an onnxruntime tensor of a given element type from numbers (strings from their text). */

function describeOutput(
  info: OnnxModelInfo,
  io: SessionIo,
  rewrites: ZipMapRewrite[],
  probe: ProbeResult,
  described: OutputDescription,
): OutputSchema {
  const floats = io.outputs.filter((o) => o.type === 'float32' || o.type === 'float64');
  let probName = described.probabilityOutput;
  if (probName !== undefined && !io.outputs.some((o) => o.name === probName)) {
    throw new ValidationError(`The model has no output "${probName}"; its outputs are ${io.outputs.map((o) => o.name).join(', ')}`);
  }
  if (probName === undefined) {
    const candidates = floats.length > 1 ? floats.filter((o) => /prob/i.test(o.name)) : floats;
    if (candidates.length !== 1) {
      throw new ValidationError(
        `Cannot tell which output holds the probabilities (${io.outputs.map((o) => `${o.name}: ${o.type}`).join(', ')}); name it with --probability-output`,
      );
    }
    probName = candidates[0]!.name;
  }
  const labelOutput = io.outputs.find((o) => o.name !== probName && (o.type === 'int64' || o.type === 'string'));

  const result = probe.outputs[probName]!;
  const width = result.dims.length >= 2 ? result.dims[result.dims.length - 1]! : 1;
  if (result.dims[0] !== PROBE_ROWS || result.dims.length > 2) {
    throw new ModelRejectedError(`Output "${probName}" has shape [${result.dims.join(', ')}] for ${PROBE_ROWS} rows; expected [N, classes]`);
  }
  const sumsToOne = checkProbabilities(probName, result.data as ArrayLike<number>, width, described.kind);

  const classes =
    described.classes ??
    rewrites.find((r) => r.output === probName)?.classLabels.map(String) ??
    classLabelsFromGraph(info) ??
    (width === 1 ? ['0', '1'] : Array.from({ length: width }, (_, i) => String(i)));
  const layout = width === 1 ? 'positive_column' : 'matrix';
  if (layout === 'matrix' && classes.length !== width) {
    throw new ValidationError(`Output "${probName}" has ${width} columns but ${classes.length} classes were given: ${classes.join(', ')}`);
  }
  if (layout === 'positive_column' && classes.length !== 2) {
    throw new ValidationError(`Output "${probName}" holds one probability per row, so the model needs exactly 2 classes, not ${classes.length}`);
  }
  if (new Set(classes).size !== classes.length) throw new ValidationError(`Class labels repeat: ${classes.join(', ')}`);
  const kind = layout === 'matrix' && (described.kind === 'multilabel' || !sumsToOne) ? 'multilabel' : classes.length === 2 ? 'binary' : 'multiclass';
  const positive = kind === 'binary' ? (described.positiveClass ?? classes[1]!) : null;
  if (positive !== null && !classes.includes(positive)) {
    throw new ValidationError(`Positive class "${positive}" is not one of the classes ${classes.join(', ')}`);
  }
  return {
    kind,
    probability_tensor: probName,
    probability_layout: layout,
    label_tensor: labelOutput?.name ?? null,
    classes,
    positive_class: positive,
  };
}

function classLabelsFromGraph(info: OnnxModelInfo): string[] | undefined {
  for (const node of info.nodes) {
    if (!/Classifier$/.test(node.opType)) continue;
    const ints = node.attributes.find((a) => a.name === 'classlabels_int64s')?.ints;
    const strings = node.attributes.find((a) => a.name === 'classlabels_strings')?.strings;
    if (ints?.length) return ints.map(String);
    if (strings?.length) return strings;
  }
  return undefined;
}

/**
 * Every value must be a probability. Rows of several columns that sum to 1 are one distribution;
 * rows that do not are independent probabilities, unless the caller said the model is multiclass.
 * Returns whether every row sums to 1.
 */
function checkProbabilities(name: string, data: ArrayLike<number>, width: number, kind: OutputDescription['kind']): boolean {
  const eps = 1e-4;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v) || v < -eps || v > 1 + eps) {
      throw new ModelRejectedError(
        `Output "${name}" does not hold probabilities (a probe row gave ${v}); it looks like raw scores. ` +
          'Export the model with its probability transform (e.g. post_transform SOFTMAX or LOGISTIC, or a final Softmax/Sigmoid).',
      );
    }
  }
  if (width === 1) return true;
  for (let r = 0; r < data.length / width; r++) {
    let sum = 0;
    for (let c = 0; c < width; c++) sum += data[r * width + c]!;
    if (Math.abs(sum - 1) > 1e-3) {
      if (kind === 'multiclass') {
        throw new ModelRejectedError(
          `Output "${name}" rows do not sum to 1 (a probe row sums to ${sum.toFixed(4)}), so they are not class probabilities; a model with one independent probability per class (sigmoid outputs) is published as multilabel (--output multilabel)`,
        );
      }
      return false;
    }
  }
  return true;
}

function shapeText(shape: (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!.slice(0, 300);
}
