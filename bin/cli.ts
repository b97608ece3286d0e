import { EXIT, processIo, reportError, type Command, type CommandIo } from '../lib/cli/runtime';
import { consoleCommand } from './commands/console';
import { demoData } from './commands/demo-data';
import { doctor } from './commands/doctor';
import { evaluate, predictCommand } from './commands/evaluate';
import { list } from './commands/list';
import { compare, monitor } from './commands/monitor';
import { promote, rollback } from './commands/promote';
import { publish } from './commands/publish';
import { report } from './commands/report';
import { scoreSegment, segmentStats } from './commands/segments';
import { show } from './commands/show';
import { trainCommand } from './commands/train';

/** Every verb, in the order `--help` lists them. */
export const COMMANDS: Command[] = [demoData, trainCommand, evaluate, predictCommand, report, scoreSegment, segmentStats, monitor, compare, publish, list, show, promote, rollback, doctor, consoleCommand];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'loyalty-ml: customer scoring for loyalty programmes (churn, next best offer, RFM)',
    '',
    'Usage: loyalty-ml COMMAND [options]    (loyalty-ml COMMAND --help for details)',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Environment: MODEL_REGISTRY_URI (s3://bucket/prefix or a folder; default .data/registry),',
    'WAREHOUSE_URL (postgres://… or pglite:<folder>; default pglite:.data/warehouse) or WAREHOUSE_SECRET_ARN.',
    'Exit codes: 0 ok, 1 failure, 2 bad usage or input.',
  ].join('\n');
}

/** Runs one command line and returns its exit code (never throws). */
export async function main(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    (verb === undefined ? io.err : io.out)(overview());
    return verb === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (!command) {
    io.err(`error: unknown command "${verb}"\n\n${overview()}`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    return reportError(error, io);
  }
}
