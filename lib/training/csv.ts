import { ValidationError } from '../errors';
import type { CsvTable } from '../csv';
import { encodedNames, encodeRecords, isMissing, type ColumnEncoding } from '../inference/encoding';


const TRUE_WORDS = ['yes', 'y', 'true', 't'];
const FALSE_WORDS = ['no', 'n', 'false', 'f'];
/** Text columns with more distinct values than this are free text (names, addresses), not categories. */
const MAX_CATEGORIES = 64;
/** Ordered bins (age bands, discount ranges, levels) rarely have more levels than this. */
const MAX_ORDERED_LEVELS = 24;

export interface InferredSchema {
  encodings: ColumnEncoding[];
  /** Columns left out, with the reason (identifiers, free text). */
  skipped: { column: string; reason: string }[];
}

/**
 * Decides how to encode each feature column from the training records: numbers stay numbers,
 * yes/no columns become 0/1, text with at most 64 distinct values becomes a category index
 * (ordinal encoding). Categories that are ordered codes ("1 - 10%", "20-30 years", "level 3",
 * "65+") are listed in their numeric order and marked ordered, so the index keeps that order;
 * other categories are listed alphabetically. Each model family then decides inside its graph how
 * a category enters (one-hot, target encoding, rank). Identifier columns (unique values with an
 * id-like name) and free text are left out and reported.
 */
export function inferEncodings(table: CsvTable, options: { label: string; idColumn?: string; features?: string[] }): InferredSchema {
  const skipped: InferredSchema['skipped'] = [];
  const candidates = options.features ?? table.columns.filter((c) => c !== options.label && c !== options.idColumn);
  for (const c of candidates) {
    if (!table.columns.includes(c)) throw new ValidationError(`Feature column "${c}" is not in the CSV (columns: ${table.columns.join(', ')})`);
    if (c === options.label) throw new ValidationError(`The label column "${c}" cannot also be a feature`);
  }
  const encodings: ColumnEncoding[] = [];
  for (const column of candidates) {
    // One pass per column: the present values, and whether all are numbers (and whole). Distinct
    // values only where they decide something: whole numbers (an identifier?) and text.
    const values: string[] = [];
    let numeric = true;
    let integers = true;
    for (const record of table.records) {
      const raw = record[column]!;
      if (isMissing(raw)) continue;
      const v = raw.trim();
      values.push(v);
      if (!numeric) continue;
      const x = Number(v);
      if (!Number.isFinite(x)) numeric = false;
      else if (integers && !Number.isInteger(x)) integers = false;
    }
    const explicit = options.features !== undefined;
    if (values.length === 0) {
      skipped.push({ column, reason: 'no values' });
      continue;
    }
    if (numeric) {
      const unique = integers && new Set(values).size === values.length;
      if (!explicit && unique && values.length > 20 && (/(id|num|number|index|key|row|no)$|^id/i.test(column) || isConsecutive(values))) {
        skipped.push({ column, reason: 'looks like an identifier (unique whole numbers)' });
        continue;
      }
      encodings.push({ column, kind: 'numeric' });
      continue;
    }
    const distinct = new Set(values);
    const lower = new Set([...distinct].map((v) => v.toLowerCase()));
    if ([...lower].every((v) => TRUE_WORDS.includes(v) || FALSE_WORDS.includes(v))) {
      encodings.push({ column, kind: 'boolean', true_values: TRUE_WORDS, false_values: FALSE_WORDS });
      continue;
    }
    if (distinct.size <= MAX_CATEGORIES) {
      const ordered = orderedCodes([...distinct]);
      encodings.push(ordered ? { column, kind: 'ordinal', categories: ordered, ordered: true } : { column, kind: 'ordinal', categories: [...distinct].sort(), ordered: false });
      continue;
    }
    skipped.push({
      column,
      reason: distinct.size === values.length ? 'looks like an identifier (unique text)' : `free text (${distinct.size} distinct values)`,
    });
  }
  if (!encodings.length) throw new ValidationError('No usable feature columns in the CSV');
  return { encodings, skipped };
}

