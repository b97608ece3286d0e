import { makeData, makeVector, Utf8, type Vector } from 'apache-arrow';

/*
 * Apache Arrow columns shared by the segment chunk files and the prediction log's columnar files.
 */

/** A column of strings as Arrow Utf8, built from one encoded buffer (a builder per value costs 3x more). */
export function utf8Vector(values: readonly (string | null)[]): Vector<Utf8> {
  const offsets = new Int32Array(values.length + 1);
  const nulls = values.includes(null) ? new Uint8Array(Math.ceil(values.length / 8)) : undefined;
  let bytes = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== null && v !== undefined) {
      bytes += Buffer.byteLength(v, 'utf8');
      if (nulls) nulls[i >> 3]! |= 1 << (i & 7);
    }
    offsets[i + 1] = bytes;
  }
  const data = Buffer.from(values.map((v) => v ?? '').join(''), 'utf8');
  return makeVector(makeData({ type: new Utf8(), length: values.length, valueOffsets: offsets, data, ...(nulls ? { nullBitmap: nulls } : {}) }));
}
