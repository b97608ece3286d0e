import { commandRegistry, registryOption } from '../../lib/cli/context';
import { formatTable, parseCommandArgs, type Command } from '../../lib/cli/runtime';
import type { AliasRecord, ModelManifest } from '../../lib/registry/index';

export const show: Command = {
  name: 'show',
  summary: 'show one version: manifest, integrity, aliases',
  usage: `loyalty-ml show NAME [VERSION|ALIAS|latest] [--registry URI] [--json]

Prints the manifest of a version (default: latest), checks its model bytes against the recorded
sha256, and lists the aliases of the model with their history.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' }, ...registryOption }, {
      min: 1,
      max: 2,
      names: 'NAME [VERSION|ALIAS]',
    });
    const [name, ref = 'latest'] = positionals as [string, string?];
    const registry = await commandRegistry(values);
    const manifest = await registry.resolve(name, ref);
    let integrity: { ok: boolean; message: string };
    try {
      await registry.readModel(name, manifest.version);
      integrity = { ok: true, message: 'sha256 verified' };
    } catch (error) {
      integrity = { ok: false, message: (error as Error).message };
    }
    const aliases = await registry.listAliases(name);
    if (values.json) {
      io.out(JSON.stringify({ manifest, integrity, aliases, explanation: explanationOf(manifest) }, null, 2));
      return integrity.ok ? 0 : 1;
    }
    io.out(`${name} v${manifest.version}`);
    io.out(describeManifest(manifest));
    io.out(`  integrity: ${integrity.ok ? 'ok, ' : 'FAILED: '}${integrity.message}`);
    io.out(describeAliases(aliases));
    return integrity.ok ? 0 : 1;
  },
};

/** A few lines a person can read about a version. */
export function describeManifest(m: ModelManifest): string {
  const lines = [
    `  status: ${m.status}${m.refusal_reasons.length ? ` (${m.refusal_reasons.join('; ')})` : ''}`,
    `  created: ${m.created_at} by ${m.created_by}`,
    `  model: ${m.model.size_bytes} bytes, sha256 ${m.model.sha256}, producer ${m.model.producer || 'unknown'}, opsets ${m.model.opsets
      .map((o) => `${o.domain || 'ai.onnx'} ${o.version}`)
      .join(', ')}`,
    `  input: ${m.input.features.map((f) => f.name).join(', ')} (${m.input.tensors.map((t) => `${t.name} ${t.type}[${t.shape.map((d) => d ?? '?').join(',')}]`).join(', ')})`,
    `  output: ${m.output.kind}${m.output.kind === 'multilabel' ? ' (an independent probability per class: for nbo, P(accept if sent) per offer; they do not sum to 1)' : m.output.kind === 'multiclass' ? ' (one distribution over the classes)' : ''}, classes ${m.output.classes.join(', ')}${m.output.positive_class ? `, positive ${m.output.positive_class}` : ''} from "${m.output.probability_tensor}"`,
    `  origin: ${m.lineage.origin}${m.lineage.data_source ? `, data ${m.lineage.data_source}` : ''}${m.lineage.rows !== null ? `, ${m.lineage.rows} rows` : ''}${m.lineage.notes ? `, ${m.lineage.notes}` : ''}`,
  ];
  for (const r of m.model.rewrites) lines.push(`  rewrite: ${JSON.stringify(r)}`);
  const v = m.metrics?.policy_value;
  if (v) lines.push(`  policy value: top offer estimated at ${v.estimate} (95% interval ${v.ci_low}-${v.ci_high}, ${v.method}) on the ${v.rows} offers of ${v.from} to ${v.to}, against ${v.logging} for the offers actually sent`);
  if (m.gates) lines.push(`  gates: ${m.gates.passed ? 'passed' : 'failed'}`);
  const e = explanationOf(m);
  lines.push(`  reasons: ${e.background ? `exact Shapley values (${e.method}) over a background of ${e.background.length} rows: ${e.source}` : `unavailable (${e.source})`}`);
  return lines.join('\n');
}

/** How a version's reasons are computed, with the background in feature order (older versions have none). */
export function explanationOf(m: ModelManifest): { method: string; background: (number | null)[][] | null; source: string } {
  return m.explanation ?? { method: 'coalitions', background: null, source: 'none: published before versions carried a background' };
}

function describeAliases(aliases: AliasRecord[]): string {
  if (!aliases.length) return '  aliases: none';
  const rows = aliases.flatMap((a) =>
    a.history
      .slice(-5)
      .reverse()
      .map((h, i) => [i === 0 ? a.alias : '', i === 0 ? `v${a.version}` : '', h.at, h.by, h.action, h.from === null ? '-' : `v${h.from}`, `v${h.to}`]),
  );
  return `  aliases:\n${formatTable(['alias', 'now', 'when', 'by', 'action', 'from', 'to'], rows)
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}`;
}
