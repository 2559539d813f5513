#!/usr/bin/env node
// xvbd command-line entry. Each command lives in src/cli/commands/<name>.ts and is imported
// lazily, so that `xvbd hook` (run by libxl once per disk) does not pay for Ink or chokidar.
import { COMMANDS, type CommandModule } from './commands/index.js';
import { closest } from './args.js';
import { CliError } from './errors.js';
import { EXIT_ERROR, EXIT_HELP, EXIT_USAGE } from './exit.js';
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
    '  version    print the version (also --version)',
    '',
    'Run `xvbd <command> --help` for the options of a command.',
    'Environment: XVBD_CONFIG (config directory, default /etc/xvbd),',
    '             XENSTORED_PATH (xenstored socket, e.g. the simulator\'s).',
    EXIT_HELP,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage() + '\n');
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    if (rest.length > 0 && !(rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h'))) {
      process.stderr.write(`xvbd version: takes no arguments; see \`xvbd --help\`\n`);
      return EXIT_USAGE;
    }
    process.stdout.write(`xvbd ${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    const shown = /^[\x21-\x7e]{1,40}$/.test(name) ? name : JSON.stringify(name.slice(0, 40));
    const near = name.startsWith('-') ? undefined : closest(name, [...COMMANDS.map((c) => c.name), 'version', 'help']);
    const what = name.startsWith('-') ? `unknown option ${shown} (options come after the command)` : `unknown command "${shown}"${near !== undefined ? ` (did you mean ${near}?)` : ''}`;
    process.stderr.write(`xvbd: ${what}; see \`xvbd --help\`\n`);
    return EXIT_USAGE;
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
    process.exitCode = EXIT_ERROR;
  },
);
