import { readFile, writeFile } from 'node:fs/promises';
import { commandApp, commandRegistry, registryOption, warehouseOption } from '../../lib/cli/context';
import { formatTable, parseCommandArgs, ProgressReporter, UsageError, type Command } from '../../lib/cli/runtime';
import { parseCsv, type CsvTable } from '../../lib/csv';
import { isMissing } from '../../lib/inference/encoding';
import { ModelRunner } from '../../lib/inference/runner';
import { predictCsv } from '../../lib/inference/csv-predict';
import type { ModelManifest } from '../../lib/registry/index';
import { OFFER_IDS } from '../../lib/catalog';
import { churnTrainingSpec, nboTrainingSpec } from '../../lib/training/datasets';
import { evaluateVersion, type EvaluationData } from '../../lib/training/evaluate';

export const evaluate: Command = {
  name: 'evaluate',
  summary: 'score a registry version on labelled data and print its metrics',
  usage: `loyalty-ml evaluate NAME [VERSION|ALIAS] [--csv FILE --label COLUMN [--positive VALUE]] [--json]

Scores a version (default: production) on a labelled CSV file, or, without --csv, on the
warehouse holdout the trainer uses (churn: the latest churn snapshot; nbo: the last two months of
accepted offers). Prints the metrics beside the class prior of the evaluated rows.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { csv: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, json: { type: 'boolean' }, ...registryOption, ...warehouseOption },
      { min: 1, max: 2, names: 'NAME [VERSION|ALIAS]' },
    );
    const [name, ref = 'production'] = positionals as [string, string?];
    const app = await commandApp(values);
    const registry = app.registry;
    const manifest = await registry.resolve(name, ref);
    let data: EvaluationData;
    if (values.csv !== undefined) {
      if (!values.label) throw new UsageError('--label COLUMN is required with --csv');
      data = csvEvaluationData(await readTable(values.csv), values.label, manifest, values.positive, values.csv);
    } else {
      try {
        const handle = await app.warehouse();
        const offers = manifest.output.classes.every((c) => OFFER_IDS.includes(c));
        const spec = offers ? await nboTrainingSpec(handle.warehouse) : await churnTrainingSpec(handle.warehouse);
        if (JSON.stringify(spec.classes) !== JSON.stringify(manifest.output.classes)) {
          throw new UsageError(`${name} v${manifest.version} predicts ${manifest.output.classes.join(', ')}; give --csv to evaluate it on a file`);
        }
        const cols = spec.columns.length;
        const records = Array.from(spec.splits.test, (r) => Object.fromEntries(spec.columns.map((c, j) => [c.name, spec.X[r * cols + j]])));
        data = { records, y: Int32Array.from(spec.splits.test, (r) => spec.y[r]!), description: `warehouse holdout (${spec.splits.description})` };
      } finally {
        await app.close();
      }
    }
    const report = await evaluateVersion(registry, name, manifest.version, data);
    if (values.json) {
      io.out(JSON.stringify({ name, version: manifest.version, data: report.data, rows: report.rows, metrics: report.metrics, baseline_prior: report.baseline_prior }, null, 2));
      return 0;
    }
    const keys = manifest.output.kind === 'binary' ? ['auc', 'pr_auc', 'log_loss', 'brier', 'top_decile_lift', 'ece'] : ['top1_accuracy', 'top3_accuracy', 'log_loss'];
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '-');
    io.out(`${name} v${manifest.version} on ${report.rows} rows: ${report.data}`);
    io.out(formatTable(['metric', 'model', 'class prior'], keys.map((k) => [k, num(report.metrics[k]), num(report.baseline_prior[k])])));
    return 0;
  },
};

export const predictCommand: Command = {
  name: 'predict',
  summary: 'score a CSV file with a registry version',
  usage: `loyalty-ml predict NAME [VERSION|ALIAS] --csv IN --out OUT [--id-column COLUMN]

Scores every row of IN with a version (default: production) and writes OUT: the id column (or the
row number) followed by the predictions (binary: probability of the positive class and the
predicted class; multiclass: predicted class, its probability, and p_<class> for every class).
IN needs the model's raw columns; empty values and NA are treated as missing, and so is anything
else in a numeric column that is not a number (counted in a warning).`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { csv: { type: 'string' }, out: { type: 'string' }, 'id-column': { type: 'string' }, ...registryOption },
      { min: 1, max: 2, names: 'NAME [VERSION|ALIAS]' },
    );
    const [name, ref = 'production'] = positionals as [string, string?];
    if (!values.csv) throw new UsageError('--csv IN is required');
    if (!values.out) throw new UsageError('--out OUT is required');
    const table = await readTable(values.csv);
    const registry = await commandRegistry(values);
    const { manifest, bytes } = await registry.readModel(name, ref);
    const runner = await ModelRunner.create(manifest, bytes, { threads: 2 });
    const idColumn = values['id-column'] ?? table.columns.find((c) => /^(id|customer_?id|customerid)$/i.test(c));
    const progress = new ProgressReporter(io, `predict ${name} v${manifest.version}`);
    try {
      const { csv, coerced } = await predictCsv(runner, table, idColumn, (done, total) => progress.update(done, total));
      await writeFile(values.out, csv);
      const notNumbers = Object.entries(coerced);
      if (notNumbers.length) {
        io.err(
          `warning: ${notNumbers.reduce((a, [, n]) => a + n, 0)} values were not numbers and were scored as missing: ${notNumbers.map(([c, n]) => `${c} (${n} row${n === 1 ? '' : 's'})`).join(', ')}`,
        );
      }
    } finally {
      await runner.release();
    }
    const n = table.records.length;
    io.out(`Wrote ${n} prediction${n === 1 ? '' : 's'} from ${name} v${manifest.version} to ${values.out}`);
    return 0;
  },
};

async function readTable(path: string): Promise<CsvTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new UsageError(`Cannot read ${path}${code === 'ENOENT' ? ': no such file' : code ? ` (${code})` : ''}`);
  }
  return parseCsv(text, path);
}

/** Labels of a CSV mapped onto the model's classes. */
function csvEvaluationData(table: CsvTable, label: string, manifest: ModelManifest, positive: string | undefined, source: string): EvaluationData {
  if (!table.columns.includes(label)) throw new UsageError(`Label column "${label}" is not in ${source}`);
  const classes = manifest.output.classes;
  const rows = table.records.filter((r) => !isMissing(r[label]));
  const y = Int32Array.from(rows, (r) => {
    const value = r[label]!.trim();
    if (manifest.output.kind === 'binary') {
      const pos = classes.indexOf(manifest.output.positive_class!);
      if (positive !== undefined) return value === positive ? pos : 1 - pos;
      if (classes.includes(value)) return classes.indexOf(value);
      if (['yes', 'true', '1', 'y', 't'].includes(value.toLowerCase())) return pos;
      if (['no', 'false', '0', 'n', 'f'].includes(value.toLowerCase())) return 1 - pos;
      throw new UsageError(`Label "${value}" is not one of the model's classes (${classes.join(', ')}); give --positive VALUE`);
    }
    const index = classes.indexOf(value);
    if (index < 0) throw new UsageError(`Label "${value}" is not one of the model's classes (${classes.join(', ')})`);
    return index;
  });
  return { records: rows, y, description: `${source} (${rows.length} labelled rows)` };
}
