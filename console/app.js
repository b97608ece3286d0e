// The operators' console: models with their charts, segments with their trends, and scoring by
// hand. Plain modules and the API's own JSON; no build step.
import { barChart, calibrationChart, intervalBars, trendChart, waterfallChart } from './charts.js';
import { h, num, pct, table, when } from './dom.js';
import { versionDetail } from './version.js';

const API = '/api/loyalty/v1';
const view = document.getElementById('view');
let settings = { label: 'local', actions: false };

// ---------- talking to the API ----------

async function api(path, init) {
  const response = await fetch(path.startsWith('/') ? path : `${API}/${path}`, {
    ...init,
    headers: init?.body ? { 'content-type': 'application/json' } : undefined,
  });
  const text = await response.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new Error(`HTTP ${response.status}: the answer was not JSON`);
  }
  if (!response.ok) {
    const error = new Error(body?.error?.message ?? `HTTP ${response.status}`);
    error.code = body?.error?.code;
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(target, error) {
  target.append(h('p', { class: 'error', role: 'alert' }, error.message));
}

// ---------- overview ----------

/** A 404 that means "nothing yet" (never measured) becomes null; anything else is thrown. */
async function optional(path, codes) {
  try {
    return await api(path);
  } catch (error) {
    if (error.status === 404 && codes.includes(error.code)) return null;
    throw error;
  }
}

/** A quality figure's main number: churn's AUC, NBO's AUC over the offers actually sent. */
const realisedAuc = (model, q) => (model === 'churn' ? q?.auc : q?.offers_made?.auc) ?? null;
const realisedCi = (model, q) => (model === 'churn' ? q?.auc_ci95 : q?.offers_made?.auc_ci95) ?? null;
const versionKey = (version) => (version === null ? 'mock' : `v${version}`);

/**
 * The landing page: is everything fine? Every served model with its production version, realised
 * quality by week, the scheduled segments' latest runs with their trend, the scoring volume, and a
 * badge for every open problem (mock answers, a refused candidate, quality below training, drift,
 * a run that did not complete), each linking to the page that shows it.
 */
async function overviewView() {
  view.replaceChildren(h('h2', {}, 'Overview'));
  const badges = h('div', { class: 'badges', 'data-badges': '' });
  const charts = h('div', { class: 'charts', 'data-charts': 'overview' });
  const badge = (level, text, href, title) => badges.append(h('a', { class: `badge ${level}`, href, title, 'data-badge': level }, text));
  const report = await api('ml/models');
  const served = report.models.filter((m) => m.name !== 'rfm');
  const [details, performance, segments] = await Promise.all([
    Promise.all(served.map((m) => api(`ml/models/${encodeURIComponent(m.name)}`))),
    Promise.all(served.map((m) => optional(`ml/models/${encodeURIComponent(m.name)}/performance`, ['performance_not_measured']))),
    Promise.all(
      (settings.segments ?? ['all']).map((id) =>
        api(`segments/${encodeURIComponent(id)}/ml/stats/`).then(
          (stats) => ({ id, stats }),
          (error) => {
            if (error.status !== 404) throw error;
            return { id, stats: null, missing: error.code === 'segment_not_scored' ? 'never scored' : error.message };
          },
        ),
      ),
    ),
  ]);

  const rows = served.map((m, i) => {
    const detail = details[i];
    const perf = performance[i];
    const production = detail.versions.find((v) => v.version === m.production?.version);
    const held = mainMetric(production?.metrics?.holdout);
    // The answers callers got: production's, or the mock's when the model answers in mock mode.
    const servedVersion = m.mode === 'model' ? m.loaded_version ?? m.production?.version : null;
    const latest = perf?.latest.versions.find((v) => !v.shadow && v.version === servedVersion);
    const realised = realisedAuc(m.name, latest?.overall.quality);
    const ci = realisedCi(m.name, latest?.overall.quality);
    const link = `#/models/${encodeURIComponent(m.name)}`;
    if (m.mode !== 'model') badge('bad', `${m.name} answers in ${m.mode} mode${m.error ? `: ${m.error}` : ''}`, link);
    else if (m.production?.problem) badge('bad', `${m.name} v${m.production.version}: ${m.production.problem}`, link);
    // Candidates refused since production was promoted: the latest one, and how many before it.
    const refused = detail.versions.filter((x) => x.status === 'refused' && x.version > (m.production?.version ?? 0)).sort((a, b) => b.version - a.version);
    if (refused.length) {
      const why = refused[0].refusal_reasons[0] ?? 'its gates failed';
      badge('warn', `${m.name} v${refused[0].version} refused${refused.length > 1 ? ` (and ${refused.length - 1} earlier)` : ''}: ${why.length > 110 ? `${why.slice(0, 110)}…` : why}`, `${link}/${refused[0].version}`, why);
    }
    if (ci && latest?.holdout_auc != null && ci[1] < latest.holdout_auc) {
      badge('bad', `${m.name} v${latest.version} realised AUC ${num(realised, 3)} [${num(ci[0], 3)}, ${num(ci[1], 3)}] is below its holdout ${num(latest.holdout_auc, 3)}`, link);
    }
    return h(
      'tr',
      { 'data-model': m.name },
      h('td', {}, h('a', { href: link }, m.name)),
      h('td', { class: m.mode === 'model' ? 'pass' : 'fail' }, m.mode),
      h('td', {}, m.production ? `v${m.production.version}` : 'none'),
      h('td', {}, production?.lineage.family ?? production?.lineage.origin ?? '–'),
      h('td', { class: 'num' }, held.value == null ? '–' : `${held.name} ${num(held.value, 3)}`),
      h('td', { class: 'num' }, realised == null ? (perf ? 'no outcomes yet' : 'not measured yet') : `AUC ${num(realised, 3)}${ci ? ` [${num(ci[0], 3)}, ${num(ci[1], 3)}]` : ''}${servedVersion === null ? ' (mock)' : ''}`),
      h('td', {}, perf ? when(perf.latest.computed_at) : '–'),
    );
  });

  const runs = h('tbody', {});
  for (const { id, stats, missing } of segments) {
    const link = `#/segments/${encodeURIComponent(id)}`;
    if (!stats) {
      runs.append(h('tr', { 'data-segment': id }, h('td', {}, h('a', { href: link }, id)), h('td', { colspan: 5, class: 'muted' }, missing)));
      continue;
    }
    if (stats.status !== 'completed') badge('bad', `${id}: latest run ${stats.run_id} ended ${stats.status}`, link);
    // Alarms only for change: against the segment's own earlier runs, never its difference from the training base.
    const moved = stats.drift.filter((d) => d.level !== 'stable' && d.against !== 'training');
    if (moved.length) {
      const worst = moved.some((d) => d.level === 'major') ? 'major' : 'moderate';
      badge(worst === 'major' ? 'bad' : 'warn', `${id}: ${worst} drift in ${moved.map((d) => (d.kind === 'feature' ? d.feature : `${d.model} score`)).filter((x, i, all) => all.indexOf(x) === i).slice(0, 3).join(', ')}${moved.length > 3 ? ', …' : ''}`, link);
    }
    runs.append(
      h(
        'tr',
        { 'data-segment': id },
        h('td', {}, h('a', { href: link }, id)),
        h('td', {}, `${stats.run_id} (${stats.status})`),
        h('td', {}, when(stats.finished_at)),
        h('td', { class: 'num' }, stats.customers.scored.toLocaleString()),
        h('td', { class: 'num' }, stats.churn ? num(stats.churn.mean, 3) : '–'),
        h('td', {}, stats.nbo?.top_offers[0]?.offer_id ?? '–'),
      ),
    );
  }
  if (!badges.children.length) badges.append(h('span', { class: 'badge good', 'data-badge': 'good' }, 'No open warnings: every model answers from its production version, no refused candidate, no drift.'));

  view.append(
    badges,
    h('h3', {}, 'Served models'),
    table(['model', 'answers from', 'production', 'family', 'holdout', 'realised (latest report)', 'measured'], rows, { name: 'overview-models' }),
    h('h3', {}, 'Segment runs'),
    h('table', { 'data-table': 'overview-segments' }, h('thead', {}, h('tr', {}, ['segment', 'latest run', 'finished', 'customers', 'mean churn', 'top offer'].map((x) => h('th', {}, x)))), runs),
    h('h3', {}, 'Over time'),
    charts,
  );

  served.forEach((m, i) => {
    const perf = performance[i];
    if (!perf) {
      charts.append(h('p', { class: 'muted', 'data-waiting': `quality-${m.name}` }, `${m.name}: realised quality is measured once outcomes arrive (loyalty-ml monitor ${m.name}, or the daily check).`));
      return;
    }
    // Each stored report's realised AUC per served version, with the version's holdout AUC as a dashed line.
    const holdout = new Map(perf.latest.versions.filter((v) => !v.shadow && v.holdout_auc != null).map((v) => [versionKey(v.version), v.holdout_auc]));
    const reports = perf.history.length ? perf.history : [{ computed_at: perf.latest.computed_at, versions: perf.latest.versions.map((v) => ({ ...v, quality: v.overall.quality })) }];
    const points = reports.map((r) => ({
      t: Date.parse(r.computed_at) / 1000,
      values: {
        ...Object.fromEntries(r.versions.filter((v) => !v.shadow && realisedAuc(m.name, v.quality) != null).map((v) => [versionKey(v.version), realisedAuc(m.name, v.quality)])),
        ...Object.fromEntries([...holdout].map(([k, auc]) => [`${k} holdout`, auc])),
      },
    }));
    const versions = [...new Set(points.flatMap((p) => Object.keys(p.values).filter((k) => !k.endsWith(' holdout'))))];
    const bands = [...holdout.keys()].map((k) => `${k} holdout`);
    trendChart(charts, `${m.name}: realised AUC by report${m.name === 'nbo' ? ' (offers sent)' : ''}`, points, [...versions, ...bands], 'AUC', bands, 'report');
  });

  // Scoring volume: answers logged per ISO week and model in the latest reports' windows (served answers; a challenger's shadow ones apart).
  const weeks = [...new Set(performance.flatMap((p) => p?.latest.versions.flatMap((v) => v.weeks.map((w) => w.period)) ?? []))].sort();
  if (weeks.length) {
    const logged = (p, week) => (p?.latest.versions ?? []).filter((v) => !v.shadow).reduce((a, v) => a + (v.weeks.find((w) => w.period === week)?.predictions ?? 0), 0);
    barChart(charts, 'Scoring volume: customers scored per week (one per customer and feature date)', weeks, served.map((m, i) => ({ label: m.name, values: weeks.map((w) => logged(performance[i], w)) })), 'answers');
  }

  const scored = segments.filter((s) => s.stats);
  if (scored.length) {
    const runsOf = (s) => [s.stats, ...s.stats.history].filter((r) => r.finished_at && r.churn);
    const points = scored.flatMap((s) => runsOf(s).map((r) => ({ t: Date.parse(r.finished_at) / 1000, values: { [s.id]: r.churn.mean } }))).sort((a, b) => a.t - b.t);
    if (points.length) trendChart(charts, 'Segment runs: mean churn probability', points, scored.map((s) => s.id), 'mean churn');
  }
}

// ---------- models ----------

async function modelsView() {
  view.replaceChildren(h('h2', {}, 'Models'));
  const report = await api('ml/models');
  const rows = report.models.map((m) =>
    h(
      'tr',
      {},
      h('td', {}, h('a', { href: `#/models/${m.name}` }, m.name)),
      h('td', { class: m.mode === 'model' ? 'pass' : 'fail' }, m.mode),
      h('td', {}, m.production ? `v${m.production.version}${m.production.problem ? ` (${m.production.problem})` : ''}` : 'none'),
      h('td', {}, m.staging ? `v${m.staging.version}` : 'none'),
      h('td', {}, m.loaded ? `v${m.loaded_version} in ${num(m.load_ms, 0)} ms` : m.error ?? 'not loaded'),
    ),
  );
  view.append(
    h('p', { class: 'muted' }, `Serving alias: ${report.serving_alias}; mock mode: ${report.mock_mode}.`),
    table(['model', 'answers from', 'production', 'staging', 'loaded here'], rows, { name: 'models' }),
  );
}

function mainMetric(m) {
  if (!m) return { name: 'metric', value: null };
  return 'auc' in m ? { name: 'AUC', value: m.auc } : { name: 'top-1', value: m.top1_accuracy };
}

async function modelView(name, selected) {
  view.replaceChildren(h('h2', {}, h('a', { href: '#/models' }, 'Models'), ` / ${name}`));
  const detail = await api(`ml/models/${encodeURIComponent(name)}`);
  const aliasOf = new Map();
  for (const a of detail.aliases) aliasOf.set(a.version, [...(aliasOf.get(a.version) ?? []), a.alias]);

  view.append(h('h3', {}, 'Aliases'));
  view.append(
    table(
      ['alias', 'version', 'updated', 'by', 'history (newest first)'],
      detail.aliases.map((a) =>
        h(
          'tr',
          {},
          h('td', {}, a.alias),
          h('td', {}, `v${a.version}`),
          h('td', {}, when(a.updated_at)),
          h('td', {}, a.updated_by),
          h('td', {}, [...a.history].reverse().slice(0, 6).map((e) => h('div', {}, `${when(e.at)}: ${e.action} ${e.from ? `v${e.from}` : '(none)'} → v${e.to} by ${e.by}${e.reason ? ` (${e.reason})` : ''}`))),
        ),
      ),
      { name: 'aliases' },
    ),
  );

  view.append(h('h3', {}, 'Realised quality'));
  view.append(await realisedQuality(name));

  const version = detail.versions.find((v) => v.version === Number(selected)) ?? detail.versions.find((v) => aliasOf.get(v.version)?.includes('production')) ?? detail.versions[0];
  view.append(h('h3', {}, 'Versions'));
  view.append(
    table(
      ['version', 'created', 'status', 'family', 'holdout', 'prior', 'policy value', 'gates', 'aliases'],
      detail.versions.map((v) => {
        const held = mainMetric(v.metrics?.holdout);
        const prior = mainMetric(v.metrics?.baseline_prior);
        return h(
          'tr',
          { class: v === version ? 'selected' : null, 'data-version': v.version },
          h('td', {}, h('a', { href: `#/models/${name}/${v.version}` }, `v${v.version}`)),
          h('td', {}, when(v.created_at)),
          h('td', { class: v.status === 'ready' ? 'pass' : 'fail' }, v.status),
          h('td', {}, v.lineage.family ?? v.lineage.origin),
          h('td', { class: 'num' }, `${held.name} ${num(held.value)}`),
          h('td', { class: 'num' }, num(prior.value)),
          h('td', { class: 'num' }, v.metrics?.policy_value ? `${num(v.metrics.policy_value.estimate)} (${num(v.metrics.policy_value.ci_low)}–${num(v.metrics.policy_value.ci_high)}) vs ${num(v.metrics.policy_value.logging)} sent` : '–'),
          h('td', { class: v.gates?.passed === false ? 'fail' : 'pass' }, v.gates ? (v.gates.passed ? 'passed' : 'failed') : '–'),
          h('td', {}, (aliasOf.get(v.version) ?? []).join(', ')),
        );
      }),
      { name: 'versions' },
    ),
  );
  if (version) view.append(versionDetail(version, settings.actions ? actions(name, version, detail) : null));
}

/** Logged predictions against what happened: per version, the trend across reports and the calibration. */
async function realisedQuality(name) {
  const out = h('div', { 'data-section': 'performance' });
  let perf;
  try {
    perf = await api(`ml/models/${encodeURIComponent(name)}/performance`);
  } catch (error) {
    if (error.code !== 'performance_not_measured') throw error;
    out.append(h('p', { class: 'muted' }, `Not measured yet: once outcomes have arrived, run loyalty-ml monitor ${name} (the daily check does it on a deployed stage).`));
    return out;
  }
  const latest = perf.latest;
  const churn = latest.model === 'churn';
  const label = (v) => `${v.version === null ? 'mock' : `v${v.version}`}${v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}${v.shadow ? ' shadow' : ''}`;
  out.append(
    h('p', { class: 'muted' }, `Measured ${when(latest.computed_at)} from ${latest.predictions_read.toLocaleString()} logged predictions; outcomes within ${latest.horizon_days} days of each prediction.`),
    table(
      churn ? ['version', 'predictions', 'with outcome', 'churned', 'AUC [95% CI]', 'holdout AUC', 'Brier', 'lift@10%'] : ['version', 'predictions', 'offered', 'recommended accepted', 'others accepted', 'lift', 'p'],
      latest.versions.map((v) => {
        const q = v.overall.quality;
        const cells = churn
          ? [pct(q?.observed_rate), q?.auc == null ? '–' : `${num(q.auc, 3)}${q.auc_ci95 ? ` [${num(q.auc_ci95[0], 3)}, ${num(q.auc_ci95[1], 3)}]` : ''}`, num(v.holdout_auc, 3), num(q?.brier), num(q?.top_decile_lift, 2)]
          : [q ? `${pct(q.recommended.rate)} of ${q.recommended.offers}` : '–', q ? `${pct(q.other.rate)} of ${q.other.offers}` : '–', num(q?.lift, 2), num(q?.p_value)];
        return h('tr', { class: v.shadow ? 'muted' : null }, h('td', {}, label(v)), h('td', { class: 'num' }, v.overall.predictions.toLocaleString()), h('td', { class: 'num' }, v.overall.matched.toLocaleString()), cells.map((c) => h('td', { class: 'num' }, c)));
      }),
      { name: 'performance' },
    ),
  );
  const charts = h('div', { class: 'charts' });
  out.append(charts);
  const key = (v) => `v${v.version ?? 'mock'}${v.shadow ? ' shadow' : ''}`;
  const names = [...new Set(perf.history.flatMap((r) => r.versions.map(key)))];
  const points = perf.history.map((r) => ({
    t: Date.parse(r.computed_at) / 1000,
    values: Object.fromEntries(r.versions.filter((v) => v.quality).map((v) => [key(v), churn ? v.quality.auc : v.quality.lift])),
  }));
  trendChart(charts, churn ? 'Realised AUC by report' : 'Acceptance lift of recommended offers by report', points, names, churn ? 'AUC' : 'lift');
  const served = latest.versions.find((v) => !v.shadow && v.overall.quality?.calibration);
  if (churn && served) calibrationChart(charts, served.overall.quality.calibration.map((d) => ({ count: d.customers, mean_predicted: d.mean_predicted, observed_rate: d.observed_rate })));
  return out;
}

function actions(name, v, detail) {
  const box = h('form', { class: 'row', 'data-actions': true, onsubmit: (e) => e.preventDefault() });
  const run = async (label, body) => {
    if (!confirm(`${label}?`)) return;
    try {
      await api(`/console/actions/models/${encodeURIComponent(name)}/aliases/${body.alias}`, { method: 'POST', body: JSON.stringify(body.payload) });
      await route();
    } catch (error) {
      showError(box, error);
    }
  };
  const ready = v.status === 'ready';
  for (const alias of ['staging', 'production']) {
    const current = detail.aliases.find((a) => a.alias === alias);
    box.append(
      h('button', { type: 'button', disabled: !ready || current?.version === v.version, onclick: () => run(`Promote ${name} v${v.version} to ${alias}`, { alias, payload: { action: 'promote', version: v.version } }) }, `Promote v${v.version} to ${alias}`),
    );
  }
  const production = detail.aliases.find((a) => a.alias === 'production');
  if (production && production.history.length > 1) {
    box.append(h('button', { type: 'button', onclick: () => run(`Roll ${name} production back from v${production.version} to its previous version`, { alias: 'production', payload: { action: 'rollback' } }) }, 'Roll production back'));
  }
  return box;
}

// ---------- segments ----------

async function segmentsView(segmentId = 'high-value') {
  const input = h('input', { name: 'segment', value: segmentId, 'aria-label': 'segment id', size: 16 });
  const out = h('div', {});
  const form = h(
    'form',
    { class: 'row', onsubmit: (e) => (e.preventDefault(), (location.hash = `#/segments/${encodeURIComponent(input.value.trim())}`)) },
    'Segment',
    input,
    h('button', { type: 'submit' }, 'Show'),
    h('button', { type: 'button', class: 'primary', onclick: () => startRun(input.value.trim(), out) }, 'Start a run'),
  );
  view.replaceChildren(h('h2', {}, 'Segments'), h('p', { class: 'muted' }, 'Demo segments: all, high-value, at-risk, new, dormant.'), form, out);
  await showStats(segmentId, out);
}

async function startRun(segmentId, out) {
  for (const earlier of out.querySelectorAll('[data-run]')) earlier.remove();
  const status = h('div', { 'data-run': true });
  out.prepend(status);
  try {
    const started = await api(`segments/${encodeURIComponent(segmentId)}/ml/predict/`, { method: 'POST', body: '{}' });
    const bar = h('progress', { max: 1, value: 0 });
    const label = h('span', {}, ` run ${started.run_id}: ${started.status}`);
    status.replaceChildren(bar, label);
    for (;;) {
      await new Promise((r) => setTimeout(r, 700));
      const run = await api(started.status_url);
      const p = run.progress;
      bar.max = Math.max(1, p.customers_planned);
      bar.value = p.customers_scored + p.customers_failed;
      label.textContent = ` run ${run.run_id}: ${run.status}, ${p.customers_scored.toLocaleString()} of ${p.customers_planned.toLocaleString()} customers scored, ${p.chunks_done}/${p.chunks_planned} chunks`;
      if (['completed', 'partial', 'failed'].includes(run.status)) break;
    }
    await showStats(segmentId, out);
    out.prepend(status);
  } catch (error) {
    showError(status, error);
  }
}

async function showStats(segmentId, out) {
  out.replaceChildren();
  let stats;
  try {
    stats = await api(`segments/${encodeURIComponent(segmentId)}/ml/stats/`);
  } catch (error) {
    showError(out, error);
    return;
  }
  out.append(
    h('h3', {}, `Latest run ${stats.run_id} (${stats.status}, finished ${when(stats.finished_at)})`),
    h('p', {}, `${stats.customers.scored.toLocaleString()} customers scored, ${stats.customers.failed.toLocaleString()} failed.`),
  );
  if (stats.drift.length) {
    const moved = stats.drift.filter((d) => d.level !== 'stable');
    // Every score comparison and every input that moved; the stable inputs folded away.
    const shown = stats.drift.filter((d) => d.kind === 'score' || d.level !== 'stable');
    const folded = stats.drift.filter((d) => !shown.includes(d));
    const row = (d) => h('tr', { 'data-level': d.level }, h('td', {}, d.kind === 'feature' ? `input ${d.feature}` : 'score'), h('td', {}, `${d.model} v${d.reference_version}`), h('td', {}, d.reference), h('td', { class: 'num' }, num(d.psi)), h('td', { class: d.level === 'major' ? 'fail' : d.level === 'moderate' ? '' : 'pass' }, d.level));
    const headers = ['what', 'model', 'compared with', 'PSI', 'level'];
    out.append(
      h('h3', {}, 'Drift'),
      h('p', { 'data-drift-summary': '' }, moved.length ? `${moved.length} of ${stats.drift.length} comparisons moved: ${moved.map((d) => `${d.kind === 'feature' ? d.feature : `${d.model} score`} (${d.level}, against ${d.against})`).join('; ')}.` : `All ${stats.drift.length} comparisons are stable.`),
      shown.length ? table(headers, shown.map(row), { name: 'drift' }) : '',
      folded.length ? h('details', { 'data-drift-stable': '' }, h('summary', {}, `${folded.length} stable input comparisons`), table(headers, folded.map(row), { name: 'drift-stable' })) : '',
    );
  }
  const latest = h('div', { class: 'charts', 'data-charts': 'latest' });
  out.append(latest);
  if (stats.churn) {
    const edges = stats.churn.histogram.edges;
    barChart(latest, `Churn probability (mean ${num(stats.churn.mean, 3)})`, edges.slice(0, -1).map((e) => e.toFixed(1)), [{ label: 'customers', values: stats.churn.histogram.counts }]);
    const bands = Object.keys(stats.churn.risk_bands);
    barChart(latest, 'Churn risk bands', bands, [{ label: 'customers', values: bands.map((b) => stats.churn.risk_bands[b]) }]);
    const drivers = stats.churn.contributions;
    if (drivers) {
      intervalBars(latest, `What drives this segment's churn risk (mean contribution over ${drivers.customers} customers)`, drivers.features.map((f) => ({ label: f.feature, value: f.mean, ci: f.mean_ci95 })), { name: 'segment-drivers' });
    }
  }
  if (stats.nbo) {
    barChart(latest, 'Offer mix (best offer)', stats.nbo.top_offers.map((o) => o.offer_id), [{ label: 'customers', values: stats.nbo.top_offers.map((o) => o.customers) }]);
    if (stats.nbo.offers) {
      const offers = stats.nbo.offers;
      barChart(latest, 'Which offers work best: mean P(accept)', offers.map((o) => o.offer_id), [{ label: 'mean P(accept)', values: offers.map((o) => o.mean_probability) }], 'acceptance');
      out.append(
        h('h3', {}, 'Which offers work best for this segment'),
        h(
          'p',
          { 'data-expected-acceptance': '' },
          stats.nbo.expected_acceptance_best_offer != null
            ? `If every customer got their best offer, the expected acceptance rate is ${pct(stats.nbo.expected_acceptance_best_offer)}.`
            : 'Part of the segment was scored by a model without acceptance probabilities: no expected acceptance.',
        ),
        table(
          ['offer', 'mean P(accept) over the segment', 'best offer for', 'share'],
          offers.map((o) => h('tr', {}, h('td', {}, `${o.offer_id} (${o.offer_name})`), h('td', { class: 'num' }, pct(o.mean_probability)), h('td', { class: 'num' }, o.best_for.toLocaleString()), h('td', { class: 'num' }, pct(o.best_share)))),
          { name: 'offers-work' },
        ),
      );
    }
  }
  if (stats.rfm) {
    barChart(latest, 'RFM segments', stats.rfm.segments.map((s) => s.segment), [{ label: 'customers', values: stats.rfm.segments.map((s) => s.customers) }]);
  }

  const runs = [stats, ...stats.history].filter((r) => r.finished_at).sort((a, b) => a.finished_at.localeCompare(b.finished_at));
  out.append(h('h3', {}, `Trend over ${runs.length} run${runs.length === 1 ? '' : 's'}`));
  if (runs.length < 2) {
    out.append(h('p', { class: 'muted', 'data-trend': 'waiting' }, 'Trend lines appear after two finished runs.'));
    return;
  }
  const trends = h('div', { class: 'charts', 'data-charts': 'trend' });
  out.append(trends);
  const t = (r) => Date.parse(r.finished_at) / 1000;
  const scored = (r) => Math.max(1, r.customers.scored);
  trendChart(
    trends,
    'Churn',
    runs.map((r) => ({ t: t(r), values: { 'mean churn': r.churn?.mean ?? null, 'high-risk share': r.churn ? (r.churn.risk_bands.high ?? 0) / scored(r) : null } })),
    ['mean churn', 'high-risk share'],
    'share',
  );
  const offers = [...new Set(runs.flatMap((r) => r.nbo?.top_offers.map((o) => o.offer_id) ?? []))];
  if (offers.length) {
    trendChart(trends, 'Offer shares', runs.map((r) => ({ t: t(r), values: Object.fromEntries((r.nbo?.top_offers ?? []).map((o) => [o.offer_id, o.share])) })), offers, 'share');
  }
  // Score drift against each run's baseline (the first run under its version), per model.
  const baseline = (r) => r.drift.filter((d) => d.kind === 'score' && d.against === 'baseline');
  const models = [...new Set(runs.flatMap((r) => baseline(r).map((d) => d.model)))];
  if (models.length) {
    trendChart(
      trends,
      'Score drift against the baseline run (PSI; 0.1 moderate, 0.25 major)',
      runs.map((r) => ({ t: t(r), values: { ...Object.fromEntries(baseline(r).map((d) => [d.model, d.psi])), moderate: 0.1, major: 0.25 } })),
      [...models, 'moderate', 'major'],
      'PSI',
      ['moderate', 'major'],
    );
  }
}

// ---------- try it ----------

function tryView() {
  const ids = h('textarea', { name: 'ids', 'aria-label': 'customer ids' }, 'demo-000001 demo-000002');
  const type = h('select', { name: 'type', 'aria-label': 'prediction type' }, ['all', 'churn', 'nbo', 'rfm'].map((t) => h('option', { value: t }, t)));
  const explain = h('input', { type: 'checkbox', name: 'explain', checked: true });
  const out = h('div', {});
  const form = h(
    'form',
    {
      class: 'row',
      onsubmit: async (e) => {
        e.preventDefault();
        out.replaceChildren(h('p', { class: 'muted' }, 'Scoring…'));
        const customer_ids = ids.value.split(/[\s,]+/).filter(Boolean);
        try {
          const answer = await api('ml/predict/batch', { method: 'POST', body: JSON.stringify({ customer_ids, type: type.value, ...(explain.checked ? { explain: true } : {}) }) });
          out.replaceChildren(answerView(answer));
        } catch (error) {
          out.replaceChildren();
          showError(out, error);
        }
      },
    },
    'Customer ids',
    ids,
    type,
    h('label', {}, explain, ' with reasons'),
    h('button', { type: 'submit', class: 'primary' }, 'Score'),
  );
  view.replaceChildren(h('h2', {}, 'Try it'), h('p', { class: 'muted' }, 'Scores through the batch API (at most 100 customers), as the back-end would.'), form, out);
}

function describe(result) {
  const parts = [];
  const churn = result.churn ?? ('churn_probability' in result ? result : null);
  const nbo = result.nbo ?? ('offer_id' in result ? result : null);
  const rfm = result.rfm ?? ('rfm_score' in result ? result : null);
  if (churn) parts.push([`churn ${num(churn.churn_probability, 3)} (${churn.churn_risk})`, churn.source]);
  if (nbo) parts.push([`offer ${nbo.offer_id} ${nbo.offer_name} at ${pct(nbo.confidence)}${nbo.source?.probabilities === 'acceptance' ? ' chance of acceptance' : ''}`, nbo.source]);
  if (rfm) parts.push([`RFM ${rfm.segment} (${rfm.rfm_score})`, rfm.source]);
  return parts;
}

const sourceText = (s) => (!s ? '' : s.type === 'model' ? `${s.name} v${s.version} (${s.alias})` : s.type === 'rules' ? `rules (${s.cut_points})` : `MOCK ${s.name}`);

function answerView(answer) {
  const rows = answer.results.flatMap((r) => describe(r.result).map(([what, source], i) => h('tr', {}, h('td', {}, i === 0 ? r.customer_id : ''), h('td', {}, what), h('td', { class: source?.type === 'mock' ? 'fail' : '' }, sourceText(source)))));
  const box = h('div', { 'data-answer': true });
  box.append(h('p', {}, `${answer.successful} scored, ${answer.failed} failed.`));
  box.append(table(['customer', 'answer', 'source'], rows, { name: 'answers' }));
  if (answer.errors.length) box.append(table(['customer', 'error'], answer.errors.map((e) => h('tr', {}, h('td', {}, e.customer_id), h('td', { class: 'fail' }, e.error))), { name: 'errors' }));
  const explained = answer.results.flatMap((r) => {
    const churn = r.result.churn ?? ('churn_probability' in r.result ? r.result : null);
    const nbo = r.result.nbo ?? ('offer_id' in r.result ? r.result : null);
    return [
      churn?.reasons && { id: r.customer_id, title: `${r.customer_id}: churn risk ${pct(churn.reasons.output)}`, reasons: churn.reasons },
      nbo?.reasons && { id: r.customer_id, title: `${r.customer_id}: chance of accepting ${nbo.offer_name} ${pct(nbo.reasons.output)}`, reasons: nbo.reasons },
    ].filter(Boolean);
  });
  if (explained.length) {
    box.append(h('h3', {}, 'Why: each answer from a typical customer to this one'), h('p', { class: 'muted' }, 'Exact Shapley values over the version\'s background customers, in probability points; they describe the model, not cause.'));
    const charts = h('div', { class: 'charts', 'data-charts': 'reasons' });
    box.append(charts);
    for (const e of explained.slice(0, 10)) {
      const chart = waterfallChart(charts, e.title, e.reasons, { limit: 6 });
      chart.append(h('ul', { class: 'reasons' }, e.reasons.text.map((t) => h('li', {}, t))));
    }
    if (explained.length > 10) box.append(h('p', { class: 'muted' }, `The first 10 of ${explained.length} explained answers are drawn; all are in the raw answer.`));
  }
  if (answer.warnings.length) box.append(h('h3', {}, 'Warnings'), h('ul', { 'data-warnings': true }, answer.warnings.map((w) => h('li', {}, `${w.code}: ${w.message}`))));
  box.append(h('details', {}, h('summary', {}, 'Raw answer'), h('pre', {}, JSON.stringify(answer, null, 2))));
  return box;
}

// ---------- routing ----------

async function route() {
  const [, page = 'overview', a, b] = location.hash.replace(/^#\/?/, '#/').split('/');
  for (const link of document.querySelectorAll('nav a[data-view]')) link.classList.toggle('active', link.dataset.view === page);
  try {
    if (page === 'models' && a) await modelView(decodeURIComponent(a), b);
    else if (page === 'segments') await segmentsView(a ? decodeURIComponent(a) : undefined);
    else if (page === 'try') tryView();
    else if (page === 'models') await modelsView();
    else await overviewView();
  } catch (error) {
    view.replaceChildren();
    showError(view, error);
  }
}

async function main() {
  try {
    settings = await api('/console/settings.json');
  } catch {
    /* a static host without the local server: read-only */
  }
  document.getElementById('where').textContent = `${settings.label}${settings.actions ? '' : ' (read-only)'}`;
  window.addEventListener('hashchange', route);
  await route();
}

main();
