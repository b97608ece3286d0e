import { describe, expect, it } from 'vitest';
import { parseNumberList } from '../../lib/warehouse/numbers';

/** What the scan promises: each field as Number() reads it, empty and non-finite fields missing. */
const expected = (field: string) => {
  const v = field === '' ? NaN : Number(field);
  return Number.isFinite(v) ? v : NaN;
};

function parsed(fields: string[]): number[] {
  const out = new Float64Array(fields.length + 2).fill(7);
  parseNumberList(fields.join(','), out, 1, fields.length);
  expect(out[0]).toBe(7);
  expect(out[fields.length + 1]).toBe(7);
  return Array.from(out.subarray(1, fields.length + 1));
}

describe('parseNumberList', () => {
  it('reads every field bit for bit as Number() does, over the forms warehouses print', () => {
    // A fixed generator: doubles of every magnitude, money, counts, and what float8 prints.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const fields: string[] = [];
    for (let k = 0; k < 20_000; k++) {
      const kind = k % 8;
      const sign = random() < 0.3 ? -1 : 1;
      if (kind === 0) fields.push(String(Math.floor(random() * 10_000) * sign));
      else if (kind === 1) fields.push((random() * 5_000 * sign).toFixed(2));
      else if (kind === 2) fields.push(String(random() * sign)); // up to 17 significant digits
      else if (kind === 3) fields.push(String(random() * 10 ** Math.floor(random() * 40 - 20) * sign)); // exponents both ways
      else if (kind === 4) fields.push((random() * sign).toFixed(Math.floor(random() * 16)));
      else if (kind === 5) fields.push(String(Math.round(random() * 1e15) / 10 ** Math.floor(random() * 15)));
      else if (kind === 6) fields.push((random() * 1e6).toPrecision(1 + Math.floor(random() * 21)));
      else fields.push((random() * 1e-3).toFixed(20 + Math.floor(random() * 5)));
    }
    const out = parsed(fields);
    fields.forEach((f, i) => {
      if (!Object.is(out[i], expected(f))) throw new Error(`"${f}" read as ${out[i]}, Number() says ${expected(f)}`);
    });
  });

  it('reads empty, non-finite and odd fields as missing or as Number() does', () => {
    const fields = ['', 'NaN', 'Infinity', '-Infinity', '-', '.', '5.', '.5', '-0', '0', '1e-05', '1e+20', '+5', '1.2.3', ' 7', '007', '0.1', '123456789012345', '1234567890123456789', '0.30000000000000004', '0.000000000000000000000125'];
    const out = parsed(fields);
    fields.forEach((f, i) => expect(Object.is(out[i], expected(f)), `field "${f}" read as ${out[i]}`).toBe(true));
    expect(Object.is(out[fields.indexOf('-0')], -0)).toBe(true);
  });

  it('says whether the text held exactly the fields asked for: NaN for those it lacks, extra ones ignored', () => {
    const out = new Float64Array(4);
    expect(parseNumberList('1,2', out, 0, 4)).toBe(false);
    expect(Array.from(out)).toEqual([1, 2, NaN, NaN]);
    expect(parseNumberList('3,4,5,6,7', out, 0, 3)).toBe(false);
    expect(Array.from(out)).toEqual([3, 4, 5, NaN]);
    expect(parseNumberList('8,9,', out, 0, 2)).toBe(false);
    expect(parseNumberList('8,9,', out, 0, 3)).toBe(true);
    expect(Array.from(out.subarray(0, 3))).toEqual([8, 9, NaN]);
    expect(parseNumberList(',', out, 0, 2)).toBe(true);
    expect(Array.from(out.subarray(0, 2))).toEqual([NaN, NaN]);
    expect(parseNumberList('', out, 0, 1)).toBe(true);
    expect(parseNumberList('', out, 0, 2)).toBe(false);
  });
});
