import { writeFileSync } from 'node:fs';
import { commandRegistry, registryOption } from '../../lib/cli/context';
import { parseCommandArgs, UsageError, type Command } from '../../lib/cli/runtime';
import { modelReportHtml } from '../../lib/console/report';
import { versionSummary } from '../../lib/services/model-status';

export const report: Command = {
  name: 'report',
  summary: 'one version\'s metrics and charts as a self-contained HTML file',
  usage: `loyalty-ml report NAME [VERSION|ALIAS|latest] --out FILE.html [--registry URI]

Writes one HTML file that opens in any browser, offline: the version's metrics beside the class
prior and the production version of its time, the candidates compared at training, the gates,
and the console's charts (ROC, calibration, cumulative gain and the holdout score histogram; per
offer for NBO). Default version: production, else latest.`,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { out: { type: 'string' }, ...registryOption }, { min: 1, max: 2, names: 'NAME [VERSION|ALIAS]' });
    if (!values.out) throw new UsageError('report needs --out FILE.html');
    const [name, ref] = positionals as [string, string?];
    const registry = await commandRegistry(values);
    const manifest = ref ? await registry.resolve(name, ref) : ((await registry.getAlias(name, 'production')) ? await registry.resolve(name, 'production') : await registry.resolve(name, 'latest'));
    writeFileSync(values.out, modelReportHtml(name, versionSummary(manifest), await registry.listAliases(name)));
    io.out(`wrote ${values.out}: ${name} v${manifest.version}${manifest.metrics ? '' : ' (no training metrics: an external model)'}`);
    return 0;
  },
};
