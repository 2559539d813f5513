// `xvbd validate [--config DIR] [--json]`: check the desired-state directory, print every error.
import { parseCommand, REPORT_OPTIONS } from '../args.js';
import { checkConfigDir, defaultConfigDir, formatErrors } from '../../config/index.js';
import { colorFor, plural } from '../render/style.js';

const USAGE = `Usage: xvbd validate [--config DIR] [--json] [--color|--no-color]

Checks the desired state: every *.yaml / *.yml file of DIR (YAML syntax, the xvbd/v1 schema,
duplicate domains and vdevs, read-write sharing, paths and allowed roots). Prints every error
as file:line:column: message with the offending line, or a one-line summary when valid.

Options:
  --config DIR   config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --json         print {valid, files, domains, disks, errors} as JSON on stdout
  --color        colour the errors (default: when stderr is a terminal)
  --no-color     never colour
  -h, --help     this help

Exit status: 0 valid, 1 invalid, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, REPORT_OPTIONS);
  if (!args) return 0;
  const { values } = args;
  const dir = values.config ?? defaultConfigDir();
  const r = await checkConfigDir(dir);
  const valid = r.errors.length === 0;
  if (values.json) {
    const out = {
      valid,
      config: dir,
      files: r.files.length,
      domains: r.domains,
      disks: r.disks,
      errors: r.errors,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return valid ? 0 : 1;
  }
  const summary = `${plural(r.files.length, 'file')}, ${plural(r.domains, 'domain')}, ${plural(r.disks, 'disk')}`;
  if (valid) {
    process.stdout.write(`${summary}: valid\n`);
    return 0;
  }
  const color = colorFor(values, process.stderr);
  process.stderr.write(formatErrors(r.errors, { color }));
  process.stderr.write(`${summary}: ${plural(r.errors.length, 'error')}\n`);
  return 1;
}
