// `xvbd status`: every desired disk (and every backend of xvbd's nobody desires) with its sync and
// health kept apart, its loop device, diskseq, sharing, backend/frontend states; then the findings.
import { parseCommand, REPORT_OPTIONS } from '../args.js';
import { renderStatus } from '../render/status.js';
import { colorFor } from '../render/style.js';
import { loadSnapshot } from '../../observe/cli.js';
import { askHolders } from '../holders.js';
import { EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';

const USAGE = `Usage: xvbd status [--config DIR] [--json] [--color|--no-color]

One row per desired disk (and per backend of xvbd's that nothing desires):
  SYNC     synced | out-of-sync | pending (domain not running) | unknown
  HEALTH   healthy (both ends Connected) | progressing | degraded (with the reason) | missing
plus the loop device, its diskseq, how many backends share it, the backend and frontend states;
then the drift findings with their fixes. Changes nothing.

Options:
  --config DIR          config directory (default: $XVBD_CONFIG, else /etc/xvbd)
  --json                print {disks, findings, host} as JSON ({valid:false, errors} if the config is invalid)
  --color / --no-color  colour the text (default: when stdout is a terminal and NO_COLOR is unset)
  -h, --help            this help

Exit status: 0 no error findings (disks may still be pending or progressing), 3 error findings (a disk
broken, a source missing or mounted, a read-write file shared...), 1 error (invalid config, xenstore
unreachable), 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, REPORT_OPTIONS);
  if (!args) return 0;
  const { values } = args;
  const snap = await loadSnapshot({ configDir: values.config, command: 'status', json: values.json === true, holders: askHolders });
  const { plan, observed } = snap;
  if (values.json) {
    const host = {
      domains: observed.domains,
      backends: observed.backends.length,
      loops: observed.loops.length,
      xvbdLoops: observed.loops.filter((l) => l.ours).length,
    };
    process.stdout.write(JSON.stringify({ disks: plan.disks, findings: plan.findings, host }, null, 2) + '\n');
    return errorFindings(plan) > 0 ? EXIT_FINDINGS : EXIT_OK;
  }
  const color = colorFor(values, process.stdout);
  const header = `xvbd status: ${snap.configDir}; observed in ${snap.timings.observeMs.toFixed(0)} ms`;
  process.stdout.write(renderStatus(plan, { color, header, observed }));
  return errorFindings(plan) > 0 ? EXIT_FINDINGS : EXIT_OK;
}
