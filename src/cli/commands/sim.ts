// `xvbd sim`: serves a simulated xenstore (with domains and blkback) on a unix socket, so the
// real xenstore-* tools (XENSTORED_PATH=...) and xvbd itself run without Xen.
import { parseCommand, UsageError } from '../args.js';
import { CliError } from '../errors.js';

const USAGE = `Usage: xvbd sim [--socket PATH] [--domain NAME[=DOMID]]... [--sysfs DIR] [--auto-connect] [--require-dev] [--verbose]

Serves a xenstored-compatible socket backed by a simulated Xen host until interrupted.
  --socket PATH      socket to listen on (default /run/xvbd/xenstored.sock)
  --domain NAME[=ID] create a simulated domain (repeatable); DOMID defaults to the next free one
  --sysfs DIR        where blkback's vbd-<domid>-<devid>/physical_device appear
                     (default <socket>.sysfs; point XVBD_XEN_BACKEND_SYSFS at it)
  --auto-connect     simulated guests connect their disks once the backend is ready
  --require-dev      model real blkback's need for the backend's "dev" node (without it: error
                     "2 get blkback dev name" at connect and the device is never released);
                     on by default with --auto-connect
  --verbose          log every request and what blkback does to stderr
Then: XENSTORED_PATH=PATH xenstore-ls /local/domain
Exit status: 0 stopped by SIGINT/SIGTERM, 1 cannot start, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    socket: { type: 'string' },
    domain: { type: 'string', multiple: true },
    sysfs: { type: 'string' },
    'auto-connect': { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    'require-dev': { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  const domains: { name: string; domid?: number }[] = [];
  for (const d of values.domain ?? []) {
    const m = /^([A-Za-z0-9._-]{1,64})(?:=(\d{1,5}))?$/.exec(d);
    if (!m) throw new UsageError('sim', `invalid --domain ${JSON.stringify(d)} (want NAME or NAME=DOMID)`);
    const domid = m[2] !== undefined ? Number(m[2]) : undefined;
    if (domid !== undefined && (domid < 1 || domid >= 0x7ff0)) throw new UsageError('sim', `invalid domid in --domain ${JSON.stringify(d)} (1 to ${0x7ff0 - 1})`);
    domains.push(domid !== undefined ? { name: m[1]!, domid } : { name: m[1]! });
  }
  const socketPath = values.socket ?? '/run/xvbd/xenstored.sock';
  const { mkdirSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  mkdirSync(dirname(socketPath), { recursive: true });
  const { startSimulator } = await import('../../sim/index.js');
  let sim;
  try {
    sim = await startSimulator({
      socketPath,
      ...(values.sysfs !== undefined ? { sysfsDir: values.sysfs } : {}),
      domains,
      autoConnect: values['auto-connect'] === true,
      ...(values['require-dev'] ? { requireDevNode: true } : {}),
      ...(values.verbose ? { log: (line: string) => process.stderr.write(`${line}\n`) } : {}),
    });
  } catch (err) {
    throw new CliError(`cannot start the simulator: ${(err as Error).message}`);
  }
  const doms = sim.domains().map((d) => `${d.name}=${d.domid}`).join(' ');
  process.stderr.write(
    `xvbd sim: serving ${socketPath} (sysfs ${sim.sysfsDir}${doms ? `; domains ${doms}` : ''})\n` +
      `  export XENSTORED_PATH=${socketPath} XVBD_XEN_BACKEND_SYSFS=${sim.sysfsDir}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await sim.close();
  return 0;
}
