// Small DOM helpers shared by the console and the self-contained report.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function table(headers, rows, options = {}) {
  return h(
    'table',
    { 'data-table': options.name },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows),
  );
}

export const num = (x, digits = 4) => (x === null || x === undefined || Number.isNaN(x) ? '–' : typeof x === 'number' ? x.toFixed(digits) : String(x));
export const pct = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(1)}%`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
