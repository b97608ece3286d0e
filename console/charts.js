// The model and segment charts, drawn with uPlot (a global from vendor/uplot.js). Shared by the
// console and by `loyalty-ml report`, which inlines this file into one self-contained HTML page.

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
const WIDTH = 360;
const HEIGHT = 260;

function box(parent, title) {
  const el = document.createElement('div');
  el.className = 'chart';
  el.dataset.chart = title;
  const h = document.createElement('h4');
  h.textContent = title;
  el.append(h);
  parent.append(el);
  return el;
}

/** How many values a chart draws (its `data-points`), so a page or a test can tell an empty chart from a drawn one. */
function drawn(el, series) {
  el.dataset.points = String(series.reduce((a, values) => a + values.filter((v) => v != null && Number.isFinite(v)).length, 0));
}

function unitScales() {
  return { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } };
}

/** Legend values while the cursor is over a chart ("–" where a series has no point there). */
const shown = (digits = 3) => (_, v) => (v == null ? '–' : Number.isInteger(v) ? v.toLocaleString() : v.toFixed(digits));

/** The x series, named by its axis in the legend (uPlot would call it "Value"). */
const xs = (label, value = shown()) => ({ label, value });

function line(label, color, extra = {}) {
  return { label, stroke: color, width: 2, points: { show: false }, value: shown(), ...extra };
}

const diagonal = (label, extra = {}) => line(label, '#9ca3af', { dash: [5, 5], width: 1, ...extra });

/** ROC: true against false positive rate, with the chance diagonal. */
export function rocChart(parent, curves, auc) {
  const { fpr, tpr } = curves.roc;
  const el = box(parent, `ROC (AUC ${auc == null ? 'n/a' : auc.toFixed(3)})`);
  return new uPlot(
    { width: WIDTH, height: HEIGHT, scales: unitScales(), axes: [{ label: 'false positive rate' }, { label: 'true positive rate' }], series: [xs('false positive rate'), line('model', COLORS[0]), diagonal('chance')] },
    [fpr, tpr, fpr.slice()],
    el,
  );
}

/** Reliability: observed rate against mean predicted probability per bin, with the ideal diagonal. */
export function calibrationChart(parent, bins) {
  const used = bins.filter((b) => b.count > 0);
  const x = used.map((b) => b.mean_predicted);
  const el = box(parent, 'Calibration (reliability)');
  return new uPlot(
    {
      width: WIDTH,
      height: HEIGHT,
      scales: unitScales(),
      axes: [{ label: 'mean predicted' }, { label: 'observed rate' }],
      series: [xs('mean predicted'), line('observed', COLORS[1], { points: { show: true, size: 6 } }), diagonal('ideal')],
    },
    [x, used.map((b) => b.observed_rate), x.slice()],
    el,
  );
}

/** Cumulative gain: share of positives found in the top share of customers, beside random targeting. */
export function gainChart(parent, curves) {
  const { share, captured } = curves.gain;
  const el = box(parent, 'Cumulative gain (lift)');
  return new uPlot(
    { width: WIDTH, height: HEIGHT, scales: unitScales(), axes: [{ label: 'share of customers contacted' }, { label: 'share of positives found' }], series: [xs('share contacted'), line('model', COLORS[2]), diagonal('random')] },
    [share, captured, share.slice()],
    el,
  );
}

/** Bars over categories (or histogram bins): one series per entry of `series`. */
export function barChart(parent, title, labels, series, yLabel = 'customers') {
  const x = labels.map((_, i) => i);
  const crowded = labels.length > 8 || labels.reduce((a, l) => a + String(l).length, 0) > 40;
  const el = box(parent, title);
  // One series: centred bars; two: side by side, left and right of their category.
  const bars = (i) => uPlot.paths.bars(series.length === 1 ? { size: [0.8, 60], align: 0 } : { size: [0.4, 30], align: i === 0 ? -1 : 1 });
  drawn(el, series.map((s) => s.values));
  return new uPlot(
    {
      width: WIDTH + (crowded ? 160 : 0),
      padding: [12, crowded ? 48 : 12, 0, 0],
      height: HEIGHT,
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] } },
      axes: [{ splits: () => x, values: (_, splits) => splits.map((i) => labels[i] ?? ''), rotate: crowded ? -35 : 0, size: crowded ? 110 : 40 }, { label: yLabel }],
      series: [xs(title.startsWith('Churn probability') ? 'bin' : 'category', (_, v) => (v == null ? '–' : String(labels[v] ?? '–'))), ...series.map((s, i) => ({ label: s.label, fill: COLORS[i % COLORS.length] + 'cc', stroke: COLORS[i % COLORS.length], paths: bars(i), points: { show: false }, value: shown() }))],
    },
    [x, ...series.map((s) => s.values)],
    el,
  );
}

