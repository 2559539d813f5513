// `xvbd status`: every desired disk (and every backend of xvbd's nobody desires) with its sync and
// health kept apart, its loop device, diskseq, sharing, backend/frontend states; then the findings.
import { hostOption, parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderStatus } from '../render/status.js';
import { colorFor } from '../render/style.js';
import { loadSnapshot } from '../../observe/cli.js';
import { askHolders } from '../holders.js';

const USAGE = `Usage: xvbd status [--config DIR] [--host NAME] [--json] [--color|--no-color]

One row per desired disk (and per backend of xvbd's that nothing desires):
  SYNC     synced | out-of-sync | pending (domain not running) | unknown
  HEALTH   healthy (both ends Connected) | progressing | degraded (with the reason) | missing
plus the loop device, its diskseq, how many backends share it, the backend and frontend states;
then the drift findings with their fixes. Changes nothing.

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --host NAME           in a fleet directory (with \`kind: Host\` documents), this host's desired state
                        (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --json                print the status document as JSON (schemas/xvbd-status-v1.schema.json, docs/status.md):
                        {apiVersion, kind: Status, hostName, generatedAt, configDir, disks, findings, host,
                        observed}; save it for \`xvbd plan --observed FILE\` ({valid:false, errors} if the
                        config is invalid)
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help

Exit status: 0 (whatever the status), 1 error (invalid config, xenstore unreachable).`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, REPORT_OPTIONS);
  if (!args) return 0;
  const { values } = args;
  const snap = await loadSnapshot({ configDir: values.config, ...hostOption(values.host), command: 'status', json: values.json === true, holders: askHolders });
  const { plan, observed } = snap;
  if (values.json) {
    const { statusDocument } = await import('../../observe/recording.js');
    const { defaultHostName } = await import('../../config/index.js');
    const hostName = snap.desired.host?.name ?? values.host ?? defaultHostName();
    process.stdout.write(JSON.stringify(statusDocument({ hostName, configDir: snap.configDir, plan, observed }), null, 2) + '\n');
    return 0;
  }
  const color = colorFor(values, process.stdout);
  const header = `xvbd status: ${snap.configDir}; observed in ${snap.timings.observeMs.toFixed(0)} ms`;
  process.stdout.write(renderStatus(plan, { color, header, observed }));
  return 0;
}
