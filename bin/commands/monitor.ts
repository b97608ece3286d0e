import { commandApp, registryOption, warehouseOption } from '../../lib/cli/context';
import { formatTable, parseCommandArgs, ProgressReporter, type Command } from '../../lib/cli/runtime';
import type { ChurnQuality, ModelComparison, NboQuality, QualityReport, VersionQuality } from '../../lib/monitoring/quality';

export const monitor: Command = {
  name: 'monitor',
  summary: "measure a served model's realised quality: logged predictions against what happened",
  usage: `loyalty-ml monitor churn|nbo [--since YYYY-MM-DD] [--registry URI] [--warehouse URL] [--json]

Reads the prediction log (results store, predictions/) from --since on (default: the last
MONITOR_WINDOW_DAYS, 63; days with more than MONITOR_MAX_FILES_PER_DAY files, 2,000, are sampled
evenly), joins each prediction with
its outcome in the warehouse (churn: the customer's first churn snapshot within OUTCOME_HORIZON_DAYS,
default 35, of the date its features were valid for; NBO: the offers made to the customer in that
window) and reports per model version (shadow challengers apart) and per week: churn AUC with its
95% interval (DeLong), Brier score, top-decile lift and calibration by decile; NBO what happened
to every offer actually sent against the probability the model gave that offer (AUC with its
interval, Brier, predicted against observed acceptance by decile), and the acceptance of offers
that were the recommended one against the others. The report is stored (monitoring/) and
served at GET /api/loyalty/v1/ml/models/{name}/performance.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { since: { type: 'string' }, json: { type: 'boolean' }, ...registryOption, ...warehouseOption },
      { min: 1, max: 1, names: 'churn|nbo' },
    );
    const app = await commandApp(values);
    try {
      const progress = new ProgressReporter(io, `monitor ${positionals[0]}: log files`);
      const report = await app.monitoring.report(positionals[0]!, { since: values.since, onProgress: (done, total) => progress.update(done, total) });
      io.out(values.json ? JSON.stringify(report, null, 2) : describeReport(report));
      return 0;
    } finally {
      await app.close();
    }
  },
};

export const compare: Command = {
  name: 'compare',
  summary: 'compare two models on the same customers\u2019 realised outcomes (DeLong test)',
  usage: `loyalty-ml compare churn|nbo A B [--since YYYY-MM-DD] [--registry URI] [--warehouse URL] [--json]

A and B are aliases as logged (production, and staging for the challenger scored in shadow) or
version numbers. Churn: every customer both predicted for the same date whose churn outcome is
known. NBO: every offer made to such a customer within the outcome window, each side's
probability for the offer actually sent against whether it was accepted. Compares their AUCs
with DeLong's paired test and says whether B wins (higher AUC, p < 0.05). Exit code 0 when B
wins, 1 when it does not.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { since: { type: 'string' }, json: { type: 'boolean' }, ...registryOption, ...warehouseOption },
      { min: 3, max: 3, names: 'churn|nbo A B' },
    );
    const [model, a, b] = positionals as [string, string, string];
    const app = await commandApp(values);
    try {
      const result = await app.monitoring.compare(model, a, b, { since: values.since });
      io.out(values.json ? JSON.stringify(result, null, 2) : describeComparison(result));
      return result.winner === 'b' ? 0 : 1;
    } finally {
      await app.close();
    }
  },
};

function describeReport(report: QualityReport): string {
  const files = report.log_files.read < report.log_files.total ? `, a sample of ${report.log_files.read.toLocaleString('en-US')} of ${report.log_files.total.toLocaleString('en-US')} log files` : '';
  const lines = [`${report.model}: realised quality from ${report.predictions_read.toLocaleString('en-US')} logged predictions${report.since ? ` since ${report.since}` : ''}${files} (outcome window ${report.horizon_days} days)`];
  if (report.versions.length === 0) lines.push('  no logged predictions yet: serve some, then let outcomes arrive');
  for (const v of report.versions) {
    lines.push('', versionTitle(v));
    lines.push(report.model === 'churn' ? churnTable(v as VersionQuality<ChurnQuality>) : nboTable(v as VersionQuality<NboQuality>));
    const q = v.overall.quality as ChurnQuality | null;
    if (report.model === 'churn' && q?.calibration.length) {
      lines.push(`  calibration by decile (predicted -> observed): ${q.calibration.map((d) => `${pct(d.mean_predicted)}->${pct(d.observed_rate)}`).join('  ')}`);
    }
    const made = report.model === 'nbo' ? (v.overall.quality as NboQuality | null)?.offers_made : null;
    if (made?.calibration.length) {
      lines.push(`  offers made, P(accept) by decile (predicted -> accepted): ${made.calibration.map((d) => `${pct(d.mean_predicted)}->${pct(d.observed_rate)}`).join('  ')}`);
    }
  }
  return lines.join('\n');
}

