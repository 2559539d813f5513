// `xvbd status`: every desired disk (and every backend of xvbd's nobody desires) with its sync and
// health kept apart, its loop device, diskseq, sharing, backend/frontend states; then the findings.
import { hostOption, parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderStatus } from '../../render/status.js';
import { colorFor, palette } from '../../render/style.js';
import { configProblem, loadHostSnapshot } from '../snapshot.js';
import { formatErrors } from '../../config/index.js';
import { askHolders } from '../holders.js';
import { EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';
import type { KeeperStatus } from '../../observe/recording.js';

const USAGE = `Usage: xvbd status [--config DIR] [--host NAME] [--json] [--color|--no-color]

One row per desired disk (and per backend of xvbd's that nothing desires):
  SYNC     synced | out-of-sync | pending (domain not running) | unknown
  HEALTH   healthy (both ends Connected) | progressing | degraded (with the reason) | missing
plus the loop device, its diskseq, how many backends share it, the backend and frontend states;
then the drift findings with their fixes. Changes nothing. When the config is invalid or missing, its
errors come first, then the observed host alone: xvbd's backends, loop devices and the findings that
need no desired state (unheld, broken or leaked devices, backend errors); exit 1.
Last, the keepers of the run dir that run (pid, fds held), and a warning for one that looks for
xenstore elsewhere (another XENSTORED_PATH).

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --host NAME           in a fleet directory (with \`kind: Host\` documents), this host's desired state
                        (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --json                print the status document as JSON (schemas/xvbd-status-v1.schema.json, docs/status.md):
                        {apiVersion, kind: Status, hostName, generatedAt, configDir, disks, findings, host,
                        observed, keepers}; save it for \`xvbd plan --observed FILE\`. With an invalid or missing
                        config also {config: {valid: false, missing, errors}} (the host still shown)
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help

Exit status: 0 no error findings (disks may still be pending or progressing), 3 error findings (a disk
broken, a source missing or mounted, a read-write file shared...), 1 error (invalid config, xenstore
unreachable), 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, REPORT_OPTIONS);
  if (!args) return 0;
  const { values } = args;
  // the host is shown even when the config is broken: its errors on top, then what is observed
  const { snap, plan, configOk } = await loadHostSnapshot({ configDir: values.config, ...hostOption('status', values.host), command: 'status', json: values.json === true, holders: askHolders });
  const { observed } = snap;
  const problem = configOk ? undefined : configProblem(snap);
  const keepers = await keeperStatus();
  const code = !configOk ? EXIT_ERROR : errorFindings(plan) > 0 ? EXIT_FINDINGS : EXIT_OK;
  if (values.json) {
    const { statusDocument } = await import('../../observe/recording.js');
    const { defaultHostName } = await import('../../config/index.js');
    const hostName = snap.desired?.host?.name ?? values.host ?? defaultHostName();
    const config = problem ? { config: { valid: false as const, missing: problem.missing, errors: snap.errors } } : {};
    process.stdout.write(JSON.stringify(statusDocument({ hostName, configDir: snap.configDir, plan, observed, ...config, keepers }), null, 2) + '\n');
    return code;
  }
  const color = colorFor(values, process.stdout);
  const header = `xvbd status: ${snap.configDir}; observed in ${snap.timings.observeMs.toFixed(0)} ms`;
  let top = '';
  if (problem) {
    const p = palette(color);
    top += `${p.red(p.bold(`${problem.text[0]!.toUpperCase()}${problem.text.slice(1)}.`))} Showing the observed host only: xvbd's backends, loop devices and the findings that need no desired state; nothing is compared with the config.\n\n`;
    if (!problem.missing && snap.errors.length > 0) top += formatErrors(snap.errors, { color }) + '\n';
    process.stderr.write(`xvbd status: ${problem.text}; showing the observed host only\n`);
  }
  process.stdout.write(top + renderStatus(plan, { color, header, observed }) + renderKeepers(keepers, color));
  return code;
}

/** The run dir's keepers that answer: pid, fds held, their xenstore (and whether it is not ours). */
async function keeperStatus(): Promise<KeeperStatus[]> {
  const { keeperLists, xenstoreMismatch } = await import('../../hold/keeper-client.js');
  const { runDir } = await import('../../host/rundir.js');
  return (await keeperLists(runDir())).map((k) => ({
    slot: k.slot,
    pid: k.pid,
    fds: k.held.length,
    ...(k.xenstore !== undefined ? { xenstore: k.xenstore, xenstoreMismatch: xenstoreMismatch(k.xenstore) } : {}),
    ...(k.xsConnected !== undefined ? { xsConnected: k.xsConnected } : {}),
  }));
}

function renderKeepers(keepers: KeeperStatus[], color: boolean): string {
  if (keepers.length === 0) return '';
  const p = palette(color);
  const fds = (n: number) => `${n} fd${n === 1 ? '' : 's'}`;
  let out = `\nKeepers: ${keepers.map((k) => `${k.slot} pid ${k.pid} holds ${fds(k.fds)}${k.xsConnected === false ? ' (xenstore unreachable)' : ''}`).join('; ')}\n`;
  for (const k of keepers.filter((x) => x.xenstoreMismatch)) {
    out += p.yellow(`  keeper ${k.slot} (pid ${k.pid}) looks for xenstore at ${k.xenstore!.join(', ')}, not where this xvbd does: it cannot see the backends of the ${fds(k.fds)} it holds, and xvbd hands it no more; stop it (kill ${k.pid}) once they are held elsewhere, and start xvbd with one XENSTORED_PATH`) + '\n';
  }
  return out;
}
