// The view of one model version, shared by the console and `loyalty-ml report`.
import { barChart, binaryModelCharts, intervalBars, multiclassModelCharts } from './charts.js';
import { h, num, pct, table } from './dom.js';

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
  const acceptance = m.output_kind === 'acceptance';
  if (acceptance) section.append(h('p', { 'data-output': 'acceptance' }, 'Answers P(the customer accepts the offer if it is sent), for every offer: eight independent probabilities, which do not sum to 1. The metrics below judge the probability given to the offer actually made against whether it was accepted, beside each offer\'s own acceptance rate.'));
  if (m.policy_value) section.append(policySection(m.policy_value));
  const keys = binary ? ['auc', 'pr_auc', 'log_loss', 'brier', 'ece', 'top_decile_lift'] : ['top1_accuracy', 'top3_accuracy', 'log_loss'];
  const sets = [
    ['holdout', m.holdout],
    [acceptance ? 'offer rates' : 'class prior', m.baseline_prior],
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
  const candidates = acceptance ? [] : (m.cross_validation?.candidates ?? []);
  if (m.heads) section.append(headsSection(m));
  if (m.overlap) section.append(overlapSection(m.overlap, m.warnings ?? []));
  if (candidates.length) {
    section.append(h('h3', {}, `Candidates compared (${m.cross_validation.description})`));
    section.append(
      table(
        ['family', 'out-of-fold score', 'settings', 'seconds'],
        candidates.map((c) =>
          h('tr', { class: c.family === m.chosen_family ? 'selected' : null }, h('td', {}, c.family + (c.family === m.chosen_family ? ' (shipped)' : '')), h('td', { class: 'num' }, num(c.score)), h('td', { class: 'settings' }, settingsText(c.settings)), h('td', { class: 'num' }, num(c.seconds, 1))),
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
  if (v.importance) section.append(importanceSection(v.importance));
  section.append(h('h3', {}, 'Holdout charts'));
  const charts = h('div', { class: 'charts' });
  section.append(charts);
  if (binary) binaryModelCharts(charts, m.holdout);
  else multiclassModelCharts(charts, m.holdout);
  if (m.per_offer) {
    const offers = m.per_offer.map((o) => o.offer_id);
    barChart(charts, 'Per offer: predicted and observed acceptance (window)', offers, [
      { label: 'mean predicted', values: m.per_offer.map((o) => o.mean_predicted) },
      { label: 'accepted', values: m.per_offer.map((o) => (o.sent ? o.accepted / o.sent : null)) },
    ], 'acceptance');
  }
  return section;
}

/** Settings as "key value" pairs with numbers to 4 significant digits (no float noise such as 0.00009999999999999999). */
export function settingsText(settings) {
  const value = (v) =>
    typeof v === 'number' ? String(Number(v.toPrecision(4))) : Array.isArray(v) ? `[${v.map(value).join(', ')}]` : v && typeof v === 'object' ? `{${settingsText(v)}}` : String(v);
  return Object.entries(settings ?? {})
    .map(([k, v]) => `${k} ${value(v)}`)
    .join(', ');
}

/** Global importance: mean |contribution| per feature over holdout rows, with 95% intervals. */
function importanceSection(imp) {
  const box = h('div', { 'data-importance': '' });
  box.append(
    h('h3', {}, 'What the model leans on'),
    h('p', { class: 'muted' }, `Mean |contribution| of each feature to the answer's probability over ${imp.source}; the line is its 95% interval. Association in the model, not cause.`),
  );
  const charts = h('div', { class: 'charts' });
  box.append(charts);
  intervalBars(charts, 'Global importance (mean |contribution|, points)', imp.features.map((f) => ({ label: f.feature, value: f.mean_abs, ci: f.mean_abs_ci95 })), { name: 'importance' });
  return box;
}

/** The version's top-1 policy, estimated off-policy on the evaluation window, beside what was sent. */
function policySection(v) {
  const box = h('div', { 'data-section': 'policy-value' });
  box.append(h('h3', {}, `Policy value: sending each customer its top offer, on the ${v.rows.toLocaleString()} offers of ${v.from} to ${v.to}`));
  const interval = (e) => (e && e.ci_low !== null ? `${num(e.ci_low)} – ${num(e.ci_high)}` : '–');
  const rows = [
    ['doubly robust', v.dr, v.method === 'doubly robust'],
    ['IPS', v.ips, false],
    ['self-normalised IPS', v.snips, v.method !== 'doubly robust'],
  ].map(([label, e, chosen]) => h('tr', { class: chosen ? 'selected' : null }, h('td', {}, label + (chosen ? ' (reported)' : '')), h('td', { class: 'num' }, num(e?.estimate)), h('td', { class: 'num' }, interval(e))));
  rows.push(h('tr', {}, h('td', {}, 'offers as sent (observed)'), h('td', { class: 'num' }, num(v.logging)), h('td', {}, '–')));
  if (v.production) {
    rows.push(h('tr', {}, h('td', {}, `production v${v.production.version} (same rows)`), h('td', { class: 'num' }, num(v.production.estimate)), h('td', { class: 'num' }, interval(v.production))));
    rows.push(h('tr', {}, h('td', {}, '  this minus production'), h('td', { class: 'num' }, num(v.production.difference.estimate)), h('td', { class: 'num' }, interval(v.production.difference))));
  }
  if (typeof v.true_value === 'number') rows.push(h('tr', {}, h('td', {}, 'true value (demo process)'), h('td', { class: 'num' }, num(v.true_value)), h('td', {}, '–')));
  box.append(table(['estimate', 'acceptance rate', '95% interval'], rows, { name: 'policy-value' }));
  const support = v.low_support_share !== null && v.low_support_share !== undefined ? ` ${pct(v.low_support_share)} of them are sent an offer the logging policy almost never chose there (estimated propensity below 1%): for them the estimate rests on the model alone.` : '';
  box.append(
    h(
      'p',
      { class: 'muted' },
      `What the acceptance rate would have been had every customer of the window been sent this version's top offer, estimated from offers the programme actually made: the model's answer, corrected by what happened wherever the offer sent is the one it would send (weighted by 1 / the chance that offer had, ${v.propensity} propensities). ${v.matched.toLocaleString()} offers match, worth ${v.effective_rows.toLocaleString()} after weighting.${support} It cannot be trusted where an offer was never sent to a kind of customer (see overlap), or where propensities are estimated from too little history.`,
    ),
  );
  return box;
}

/** One acceptance model per offer. */
function headsSection(m) {
  const box = h('div', { 'data-section': 'heads' });
  box.append(h('h3', {}, `One acceptance model per offer (${m.cross_validation?.description ?? ''})`));
  const d = m.distillation;
  if (d?.student) box.append(h('p', { 'data-distillation': d.served }, d.served === 'student' ? `Served as one network ${JSON.stringify(d.student.hidden)} with a sigmoid per offer, distilled from these heads: on the window's customers it differs from them by ${num(d.student.mean_abs_diff)} on average and sends the same top offer to ${pct(d.student.same_top_offer)} of them.` : `Served as the heads themselves: ${d.reason}.`));
  const window = new Map((m.per_offer ?? []).map((o) => [o.offer_id, o]));
  box.append(
    table(
      ['offer', 'learnt from', 'accepted', 'model', 'out-of-fold log loss', 'window sends', 'mean predicted', 'observed', 'AUC'],
      m.heads.map((x) => {
        const w = window.get(x.offer_id);
        return h(
          'tr',
          { class: x.kind === 'constant' ? 'fail' : null },
          h('td', {}, x.offer_id),
          h('td', { class: 'num' }, x.sent.toLocaleString()),
          h('td', { class: 'num' }, x.accepted.toLocaleString()),
          h('td', {}, x.family ?? `constant (${x.reason})`),
          h('td', { class: 'num' }, num(x.log_loss)),
          h('td', { class: 'num' }, w ? w.sent.toLocaleString() : '–'),
          h('td', { class: 'num' }, num(w?.mean_predicted)),
          h('td', { class: 'num' }, w?.sent ? num(w.accepted / w.sent) : '–'),
          h('td', { class: 'num' }, num(w?.auc)),
        );
      }),
      { name: 'heads' },
    ),
  );
  return box;
}

/** Whether the history can tell what each offer does for every kind of customer. */
function overlapSection(o, warnings) {
  const box = h('div', { 'data-section': 'overlap' });
  box.append(h('h3', {}, `Overlap (${o.propensity_source} propensities of the offers sent: median ${num(o.propensity.p50)}, 5% ${num(o.propensity.p05)}, min ${num(o.propensity.min)})`));
  box.append(
    table(
      ['offer', 'sent', 'accepted', 'propensity 5% / 50% / 95%', 'effective sends'],
      o.offers.map((x) => h('tr', {}, h('td', {}, x.offer_id), h('td', { class: 'num' }, x.sent.toLocaleString()), h('td', { class: 'num' }, x.accepted.toLocaleString()), h('td', { class: 'num' }, `${num(x.propensity.p05)} / ${num(x.propensity.p50)} / ${num(x.propensity.p95)}`), h('td', { class: 'num' }, Math.round(x.effective_sends).toLocaleString()))),
      { name: 'overlap' },
    ),
  );
  for (const w of warnings) box.append(h('p', { class: 'fail', 'data-warning': '' }, w));
  if (!warnings.length) box.append(h('p', { class: 'muted' }, 'Every offer was sent to every kind of customer the checks look at (one feature at a time).'));
  return box;
}
