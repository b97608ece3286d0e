import { csvField, type CsvTable } from '../csv';
import { ValidationError } from '../errors';
import { isMissing, toNumber } from './encoding';
import type { ModelRunner } from './runner';

const CHUNK = 10_000;

/**
 * Scores every row of a CSV table with a model and returns the output CSV: the id column (or the
 * row number when there is none) followed by the predictions. Binary models give the probability
 * of the positive class and the predicted class; multiclass and multilabel models the predicted
 * (likeliest) class, its probability and one probability column per class (multilabel, such as NBO
 * acceptance: independent probabilities, which do not sum to 1).
 */
export async function predictCsv(
  runner: ModelRunner,
  table: CsvTable,
  idColumn: string | undefined,
  onProgress?: (done: number, total: number) => void,
): Promise<{ csv: string; coerced: Record<string, number> }> {
  const missing = runner.rawColumns.filter((c) => !table.columns.includes(c));
  if (missing.length) {
    throw new ValidationError(`The CSV lacks columns the model needs: ${missing.join(', ')} (it takes ${runner.rawColumns.join(', ')})`);
  }
  if (idColumn !== undefined && !table.columns.includes(idColumn)) throw new ValidationError(`--id-column "${idColumn}" is not in the CSV`);
  // Values in numeric columns that are neither missing markers nor numbers are scored as missing: count them.
  const coerced: Record<string, number> = {};
  for (const column of runner.numericColumns) {
    let n = 0;
    for (const record of table.records) {
      const raw = record[column];
      if (!isMissing(raw) && Number.isNaN(toNumber(raw))) n++;
    }
    if (n) coerced[column] = n;
  }
  const out = runner.manifest.output;
  const binary = out.kind === 'binary';
  const header = [idColumn ?? 'row', ...(binary ? ['probability', 'predicted'] : ['predicted', 'confidence', ...out.classes.map((c) => `p_${c}`)])];
  const lines = [header.map(csvField).join(',')];
  const k = out.classes.length;
  const positive = binary ? out.classes.indexOf(out.positive_class!) : -1;
  for (let start = 0; start < table.records.length; start += CHUNK) {
    const records = table.records.slice(start, start + CHUNK);
    const P = await runner.predictRecords(records);
    for (let r = 0; r < records.length; r++) {
      const id = idColumn ? records[r]![idColumn]! : String(start + r + 1);
      let best = 0;
      for (let c = 1; c < k; c++) if (P[r * k + c]! > P[r * k + best]!) best = c;
      const row = binary
        ? [id, round(P[r * k + positive]!), out.classes[best]!]
        : [id, out.classes[best]!, round(P[r * k + best]!), ...Array.from({ length: k }, (_, c) => round(P[r * k + c]!))];
      lines.push(row.map(csvField).join(','));
    }
    onProgress?.(Math.min(table.records.length, start + CHUNK), table.records.length);
  }
  return { csv: `${lines.join('\n')}\n`, coerced };
}

function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
