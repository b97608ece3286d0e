import { commandConfig, registryOption, warehouseOption } from '../../lib/cli/context';
import { formatTable, intOption, parseCommandArgs, trainingProgress, UsageError, type Command, type CommandIo } from '../../lib/cli/runtime';
import { assertName, binaryMetricsOf, multiclassMetricsOf } from '../../lib/registry/index';
import { createTrainingApp } from '../../lib/app/training';
import type { GateThresholds } from '../../lib/training/gates';
import { formatPolicyValue } from './evaluate';
import { DEFAULT_THRESHOLDS, FAMILIES, type Family, type TrainingOutcome } from '../../lib/training/pipeline';

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a model from warehouse history or a CSV file, gate it and publish it',
  usage: `loyalty-ml train churn|nbo [options]
loyalty-ml train NAME --csv FILE --label COLUMN [--positive VALUE] [options]

Chooses among logistic regression, an MLP (inputs -> 32 -> 16 -> outputs), gradient-boosted
trees and blends of the trees with the others by cross-validation on the training rows (each
family's settings searched on the folds, scored out of fold), refits the winner on all training
rows, applies the quality gates to its out-of-fold predictions, reports it on the untouched report
rows beside the class prior and the current production version, exports ONNX (verified against
the trainer's own forward pass) and publishes a new version. A model that fails a gate is stored
as a refused version with the reasons, and never promoted.

  churn   binary, from customer_churn_history (learn from earlier snapshots, folded by time;
          report on the latest); a history longer than max_learning_rows (models/training.json)
          is sampled by customer in SQL
  nbo     P(accept | customer, offer) for the 8 offers of models/offers.json: one acceptance
          model per offer, learnt from every offer made in customer_offer_history (accepted or
          refused; boosted trees by default, models/training.json "nbo"), reported on the last two
          months, with the off-policy estimate of the acceptance its top offer would reach there
          (doubly robust, 95% interval) beside what the offers actually sent reached; the
          propensity column is used where the warehouse logs it, else the logging policy is
          estimated from the history

Options:
  --csv FILE             train a binary model from a CSV file instead of the warehouse
  --label COLUMN         the CSV's label column
  --positive VALUE       the label value that means "positive" (inferred for yes/no, true/false, 1/0)
  --features a,b,…       CSV feature columns (default: every column but the label and an id column)
  --id-column COLUMN     the CSV's id column, never a feature (default: one named id/customer_id)
  --test-csv FILE        report on this file instead of a 20% stratified holdout (all rows of
                         --csv are then learnt from)
  --family F             logistic, mlp, gbt or auto (all three and their blends; the default,
                         except for nbo, whose heads default to gbt)
  --sample SHARE         churn: learn from this share of customers (0-1], sampled in SQL with --seed
  --promote ALIAS        promote to ALIAS (e.g. staging, production) if every gate passes
  --seed N               random seed (default 42); the same seed gives the same model
  --max-epochs N         upper bound on MLP epochs (default 300; patience usually ends sooner)
  --gate NAME=VALUE      override a quality-gate threshold (repeatable; defaults in models/training.json)
  --verbose              every step of the search (each fold, epoch count, tree shape, penalty)
  --registry URI, --warehouse URL, --json

Exit codes: 0 published (and promoted if asked), 1 refused by a gate or failed, 2 bad input.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        csv: { type: 'string' },
        label: { type: 'string' },
        positive: { type: 'string' },
        features: { type: 'string' },
        'id-column': { type: 'string' },
        'test-csv': { type: 'string' },
        family: { type: 'string' },
        promote: { type: 'string' },
        seed: { type: 'string' },
        'max-epochs': { type: 'string' },
        sample: { type: 'string' },
        gate: { type: 'string', multiple: true },
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
        ...registryOption,
        ...warehouseOption,
      },
      { min: 1, max: 1, names: 'churn|nbo|NAME' },
    );
    const name = positionals[0]!;
    assertName('model', name);
    if (values.promote !== undefined) assertName('alias', values.promote);
    const families = parseFamily(values.family);
    const seed = intOption(values.seed, '--seed', 42, [0, 4_294_967_295]);
    const maxEpochs = values['max-epochs'] === undefined ? undefined : intOption(values['max-epochs'], '--max-epochs', 300, [1, 1000]);
    const sample = values.sample === undefined ? undefined : Number(values.sample);
    if (sample !== undefined && !(sample > 0 && sample <= 1)) throw new UsageError(`--sample must be a share above 0 and at most 1, got "${values.sample}"`);
    const thresholds = parseGates(values.gate ?? []);
    const log = trainingProgress(io, `train ${name}`, values.verbose ?? false);

    const app = await createTrainingApp(commandConfig(values));
    try {
      if (values.csv !== undefined) {
        if (!values.label) throw new UsageError('--label COLUMN is required with --csv');
        const outcome = await app.training.trainCsv(
          {
            name,
            file: values.csv,
            label: values.label,
            positive: values.positive,
            features: values.features?.split(',').map((s) => s.trim()).filter(Boolean),
            idColumn: values['id-column'],
            testFile: values['test-csv'],
            seed,
          },
          { families, maxEpochs, thresholds, promote: values.promote ?? null, onProgress: log },
        );
        return report(io, outcome, values.promote, values.json);
      }
      if (name !== 'churn' && name !== 'nbo') throw new UsageError(`"${name}" is not a warehouse model (churn or nbo); give --csv FILE to train from a file`);
      for (const flag of ['label', 'positive', 'features', 'id-column', 'test-csv'] as const) {
        if (values[flag] !== undefined) throw new UsageError(`--${flag} only applies with --csv`);
      }
      if (sample !== undefined && name !== 'churn') throw new UsageError('--sample applies to churn only');
      const outcome = await app.training.train({ model: name, promote: values.promote ?? null, seed, sample }, { families, maxEpochs, thresholds, onProgress: log });
      return report(io, outcome, values.promote, values.json);
    } finally {
      await app.close();
    }
  },
};

function report(io: CommandIo, outcome: TrainingOutcome, promote: string | undefined, json: boolean | undefined): number {
  if (json) io.out(JSON.stringify(outcome, null, 2));
  else printOutcome(io, outcome, promote);
  return outcome.manifest.status === 'refused' ? 1 : 0;
}

function parseGates(pairs: string[]): Partial<GateThresholds> {
  const out: Partial<GateThresholds> = {};
  for (const pair of pairs) {
    const [key, raw] = pair.split('=');
    if (!key || raw === undefined || !(key in DEFAULT_THRESHOLDS)) {
      throw new UsageError(`--gate takes NAME=VALUE with NAME one of ${Object.keys(DEFAULT_THRESHOLDS).join(', ')}; got "${pair}"`);
    }
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new UsageError(`--gate ${key} needs a number, got "${raw}"`);
    out[key as keyof GateThresholds] = value;
  }
  return out;
}

function parseFamily(value: string | undefined): Family[] | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (!FAMILIES.includes(value as Family)) throw new UsageError(`--family must be one of ${[...FAMILIES, 'auto'].join(', ')}, got "${value}"`);
  return [value as Family];
}

function printOutcome(io: CommandIo, outcome: TrainingOutcome, promote: string | undefined): void {
  if (outcome.nbo) return printNbo(io, outcome, outcome.nbo, promote);
  const m = outcome.manifest;
  const achievable = outcome.achievable;
  const metrics = m.metrics;
  const num = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '-');
  io.out(`${m.name} v${m.version}: ${m.status === 'ready' ? 'ready' : 'REFUSED'} (${outcome.chosen}, ${outcome.seconds.toFixed(1)}s)`);
  const binary = m.output.kind === 'binary';
  const cv = metrics?.cross_validation;
  if (cv) io.out(`model selection: ${cv.description}`);
  io.out(
    formatTable(
      ['candidate', `out-of-fold ${binary ? 'AUC' : 'log loss'}`, 'settings', 'seconds'],
      outcome.candidates.map((c) => [c.family + (c.family === outcome.chosen ? ' *' : ''), num(binary ? c.score : -c.score), briefSettings(c.settings), c.seconds.toFixed(1)]),
    ),
  );
  if (metrics) {
    const prod = metrics.production?.comparable ? metrics.production : null;
    const headers = ['metric', ...(cv ? ['out-of-fold', 'prior (oof)'] : []), 'report rows', 'prior (report)', ...(prod?.metrics ? [`production v${prod.version}`] : [])];
    io.out('');
    if (binary) {
      const sets = [...(cv ? [cv.out_of_fold, cv.out_of_fold_baseline] : []), metrics.holdout, metrics.baseline_prior, ...(prod?.metrics ? [prod.metrics] : [])].map(binaryMetricsOf);
      const keys = ['auc', 'pr_auc', 'log_loss', 'brier', 'top_decile_lift', 'ece'] as const;
      const captured = (set: (typeof sets)[number], share: number) => {
        const c = set.captured?.find((x) => x.share === share);
        return c ? `${Number(c.positives.toFixed(1))}/${set.positives}` : '-';
      };
      io.out(
        formatTable(headers, [
          ...keys.map((k) => [k, ...sets.map((set) => num(set[k]))]),
          ...[0.05, 0.1].map((share) => [`positives in top ${share * 100}%`, ...sets.map((set) => captured(set, share))]),
        ]),
      );
      io.out('');
      const bins = binaryMetricsOf(metrics.holdout).calibration.filter((b) => b.count);
      io.out(formatTable(['calibration bin', 'rows', 'mean predicted', 'observed'], bins.map((b) => [`${b.lower.toFixed(1)}-${b.upper.toFixed(1)}`, b.count, num(b.mean_predicted), num(b.observed_rate)])));
    } else {
      const sets = [...(cv ? [cv.out_of_fold, cv.out_of_fold_baseline] : []), metrics.holdout, metrics.baseline_prior, ...(prod?.metrics ? [prod.metrics] : [])].map(multiclassMetricsOf);
      const keys = ['top1_accuracy', 'top3_accuracy', 'log_loss'] as const;
      io.out(formatTable(headers, keys.map((k) => [k, ...sets.map((set) => num(set[k]))])));
      io.out('');
      const holdout = multiclassMetricsOf(metrics.holdout);
      io.out(formatTable(['offer', 'ranked first', 'recall'], m.output.classes.map((c) => [c, `${((holdout.top_class_share[c] ?? 0) * 100).toFixed(1)}%`, num(holdout.per_class_recall[c])])));
    }
  }
  if (achievable) io.out(`\n${achievable}`);
  io.out('');
  for (const g of m.gates?.results ?? []) io.out(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'} - ${g.reason}`);
  io.out(`export check: onnxruntime within ${outcome.exportCheck.maxAbsDiff.toExponential(2)} of the trainer on ${outcome.exportCheck.rows} rows`);
  if (outcome.promoted) io.out(`promoted: ${m.name}@${outcome.promoted.alias} -> v${m.version}`);
  else if (promote) io.out(`not promoted to ${promote}: the model was refused`);
}

