import { commandApp, registryOption, warehouseOption } from '../../lib/cli/context';
import { parseCommandArgs, type Command } from '../../lib/cli/runtime';
import { DoctorService } from '../../lib/services/doctor';

export const doctor: Command = {
  name: 'doctor',
  summary: 'check the registry, the results store, the warehouse and the served models',
  usage: `loyalty-ml doctor [--registry URI] [--warehouse URL] [--json]

Checks, and prints what works and what does not:
  - the registry and the results store answer, and honour conditional writes (If-None-Match and
    If-Match), without which racing publishers would silently overwrite each other;
  - the warehouse answers (from WAREHOUSE_URL or the WAREHOUSE_SECRET_ARN secret, over TLS), with
    how many customers and segments it holds, and whether recency is defaulted for most of them;
  - the served models' production versions exist and their files match their checksums.

Exit codes: 0 everything works, 1 something does not, 2 bad usage.`,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { json: { type: 'boolean' }, ...registryOption, ...warehouseOption }, { min: 0, max: 0, names: 'no arguments' });
    const app = await commandApp(values);
    try {
      const checks = await new DoctorService({ config: app.config, registry: app.registry, resultsStore: app.runs.store, warehouse: app.warehouse }).run();
      if (values.json) io.out(JSON.stringify({ ok: checks.every((c) => c.ok), checks }, null, 2));
      else for (const c of checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.check}: ${c.detail}`);
      return checks.every((c) => c.ok) ? 0 : 1;
    } finally {
      await app.close();
    }
  },
};
