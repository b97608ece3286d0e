import { csvField, type CsvTable } from '../csv';
import { ValidationError } from '../errors';
import { isMissing, toNumber } from './encoding';
import { explainRows } from '../explain/reasons';
import type { ModelRunner } from './runner';

const CHUNK = 10_000;
const EXPLAIN_CHUNK = 100;

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
  /** Adds `base` and `contribution_<feature>` columns: the exact Shapley values of the reported probability (binary) or of the predicted class's, over the version's background. */
  explain = false,
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
  const features = runner.manifest.input.features.map((f) => f.name);
  const spec = runner.manifest.explanation;
  if (explain) {
    if (!spec?.background?.length) {
      throw new ValidationError(`${runner.manifest.name} v${runner.manifest.version} has no background to explain against (${spec?.source ?? 'published before versions carried one'}); publish it with --background FILE.csv`);
    }
    if (runner.takesText) throw new ValidationError(`${runner.manifest.name} v${runner.manifest.version} takes text inputs; --explain needs a model that takes numbers`);
  }
  const header = [
    idColumn ?? 'row',
    ...(binary ? ['probability', 'predicted'] : ['predicted', 'confidence', ...out.classes.map((c) => `p_${c}`)]),
    ...(explain ? ['base', ...features.map((f) => `contribution_${f}`)] : []),
  ];
  const lines = [header.map(csvField).join(',')];
  const k = out.classes.length;
  const positive = binary ? out.classes.indexOf(out.positive_class!) : -1;
  // Explaining costs model runs per row: smaller chunks keep the progress moving.
  const chunk = explain ? EXPLAIN_CHUNK : CHUNK;
  const exact = (v: number) => v.toPrecision(10);
  for (let start = 0; start < table.records.length; start += chunk) {
    const records = table.records.slice(start, start + chunk);
    const X = runner.recordsMatrix(records);
    const P = X ? await runner.predictEncoded(X, records.length) : await runner.predictRecords(records);
    const best = Int32Array.from({ length: records.length }, (_, r) => {
      let b = 0;
      for (let c = 1; c < k; c++) if (P[r * k + c]! > P[r * k + b]!) b = c;
      return b;
    });
    const reasons = explain
      ? await explainRows({ method: spec!.method, background: spec!.background! }, (Z, n) => runner.predictEncoded(Z, n), X!, records.length, k, binary ? new Int32Array(records.length).fill(positive) : best)
      : null;
    for (let r = 0; r < records.length; r++) {
      const id = idColumn ? records[r]![idColumn]! : String(start + r + 1);
      const p = (c: number) => (explain ? exact(P[r * k + c]!) : round(P[r * k + c]!));
      const row: (string | number)[] = binary
        ? [id, p(positive), out.classes[best[r]!]!]
        : [id, out.classes[best[r]!]!, p(best[r]!), ...Array.from({ length: k }, (_, c) => p(c))];
      if (reasons) row.push(exact(reasons[r]!.base), ...Array.from(reasons[r]!.contributions, exact));
      lines.push(row.map(csvField).join(','));
    }
    onProgress?.(Math.min(table.records.length, start + chunk), table.records.length);
  }
  return { csv: `${lines.join('\n')}\n`, coerced };
}

function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}
