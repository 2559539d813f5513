// `xvbd validate [--config DIR] [--host NAME | --fleet] [--json]`: check the desired-state directory,
// print every error.
import { parseCommand, REPORT_OPTIONS, UsageError } from '../args.js';
import { checkConfigDir, checkFleetDir, defaultConfigDir, formatErrors } from '../../config/index.js';
import { colorFor, plural } from '../../render/style.js';

const USAGE = `Usage: xvbd validate [--config DIR] [--json] [--host NAME | --fleet] [--color|--no-color]

Checks the desired state: every *.yaml / *.yml file of DIR (YAML syntax, the xvbd/v1 schema,
duplicate domains and vdevs, read-write sharing, paths and allowed roots). Prints every error
as file:line:column: message with the offending line, or a one-line summary when valid.

In a fleet directory (one with \`kind: Host\` documents) it checks what one host's agent would use:
the host of --host, else this machine's name (\`uname -n\`, or $XVBD_HOST). --fleet checks every
host's view at once, and what no single host can see: a domain defined for two hosts without
\`migratable: true\`, a read-write source given to domains on two hosts, a host that selects nothing.

Options:
  --config DIR   config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --host NAME    in a fleet directory, the host whose view to check (ignored without Host documents)
  --fleet        every host of the fleet at once (for CI)
  --json         print {valid, files, domains, disks, errors} as JSON on stdout (with --fleet also
                 {fleet, hosts}, and each error lists the hosts it is about in \`hosts\`)
  --color        colour the errors (default: when stderr is a terminal)
  --no-color     never colour
  -h, --help     this help

Exit status: 0 valid, 1 invalid, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, { ...REPORT_OPTIONS, host: { type: 'string' }, fleet: { type: 'boolean' } });
  if (!args) return 0;
  const { values } = args;
  const dir = values.config ?? defaultConfigDir();
  if (values.fleet && values.host !== undefined) throw new UsageError('validate', '--fleet checks every host; it takes no --host');
  if (values.host === '') throw new UsageError('validate', '--host needs a host name (as `uname -n` prints it)');
  const color = colorFor(values, process.stderr);
  if (values.fleet) {
    const r = await checkFleetDir(dir);
    const valid = r.errors.length === 0;
    if (values.json) {
      const out = { valid, config: dir, fleet: r.fleet, files: r.files.length, hosts: r.hosts, domains: r.domains, disks: r.disks, errors: r.errors };
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return valid ? 0 : 1;
    }
    const summary = `${plural(r.files.length, 'file')}, ${r.fleet ? `${plural(r.hosts.length, 'host')}, ` : 'no Host documents (one host\'s directory), '}${plural(r.domains, 'domain')}, ${plural(r.disks, 'disk')}`;
    if (valid) {
      for (const h of r.hosts) {
        const policy = h.policy ? `Policy at ${h.policy.file}:${h.policy.line}:${h.policy.column}` : 'default Policy';
        process.stdout.write(`${h.name}: ${plural(h.domains.length, 'domain')} (${h.domains.join(', ')}), ${plural(h.disks, 'disk')}, ${policy}\n`);
      }
      process.stdout.write(`${summary}: valid\n`);
      return 0;
    }
    process.stderr.write(formatErrors(r.errors, { color }));
    process.stderr.write(`${summary}: ${plural(r.errors.length, 'error')}\n`);
    return 1;
  }
  const r = await checkConfigDir(dir, values.host !== undefined ? { host: values.host } : {});
  const valid = r.errors.length === 0;
  if (values.json) {
    const out = {
      valid,
      config: dir,
      ...(r.host ? { host: r.host.name } : {}),
      files: r.files.length,
      domains: r.domains,
      disks: r.disks,
      errors: r.errors,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return valid ? 0 : 1;
  }
  const summary = `${r.host ? `host ${r.host.name}: ` : ''}${plural(r.files.length, 'file')}, ${plural(r.domains, 'domain')}, ${plural(r.disks, 'disk')}`;
  if (valid) {
    process.stdout.write(`${summary}: valid\n`);
    return 0;
  }
  process.stderr.write(formatErrors(r.errors, { color }));
  process.stderr.write(`${summary}: ${plural(r.errors.length, 'error')}\n`);
  return 1;
}