/** A next-best-offer run: the heads, the acceptance metrics, overlap and the policy's estimate beside what was sent. */
function printNbo(io: CommandIo, outcome: TrainingOutcome, nbo: NonNullable<TrainingOutcome['nbo']>, promote: string | undefined): void {
  const m = outcome.manifest;
  const metrics = m.metrics!;
  const num = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '-');
  io.out(`${m.name} v${m.version}: ${m.status === 'ready' ? 'ready' : 'REFUSED'} (${outcome.chosen}, ${outcome.seconds.toFixed(1)}s)`);
  io.out(`what it answers: for each offer, P(the customer accepts it if it is sent); the 8 probabilities are independent and do not sum to 1`);
  const cv = metrics.cross_validation;
  if (cv) io.out(`model selection: ${cv.description}`);
  const perOffer = (metrics.per_offer ?? []) as { offer_id: string; sent: number; accepted: number; mean_predicted: number | null; auc: number | null }[];
  io.out(
    formatTable(
      ['offer', 'learnt from', 'accepted', 'head', 'out-of-fold log loss', 'window sends', 'accepted', 'mean predicted', 'AUC'],
      nbo.heads.map((h, k) => {
        const w = perOffer[k];
        return [h.offer_id, h.sent, h.accepted, h.family ?? 'constant', num(h.log_loss), w?.sent ?? '-', w?.accepted ?? '-', num(w?.mean_predicted), num(w?.auc)];
      }),
    ),
  );
  const d = metrics.distillation;
  if (d?.student) io.out(`served: ${d.served === 'student' ? `one MLP ${JSON.stringify(d.student.hidden)} with a sigmoid per offer, distilled from the heads` : `the heads themselves (${d.reason})`}; on the window's customers the network differs from the heads by ${d.student.mean_abs_diff} on average and sends the same top offer to ${(d.student.same_top_offer * 100).toFixed(1)}% of them`);
  io.out('');
  const sets = [cv?.out_of_fold, cv?.out_of_fold_baseline, metrics.holdout, metrics.baseline_prior, metrics.production?.comparable ? metrics.production.metrics : null].map((set) => (set ? binaryMetricsOf(set) : null));
  const headers = ['P(accept) of the offer made', 'out-of-fold', 'offer rates (oof)', 'window', 'offer rates (window)', ...(sets[4] ? [`production v${metrics.production!.version}`] : [])];
  io.out(formatTable(headers, (['auc', 'log_loss', 'brier', 'ece'] as const).map((k) => [k, ...sets.filter((set, i) => i < 4 || set).map((set) => num(set?.[k]))])));
  io.out('');
  const o = nbo.overlap;
  io.out(`overlap (propensity of the offer sent, ${o.propensity_source}): min ${o.propensity.min}, 1% ${o.propensity.p01}, 5% ${o.propensity.p05}, median ${o.propensity.p50}, 95% ${o.propensity.p95}`);
  io.out(`effective sends per offer (what its sends are worth, once weighted, for judging "send it to everyone"): ${o.offers.map((x) => `${x.offer_id} ${Math.round(x.effective_sends)} of ${x.sent}`).join(', ')}`);
  // The warnings hold the unsupported regions' sentences and the offers that got a constant.
  for (const w of nbo.warnings) io.out(`warning: ${w}`);
  io.out('');
  io.out(formatPolicyValue(nbo.policy));
  if (outcome.achievable) io.out(`\n${outcome.achievable}`);
  io.out('');
  for (const g of m.gates?.results ?? []) io.out(`gate ${g.gate}: ${g.passed ? 'passed' : 'FAILED'} - ${g.reason}`);
  io.out(`export check: onnxruntime within ${outcome.exportCheck.maxAbsDiff.toExponential(2)} of the trainer on ${outcome.exportCheck.rows} rows`);
  if (outcome.promoted) io.out(`promoted: ${m.name}@${outcome.promoted.alias} -> v${m.version}`);
  else if (promote) io.out(`not promoted to ${promote}: the model was refused`);
}

/** The chosen settings in one short line for the table (the manifest has them in full). */
function briefSettings(settings: Record<string, unknown>): string {
  const text = Object.entries(settings)
    .filter(([key]) => !['member_settings', 'fold_best_epochs', 'tried'].includes(key))
    .map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
    .join(' ');
  return text.length > 90 ? `${text.slice(0, 87)}...` : text;
}
