import { tableFromIPC, type Vector } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { writeArrowStream } from '../../lib/arrow-stream';

describe('writeArrowStream', () => {
  it('writes an Arrow IPC stream apache-arrow reads back exactly: every column type, metadata, unicode ids', () => {
    const n = 1001;
    const ids = Array.from({ length: n }, (_, i) => (i % 97 === 0 ? `kundé-${i}-ü` : `c-${i}`));
    const f64 = Float64Array.from({ length: n }, (_, i) => (i % 13 === 0 ? -0 : i / 7 - 50));
    const i32 = Int32Array.from({ length: n }, (_, i) => (i % 2 ? -i : i * 1000));
    const u8 = Uint8Array.from({ length: n }, (_, i) => i % 256);
    const micro = Int32Array.from({ length: n * 8 }, (_, i) => (i * 7919) % 1_000_001);
    const body = writeArrowStream(
      [
        { name: 'customer_id', type: 'utf8', values: ids },
        { name: 'x', type: 'float64', values: f64 },
        { name: 'code', type: 'int32', values: i32 },
        { name: 'cell', type: 'uint8', values: u8 },
        { name: 'p', type: 'int32-list', size: 8, child: 'micro', values: micro },
      ],
      { origin: 'run:all/1', note: 'ümlaut' },
    );
    const table = tableFromIPC(body);
    expect(table.numRows).toBe(n);
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual(['customer_id:Utf8', 'x:Float64', 'code:Int32', 'cell:Uint8', 'p:FixedSizeList[8]<Int32>']);
    expect(Object.fromEntries(table.schema.metadata)).toEqual({ origin: 'run:all/1', note: 'ümlaut' });
    expect(table.getChild('customer_id')!.toArray()).toEqual(ids);
    expect(Array.from(table.getChild('x')!.toArray() as Float64Array).map((v, i) => Object.is(v, f64[i]))).not.toContain(false);
    expect(table.getChild('code')!.toArray()).toEqual(i32);
    expect(table.getChild('cell')!.toArray()).toEqual(u8);
    const rows = table.getChild('p')!.toArray() as Vector[];
    expect(Int32Array.from(rows.flatMap((r) => Array.from(r.toArray() as Int32Array)))).toEqual(micro);
  });

  it('writes nulls in a text column as nulls', () => {
    const values = ['2026-11-01', null, null, '2026-11-02', ...Array.from({ length: 13 }, (_, i) => (i % 5 ? `d${i}` : null))];
    const table = tableFromIPC(writeArrowStream([{ name: 'as_of', type: 'utf8', values }], {}));
    expect(table.getChild('as_of')!.nullCount).toBe(values.filter((v) => v === null).length);
    expect([...(table.getChild('as_of')!.toArray() as (string | null)[])]).toEqual(values);
  });

  it('writes an empty stream and refuses columns of different lengths', () => {
    expect(tableFromIPC(writeArrowStream([{ name: 'x', type: 'float64', values: new Float64Array(0) }], {})).numRows).toBe(0);
    expect(() => writeArrowStream([{ name: 'a', type: 'uint8', values: new Uint8Array(2) }, { name: 'b', type: 'uint8', values: new Uint8Array(3) }], {})).toThrow(/column b holds 3 rows, not 2/);
  });
});
