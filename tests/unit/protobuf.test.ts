import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeFields,
  getFloats,
  getInt,
  getInts,
  getString,
  ProtobufError,
  ProtoWriter,
} from '../../lib/onnx/protobuf';

describe('protobuf wire format', () => {
  it('round-trips strings, negative int64s and floats', () => {
    const bytes = new ProtoWriter().string(1, 'churn').varint(2, -3).varint(3, 2n ** 40n).float(4, 0.25).finish();

    const fields = decodeMessage(bytes);

    expect(getString(fields, 1)).toBe('churn');
    expect(getInt(fields, 2)).toBe(-3);
    expect(getInt(fields, 3)).toBe(2 ** 40);
    expect(getFloats(fields, 4)).toEqual([0.25]);
    expect(encodeFields(fields)).toEqual(bytes);
  });

  it('reads repeated numbers whether packed or not', () => {
    const packed = new ProtoWriter().packedVarints(1, [1, 300, -1]).packedFloats(2, [1.5, -2]).finish();
    const unpacked = new ProtoWriter().varint(1, 1).varint(1, 300).varint(1, -1).float(2, 1.5).float(2, -2).finish();

    for (const bytes of [packed, unpacked]) {
      const fields = decodeMessage(bytes);
      expect(getInts(fields, 1)).toEqual([1, 300, -1]);
      expect(getFloats(fields, 2)).toEqual([1.5, -2]);
    }
  });

  it('encodes varints as protobuf does (150 -> 96 01)', () => {
    expect([...new ProtoWriter().varint(1, 150).finish()]).toEqual([0x08, 0x96, 0x01]);
  });

  it('refuses truncated and malformed input', () => {
    const bytes = new ProtoWriter().string(1, 'hello').finish();
    expect(() => decodeMessage(bytes.subarray(0, 4))).toThrow(ProtobufError);
    expect(() => decodeMessage(Uint8Array.from([0x0b]))).toThrow(/wire type/);
    expect(() => decodeMessage(Uint8Array.from([0x08, 0xff]))).toThrow(/truncated/);
  });
});
