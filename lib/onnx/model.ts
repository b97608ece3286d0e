import {
  decodeMessage,
  encodeFields,
  getFloats,
  getInt,
  getInts,
  getMessage,
  getMessages,
  getString,
  getStrings,
  ProtobufError,
  ProtoWriter,
  type Field,
} from './protobuf';

/** ONNX TensorProto.DataType codes and the names onnxruntime-node uses for them. */
export const ELEM_TYPES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
};
export const ELEM_TYPE_CODES: Record<string, number> = Object.fromEntries(
  Object.entries(ELEM_TYPES).map(([code, name]) => [name, Number(code)]),
);

export type Dim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  kind: 'tensor' | 'sequence' | 'map' | 'other';
  elemType?: string;
  shape?: Dim[];
  /** Readable type, e.g. `tensor(float32)[N,4]` or `seq(map(int64,float32))`. */
  typeText: string;
}

export interface OnnxAttribute {
  name: string;
  f?: number;
  i?: number;
  s?: string;
  floats?: number[];
  ints?: number[];
  strings?: string[];
}

export interface OnnxNode {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
}

export interface OnnxModelInfo {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsets: { domain: string; version: number }[];
  /** Graph inputs that are fed by the caller (initializers listed as inputs are left out). */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  nodes: OnnxNode[];
  metadata: Record<string, string>;
}

export class OnnxFormatError extends Error {}

// Field numbers from onnx.proto.
const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, opsetImport: 8, graph: 7, metadataProps: 14 };
const GRAPH = { node: 1, initializer: 5, input: 11, output: 12 };
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 };
const ATTR = { name: 1, f: 2, i: 3, s: 4, floats: 7, ints: 8, strings: 9 };
const VALUE_INFO = { name: 1, type: 2 };
const TYPE = { tensor: 1, sequence: 4, map: 5 };

/** Reads what the registry needs to know about a model: opsets, inputs, outputs and nodes. */
export function inspectOnnx(bytes: Uint8Array): OnnxModelInfo {
  let model: Field[];
  try {
    model = decodeMessage(bytes);
  } catch (error) {
    throw new OnnxFormatError(`not a valid ONNX file (${(error as Error).message})`);
  }
  const graph = safe(() => getMessage(model, MODEL.graph));
  const irVersion = getInt(model, MODEL.irVersion);
  if (!graph || irVersion === undefined) throw new OnnxFormatError('not a valid ONNX file (no model graph)');

  return safe(() => {
    const initializers = new Set(getMessages(graph, GRAPH.initializer).map((t) => getString(t, 8) ?? ''));
    const metadata: Record<string, string> = {};
    for (const entry of getMessages(model, MODEL.metadataProps)) {
      metadata[getString(entry, 1) ?? ''] = getString(entry, 2) ?? '';
    }
    return {
      irVersion,
      producerName: getString(model, MODEL.producerName) ?? '',
      producerVersion: getString(model, MODEL.producerVersion) ?? '',
      opsets: getMessages(model, MODEL.opsetImport).map((o) => ({
        domain: getString(o, 1) ?? '',
        version: getInt(o, 2) ?? 0,
      })),
      inputs: getMessages(graph, GRAPH.input)
        .map(readValueInfo)
        .filter((v) => !initializers.has(v.name)),
      outputs: getMessages(graph, GRAPH.output).map(readValueInfo),
      nodes: getMessages(graph, GRAPH.node).map(readNode),
      metadata,
    };
  });
}

/** The opset version a model imports for a domain ('' and 'ai.onnx' are the default domain). */
export function opsetVersion(info: OnnxModelInfo, domain: string): number | undefined {
  const wanted = domain === 'ai.onnx' ? '' : domain;
  return info.opsets.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === wanted)?.version;
}

export interface ZipMapRewrite {
  kind: 'zipmap_removed';
  /** The graph output that used to be a sequence of maps and is now a float tensor [N, classes]. */
  output: string;
  classLabels: (string | number)[];
}

/**
 * Replaces every ZipMap node that feeds a graph output with an Identity, and retypes that output as
 * the float tensor [N, classes] the ZipMap consumed, so the output keeps its name but becomes a
 * tensor onnxruntime-node can return. Returns the model unchanged (and no rewrites) without ZipMap.
 * Throws OnnxFormatError when a ZipMap is used in a way this cannot rewrite.
 */
