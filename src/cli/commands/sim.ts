// `xvbd sim`: serves a simulated xenstore (with domains and blkback) on a unix socket, so the
// real xenstore-* tools (XENSTORED_PATH=...) and xvbd itself run without Xen.
import { parseCommand, UsageError } from '../args.js';
import { CliError } from '../errors.js';
import { MAX_DOMID } from '../../xen/vbd.js';

const USAGE = `Usage: xvbd sim [--socket PATH] [--domain NAME[=DOMID]]... [--control SOCK] [--sysfs DIR] [--auto-connect] [--require-dev] [--verbose]
       xvbd sim add-domain NAME[=DOMID] --control SOCK
       xvbd sim remove-domain NAME --control SOCK
       xvbd sim list-domains --control SOCK

Serves a xenstored-compatible socket backed by a simulated Xen host until interrupted.
  --socket PATH      socket to listen on (default /run/xvbd/xenstored.sock)
  --domain NAME[=ID] create a simulated domain (repeatable); DOMID defaults to the next free one
  --control SOCK     also listen on SOCK (mode 0600) for add-domain / remove-domain / list-domains
                     while running: a domain added starts as libxl creates one (@introduceDomain),
                     one removed goes as \`xl destroy\` does (its backends removed, @releaseDomain)
  --sysfs DIR        where blkback's vbd-<domid>-<devid>/physical_device appear
                     (default <socket>.sysfs; point XVBD_XEN_BACKEND_SYSFS at it)
  --auto-connect     simulated guests connect their disks once the backend is ready
  --require-dev      model real blkback's need for the backend's "dev" node (without it: error
                     "2 get blkback dev name" at connect and the device is never released);
                     on by default with --auto-connect
  --verbose          log every request and what blkback does to stderr
Then: XENSTORED_PATH=PATH xenstore-ls /local/domain
add-domain prints the new domid, remove-domain the removed one, list-domains NAME=DOMID per line.
Exit status: 0 stopped by SIGINT/SIGTERM (or the request done), 1 cannot start (or the simulator
refused or cannot be reached), 2 usage error.`;

const DOMAIN_RE = /^([A-Za-z0-9._-]{1,64})(?:=(\d{1,5}))?$/;

function parseDomain(d: string, what: string): { name: string; domid?: number } {
  const m = DOMAIN_RE.exec(d);
  if (!m) throw new UsageError('sim', `invalid ${what} ${JSON.stringify(d)} (want NAME or NAME=DOMID)`);
  const domid = m[2] !== undefined ? Number(m[2]) : undefined;
  if (domid !== undefined && (domid < 1 || domid > MAX_DOMID)) throw new UsageError('sim', `invalid domid in ${what} ${JSON.stringify(d)} (1 to ${MAX_DOMID})`);
  return domid !== undefined ? { name: m[1]!, domid } : { name: m[1]! };
}

interface SimRequest {
  op: string;
  name?: unknown;
  domid?: unknown;
}
type SimReply = { ok: true; domid?: number; domains?: { name: string; domid: number }[] } | { ok: false; error: string };

