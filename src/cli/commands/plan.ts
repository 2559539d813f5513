// `xvbd plan`: what apply would do, Terraform-style, with the drift findings. Changes nothing.
import { hostOption, parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderPlan } from '../render/plan.js';
import { colorFor, plural } from '../render/style.js';
import { loadSnapshot } from '../../observe/cli.js';
import { askHolders } from '../holders.js';
import { writeOut } from '../../log/stdio.js';

const USAGE = `Usage: xvbd plan [--config DIR] [--host NAME] [--json] [--detailed-exitcode] [--prune [--allow-data-loss]] [--color|--no-color]

Compares the desired state (the YAML files of DIR) with the host (xenstore and loop devices) and
prints what \`xvbd apply\` would do, one line per action with its reason:
  + attach / serve    - detach / free a loop device    ~ replace    ! drift finding
then the findings (each with its fix) and a summary line. Nothing is changed.

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --host NAME           in a fleet directory (with \`kind: Host\` documents), plan for this host's
                        desired state (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --json                print the plan (actions, findings, disks) as JSON ({valid:false, errors} if the config is invalid)
  --detailed-exitcode   exit 0 = nothing to do, 2 = changes to make, 1 = error
  --prune               plan as if policy prune were true (what \`apply --prune\` would do)
  --allow-data-loss     let prune detach, replace or free a loop device that holds the only copy of some
                        data (its backing file deleted, or not the inode recorded); refused otherwise
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help

xenstore: $XENSTORED_PATH (e.g. the simulator's socket), else xenstored's socket, else /dev/xen/xenbus.
Exit status: 0 success (with --detailed-exitcode: nothing to do), 2 changes (--detailed-exitcode only),
1 error (invalid config: its errors are printed; xenstore unreachable).`;

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
    ...hostOption(values.host),
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
    const header = `xvbd plan: ${snap.configDir} (${plural(disks, 'desired disk')} in ${plural(snap.desired!.domains.length, 'domain')}); observed ${snap.observed!.backends.length} vbd backends, ${snap.observed!.loops.length} loop devices in ${snap.timings.observeMs.toFixed(0)} ms`;
    writeOut(renderPlan(plan, { color, header }));
  }
  if (values['detailed-exitcode']) return plan.actions.length > 0 ? 2 : 0;
  return 0;
}