/** The holdout score distribution of each outcome (share of its rows per score bin), so both show whatever their counts. */
export function histogramChart(parent, curves) {
  const { edges, positives, negatives } = curves.histogram;
  const x = edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2);
  const share = (counts) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return counts.map((c) => c / total);
  };
  const el = box(parent, 'Holdout scores by outcome');
  return new uPlot(
    {
      width: WIDTH,
      height: HEIGHT,
      scales: { x: { time: false, range: [0, 1] } },
      axes: [{ label: 'predicted probability' }, { label: 'share of the outcome\'s rows' }],
      series: [xs('predicted probability'), line('negatives', COLORS[0], { points: { show: true, size: 4 } }), line('positives', COLORS[1], { points: { show: true, size: 4 } })],
    },
    [x, share(negatives), share(positives)],
    el,
  );
}

/**
 * Lines over time: `points` are {t (seconds), values: {name: number|null}}; `bands` are drawn as
 * dashed reference lines; `xLabel` names the time in the legend (a run, a week).
 */
export function trendChart(parent, title, points, names, yLabel, bands = [], xLabel = 'run') {
  const el = box(parent, title);
  const x = points.map((p) => p.t);
  drawn(el, names.filter((n) => !bands.includes(n)).map((n) => points.map((p) => p.values[n] ?? null)));
  return new uPlot(
    {
      width: WIDTH + 120,
      height: HEIGHT,
      scales: { x: { time: true } },
      axes: [{}, { label: yLabel }],
      series: [xs(xLabel, (_, v) => (v == null ? '–' : new Date(v * 1000).toLocaleString())), ...names.map((n, i) => (bands.includes(n) ? diagonal(n, { spanGaps: true }) : line(n, COLORS[i % COLORS.length], { points: { show: true, size: 5 }, spanGaps: true })))],
    },
    [x, ...names.map((n) => points.map((p) => p.values[n] ?? null))],
    el,
  );
}

/** All charts of one binary model version (the report and the console draw the same). */
export function binaryModelCharts(parent, holdout) {
  if (!holdout.curves) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'This version was trained before report curves were recorded; only its calibration is shown.';
    parent.append(p);
    calibrationChart(parent, holdout.calibration);
    return;
  }
  rocChart(parent, holdout.curves, holdout.auc);
  calibrationChart(parent, holdout.calibration);
  gainChart(parent, holdout.curves);
  histogramChart(parent, holdout.curves);
}

/** The charts of one multiclass (NBO) version: per offer, recall and how often it is ranked first. */
export function multiclassModelCharts(parent, holdout) {
  const offers = Object.keys(holdout.top_class_share);
  barChart(parent, 'Per offer: recall and share ranked first', offers, [
    { label: 'recall', values: offers.map((o) => holdout.per_class_recall[o] ?? null) },
    { label: 'ranked first', values: offers.map((o) => holdout.top_class_share[o]) },
  ], 'share');
}

// ---------- reasons (SVG: a waterfall and bars with intervals need no plotting library) ----------

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
const points = (p) => `${(p * 100).toFixed(Math.abs(p) >= 0.095 ? 0 : 1)}`;

/**
 * One answer's reasons as a waterfall: from the background's mean probability (base), each
 * feature's contribution as a step (red raises, green lowers), to the answer's probability.
 * `reasons`: { base, output, contributions: [{ feature, value, contribution }] } (largest first).
 */
