/**
 * A small protocol-buffers wire-format reader and writer, enough for ONNX. Reading keeps every field
 * (known or not) with its raw bytes, so a message can be edited and written back without loss.
 */

export const enum Wire {
  Varint = 0,
  Fixed64 = 1,
  Bytes = 2,
  Fixed32 = 5,
}

export type FieldValue = bigint | Uint8Array;

/** One field occurrence: varints are bigints; fixed and length-delimited fields keep their bytes. */
export interface Field {
  no: number;
  wire: Wire;
  value: FieldValue;
}

export class ProtobufError extends Error {}

/** Splits a message into its fields, in order. Throws ProtobufError on malformed input. */
export function decodeMessage(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new ProtobufError('truncated varint');
      const b = bytes[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new ProtobufError('varint longer than 10 bytes');
  };
  const take = (n: number): Uint8Array => {
    if (n < 0 || pos + n > bytes.length) throw new ProtobufError('field runs past the end of the message');
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  while (pos < bytes.length) {
    const key = readVarint();
    const no = Number(key >> 3n);
    const wire = Number(key & 7n) as Wire;
    if (no === 0) throw new ProtobufError('field number 0');
    switch (wire) {
      case Wire.Varint:
        fields.push({ no, wire, value: readVarint() });
        break;
      case Wire.Fixed64:
        fields.push({ no, wire, value: take(8) });
        break;
      case Wire.Bytes: {
        const len = readVarint();
        if (len > BigInt(bytes.length)) throw new ProtobufError('length past the end of the message');
        fields.push({ no, wire, value: take(Number(len)) });
        break;
      }
      case Wire.Fixed32:
        fields.push({ no, wire, value: take(4) });
        break;
      default:
        throw new ProtobufError(`unsupported wire type ${wire}`);
    }
  }
  return fields;
}

/** Builds a message field by field. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private key(no: number, wire: Wire): void {
    this.push(encodeVarint((BigInt(no) << 3n) | BigInt(wire)));
  }

  /** int32/int64/enum/bool; negative numbers use ten-byte two's complement, as protobuf does. */
  varint(no: number, value: number | bigint | boolean): this {
    this.key(no, Wire.Varint);
    this.push(encodeVarint(toUint64(value)));
    return this;
  }

  bytes(no: number, value: Uint8Array): this {
    this.key(no, Wire.Bytes);
    this.push(encodeVarint(BigInt(value.length)));
    this.push(value);
    return this;
  }

  string(no: number, value: string): this {
    return this.bytes(no, new TextEncoder().encode(value));
  }

  message(no: number, value: ProtoWriter | Uint8Array): this {
    return this.bytes(no, value instanceof ProtoWriter ? value.finish() : value);
  }

  float(no: number, value: number): this {
    this.key(no, Wire.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  /** Packed repeated float (what ONNX uses for TensorProto.float_data). */
  packedFloats(no: number, values: ArrayLike<number>): this {
    const b = new Uint8Array(values.length * 4);
    const view = new DataView(b.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
    return this.bytes(no, b);
  }

  /** Packed repeated varint. */
  packedVarints(no: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.push(encodeVarint(toUint64(values[i]!)));
    return this.bytes(no, inner.finish());
  }

  /** Writes a previously decoded field back unchanged. */
  raw(field: Field): this {
    this.key(field.no, field.wire);
    if (field.wire === Wire.Varint) this.push(encodeVarint(field.value as bigint));
    else if (field.wire === Wire.Bytes) {
      const value = field.value as Uint8Array;
      this.push(encodeVarint(BigInt(value.length)));
      this.push(value);
    } else this.push(field.value as Uint8Array);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/** Re-encodes a list of fields (after editing) into a message. */
export function encodeFields(fields: Field[]): Uint8Array {
  const w = new ProtoWriter();
  for (const f of fields) w.raw(f);
  return w.finish();
}

function toUint64(value: number | bigint | boolean): bigint {
  const v = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  return v < 0n ? (1n << 64n) + v : v;
}

function encodeVarint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Uint8Array.from(out);
}

// ---- field accessors -------------------------------------------------------------------------

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Signed 64-bit value of a varint field (protobuf stores negatives as two's complement). */
export function asInt64(value: bigint): bigint {
  return value >= 1n << 63n ? value - (1n << 64n) : value;
}

export function getBytes(fields: Field[], no: number): Uint8Array | undefined {
  let last: Uint8Array | undefined;
  for (const f of fields) if (f.no === no && f.wire === Wire.Bytes) last = f.value as Uint8Array;
  return last;
}

export function getString(fields: Field[], no: number): string | undefined {
  const b = getBytes(fields, no);
  return b === undefined ? undefined : decoder.decode(b);
}

export function getStrings(fields: Field[], no: number): string[] {
  return fields.filter((f) => f.no === no && f.wire === Wire.Bytes).map((f) => decoder.decode(f.value as Uint8Array));
}

export function getInt(fields: Field[], no: number): number | undefined {
  let last: number | undefined;
  for (const f of fields) if (f.no === no && f.wire === Wire.Varint) last = Number(asInt64(f.value as bigint));
  return last;
}

/** Repeated int64, packed or not. */
export function getInts(fields: Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === Wire.Varint) out.push(Number(asInt64(f.value as bigint)));
    else if (f.wire === Wire.Bytes) {
      for (const inner of decodePackedVarints(f.value as Uint8Array)) out.push(Number(asInt64(inner)));
    }
  }
  return out;
}

/** Repeated float, packed or not. */
export function getFloats(fields: Field[], no: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    const b = f.value as Uint8Array;
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (f.wire === Wire.Fixed32) out.push(view.getFloat32(0, true));
    else if (f.wire === Wire.Bytes) {
      if (b.byteLength % 4 !== 0) throw new ProtobufError('packed floats not a multiple of 4 bytes');
      for (let i = 0; i < b.byteLength; i += 4) out.push(view.getFloat32(i, true));
    }
  }
  return out;
}

export function getMessages(fields: Field[], no: number): Field[][] {
  return fields.filter((f) => f.no === no && f.wire === Wire.Bytes).map((f) => decodeMessage(f.value as Uint8Array));
}

export function getMessage(fields: Field[], no: number): Field[] | undefined {
  const b = getBytes(fields, no);
  return b === undefined ? undefined : decodeMessage(b);
}

function decodePackedVarints(bytes: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= bytes.length) throw new ProtobufError('truncated packed varint');
      const b = bytes[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    out.push(result);
  }
  return out;
}
