// `xvbd plan`: what apply would do, Terraform-style, with the drift findings. Changes nothing.
import { parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderPlan } from '../render/plan.js';
import { colorFor, plural } from '../render/style.js';
import { loadSnapshot } from '../../observe/cli.js';
import { askHolders } from '../holders.js';
import { writeOut } from '../../log/stdio.js';
import { EXIT_CHANGES, EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';

const USAGE = `Usage: xvbd plan [--config DIR] [--json] [--detailed-exitcode] [--prune [--allow-data-loss]] [--color|--no-color]

Compares the desired state (the YAML files of DIR) with the host (xenstore and loop devices) and
prints what \`xvbd apply\` would do, one line per action with its reason:
  + attach / serve    - detach / free a loop device    ~ replace    ! drift finding
then the findings (each with its fix) and a summary line. Nothing is changed.

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --json                print the plan (actions, findings, disks) as JSON ({valid:false, errors} if the config is invalid)
  --detailed-exitcode   exit 0 = nothing to do and no error findings, 2 = changes to make,
                        3 = error findings (a disk broken, a source missing...; even with changes), 1 = error
  --prune               plan as if policy prune were true (what \`apply --prune\` would do)
  --allow-data-loss     let prune detach, replace or free a loop device that holds the only copy of some
                        data (its backing file deleted, or not the inode recorded); refused otherwise
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help

xenstore: $XENSTORED_PATH (e.g. the simulator's socket), else xenstored's socket, else /dev/xen/xenbus.
Exit status: 0 success (whatever the plan, unless --detailed-exitcode), 1 error (invalid config: its
errors are printed; xenstore unreachable), 2 usage error; with --detailed-exitcode also 2 = changes to
make and 3 = error findings (which outweigh changes).`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    ...REPORT_OPTIONS,
    'detailed-exitcode': { type: 'boolean' },
    prune: { type: 'boolean' },
    'allow-data-loss': { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  const snap = await loadSnapshot({
    configDir: values.config,
    prune: values.prune === true,
    allowDataLoss: values['allow-data-loss'] === true,
    command: 'plan',
    json: values.json === true,
    holders: askHolders,
  });
  const plan = snap.plan!;
  if (values.json) {
    writeOut(JSON.stringify(plan, null, 2) + '\n');
  } else {
    const color = colorFor(values, process.stdout);
    const disks = snap.desired!.domains.reduce((n, d) => n + d.disks.length, 0);
    const header = `xvbd plan: ${snap.configDir} (${plural(disks, 'desired disk')} in ${plural(snap.desired!.domains.length, 'domain')}); observed ${plural(snap.observed!.backends.length, 'vbd backend')}, ${plural(snap.observed!.loops.length, 'loop device')} in ${snap.timings.observeMs.toFixed(0)} ms`;
    writeOut(renderPlan(plan, { color, header }));
  }
  if (!values['detailed-exitcode']) return EXIT_OK;
  return errorFindings(plan) > 0 ? EXIT_FINDINGS : plan.actions.length > 0 ? EXIT_CHANGES : EXIT_OK;
}
