import { ELEM_TYPE_CODES, encodeValueInfo, type Dim } from './model';
import { ProtoWriter } from './protobuf';

/** An attribute value: numbers are INT when whole and `float` is not forced, strings STRING. */
export type AttributeValue =
  | { int: number }
  | { float: number }
  | { string: string }
  | { ints: ArrayLike<number> }
  | { floats: ArrayLike<number> }
  | { strings: string[] };

const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

/**
 * Builds an ONNX model protobuf: inputs, outputs, initializers and nodes. Small on purpose: it
 * writes exactly the fields onnxruntime needs and nothing it would have to guess.
 */
export class OnnxGraphBuilder {
  private readonly nodes: Uint8Array[] = [];
  private readonly initializers: Uint8Array[] = [];
  private readonly inputs: Uint8Array[] = [];
  private readonly outputs: Uint8Array[] = [];
  private readonly opsets = new Map<string, number>([['', 13]]);
  private counter = 0;

  constructor(private readonly name: string) {}

  input(name: string, elemType: string, shape: Dim[]): string {
    this.inputs.push(encodeValueInfo(name, elemType, shape));
    return name;
  }

  output(name: string, elemType: string, shape: Dim[]): string {
    this.outputs.push(encodeValueInfo(name, elemType, shape));
    return name;
  }

  /** A constant tensor; float32 unless the data is a BigInt64Array (int64). Returns its name. */
  constant(name: string, dims: number[], data: Float32Array | BigInt64Array | number[]): string {
    const values = Array.isArray(data) ? Float32Array.from(data) : data;
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) throw new RangeError(`constant ${name}: ${values.length} values for dims [${dims.join(', ')}]`);
    const w = new ProtoWriter();
    for (const d of dims) w.varint(1, d);
    w.varint(2, values instanceof BigInt64Array ? ELEM_TYPE_CODES.int64! : ELEM_TYPE_CODES.float32!);
    w.string(8, name);
    const raw = new Uint8Array(values.byteLength);
    raw.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    w.bytes(9, raw);
    this.initializers.push(w.finish());
    return name;
  }

  /** Adds a node; returns its output names. Output names default to fresh unique names. */
  node(
    opType: string,
    inputs: string[],
    options: { outputs?: string[] | number; attributes?: Record<string, AttributeValue>; domain?: string; opset?: number } = {},
  ): string[] {
    const outputs =
      typeof options.outputs === 'number' || options.outputs === undefined
        ? Array.from({ length: (options.outputs as number | undefined) ?? 1 }, () => `${opType.toLowerCase()}_${this.counter++}`)
        : options.outputs;
    const w = new ProtoWriter();
    for (const i of inputs) w.string(1, i);
    for (const o of outputs) w.string(2, o);
    w.string(3, `${opType}_${this.counter++}`);
    w.string(4, opType);
    for (const [name, value] of Object.entries(options.attributes ?? {})) w.message(5, encodeAttribute(name, value));
    if (options.domain) {
      w.string(7, options.domain);
      this.opsets.set(options.domain, options.opset ?? 1);
    }
    this.nodes.push(w.finish());
    return outputs;
  }

  /** Serialises the model. */
  build(meta: { producerVersion: string; docString?: string; metadata?: Record<string, string> }): Uint8Array {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, this.name);
    for (const t of this.initializers) graph.message(5, t);
    for (const i of this.inputs) graph.message(11, i);
    for (const o of this.outputs) graph.message(12, o);

    const model = new ProtoWriter().varint(1, 8).string(2, 'loyalty-ml').string(3, meta.producerVersion);
    if (meta.docString) model.string(6, meta.docString);
    model.message(7, graph);
    for (const [domain, version] of this.opsets) model.message(8, new ProtoWriter().string(1, domain).varint(2, version));
    for (const [key, value] of Object.entries(meta.metadata ?? {})) model.message(14, new ProtoWriter().string(1, key).string(2, value));
    return model.finish();
  }
}

function encodeAttribute(name: string, value: AttributeValue): Uint8Array {
  const w = new ProtoWriter().string(1, name);
  if ('int' in value) w.varint(3, value.int).varint(20, ATTR_TYPE.INT);
  else if ('float' in value) w.float(2, value.float).varint(20, ATTR_TYPE.FLOAT);
  else if ('string' in value) w.string(4, value.string).varint(20, ATTR_TYPE.STRING);
  else if ('ints' in value) {
    for (let i = 0; i < value.ints.length; i++) w.varint(8, value.ints[i]!);
    w.varint(20, ATTR_TYPE.INTS);
  } else if ('floats' in value) {
    w.packedFloats(7, value.floats);
    w.varint(20, ATTR_TYPE.FLOATS);
  } else {
    for (const s of value.strings) w.string(9, s);
    w.varint(20, ATTR_TYPE.STRINGS);
  }
  return w.finish();
}
