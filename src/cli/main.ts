#!/usr/bin/env node
// xvbd command-line entry. Each command lives in src/cli/commands/<name>.ts and is imported
// lazily, so that `xvbd hook` (run by libxl once per disk) does not pay for Ink or chokidar.
import { COMMANDS, type CommandModule } from './commands/index.js';
import { CliError } from './errors.js';
import { guardStdio } from '../log/stdio.js';

// Before any output: a closed stdout or stderr (a pipe's reader gone, a full log disk) must never kill
// a command, least of all the daemon or the keeper, which hold loop-device fds.
guardStdio();

import { VERSION } from '../version.js';

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'xvbd: a declarative reconciler for Xen virtual block devices',
    '',
    'Usage: xvbd <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `xvbd <command> --help` for the options of a command.',
    'Environment: XVBD_CONFIG (config directory, default /etc/xvbd),',
    '             XENSTORED_PATH (xenstored socket, e.g. the simulator\'s).',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`xvbd ${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`xvbd: unknown command "${name}"\n\n${usage()}\n`);
    return 1;
  }
  const mod: CommandModule = await entry.load();
  try {
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`xvbd ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`xvbd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
