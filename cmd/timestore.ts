#!/usr/bin/env node
// The `timestore` command line: a table of subcommands (cmd/commands/index.ts), --help, --version.
import { commands } from './commands/index.js';
import { ConfigError } from '../src/node/config.js';
import { packageVersion } from '../src/node/start.js';

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'timestore: a Raft-replicated time-series database on SQLite',
    '',
    'Usage: timestore <command> [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Flags:',
    '  --help, -h     Show help (also: timestore <command> --help)',
    '  --version, -v  Print the version',
    '',
    'Every flag can also be set as an environment variable TIMESTORE_<FLAG> (e.g. TIMESTORE_DATA_DIR).',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(usage() + '\n');
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    process.stdout.write(packageVersion() + '\n');
    return 0;
  }
  const command = commands.find((c) => c.name === first);
  if (!command) {
    process.stderr.write(
      `timestore: unknown command "${first}"; expected one of ${commands.map((c) => c.name).join(', ')}\n\n${usage()}\n`,
    );
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    // A long-running command (node) resolves only when it wants to exit; others exit now.
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`timestore: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`timestore: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