export function waterfallChart(parent, title, reasons, options = {}) {
  const el = box(parent, title);
  el.dataset.waterfall = '';
  const steps = reasons.contributions.slice(0, options.limit ?? reasons.contributions.length);
  const rest = reasons.contributions.slice(steps.length).reduce((a, c) => a + c.contribution, 0);
  const rows = [{ label: 'typical customer (base)', from: 0, to: reasons.base, kind: 'end' }];
  let at = reasons.base;
  for (const c of steps) {
    rows.push({ label: `${c.feature} = ${c.value === null ? 'missing' : c.value}`, from: at, to: at + c.contribution, kind: c.contribution >= 0 ? 'up' : 'down', feature: c.feature });
    at += c.contribution;
  }
  if (steps.length < reasons.contributions.length) {
    rows.push({ label: `${reasons.contributions.length - steps.length} other features`, from: at, to: at + rest, kind: rest >= 0 ? 'up' : 'down' });
    at += rest;
  }
  rows.push({ label: 'this customer', from: 0, to: reasons.output, kind: 'end' });
  const lo = Math.min(0, ...rows.map((r) => Math.min(r.from, r.to)));
  const hi = Math.max(...rows.map((r) => Math.max(r.from, r.to)), 1e-9);
  const labelW = 250;
  const plotW = 260;
  const rowH = 20;
  const x = (v) => labelW + ((v - lo) / (hi - lo)) * plotW;
  const s = svg('svg', { width: labelW + plotW + 60, height: rows.length * rowH + 8, role: 'img', 'aria-label': title });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const x0 = x(Math.min(r.from, r.to));
    const w = Math.max(1, Math.abs(x(r.to) - x(r.from)));
    s.append(svg('text', { x: labelW - 6, y: y + 13, 'text-anchor': 'end', 'font-size': 11 }, r.label));
    const bar = svg('rect', { x: x0, y: y + 2, width: w, height: rowH - 6, fill: r.kind === 'end' ? '#6b7280' : r.kind === 'up' ? '#dc2626' : '#16a34a' });
    if (r.feature) bar.dataset.feature = r.feature;
    s.append(bar);
    const delta = r.kind === 'end' ? `${points(r.to)}%` : `${r.to >= r.from ? '+' : '−'}${points(Math.abs(r.to - r.from))}`;
    s.append(svg('text', { x: x0 + w + 4, y: y + 13, 'font-size': 11 }, delta));
  });
  el.append(s);
  return el;
}

/**
 * Bars with their 95% intervals, one per feature: `items` [{ label, value, ci: [lo, hi] }], values
 * in probability (drawn as points). Signed values draw left (green) and right (red) of zero.
 */
export function intervalBars(parent, title, items, options = {}) {
  const el = box(parent, title);
  el.dataset.bars = options.name ?? '';
  const labelW = 220;
  const plotW = 280;
  const rowH = 20;
  const lo = Math.min(0, ...items.map((it) => it.ci[0]));
  const hi = Math.max(1e-9, ...items.map((it) => it.ci[1]));
  const x = (v) => labelW + ((v - lo) / (hi - lo)) * plotW;
  const s = svg('svg', { width: labelW + plotW + 70, height: items.length * rowH + 8, role: 'img', 'aria-label': title });
  if (lo < 0) s.append(svg('line', { x1: x(0), x2: x(0), y1: 0, y2: items.length * rowH + 8, stroke: '#9ca3af' }));
  items.forEach((it, i) => {
    const y = i * rowH + 4;
    s.append(svg('text', { x: labelW - 6, y: y + 13, 'text-anchor': 'end', 'font-size': 11 }, it.label));
    const x0 = x(Math.min(0, it.value));
    const bar = svg('rect', { x: x0, y: y + 3, width: Math.max(1, Math.abs(x(it.value) - x(0))), height: rowH - 8, fill: lo < 0 ? (it.value >= 0 ? '#dc2626' : '#16a34a') : COLORS[0] });
    bar.dataset.feature = it.label;
    s.append(bar);
    s.append(svg('line', { x1: x(it.ci[0]), x2: x(it.ci[1]), y1: y + rowH / 2, y2: y + rowH / 2, stroke: '#111827', 'stroke-width': 1 }));
    s.append(svg('text', { x: Math.max(x(it.ci[1]), x(it.value), x(0)) + 4, y: y + 13, 'font-size': 11 }, `${it.value >= 0 ? '' : '−'}${points(Math.abs(it.value))} pts`));
  });
  el.append(s);
  return el;
}