function versionTitle(v: VersionQuality<unknown>): string {
  const who = v.version === null ? 'mock answers' : `v${v.version}${v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}`;
  const holdout = v.holdout_auc !== undefined && v.holdout_auc !== null ? `, holdout AUC ${v.holdout_auc}` : '';
  return `${who}${v.shadow ? ' [shadow: challenger, never returned]' : ''}${holdout}`;
}

function churnTable(v: VersionQuality<ChurnQuality>): string {
  return periodTable(v, ['churned', 'AUC [95% CI]', 'Brier', 'lift@10%'], (q) => [
    pct(q.observed_rate),
    q.auc != null ? `${q.auc.toFixed(4)}${q.auc_ci95 ? ` [${q.auc_ci95[0].toFixed(3)}, ${q.auc_ci95[1].toFixed(3)}]` : ''}` : '-',
    q.brier.toFixed(4),
    q.top_decile_lift != null ? q.top_decile_lift.toFixed(2) : '-',
  ]);
}

function nboTable(v: VersionQuality<NboQuality>): string {
  const share = (s: NboQuality['recommended']) => `${s.accepted}/${s.offers} (${s.rate === null ? '-' : pct(s.rate)})`;
  return periodTable(v, ['offers made', 'accepted / predicted', 'AUC [95% CI]', 'Brier', 'recommended accepted', 'other accepted', 'lift', 'p'], (q) => [
    q.offers_made ? q.offers_made.offers.toLocaleString('en-US') : '-',
    q.offers_made ? `${pct(q.offers_made.observed_rate)} / ${pct(q.offers_made.mean_predicted)}` : '-',
    q.offers_made?.auc != null ? `${q.offers_made.auc.toFixed(4)}${q.offers_made.auc_ci95 ? ` [${q.offers_made.auc_ci95[0].toFixed(3)}, ${q.offers_made.auc_ci95[1].toFixed(3)}]` : ''}` : '-',
    q.offers_made ? q.offers_made.brier.toFixed(4) : '-',
    share(q.recommended),
    share(q.other),
    q.lift != null ? q.lift.toFixed(2) : '-',
    q.p_value != null ? (q.p_value < 0.0001 ? '<0.0001' : q.p_value.toFixed(4)) : '-',
  ]);
}

/** One row per week and one overall: predictions, those with an outcome, then the model's own figures. */
function periodTable<Q>(v: VersionQuality<Q>, headers: string[], cells: (q: Q) => string[]): string {
  const rows = [...v.weeks, v.overall].map((p) => [p.period, p.predictions.toLocaleString('en-US'), p.matched.toLocaleString('en-US'), ...(p.quality ? cells(p.quality) : headers.map(() => '-'))]);
  return indent(formatTable(['period', 'predictions', 'with outcome', ...headers], rows));
}

function describeComparison(c: ModelComparison): string {
  const side = (s: ModelComparison['a']) => `${s.label}${s.versions.length ? ` (v${s.versions.join(', v')})` : ''}: AUC ${s.auc ?? '-'}`;
  return [
    c.model === 'churn'
      ? `churn on ${c.customers.toLocaleString('en-US')} customers both predicted, ${c.churned.toLocaleString('en-US')} churned`
      : `nbo on ${c.customers.toLocaleString('en-US')} offers made to customers both predicted, ${c.churned.toLocaleString('en-US')} accepted (each side's P(accept) of the offer sent)`,
    `  ${side(c.a)}`,
    `  ${side(c.b)}`,
    ...(c.difference !== null ? [`  difference ${c.difference >= 0 ? '+' : ''}${c.difference} (se ${c.se}), DeLong p = ${c.p_value}`] : []),
    c.verdict,
  ].join('\n');
}

function pct(v: number): string {
  return `${(v * 100).toFixed(1)}%`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
