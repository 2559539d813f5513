// `xvbd hook add|remove|server|install`: libxl's script= for xvbd disks (docs/hook.md).
import { chmodSync, copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostConfig } from '../../host/config.js';
import { closest, parseCommand, UsageError } from '../args.js';
import { CliError } from '../errors.js';

/** The compiled C hook (native/xvbd-hook.c, built by `npm run build`). */
export const NATIVE_HOOK = fileURLToPath(new URL('../../../native/xvbd-hook', import.meta.url));

const USAGE = `Usage: xvbd hook add|remove [XENBUS_PATH=backend/vbd/DOMID/DEVID]
       xvbd hook install [--dir /etc/xen/scripts] [--name xvbd]
       xvbd hook server [--ready-fd N] [--idle-ms MS]

libxl runs a disk's hotplug script with add or remove and XENBUS_PATH=backend/vbd/<domid>/<devid>.
\`xvbd hook install\` puts the fast hook (a small C client, dist/native/xvbd-hook) in /etc/xen/scripts as
\`xvbd\`, so that a bare script=xvbd works:
  xl block-attach web1 'format=raw,vdev=xvdb,access=rw,script=xvbd,target=/var/lib/xvbd/images/web1-private.img'
  disk = [ 'format=raw, vdev=xvdb, access=rw, script=xvbd, target=/var/lib/xvbd/images/web1-private.img' ]
The client asks the daemon ($XVBD_RUN_DIR/control.sock) or, without one, an on-demand hook server it
starts once ($XVBD_RUN_DIR/hook.sock, idle exit) to serve the backend as \`xvbd plan\` decides;
hotplug-status (or hotplug-error) is written as the block script does; exit 0 once physical-device is
written and the device held. \`xvbd hook add|remove\` is the same in Node (reference and fallback).
\`xvbd hook server\` is that on-demand server. Logs: /var/log/xen/xen-hotplug.log when it exists.
Environment: XENBUS_PATH, XVBD_CONFIG, XVBD_RUN_DIR, XENSTORED_PATH, XVBD_BACKEND_DOMID (Node hook only),
XVBD_HOOK_SERVER_IDLE_MS (default 10000).
Exit status: add|remove 0 served or released, 1 refused or failed (hotplug-error written) or a bad
XENBUS_PATH, 2 usage (as the C hook); install and server 0 ok, 1 error, 2 usage error.`;

const SUBCOMMANDS = ['add', 'remove', 'install', 'server'];

function install(argv: string[]): number {
  const args = parseCommand(argv, USAGE, { dir: { type: 'string' }, name: { type: 'string' } });
  if (!args) return 0;
  const { values } = args;
  const dir = values.dir ?? '/etc/xen/scripts';
  const name = values.name ?? 'xvbd';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new UsageError('hook', `--name ${JSON.stringify(name)}: a plain file name, please`);
  if (!existsSync(NATIVE_HOOK)) throw new CliError(`${NATIVE_HOOK} is missing: run npm run build (it needs gcc)`);
  if (!existsSync(dir)) throw new CliError(`${dir} does not exist (is Xen installed? --dir names another place)`);
  const dest = join(dir, name);
  const tmp = `${dest}.xvbd-new`;
  try {
    copyFileSync(NATIVE_HOOK, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, dest); // a libxl running the old one meanwhile keeps it
  } finally {
    rmSync(tmp, { force: true });
  }
  process.stdout.write(`installed ${dest}\nin the xl disk spec: script=${dir === '/etc/xen/scripts' ? name : dest}\n`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (sub === undefined) throw new UsageError('hook', 'which one: xvbd hook add|remove|install|server');
  if (!SUBCOMMANDS.includes(sub)) {
    const near = sub.startsWith('-') ? undefined : closest(sub, SUBCOMMANDS);
    throw new UsageError('hook', `${sub.startsWith('-') ? 'unknown option' : 'unknown subcommand'} ${JSON.stringify(sub)}${near !== undefined ? ` (did you mean ${near}?)` : ''}`);
  }
  if (sub === 'install') return install(argv.slice(1));
  if (sub === 'server') {
    const args = parseCommand(argv.slice(1), USAGE, { 'ready-fd': { type: 'string' }, 'idle-ms': { type: 'string' } });
    if (!args) return 0;
    const { values } = args;
    const fd = values['ready-fd'] !== undefined ? Number(values['ready-fd']) : undefined;
    const idle = values['idle-ms'] !== undefined ? Number(values['idle-ms']) : undefined;
    if (fd !== undefined && !(Number.isInteger(fd) && fd >= 3)) throw new UsageError('hook', '--ready-fd must be an fd number >= 3');
    if (idle !== undefined && !(Number.isInteger(idle) && idle > 0)) throw new UsageError('hook', '--idle-ms must be a positive integer');
    // The keeper is a Node start of its own: begun before this process loads the rest of its code.
    const { KeeperHolder } = await import('../../hold/holder.js');
    const holder = new KeeperHolder(hostConfig().runDir);
    const keeperUp = holder.start();
    keeperUp.catch(() => {}); // reported by the first step that needs it
    const { runHookServer } = await import('../../hook/hook-run.js');
    return runHookServer({ holder, keeperUp, ...(fd !== undefined ? { readyFd: fd } : {}), ...(idle !== undefined ? { idleMs: idle } : {}) });
  }
  const { runHook } = await import('../../hook/hook-run.js');
  return runHook(argv);
}
