import { readFile, writeFile } from 'node:fs/promises';
import { commandApp, commandConfig, commandRegistry, registryOption, warehouseOption } from '../../lib/cli/context';
import { createTrainingApp } from '../../lib/app/training';
import { formatTable, parseCommandArgs, ProgressReporter, UsageError, type Command, type CommandIo } from '../../lib/cli/runtime';
import { parseCsv, type CsvTable } from '../../lib/csv';
import { isMissing } from '../../lib/inference/encoding';
import { ModelRunner } from '../../lib/inference/runner';
import { predictCsv } from '../../lib/inference/csv-predict';
import type { ModelManifest, PolicyValue } from '../../lib/registry/index';
import { OFFER_IDS } from '../../lib/catalog';
import { churnTrainingSpec } from '../../lib/training/datasets';
import { evaluateVersion, type EvaluationData } from '../../lib/training/evaluate';

export const evaluate: Command = {
  name: 'evaluate',
  summary: 'score a registry version on labelled data and print its metrics',
  usage: `loyalty-ml evaluate NAME [VERSION|ALIAS] [--csv FILE --label COLUMN [--positive VALUE]] [--json]

Scores a version (default: production) on a labelled CSV file, or, without --csv, on the
warehouse holdout the trainer uses (churn: the latest churn snapshot; nbo: every offer of the last
two months). Prints the metrics beside the class prior of the evaluated rows (nbo: each offer's
acceptance rate).

For nbo it also estimates the acceptance rate the version's top offer would reach on that window
(policy_value: doubly robust with the version's own acceptance probabilities, IPS and
self-normalised IPS beside it, 95% intervals; a softmax version has no acceptance probabilities
and is estimated by self-normalised IPS), beside what the offers actually sent reached.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { csv: { type: 'string' }, label: { type: 'string' }, positive: { type: 'string' }, json: { type: 'boolean' }, ...registryOption, ...warehouseOption },
      { min: 1, max: 2, names: 'NAME [VERSION|ALIAS]' },
    );
    const [name, ref = 'production'] = positionals as [string, string?];
    const registry = await commandRegistry(values);
    const manifest = await registry.resolve(name, ref);
    const offers = manifest.output.kind !== 'binary' && manifest.output.classes.every((c) => OFFER_IDS.includes(c));
    if (offers && values.csv === undefined) return evaluateOffers(name, manifest, values, io);
    let data: EvaluationData;
    if (values.csv !== undefined) {
      if (!values.label) throw new UsageError('--label COLUMN is required with --csv');
      data = csvEvaluationData(await readTable(values.csv), values.label, manifest, values.positive, values.csv);
    } else {
      const app = await commandApp(values);
      try {
        const handle = await app.warehouse();
        const spec = await churnTrainingSpec(handle.warehouse);
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
    printMetrics(io, `${name} v${manifest.version} on ${report.rows} rows: ${report.data}`, manifest.output.kind === 'binary', report.metrics, report.baseline_prior, 'class prior');
    return 0;
  },
};

/** A next-best-offer version on the warehouse's evaluation window: its metrics and its policy's off-policy estimate. */
async function evaluateOffers(name: string, manifest: ModelManifest, values: { registry?: string; warehouse?: string; json?: boolean }, io: CommandIo): Promise<number> {
  const app = await createTrainingApp(commandConfig(values));
  try {
    const result = await app.training.evaluatePolicy(name, manifest.version, { onProgress: (m) => (m.startsWith('reading ') || m.startsWith('logging policy: half') ? undefined : io.err(`evaluate ${name}: ${m}`)) });
    if (values.json) {
      io.out(JSON.stringify(result, null, 2));
      return 0;
    }
    const acceptance = result.output_kind === 'multilabel';
    printMetrics(io, `${name} v${result.version} (${acceptance ? 'acceptance probabilities' : 'softmax over accepted offers'}) on ${result.rows} rows: ${result.data}`, acceptance, result.metrics, result.baseline_prior, acceptance ? 'offer rates' : 'class prior');
    io.out('');
    io.out(formatPolicyValue(result.policy_value));
    return 0;
  } finally {
    await app.close();
  }
}

/** A policy value as `train` and `evaluate` print it: the estimators with their intervals beside what was sent. */
export function formatPolicyValue(v: PolicyValue): string {
  const num = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(4) : '-');
  type Interval = { estimate: number | null; ci_low: number | null; ci_high: number | null } | null;
  const row = (label: string, e: Interval) => [label, num(e?.estimate), e && e.ci_low !== null ? `${num(e.ci_low)}-${num(e.ci_high)}` : '-'];
  const table = formatTable(['estimate', 'value', '95% interval'], [
    row(`doubly robust${v.method === 'doubly robust' ? ' *' : ''}`, v.dr),
    row('IPS', v.ips),
    row(`self-normalised IPS${v.method !== 'doubly robust' ? ' *' : ''}`, v.snips),
    ['offers as sent (observed)', num(v.logging), '-'],
    ...(v.production ? [row(`production v${v.production.version}`, v.production), row('  this minus production', v.production.difference)] : []),
    ...(typeof v.true_value === 'number' ? [['true value (demo process)', num(v.true_value), '-']] : []),
  ]);
  const support = v.low_support_share !== null ? `; ${(v.low_support_share * 100).toFixed(1)}% of them get an offer with estimated propensity below 1%` : '';
  return [
    `policy value: the acceptance rate of sending each customer its top offer, on the ${v.rows} offers of ${v.from} to ${v.to} (* the estimate reported; reward model: ${v.reward_model})`,
    table,
    `propensities ${v.propensity}; ${v.matched} of the window's offers are the one the policy would send (worth ${v.effective_rows} after weighting)${support}`,
  ].join('\n');
}