/** One control request, as the running simulator answers it (never throws). */
function answer(sim: import('../../sim/index.js').Simulator, line: string): SimReply {
  let req: SimRequest;
  try {
    req = JSON.parse(line) as SimRequest;
  } catch {
    return { ok: false, error: 'the request is not JSON' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return { ok: false, error: 'the request is not a JSON object' };
  try {
    switch (req.op) {
      case 'list-domains':
        return { ok: true, domains: sim.domains().map((d) => ({ name: d.name, domid: d.domid })) };
      case 'add-domain': {
        if (typeof req.name !== 'string') return { ok: false, error: 'add-domain needs "name"' };
        if (req.domid !== undefined && typeof req.domid !== 'number') return { ok: false, error: '"domid" must be a number' };
        return { ok: true, domid: sim.addDomain(req.name, req.domid) };
      }
      case 'remove-domain': {
        const d = sim.domains().find((x) => x.name === req.name);
        if (!d) return { ok: false, error: `no simulated domain named ${JSON.stringify(req.name)}` };
        sim.removeDomain(d.domid);
        return { ok: true, domid: d.domid };
      }
      default:
        return { ok: false, error: `unknown op ${JSON.stringify(req.op)} (add-domain, remove-domain, list-domains)` };
    }
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** `xvbd sim add-domain|remove-domain|list-domains`: one request to a running simulator's control socket. */
async function client(op: string, positionals: string[], control: string | undefined): Promise<number> {
  if (control === undefined) throw new UsageError('sim', `${op} needs --control SOCK (the socket of a running \`xvbd sim --control SOCK\`)`);
  const want = op === 'list-domains' ? 0 : 1;
  if (positionals.length !== want) {
    throw new UsageError('sim', want === 0 ? `${op} takes no argument` : `${op} needs one domain ${op === 'add-domain' ? 'NAME[=DOMID]' : 'NAME'}`);
  }
  const req: Record<string, unknown> = { op };
  if (op === 'add-domain') Object.assign(req, parseDomain(positionals[0]!, 'domain'));
  if (op === 'remove-domain') {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(positionals[0]!)) throw new UsageError('sim', `invalid domain name ${JSON.stringify(positionals[0])}`);
    req.name = positionals[0];
  }
  const { JsonLinesClient } = await import('../../ipc/jsonlines.js');
  let c;
  try {
    c = await JsonLinesClient.connect<{ op: string }, SimReply>(control, 'the simulator');
  } catch (err) {
    throw new CliError(`cannot reach the simulator at ${control}: ${(err as Error).message}`);
  }
  try {
    const rep = await c.request(req as { op: string }, 10_000);
    if (!rep.ok) throw new CliError(`the simulator refused: ${rep.error}`);
    if (op === 'list-domains') process.stdout.write((rep.domains ?? []).map((d) => `${d.name}=${d.domid}\n`).join(''));
    else process.stdout.write(`${rep.domid}\n`);
    return 0;
  } finally {
    c.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    socket: { type: 'string' },
    domain: { type: 'string', multiple: true },
    sysfs: { type: 'string' },
    'auto-connect': { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
    'require-dev': { type: 'boolean' },
    control: { type: 'string' },
  }, { allowPositionals: true });
  if (!args) return 0;
  const { values, positionals } = args;
  const sub = positionals[0];
  if (sub !== undefined) {
    const subs = ['add-domain', 'remove-domain', 'list-domains'];
    if (!subs.includes(sub)) throw new UsageError('sim', `unknown subcommand ${JSON.stringify(sub)} (${subs.join(', ')})`);
    const serverOnly = (['socket', 'domain', 'sysfs', 'auto-connect', 'verbose', 'require-dev'] as const).filter((k) => values[k] !== undefined);
    if (serverOnly.length > 0) throw new UsageError('sim', `--${serverOnly[0]} is for the simulator itself, not for ${sub}`);
    return client(sub, positionals.slice(1), values.control);
  }
  const domains = (values.domain ?? []).map((d) => parseDomain(d, '--domain'));
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
  let control: import('node:net').Server | undefined;
  if (values.control !== undefined) {
    const controlPath = values.control;
    const { createServer } = await import('node:net');
    const { chmodSync, rmSync } = await import('node:fs');
    const { serveJsonLines } = await import('../../ipc/jsonlines.js');
    const s = sim;
    rmSync(controlPath, { force: true });
    const srv = createServer((sock) => serveJsonLines(sock, async (line) => answer(s, line), { maxLine: 64 * 1024, sequential: true }));
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(controlPath, () => resolve());
      });
      chmodSync(controlPath, 0o600);
    } catch (err) {
      await sim.close();
      throw new CliError(`cannot listen on the control socket ${controlPath}: ${(err as Error).message}`);
    }
    control = srv;
  }
  const doms = sim.domains().map((d) => `${d.name}=${d.domid}`).join(' ');
  process.stderr.write(
    `xvbd sim: serving ${socketPath} (sysfs ${sim.sysfsDir}${doms ? `; domains ${doms}` : ''})\n` +
      `  export XENSTORED_PATH=${socketPath} XVBD_XEN_BACKEND_SYSFS=${sim.sysfsDir}\n` +
      (values.control !== undefined ? `  control: xvbd sim add-domain NAME --control ${values.control}\n` : ''),
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  if (control) await new Promise<void>((resolve) => control.close(() => resolve()));
  await sim.close();
  return 0;
}
