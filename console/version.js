// The view of one model version, shared by the console and `loyalty-ml report`.
import { binaryModelCharts, multiclassModelCharts } from './charts.js';
import { h, num, table } from './dom.js';

/**
 * One version: who trained it on what, its metrics beside their baselines, the candidates compared,
 * the gates and the holdout charts. `extra` (the console's promote buttons) goes under the heading.
 */
export function versionDetail(v, extra = null) {
  const section = h('section', { 'data-version-detail': v.version });
  section.append(h('h3', {}, `v${v.version}: ${v.lineage.family ?? v.lineage.origin}, trained by ${v.created_by} on ${v.lineage.rows ?? '?'} rows`));
  if (v.refusal_reasons.length) section.append(h('p', { class: 'fail' }, `Refused: ${v.refusal_reasons.join('; ')}`));
  if (extra) section.append(extra);

  const m = v.metrics;
  if (!m) {
    section.append(h('p', { class: 'muted' }, 'Published from outside: no training metrics.'));
    return section;
  }
  const binary = 'auc' in m.holdout;
  const keys = binary ? ['auc', 'pr_auc', 'log_loss', 'brier', 'ece', 'top_decile_lift'] : ['top1_accuracy', 'top3_accuracy', 'log_loss'];
  const sets = [
    ['holdout', m.holdout],
    ['class prior', m.baseline_prior],
    ['out-of-fold', m.cross_validation?.out_of_fold],
    [`production v${m.production?.version ?? ''} then`, m.production?.metrics],
  ].filter(([, set]) => set);
  section.append(
    table(
      ['metric', ...sets.map(([label]) => label)],
      keys.map((k) => h('tr', {}, h('td', {}, k), sets.map(([, set]) => h('td', { class: 'num' }, num(set[k]))))),
      { name: 'metrics' },
    ),
  );
  const candidates = m.cross_validation?.candidates ?? [];
  if (candidates.length) {
    section.append(h('h3', {}, `Candidates compared (${m.cross_validation.description})`));
    section.append(
      table(
        ['family', 'out-of-fold score', 'settings', 'seconds'],
        candidates.map((c) =>
          h('tr', { class: c.family === m.chosen_family ? 'selected' : null }, h('td', {}, c.family + (c.family === m.chosen_family ? ' (shipped)' : '')), h('td', { class: 'num' }, num(c.score)), h('td', {}, JSON.stringify(c.settings)), h('td', { class: 'num' }, num(c.seconds, 1))),
        ),
        { name: 'candidates' },
      ),
    );
  }
  if (v.gates) {
    section.append(h('h3', {}, 'Gates'));
    section.append(
      table(
        ['gate', 'verdict', 'value', 'threshold', 'reason'],
        v.gates.results.map((g) => h('tr', {}, h('td', {}, g.gate), h('td', { class: g.passed ? 'pass' : 'fail' }, g.passed ? 'passed' : 'failed'), h('td', { class: 'num' }, num(g.value)), h('td', { class: 'num' }, num(g.threshold)), h('td', {}, g.reason ?? ''))),
        { name: 'gates' },
      ),
    );
  }
  section.append(h('h3', {}, 'Holdout charts'));
  const charts = h('div', { class: 'charts' });
  section.append(charts);
  if (binary) binaryModelCharts(charts, m.holdout);
  else multiclassModelCharts(charts, m.holdout);
  return section;
}
