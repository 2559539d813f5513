// `xvbd demo`: examples/host on a simulated Xen host with real loop devices; cleans up after itself.
import { parseCommand } from '../args.js';
import { runDemo } from '../../demo/demo.js';
import { wantColor } from '../../render/style.js';

const USAGE = `Usage: xvbd demo [--no-wait]

Runs the examples/host configuration against the embedded xenstore simulator with real loop devices
(as root): creates sparse images in a temp dir, applies, shows the status, lets the simulated guests
connect, shows the one read-only loop device shared by three guests, then removes everything it made
(backends, loop devices, files), also on Ctrl-C. Waits for Enter before cleaning up when run on a
terminal, unless --no-wait.
Exit status: 0 ok, 1 error, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, { 'no-wait': { type: 'boolean' } });
  if (!args) return 0;
  const { values } = args;
  return runDemo({ wait: values['no-wait'] ? false : undefined, color: wantColor(process.stdout) });
}