function printMetrics(io: CommandIo, title: string, binary: boolean, metrics: Record<string, unknown>, baseline: Record<string, unknown>, baselineName: string): void {
  const keys = binary ? ['auc', 'pr_auc', 'log_loss', 'brier', 'top_decile_lift', 'ece'] : ['top1_accuracy', 'top3_accuracy', 'log_loss'];
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '-');
  io.out(title);
  io.out(formatTable(['metric', 'model', baselineName], keys.map((k) => [k, num(metrics[k]), num(baseline[k])])));
}

export const predictCommand: Command = {
  name: 'predict',
  summary: 'score a CSV file with a registry version',
  usage: `loyalty-ml predict NAME [VERSION|ALIAS] --csv IN --out OUT [--id-column COLUMN] [--explain]

Scores every row of IN with a version (default: production) and writes OUT: the id column (or the
row number) followed by the predictions (binary: probability of the positive class and the
predicted class; multiclass: predicted class, its probability, and p_<class> for every class;
nbo's acceptance models: the offer likeliest to be accepted, its P(accept), and p_<offer> = P(the
customer accepts the offer if it is sent) for every offer, independent, so they do not sum to 1).
IN needs the model's raw columns; empty values and NA are treated as missing, and so is anything
else in a numeric column that is not a number (counted in a warning).

--explain adds base and contribution_<feature> for every feature: the exact Shapley values of the
probability written (binary: the positive class's; otherwise the predicted class's) over the
version's background (loyalty-ml show NAME VERSION --json gives it), so that base + the
contributions = the probability. With --explain every number is written with 10 significant
digits. It costs up to 2^features model rows per background row and CSV row (fewer where values
agree): 2-80 ms per row on a 2-core machine, by model.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { csv: { type: 'string' }, out: { type: 'string' }, 'id-column': { type: 'string' }, explain: { type: 'boolean' }, ...registryOption },
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
      const { csv, coerced } = await predictCsv(runner, table, idColumn, (done, total) => progress.update(done, total), values.explain === true);
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
