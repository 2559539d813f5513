// `xvbd plan`: what apply would do, Terraform-style, with the drift findings. Changes nothing.
import { hostOption, parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderPlan } from '../../render/plan.js';
import { colorFor, plural, wantColor } from '../../render/style.js';
import { loadSnapshot } from '../snapshot.js';
import { askHolders } from '../holders.js';
import { writeOut } from '../../log/stdio.js';
import { CliError } from '../errors.js';
import type { Plan } from '../../model/plan.js';
import { EXIT_CHANGES, EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';
import { readTargeting, replaceSet, TARGETING_HELP, TARGETING_OPTIONS, targetingNotes, type Targeting } from '../targeting.js';
import { addressText, checkAddresses, targetActions } from '../../plan/target.js';
import type { DesiredState } from '../../model/desired.js';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defaultHostName } from '../../config/index.js';
import { desiredDigest, observedDigest, SAVED_PLAN_FORMAT, SAVED_PLAN_VERSION, type SavedPlan } from '../../plan/saved.js';
import type { ObservedState } from '../../model/observed.js';

const USAGE = `Usage: xvbd plan [--config DIR] [--host NAME] [--observed FILE] [--json] [--detailed-exitcode] [--prune [--allow-data-loss]] [--target DOMAIN[/VDEV]]... [--replace DOMAIN/VDEV]... [--out FILE] [--color|--no-color]

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
  --allow-data-loss     let prune (or --replace) detach, replace or free a loop device that holds the only copy of some
                        data (its backing file deleted, or not the inode recorded); refused otherwise
${TARGETING_HELP}
  --out FILE            also save the plan to FILE (also -out, as Terraform): \`xvbd apply FILE\` carries
                        it out later, refused if stale; \`xvbd show FILE\` prints it (docs/plan-files.md)
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
    ...TARGETING_OPTIONS,
    out: { type: 'string' },
  });
  if (!args) return 0;
  const { values } = args;
  const t = readTargeting('plan', values);
  if (values.observed !== undefined) return planRecorded(values.observed, values, t);
  const snap = await loadSnapshot({
    configDir: values.config,
    ...hostOption('plan', values.host),
    prune: values.prune === true,
    allowDataLoss: values['allow-data-loss'] === true,
    replace: replaceSet(t),
    command: 'plan',
    json: values.json === true,
    holders: askHolders,
  });
  const { plan, notes } = narrow(snap.plan, snap.desired, snap.observed, t);
  if (values.out !== undefined) {
    saveTo(values.out, { configDir: snap.configDir, host: values.host ?? snap.desired.host?.name ?? defaultHostName(), observedOn: defaultHostName(), values, t, desired: snap.desired, observed: snap.observed, plan });
  }
  if (values.json) {
    writeOut(JSON.stringify(plan, null, 2) + '\n');
  } else {
    const color = colorFor(values, process.stdout);
    const disks = snap.desired.domains.reduce((n, d) => n + d.disks.length, 0);
    const header = [
      `xvbd plan: ${snap.configDir} (${plural(disks, 'desired disk')} in ${plural(snap.desired.domains.length, 'domain')}); observed ${plural(snap.observed.backends.length, 'vbd backend')}, ${plural(snap.observed.loops.length, 'loop device')} in ${snap.timings.observeMs.toFixed(0)} ms`,
      ...notes,
    ].join('\n');
    writeOut(renderPlan(plan, { color, header }));
  }
  if (values.out !== undefined) savedNote(values.out, values.json === true);
  return exitFor(plan, values);
}

/** Writes the saved plan (src/plan/saved.ts) to `file`, whole or not at all (a temp file renamed). */
function saveTo(
  file: string,
  o: { configDir: string; host: string; observedOn: string; values: { prune?: boolean | undefined; 'allow-data-loss'?: boolean | undefined }; t: Targeting; desired: DesiredState; observed: ObservedState; plan: Plan },
): void {
  const saved: SavedPlan = {
    format: SAVED_PLAN_FORMAT,
    version: SAVED_PLAN_VERSION,
    createdAt: new Date().toISOString(),
    configDir: resolve(o.configDir),
    host: o.host.toLowerCase(),
    observedOn: o.observedOn.toLowerCase(),
    flags: { prune: o.values.prune === true, allowDataLoss: o.values['allow-data-loss'] === true, targets: o.t.targets.map(addressText), replace: o.t.replace.map(addressText) },
    desiredDigest: desiredDigest(o.desired),
    observedDigest: observedDigest(o.plan.actions, o.observed),
    actions: o.plan.actions,
    findings: o.plan.findings,
    disks: o.plan.disks,
  };
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, JSON.stringify(saved, null, 2) + '\n', { mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot save the plan to ${file}: ${(err as Error).message}`);
  }
}

function savedNote(file: string, json: boolean): void {
  const text = `Saved the plan to ${file}: \`xvbd apply ${file}\` carries out exactly these actions (refused if the host or the config changed meanwhile).\n`;
  if (json) process.stderr.write(text);
  else writeOut('\n' + text);
}

/**
 * --target and --replace applied to a plan: the addresses checked against the host (CliError), the
 * actions filtered; with --target the JSON plan says so (`targeted`). The notes go under the header.
 */
function narrow(full: Plan, desired: DesiredState, observed: ObservedState, t: Targeting): { plan: Plan & { targeted?: { targets: string[]; actionsLeftOut: number } }; notes: string[] } {
  const wrong = checkAddresses(desired, observed, t.targets, t.replace);
  if (wrong !== undefined) throw new CliError(wrong.replace(/^-/, '--'));
  if (t.targets.length === 0) return { plan: full, notes: targetingNotes(full, t, 0) };
  const r = targetActions(full.actions, t.targets);
  const plan = { ...full, actions: r.actions, targeted: { targets: t.targets.map(addressText), actionsLeftOut: r.left } };
  return { plan, notes: targetingNotes(plan, t, r.left) };
}

function exitFor(plan: Plan, values: { 'detailed-exitcode'?: boolean | undefined }): number {
  if (!values['detailed-exitcode']) return EXIT_OK;
  return errorFindings(plan) > 0 ? EXIT_FINDINGS : plan.actions.length > 0 ? EXIT_CHANGES : EXIT_OK;
}

/** --observed FILE: the plan of this config for the host a recording was made on, against that recording. */
async function planRecorded(
  file: string,
  values: { config?: string | undefined; host?: string | undefined; json?: boolean | undefined; prune?: boolean | undefined; 'allow-data-loss'?: boolean | undefined; 'detailed-exitcode'?: boolean | undefined; color?: boolean | undefined; 'no-color'?: boolean | undefined; out?: string | undefined },
  t: Targeting,
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
  const replace = replaceSet(t);
  const policy = { ...desired.policy, ...(values.prune ? { prune: true } : {}), ...(values['allow-data-loss'] ? { allowDataLoss: true } : {}), ...(replace ? { replace } : {}) };
  const { plan, notes } = narrow(makePlan(desired, rec.observed, policy), desired, rec.observed, t);
  if (values.out !== undefined) saveTo(values.out, { configDir, host, observedOn: rec.hostName, values, t, desired, observed: rec.observed, plan });
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
    lines.push(...notes);
    writeOut(renderPlan(plan, { color, header: lines.join('\n') }));
  }
  if (values.out !== undefined) savedNote(values.out, values.json === true);
  return exitFor(plan, values);
}
