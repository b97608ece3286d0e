/**
 * How raw columns (numbers, yes/no, low-cardinality text) become the numeric features a model
 * takes. One implementation: the trainer builds its design matrix with it, and `predict` and the
 * API apply it to raw rows, so training and serving cannot drift apart. Missing or unparseable
 * values become NaN, which the model's graph imputes and flags.
 */
export type ColumnEncoding =
  | { column: string; kind: 'numeric' }
  | { column: string; kind: 'boolean'; true_values: string[]; false_values: string[] }
  | { column: string; kind: 'one_hot'; categories: string[] }
  /**
   * One number per category (its index in `categories`); unseen or missing values are NaN. The
   * model's graph decides how the index enters (one-hot, target encoding, a rank). `ordered`: the
   * categories are ordered codes listed in their order.
   */
  | { column: string; kind: 'ordinal'; categories: string[]; ordered?: boolean };

export const MISSING_TOKENS = new Set(['', 'na', 'n/a', 'nan', 'null', 'none', '?', '-']);

/** True when a raw value means "no value". */
export function isMissing(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (typeof value === 'number') return Number.isNaN(value);
  return MISSING_TOKENS.has(String(value).trim().toLowerCase());
}

/** Names of the numeric features an encoding produces, in order. */
export function encodedNames(encodings: ColumnEncoding[]): string[] {
  return encodings.flatMap((e) => (e.kind === 'one_hot' ? e.categories.map((c) => `${e.column}=${c}`) : [e.column]));
}

/** Encodes raw records into a row-major matrix [rows][encodedNames.length]. */
export function encodeRecords(encodings: ColumnEncoding[], records: ArrayLike<Record<string, unknown>>): Float64Array {
  const width = encodedNames(encodings).length;
  const out = new Float64Array(records.length * width);
  for (let r = 0; r < records.length; r++) encodeInto(encodings, records[r]!, out, r * width);
  return out;
}

function encodeInto(encodings: ColumnEncoding[], record: Record<string, unknown>, out: Float64Array, offset: number): void {
  let j = offset;
  for (const e of encodings) {
    const raw = record[e.column];
    switch (e.kind) {
      case 'numeric':
        out[j++] = toNumber(raw);
        break;
      case 'boolean': {
        if (isMissing(raw)) out[j++] = NaN;
        else {
          const text = String(raw).trim().toLowerCase();
          out[j++] = e.true_values.includes(text) ? 1 : e.false_values.includes(text) ? 0 : NaN;
        }
        break;
      }
      case 'one_hot': {
        const text = isMissing(raw) ? null : String(raw).trim();
        // An unseen or missing category is all zeros: no category's effect applies.
        for (const c of e.categories) out[j++] = text === c ? 1 : 0;
        break;
      }
      case 'ordinal': {
        const index = isMissing(raw) ? -1 : e.categories.indexOf(String(raw).trim());
        out[j++] = index < 0 ? NaN : index;
        break;
      }
    }
  }
}

/** A raw value as a number, NaN when missing or not a number. */
export function toNumber(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (isMissing(raw)) return NaN;
  const n = Number(String(raw).trim());
  return Number.isFinite(n) ? n : NaN;
}
