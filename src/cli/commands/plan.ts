// `xvbd plan`: what apply would do, Terraform-style, with the drift findings. Changes nothing.
import { hostOption, parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderPlan } from '../render/plan.js';
import { colorFor, plural, wantColor } from '../render/style.js';
import { loadSnapshot } from '../../observe/cli.js';
import { askHolders } from '../holders.js';
import { writeOut } from '../../log/stdio.js';
import { CliError } from '../errors.js';
import type { Plan } from '../../model/plan.js';
import { EXIT_CHANGES, EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';

const USAGE = `Usage: xvbd plan [--config DIR] [--host NAME] [--observed FILE] [--json] [--detailed-exitcode] [--prune [--allow-data-loss]] [--color|--no-color]

Compares the desired state (the YAML files of DIR) with the host (xenstore and loop devices) and
prints what \`xvbd apply\` would do, one line per action with its reason:
  + attach / serve    - detach / free a loop device    ~ replace    ! drift finding
then the findings (each with its fix) and a summary line. Nothing is changed.

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --host NAME           in a fleet directory (with \`kind: Host\` documents), plan for this host's
                        desired state (default: this machine's name, \`uname -n\`, or $XVBD_HOST; with
                        --observed, the host the recording was made on)
  --observed FILE       plan against a recorded observation instead of this host: the output of
                        \`xvbd status --json\` saved on the host (schemas/xvbd-status-v1.schema.json).
                        No xenstore, no loop devices, no root: for CI
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
errors are printed; xenstore unreachable; a recording that cannot be read), 2 usage error; with
--detailed-exitcode also 2 = changes to make and 3 = error findings (which outweigh changes).`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    ...REPORT_OPTIONS,
    observed: { type: 'string' },
    'detailed-exitcode': { type: 'boolean' },
    prune: { type: 'boolean' },
    'allow-data-loss': { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  if (values.observed !== undefined) return planRecorded(values.observed, values);
  const snap = await loadSnapshot({
    configDir: values.config,
    ...hostOption('plan', values.host),
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
  return exitFor(plan, values);
}

function exitFor(plan: Plan, values: { 'detailed-exitcode'?: boolean | undefined }): number {
  if (!values['detailed-exitcode']) return EXIT_OK;
  return errorFindings(plan) > 0 ? EXIT_FINDINGS : plan.actions.length > 0 ? EXIT_CHANGES : EXIT_OK;
}

/** --observed FILE: the plan of this config for the host a recording was made on, against that recording. */
async function planRecorded(
  file: string,
  values: { config?: string | undefined; host?: string | undefined; json?: boolean | undefined; prune?: boolean | undefined; 'allow-data-loss'?: boolean | undefined; 'detailed-exitcode'?: boolean | undefined; color?: boolean | undefined; 'no-color'?: boolean | undefined },
): Promise<number> {
  const { readRecording, RecordingError, unobservedSources } = await import('../../observe/recording.js');
  const { loadConfig, defaultConfigDir, formatErrors } = await import('../../config/index.js');
  const { plan: makePlan } = await import('../../plan/plan.js');
  let rec;
  try {
    rec = await readRecording(file);
  } catch (err) {
    if (err instanceof RecordingError) throw new CliError(err.message);
    throw err;
  }
  const host = hostOption('plan', values.host).host?.toLowerCase() ?? rec.hostName;
  if (host !== rec.hostName) throw new CliError(`${file} was recorded on host ${rec.hostName}, not ${host}: plan each host against its own recording`);
  const configDir = values.config ?? defaultConfigDir();
  const r = await loadConfig(configDir, { host });
  if (!r.desired) {
    if (values.json) writeOut(JSON.stringify({ valid: false, configDir, errors: r.errors }, null, 2) + '\n');
    process.stderr.write(formatErrors(r.errors, { color: wantColor(process.stderr) }) + '\n');
    throw new CliError(`the config in ${configDir} is invalid for host ${host} (${plural(r.errors.length, 'error')}); nothing was planned`);
  }
  const desired = r.desired;
  const policy = { ...desired.policy, ...(values.prune ? { prune: true } : {}), ...(values['allow-data-loss'] ? { allowDataLoss: true } : {}) };
  const plan = makePlan(desired, rec.observed, policy);
  const unobserved = unobservedSources(desired, rec.observed);
  if (values.json) {
    writeOut(JSON.stringify({ ...plan, observedFrom: { file, hostName: rec.hostName, generatedAt: rec.generatedAt, unobservedSources: unobserved } }, null, 2) + '\n');
  } else {
    const color = colorFor(values, process.stdout);
    const disks = desired.domains.reduce((n, d) => n + d.disks.length, 0);
    const lines = [
      `xvbd plan: ${configDir} for host ${host} (${plural(disks, 'desired disk')} in ${plural(desired.domains.length, 'domain')}); against ${file}, recorded on ${rec.hostName} at ${rec.generatedAt}: ${rec.observed.backends.length} vbd backends, ${rec.observed.loops.length} loop devices`,
    ];
    if (unobserved.length) {
      lines.push(
        `note: the recording did not look at ${plural(unobserved.length, 'source')} this config names (${unobserved.join(', ')}): planned as missing; record \`xvbd status --json\` on ${host} again once the config there names them`,
      );
    }
    writeOut(renderPlan(plan, { color, header: lines.join('\n') }));
  }
  return exitFor(plan, values);
}
