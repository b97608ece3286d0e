import { commandRegistry, registryOption } from '../../lib/cli/context';
import { formatTable, parseCommandArgs, type Command } from '../../lib/cli/runtime';

export const list: Command = {
  name: 'list',
  summary: 'list models, or the versions of one model',
  usage: `loyalty-ml list [NAME] [--registry URI] [--json]

Without NAME: every model with its number of versions and its aliases.
With NAME: every version of that model with its status, size, checksum and aliases.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { json: { type: 'boolean' }, ...registryOption }, {
      min: 0,
      max: 1,
      names: '[NAME]',
    });
    const registry = await commandRegistry(values);
    const name = positionals[0];
    if (name === undefined) {
      const models = await registry.listModels();
      const rows = await Promise.all(
        models.map(async (m) => {
          const [versions, aliases] = await Promise.all([registry.listVersions(m), registry.listAliases(m)]);
          return { name: m, versions: versions.length, latest: versions.at(-1)?.version ?? null, aliases: Object.fromEntries(aliases.map((a) => [a.alias, a.version])) };
        }),
      );
      if (values.json) io.out(JSON.stringify({ registry: registry.location, models: rows }, null, 2));
      else if (!rows.length) io.out(`No models in ${registry.location}`);
      else
        io.out(
          formatTable(
            ['model', 'versions', 'latest', 'aliases'],
            rows.map((r) => [r.name, r.versions, r.latest === null ? null : `v${r.latest}`, Object.entries(r.aliases).map(([a, v]) => `${a}=v${v}`).join(' ') || null]),
          ),
        );
      return 0;
    }
    const [versions, aliases] = await Promise.all([registry.listVersions(name), registry.listAliases(name)]);
    const aliasesOf = (v: number) => aliases.filter((a) => a.version === v).map((a) => a.alias);
    if (values.json) {
      io.out(JSON.stringify({ registry: registry.location, name, versions: versions.map((m) => ({ ...m, aliases: aliasesOf(m.version) })) }, null, 2));
      return 0;
    }
    if (!versions.length) {
      io.out(`Model "${name}" has no versions in ${registry.location}`);
      return 0;
    }
    io.out(
      formatTable(
        ['version', 'status', 'created', 'origin', 'bytes', 'sha256', 'aliases'],
        versions.map((m) => [`v${m.version}`, m.status, m.created_at, m.lineage.origin, m.model.size_bytes, m.model.sha256.slice(0, 12), aliasesOf(m.version).join(' ') || null]),
      ),
    );
    return 0;
  },
};