/** Encodes a CSV table's features and labels; rows without a label are dropped and counted. */
export function encodeCsv(
  table: CsvTable,
  encodings: ColumnEncoding[],
  label: string,
  positive: string,
): { X: Float64Array; y: Int32Array; rows: number; names: string[]; dropped: number; keep: number[] } {
  if (!table.columns.includes(label)) throw new ValidationError(`Label column "${label}" is not in the CSV (columns: ${table.columns.join(', ')})`);
  const keep: number[] = [];
  table.records.forEach((r, i) => {
    if (!isMissing(r[label])) keep.push(i);
  });
  const records = keep.map((i) => table.records[i]!);
  const y = Int32Array.from(records, (r) => (r[label]!.trim() === positive ? 1 : 0));
  return { X: encodeRecords(encodings, records), y, rows: records.length, names: encodedNames(encodings), dropped: table.records.length - keep.length, keep };
}

/** The positive label: given, or inferred for yes/no, true/false and 1/0 labels. */
export function positiveLabel(table: CsvTable, label: string, given?: string): { positive: string; negative: string } {
  const values = [...new Set(table.records.map((r) => r[label]).filter((v): v is string => !isMissing(v)).map((v) => v.trim()))];
  if (values.length !== 2) {
    throw new ValidationError(
      `Label column "${label}" must have exactly two values for a binary model; it has ${values.length}: ${values.slice(0, 10).join(', ')}`,
    );
  }
  if (given !== undefined) {
    if (!values.includes(given)) throw new ValidationError(`--positive "${given}" is not a value of "${label}" (values: ${values.join(', ')})`);
    return { positive: given, negative: values.find((v) => v !== given)! };
  }
  // "True.", " yes", "Y": compare letters and digits only.
  const inferred = values.find((v) => ['yes', 'true', '1', 'y', 't'].includes(v.toLowerCase().replace(/[^a-z0-9]/g, '')));
  if (!inferred) throw new ValidationError(`Cannot tell which value of "${label}" is positive (${values.join(', ')}); give --positive VALUE`);
  return { positive: inferred, negative: values.find((v) => v !== inferred)! };
}

/**
 * The categories in numeric order when every one is an ordered code: it carries a number (the
 * first in the text; "under 5" sorts just below 5, "65+" or "over 65" just above 65) and no two
 * share a position. Null otherwise, for fewer than three or more than 24 categories, and for
 * zero-padded numbers ("S01"), which name things rather than rank them.
 */
export function orderedCodes(categories: string[]): string[] | null {
  // Many levels, or zero-padded numbers ("S01", "007"), are codes naming things, not ordered bins.
  if (categories.length < 3 || categories.length > MAX_ORDERED_LEVELS) return null;
  const keys = new Map<string, number>();
  for (const c of categories) {
    const m = /-?\d+(?:[.,]\d+)?/.exec(c);
    if (!m || /^-?0\d/.test(m[0])) return null;
    let key = Number(m[0].replace(',', '.'));
    const before = c.slice(0, m.index).toLowerCase();
    const after = c.slice(m.index + m[0].length).toLowerCase();
    if (/(<|under|less|below|up to|fewer)/.test(before)) key -= 0.5;
    else if (/(>|over|more|above|at least)/.test(before) || /^\s*\+/.test(after) || /^\s*(or more|and over|and above|plus)/.test(after)) key += 0.5;
    keys.set(c, key);
  }
  if (new Set(keys.values()).size !== categories.length) return null;
  return [...categories].sort((a, b) => keys.get(a)! - keys.get(b)!);
}

/** Whole numbers that are exactly a run like 1..n: a row number, whatever the column is called. */
function isConsecutive(values: string[]): boolean {
  const sorted = values.map(Number).sort((a, b) => a - b);
  return sorted.every((v, i) => v === sorted[0]! + i);
}
