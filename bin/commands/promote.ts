import { commandApp, commandRegistry, registryOption, warehouseOption } from '../../lib/cli/context';
import { parseCommandArgs, UsageError, type Command } from '../../lib/cli/runtime';

export const promote: Command = {
  name: 'promote',
  summary: 'point an alias (production, staging, …) at a version',
  usage: `loyalty-ml promote NAME VERSION ALIAS [--reason TEXT] [--require-win] [--registry URI] [--warehouse URL] [--json]

VERSION is a number, another alias (promote what staging has: \`promote churn staging production\`)
or latest. Only versions that passed their gates and whose bytes verify can be promoted. Every move
is recorded in the alias's history (when, by whom, from which version to which).
--require-win (churn) adds a gate on realised outcomes: VERSION must beat the version ALIAS points
at on the same customers' realised churn (as \`loyalty-ml compare\`, DeLong p < 0.05), which needs
both to have been logged (the challenger in shadow) and the outcomes to have arrived.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { reason: { type: 'string' }, 'require-win': { type: 'boolean' }, json: { type: 'boolean' }, ...registryOption, ...warehouseOption },
      { min: 3, max: 3, names: 'NAME VERSION ALIAS' },
    );
    const [name, ref, alias] = positionals as [string, string, string];
    const app = await commandApp(values);
    let record;
    let before;
    try {
      before = await app.registry.getAlias(name, alias);
      if (values['require-win']) {
        const win = await app.monitoring.requireRealisedWin(name, alias, ref);
        if (win && !values.json) io.err(win.verdict);
      }
      record = await app.registry.promote(name, alias, ref, values.reason ?? null);
    } finally {
      await app.close();
    }
    if (values.json) io.out(JSON.stringify(record, null, 2));
    else if (before?.version === record.version) io.out(`${name}@${alias} already points at v${record.version}`);
    else io.out(`${name}@${alias}: ${before ? `v${before.version}` : 'unset'} -> v${record.version}`);
    return 0;
  },
};

export const rollback: Command = {
  name: 'rollback',
  summary: 'move an alias back to its previous version',
  usage: `loyalty-ml rollback NAME ALIAS [--to VERSION] [--reason TEXT] [--registry URI] [--json]

Without --to, the alias goes back to the version it pointed at before the current one (versions
that were themselves rolled back are skipped, so repeated rollbacks walk further back).`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      { to: { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' }, ...registryOption },
      { min: 2, max: 2, names: 'NAME ALIAS' },
    );
    const [name, alias] = positionals as [string, string];
    if (values.to !== undefined && !/^[1-9]\d*$/.test(values.to)) throw new UsageError(`--to must be a version number, got "${values.to}"`);
    const registry = await commandRegistry(values);
    const before = await registry.getAlias(name, alias);
    const record = await registry.rollback(name, alias, values.to === undefined ? null : Number(values.to), values.reason ?? null);
    if (values.json) io.out(JSON.stringify(record, null, 2));
    else io.out(`${name}@${alias}: ${before ? `v${before.version}` : 'unset'} -> v${record.version} (rolled back)`);
    return 0;
  },
};
