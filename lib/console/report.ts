import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AliasRecord } from '../registry/index';
import type { VersionSummary } from '../services/model-status';

const ROOT = resolve(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The console's modules as one script: their imports resolved by concatenation, their exports made plain. */
function consoleModules(...files: string[]): string {
  return files.map((f) => read(`console/${f}`).replace(/^import .*;$/gm, '').replace(/^export /gm, '')).join('\n');
}

/**
 * One model version's report as a single HTML file that opens anywhere (`loyalty-ml report`): the
 * console's own view of the version (metrics beside their baselines, the candidates compared, the
 * gates, the charts), drawn by the console's modules and uPlot inlined, the data embedded as JSON.
 */
export function modelReportHtml(name: string, version: VersionSummary, aliases: AliasRecord[]): string {
  const onAliases = aliases.filter((a) => a.version === version.version).map((a) => a.alias);
  const summary = `${version.status}; created ${version.created_at} from ${version.lineage.data_source ?? 'an external source'}${onAliases.length ? `; serving as ${onAliases.join(', ')}` : ''}`;
  const data = JSON.stringify(version).replace(/</g, '\\u003c');
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
<h1>${escapeHtml(name)} v${version.version}</h1>
<p>${escapeHtml(summary)}</p>
</main>
<script>${read('node_modules/uplot/dist/uPlot.iife.min.js')}</script>
<script type="module">
${consoleModules('dom.js', 'charts.js', 'version.js')}
document.querySelector('main').append(versionDetail(${data}));
</script>
</body>
</html>
`;
}
