/**
 * Reading a row's numbers from one comma-separated text field (see Warehouse.scanSegmentFeatures):
 * a million rows of ten numbers as ten million separate strings cost the scan more time than the
 * warehouse took to send them.
 */

/** Powers of ten that are exact doubles (10^0 … 10^22). */
const EXACT_POWERS = Array.from({ length: 23 }, (_, k) => 10 ** k);

/**
 * Parses `width` comma-separated numbers from `text` (from index `start`) into `out[base …]`,
 * exactly as `Number()` reads each field, except that an empty field and anything that is not a
 * finite number (`NaN`, `Infinity`) give NaN (missing). Plain decimals of up to 15 significant
 * digits (what a warehouse prints for counts, amounts and most measurements) are read from the
 * characters: the digits form an exact integer m < 10^15 and the value is m / 10^k, one correctly
 * rounded division of two exact doubles, hence the same double `Number()` gives. Anything else
 * (more digits, exponents, words) goes through `Number()` itself. Returns whether the text held exactly `width` fields
 * (fields beyond `width` are ignored; missing ones are NaN).
 */
export function parseNumberList(text: string, out: Float64Array, base: number, width: number, start = 0): boolean {
  const n = text.length;
  let i = start;
  let complete = true;
  for (let j = 0; j < width; j++) {
    if (i > n) {
      out[base + j] = NaN;
      complete = false;
      continue;
    }
    const from = i;
    let negative = false;
    let mantissa = 0;
    let significant = 0;
    let digits = 0;
    let fraction = -1;
    let plain = true;
    if (i < n && text.charCodeAt(i) === 45 /* - */) {
      negative = true;
      i++;
    }
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 48 && c <= 57) {
        mantissa = mantissa * 10 + (c - 48);
        digits++;
        if (mantissa !== 0) significant++;
        if (fraction >= 0) fraction++;
      } else if (c === 46 /* . */ && fraction < 0) {
        fraction = 0;
      } else if (c === 44 /* , */) {
        break;
      } else {
        plain = false;
      }
    }
    if (i === from) {
      out[base + j] = NaN;
    } else if (plain && digits > 0 && significant <= 15 && fraction <= 22) {
      const value = fraction > 0 ? mantissa / EXACT_POWERS[fraction]! : mantissa;
      out[base + j] = negative ? -value : value;
    } else {
      const value = Number(text.slice(from, i));
      out[base + j] = Number.isFinite(value) ? value : NaN;
    }
    i++;
  }
  return complete && i > n;
}
