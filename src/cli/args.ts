// Option parsing shared by every command: node:util parseArgs, strict, with -h/--help added.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
const HELP = { help: { type: 'boolean', short: 'h' } } as const;

/** The options of the commands that read the config and print a report: validate, plan, status. */
export const REPORT_OPTIONS = {
  config: { type: 'string' },
  host: { type: 'string' },
  json: { type: 'boolean' },
  color: { type: 'boolean' },
  'no-color': { type: 'boolean' },
} as const;

/** --host NAME: a non-empty name (which host of a fleet directory to act for). */
export function hostOption(v: string | undefined): { host?: string } {
  if (v === undefined) return {};
  if (v.trim() === '') throw new CliError('--host needs a host name (as `uname -n` prints it)');
  return { host: v };
}

/**
 * Parses argv against `options` (plus -h/--help). A usage error throws CliError with the message and
 * the usage text (exit code `usageExit`, default 1); --help prints the usage and returns undefined, which
 * the command turns into exit 0.
 */
export function parseCommand<const O extends Options, const P extends boolean = false>(
  argv: string[],
  usage: string,
  options: O,
  extra: { allowPositionals?: P; usageExit?: number } = {},
) {
  const config = {
    args: argv,
    options: { ...options, ...HELP } as O & typeof HELP,
    strict: true as const,
    allowPositionals: (extra.allowPositionals ?? false) as P,
  };
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${usage}`, extra.usageExit ?? 1);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(usage + '\n');
    return undefined;
  }
  return parsed;
}