export function removeZipMap(bytes: Uint8Array): { bytes: Uint8Array; rewrites: ZipMapRewrite[] } {
  const info = inspectOnnx(bytes);
  const zipmaps = info.nodes.filter((n) => n.opType === 'ZipMap');
  if (zipmaps.length === 0) return { bytes, rewrites: [] };

  const model = decodeMessage(bytes);
  const graphField = model.find((f) => f.no === MODEL.graph)!;
  const graph = decodeMessage(graphField.value as Uint8Array);
  const outputNames = new Set(info.outputs.map((o) => o.name));
  const rewrites: ZipMapRewrite[] = [];
  const retyped = new Map<string, number>();

  const newGraph: Field[] = graph.map((field) => {
    if (field.no !== GRAPH.node) return field;
    const node = readNode(decodeMessage(field.value as Uint8Array));
    if (node.opType !== 'ZipMap') return field;
    const [input] = node.inputs;
    const [output] = node.outputs;
    if (!input || !output || !outputNames.has(output)) {
      throw new OnnxFormatError(`ZipMap node "${node.name}" does not feed a graph output`);
    }
    const labels: (string | number)[] =
      node.attributes.find((a) => a.name === 'classlabels_int64s')?.ints ??
      node.attributes.find((a) => a.name === 'classlabels_strings')?.strings ??
      [];
    if (labels.length === 0) throw new OnnxFormatError(`ZipMap node "${node.name}" has no class labels`);
    rewrites.push({ kind: 'zipmap_removed', output, classLabels: labels });
    retyped.set(output, labels.length);
    const identity = new ProtoWriter()
      .string(NODE.input, input)
      .string(NODE.output, output)
      .string(NODE.name, `${node.name || 'ZipMap'}_as_tensor`)
      .string(NODE.opType, 'Identity');
    return { no: GRAPH.node, wire: field.wire, value: identity.finish() };
  });

  const finalGraph = newGraph.map((field) => {
    if (field.no !== GRAPH.output) return field;
    const name = getString(decodeMessage(field.value as Uint8Array), VALUE_INFO.name) ?? '';
    const classes = retyped.get(name);
    if (classes === undefined) return field;
    return { no: GRAPH.output, wire: field.wire, value: encodeValueInfo(name, 'float32', ['N', classes]) };
  });

  const newModel = model.map((f) => (f.no === MODEL.graph ? { ...f, value: encodeFields(finalGraph) } : f));
  if (opsetVersion(info, '') === undefined) {
    // Identity lives in the default domain; a pure ai.onnx.ml model may not import it yet.
    newModel.push({ no: MODEL.opsetImport, wire: graphField.wire, value: new ProtoWriter().string(1, '').varint(2, 13).finish() });
  }
  return { bytes: encodeFields(newModel), rewrites };
}

/** Encodes a ValueInfoProto for a tensor; string dims are symbolic, numbers fixed. */
export function encodeValueInfo(name: string, elemType: string, shape: Dim[]): Uint8Array {
  const shapeW = new ProtoWriter();
  for (const d of shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.varint(1, d);
    else if (typeof d === 'string') dim.string(2, d);
    shapeW.message(1, dim);
  }
  const tensor = new ProtoWriter().varint(1, ELEM_TYPE_CODES[elemType] ?? 1).message(2, shapeW);
  const type = new ProtoWriter().message(TYPE.tensor, tensor);
  return new ProtoWriter().string(VALUE_INFO.name, name).message(VALUE_INFO.type, type).finish();
}

function readNode(fields: Field[]): OnnxNode {
  return {
    opType: getString(fields, NODE.opType) ?? '',
    domain: getString(fields, NODE.domain) ?? '',
    name: getString(fields, NODE.name) ?? '',
    inputs: getStrings(fields, NODE.input),
    outputs: getStrings(fields, NODE.output),
    attributes: getMessages(fields, NODE.attribute).map((a) => {
      const attr: OnnxAttribute = { name: getString(a, ATTR.name) ?? '' };
      const f = getFloats(a, ATTR.f);
      if (f.length) attr.f = f[f.length - 1];
      const i = getInt(a, ATTR.i);
      if (i !== undefined) attr.i = i;
      const s = getString(a, ATTR.s);
      if (s !== undefined) attr.s = s;
      const floats = getFloats(a, ATTR.floats);
      if (floats.length) attr.floats = floats;
      const ints = getInts(a, ATTR.ints);
      if (ints.length) attr.ints = ints;
      const strings = getStrings(a, ATTR.strings);
      if (strings.length) attr.strings = strings;
      return attr;
    }),
  };
}

function readValueInfo(fields: Field[]): OnnxValueInfo {
  const name = getString(fields, VALUE_INFO.name) ?? '';
  const type = getMessage(fields, VALUE_INFO.type);
  return { name, ...describeType(type) };
}

function describeType(type: Field[] | undefined): Omit<OnnxValueInfo, 'name'> {
  if (!type) return { kind: 'other', typeText: 'unknown' };
  const tensor = getMessage(type, TYPE.tensor);
  if (tensor) {
    const elemType = ELEM_TYPES[getInt(tensor, 1) ?? 0] ?? 'unknown';
    const shapeMsg = getMessage(tensor, 2);
    const shape = shapeMsg
      ? getMessages(shapeMsg, 1).map((d): Dim => getInt(d, 1) ?? getString(d, 2) ?? null)
      : undefined;
    const dims = shape ? `[${shape.map((d) => (d === null || d === '' ? '?' : String(d))).join(',')}]` : '';
    return { kind: 'tensor', elemType, shape, typeText: `tensor(${elemType})${dims}` };
  }
  const seq = getMessage(type, TYPE.sequence);
  if (seq) return { kind: 'sequence', typeText: `seq(${describeType(getMessage(seq, 1)).typeText})` };
  const map = getMessage(type, TYPE.map);
  if (map) {
    const key = ELEM_TYPES[getInt(map, 1) ?? 0] ?? 'unknown';
    return { kind: 'map', typeText: `map(${key},${describeType(getMessage(map, 2)).typeText})` };
  }
  return { kind: 'other', typeText: 'other' };
}

function safe<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof ProtobufError) throw new OnnxFormatError(`not a valid ONNX file (${error.message})`);
    throw error;
  }
}
