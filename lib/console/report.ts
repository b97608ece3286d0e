import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AliasRecord } from '../registry/index';
import { isBinaryMetrics, type MetricSet } from '../registry/manifest';
import type { VersionSummary } from '../services/model-status';

const ROOT = resolve(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (x: number | null | undefined, digits = 4) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));

function table(headers: string[], rows: string[][]): string {
  const head = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function metricRows(sets: [string, MetricSet | null | undefined][]): { headers: string[]; rows: string[][] } {
  const present = sets.filter((s): s is [string, MetricSet] => !!s[1]);
  const binary = isBinaryMetrics(present[0]![1]);
  const keys = binary ? ['auc', 'pr_auc', 'log_loss', 'brier', 'ece', 'top_decile_lift'] : ['top1_accuracy', 'top3_accuracy', 'log_loss'];
  return {
    headers: ['metric', ...present.map(([label]) => label)],
    rows: keys.map((k) => [k, ...present.map(([, set]) => num((set as unknown as Record<string, number | null>)[k]))]),
  };
}

/**
 * One model version's report as a single HTML file that opens anywhere (`loyalty-ml report`):
 * the metrics beside their baselines, the candidates compared, the gates, and the same charts as
 * the console (uPlot and the console's chart code inlined, the data embedded as JSON).
 */
export function modelReportHtml(name: string, version: VersionSummary, aliases: AliasRecord[]): string {
  const m = version.metrics;
  const parts: string[] = [];
  parts.push(`<h1>${escapeHtml(name)} v${version.version}</h1>`);
  const onAliases = aliases.filter((a) => a.version === version.version).map((a) => a.alias);
  parts.push(
    `<p>${escapeHtml(
      `${version.status}; ${version.lineage.family ?? version.lineage.origin}; created ${version.created_at} by ${version.created_by}; ${version.lineage.rows ?? '?'} rows from ${version.lineage.data_source ?? 'an external source'}${onAliases.length ? `; serving as ${onAliases.join(', ')}` : ''}`,
    )}</p>`,
  );
  if (version.refusal_reasons.length) parts.push(`<p class="fail">Refused: ${escapeHtml(version.refusal_reasons.join('; '))}</p>`);
  if (m) {
    const { headers, rows } = metricRows([
      ['holdout', m.holdout],
      ['class prior', m.baseline_prior],
      ['out-of-fold', m.cross_validation?.out_of_fold],
      [`production v${m.production?.version ?? ''} then`, m.production?.metrics],
    ]);
    parts.push('<h2>Metrics</h2>', table(headers, rows));
    if (m.cross_validation) {
      parts.push(`<h2>Candidates compared</h2><p>${escapeHtml(m.cross_validation.description)}</p>`);
      parts.push(
        table(
          ['family', 'out-of-fold score', 'settings', 'seconds'],
          m.cross_validation.candidates.map((c) => [c.family + (c.family === m.chosen_family ? ' (shipped)' : ''), num(c.score), JSON.stringify(c.settings), num(c.seconds, 1)]),
        ),
      );
    }
  } else parts.push('<p>Published from outside: no training metrics.</p>');
  if (version.gates) {
    parts.push('<h2>Gates</h2>', table(['gate', 'verdict', 'value', 'threshold', 'reason'], version.gates.results.map((g) => [g.gate, g.passed ? 'passed' : 'failed', num(g.value), num(g.threshold), g.reason ?? ''])));
  }
  parts.push('<h2>Holdout charts</h2><div class="charts" id="charts"></div>');

  const charts = read('console/charts.js').replace(/^export function /gm, 'function ');
  const data = JSON.stringify(m?.holdout ?? null).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(name)} v${version.version}: loyalty-ml model report</title>
<link rel="icon" href="data:,">
<style>${read('node_modules/uplot/dist/uPlot.min.css')}
${read('console/style.css')}
main { margin: 0 auto; }</style>
</head>
<body>
<main>
${parts.join('\n')}
</main>
<script>${read('node_modules/uplot/dist/uPlot.iife.min.js')}</script>
<script type="module">
${charts}
const holdout = ${data};
const el = document.getElementById('charts');
if (holdout && 'auc' in holdout) binaryModelCharts(el, holdout);
else if (holdout) multiclassModelCharts(el, holdout);
</script>
</body>
</html>
`;
}
