// `xvbd demo`: examples/host on a simulated Xen host with real loop devices; cleans up after itself.
import { parseArgs } from 'node:util';
import { CliError } from '../errors.js';
import { runDemo } from '../../apply/demo.js';
import { wantColor } from '../render/style.js';

const USAGE = `Usage: xvbd demo [--no-wait]

Runs the examples/host configuration against the embedded xenstore simulator with real loop devices
(as root): creates sparse images in a temp dir, applies, shows the status, lets the simulated guests
connect, shows the one read-only loop device shared by three guests, then removes everything it made
(backends, loop devices, files), also on Ctrl-C. Waits for Enter before cleaning up when run on a
terminal, unless --no-wait.`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, 'no-wait': { type: 'boolean' } }, strict: true }));
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  return runDemo({ wait: values['no-wait'] ? false : undefined, color: wantColor(process.stdout) });
}
