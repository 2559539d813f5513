// Option parsing shared by every command: node:util parseArgs, strict, with -h/--help added. The argv is
// checked first here, so that a usage error is one line in xvbd's words (the option named, the closest
// known one suggested, "see xvbd <cmd> --help") and exits 2, and none of Node's parser messages leak.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { suggest } from '../config/suggest.js';
import { CliError } from './errors.js';
import { EXIT_USAGE } from './exit.js';

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
export function hostOption(command: string, v: string | undefined): { host?: string } {
  if (v === undefined) return {};
  if (v.trim() === '') throw new UsageError(command, '--host needs a host name (as `uname -n` prints it)');
  return { host: v };
}

/** A usage error of `xvbd <command>`: one line, exit 2, pointing at the command's --help. */
export class UsageError extends CliError {
  constructor(
    readonly command: string,
    readonly detail: string,
  ) {
    super(`${detail}; see \`xvbd ${command} --help\``, EXIT_USAGE);
    this.name = 'UsageError';
  }
}

/** "plna" -> "plan": the closest word by edit distance, else the one word `word` is a prefix of. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const near = suggest(word, known);
  if (near !== undefined) return near;
  const prefixed = word.length >= 2 ? known.filter((k) => k.startsWith(word)) : [];
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

const show = (s: string) => (/^[\x21-\x7e]{1,80}$/.test(s) ? s : JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s));

/**
 * Checks argv against `options` and returns it normalised for parseArgs (`--opt VALUE` as `--opt=VALUE`,
 * so a value that starts with a dash, `--resync -5`, is the value the command then judges), or throws
 * UsageError: an unknown option (with a suggestion), a value given to a flag, a missing or empty value,
 * an argument where none is taken.
 */
export function checkArgv(command: string, argv: string[], options: Options, allowPositionals: boolean): string[] {
  const longs = Object.keys(options);
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const out: string[] = [];
  const err = (detail: string) => new UsageError(command, detail);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    // Terraform's habit: a long option with one dash (-target X, -out=FILE) is that long option
    const single = /^-([a-z][a-z-]+)(=|$)/.exec(arg);
    if (single && options[single[1]!] !== undefined) arg = `-${arg}`;
    if (arg === '--') {
      if (!allowPositionals && i + 1 < argv.length) throw err(`unexpected argument ${show(argv[i + 1]!)} (xvbd ${command} takes options only)`);
      out.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const opt = options[name];
      if (!opt) {
        const near = closest(name, longs);
        throw err(`unknown option ${show(`--${name}`)}${near !== undefined ? ` (did you mean --${near}?)` : ''}`);
      }
      if (opt.type === 'boolean') {
        if (eq >= 0) throw err(`--${name} takes no value (got ${show(arg)})`);
        out.push(arg);
        continue;
      }
      let value: string | undefined;
      if (eq >= 0) value = arg.slice(eq + 1);
      else {
        const next = argv[i + 1];
        if (next === undefined) throw err(`--${name} needs a value`);
        const nextName = next.startsWith('--') ? next.slice(2).split('=')[0]! : undefined;
        if (next === '--' || (nextName !== undefined && options[nextName]) || (/^-[A-Za-z]$/.test(next) && shorts.has(next.slice(1)))) {
          throw err(`--${name} needs a value, but ${show(next)} follows it`);
        }
        value = next;
        i++;
      }
      if (value === '') throw err(`--${name} needs a value, and it is empty`);
      out.push(`--${name}=${value}`);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (const ch of arg.slice(1)) {
        const name = shorts.get(ch);
        if (name === undefined) throw err(`unknown option ${show(`-${ch}`)}${arg.length > 2 ? ` (in ${show(arg)})` : ''}`);
        if (options[name]!.type !== 'boolean') throw err(`-${ch} needs a value: write --${name} VALUE`);
      }
      out.push(arg);
      continue;
    }
    if (!allowPositionals) throw err(`unexpected argument ${show(arg)} (xvbd ${command} takes options only)`);
    out.push(arg);
  }
  return out;
}

/**
 * Parses argv against `options` (plus -h/--help). A usage error throws UsageError (exit 2); --help prints
 * the usage and returns undefined, which the command turns into exit 0.
 */
export function parseCommand<const O extends Options, const P extends boolean = false>(
  argv: string[],
  usage: string,
  options: O,
  extra: { allowPositionals?: P } = {},
) {
  const command = /^Usage: xvbd ([a-z]+)/.exec(usage)?.[1] ?? 'COMMAND';
  const all = { ...options, ...HELP } as O & typeof HELP;
  // --help anywhere wins over everything else, as in most tools
  if (argv.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(usage + '\n');
    return undefined;
  }
  const config = {
    args: checkArgv(command, argv, all, extra.allowPositionals ?? false),
    options: all,
    strict: true as const,
    allowPositionals: (extra.allowPositionals ?? false) as P,
  };
  let parsed: ReturnType<typeof parseArgs<typeof config>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    // checkArgv has said what parseArgs would object to; should it ever not have, no Node wording either
    throw new UsageError(command, `cannot read the arguments (${String((err as { code?: unknown }).code ?? 'error')})`);
  }
  return parsed;
}
