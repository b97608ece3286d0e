import { ValidationError } from '../errors';
import { encodedNames, encodeRecords, isMissing, type ColumnEncoding } from '../inference/encoding';

/** A parsed CSV file: header and records keyed by column name. */
export interface CsvTable {
  columns: string[];
  records: Record<string, string>[];
}

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF or LF). The first row is the header. */
export function parseCsv(text: string, source = 'CSV'): CsvTable {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += ch;
  }
  if (quoted) throw new ValidationError(`${source}: a quoted field is never closed`);
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  if (rows.length < 2) throw new ValidationError(`${source}: needs a header row and at least one data row`);
  const columns = rows[0]!.map((c) => c.trim());
  const dup = columns.find((c, k) => columns.indexOf(c) !== k);
  if (dup !== undefined) throw new ValidationError(`${source}: column "${dup}" appears twice in the header`);
  const records = rows.slice(1).map((cells, k) => {
    if (cells.length !== columns.length) {
      throw new ValidationError(`${source}: row ${k + 2} has ${cells.length} fields, the header has ${columns.length}`);
    }
    return Object.fromEntries(columns.map((c, j) => [c, cells[j]!]));
  });
  return { columns, records };
}

const TRUE_WORDS = ['yes', 'y', 'true', 't'];
const FALSE_WORDS = ['no', 'n', 'false', 'f'];
const MAX_CATEGORIES = 30;

export interface InferredSchema {
  encodings: ColumnEncoding[];
  /** Columns left out, with the reason (identifiers, free text). */
  skipped: { column: string; reason: string }[];
}

/**
 * Decides how to encode each feature column from the training records: numbers stay numbers,
 * yes/no columns become 0/1, text with at most 30 distinct values is one-hot encoded. Identifier
 * columns (unique values with an id-like name) and free text are left out and reported.
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
    const values = table.records.map((r) => r[column]!).filter((v) => !isMissing(v)).map((v) => v.trim());
    const distinct = new Set(values);
    const explicit = options.features !== undefined;
    if (values.length === 0) {
      skipped.push({ column, reason: 'no values' });
      continue;
    }
    if (values.every((v) => Number.isFinite(Number(v)))) {
      const integers = values.every((v) => Number.isInteger(Number(v)));
      if (!explicit && integers && distinct.size === values.length && values.length > 20 && /(^|[^a-z])(id|row|index|key|number|no)$|id$|^id/i.test(column)) {
        skipped.push({ column, reason: 'looks like an identifier (unique whole numbers)' });
        continue;
      }
      encodings.push({ column, kind: 'numeric' });
      continue;
    }
    const lower = new Set([...distinct].map((v) => v.toLowerCase()));
    if ([...lower].every((v) => TRUE_WORDS.includes(v) || FALSE_WORDS.includes(v))) {
      encodings.push({ column, kind: 'boolean', true_values: TRUE_WORDS, false_values: FALSE_WORDS });
      continue;
    }
    if (distinct.size <= MAX_CATEGORIES) {
      encodings.push({ column, kind: 'one_hot', categories: [...distinct].sort() });
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
  const inferred = values.find((v) => ['yes', 'true', '1', 'y', 't'].includes(v.toLowerCase()));
  if (!inferred) throw new ValidationError(`Cannot tell which value of "${label}" is positive (${values.join(', ')}); give --positive VALUE`);
  return { positive: inferred, negative: values.find((v) => v !== inferred)! };
}
