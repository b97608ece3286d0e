import { ValidationError } from './errors';

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

/** Quotes a CSV field when it needs it. */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
