// `xvbd show FILE`: a plan saved by `xvbd plan -out FILE`, as `xvbd plan` printed it (or --json).
import { readFileSync } from 'node:fs';
import { parseCommand, UsageError } from '../args.js';
import { renderPlan } from '../../render/plan.js';
import { colorFor } from '../../render/style.js';
import { writeOut } from '../../log/stdio.js';
import { CliError } from '../errors.js';
import { parseSavedPlan, SavedPlanError } from '../../plan/saved.js';

const USAGE = `Usage: xvbd show FILE [--json] [--color|--no-color]

Prints a plan saved by \`xvbd plan -out FILE\`: what it was made for (config directory, host, flags,
when) and its actions and findings as \`xvbd plan\` printed them. Reads nothing but FILE: whether the
plan still holds, \`xvbd apply FILE\` decides (docs/plan-files.md).

Options:
  --json                the saved plan as JSON (the file's format: version, configDir, host, flags,
                        digests, actions, findings, disks)
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help
Exit status: 0 shown, 1 FILE unreadable or not a saved plan, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, { json: { type: 'boolean' }, color: { type: 'boolean' }, 'no-color': { type: 'boolean' } }, { allowPositionals: true });
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length !== 1) throw new UsageError('show', positionals.length === 0 ? 'name the saved plan: xvbd show FILE' : `one saved plan at a time (got ${positionals.length} arguments)`);
  const file = positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let p;
  try {
    p = parseSavedPlan(text, file);
  } catch (err) {
    if (err instanceof SavedPlanError) throw new CliError(err.message);
    throw err;
  }
  if (values.json) {
    writeOut(JSON.stringify(p, null, 2) + '\n');
    return 0;
  }
  const f = p.flags;
  const flags = [
    ...(f.prune ? ['--prune'] : []),
    ...(f.allowDataLoss ? ['--allow-data-loss'] : []),
    ...f.targets.map((x) => `--target ${x}`),
    ...f.replace.map((x) => `--replace ${x}`),
  ];
  const header = `Saved plan ${file}: made ${p.createdAt} on ${p.observedOn} for the config in ${p.configDir}, host ${p.host}${flags.length ? `, with ${flags.join(' ')}` : ''}`;
  writeOut(renderPlan({ actions: p.actions, findings: p.findings, disks: p.disks }, { color: colorFor(values, process.stdout), header }));
  return 0;
}
