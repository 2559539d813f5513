// `xvbd keeper`: holds loop-device fds for backends when no daemon runs (docs/fd-holding.md).
// Started on demand by `xvbd apply` and `xvbd hook`; not meant to be run by hand except to inspect it.
import { parseCommand, UsageError } from '../args.js';
import { runDir } from '../../host/rundir.js';
import { keeperLists } from '../../hold/keeper-client.js';
import { KeeperRunningError, runKeeper } from '../../hold/keeper.js';
import { KEEPER_SLOTS, type KeeperSlot } from '../../plan/holding.js';
import { connect } from '../../xenstore/client.js';
import { CliError } from '../errors.js';
import { stampedLog } from '../../log/stdio.js';

const USAGE = `Usage: xvbd keeper [--slot a|b] [--list] [--idle-exit MS]

Holds the fds of loop devices that back xvbd's backends, so that blkback letting go of a device
(a frontend closing, its state removed) cannot let autoclear free it under a live backend. A run dir
has two keepers, slots a and b, each holding every fd and restarting the other when it dies, so no
single crash leaves a served device unheld. Started on demand by \`xvbd apply\`, \`xvbd hook add\`
and the daemon (without systemd's fd store); exits when it holds nothing. Under systemd each slot is
a unit, xvbd-keeper@a.service and xvbd-keeper@b.service, started through systemctl. \`xvbd status\`
lists the running keepers. See docs/fd-holding.md.

Options:
  --slot a|b       which of the two keepers to run (default a); a second keeper of a slot exits at once
  --list           print what the running keepers hold (JSON) and exit
  --idle-exit MS   exit this long after the last fd was released (default 3000)
Environment: XVBD_RUN_DIR (default /run/xvbd), XENSTORED_PATH (a keeper on another xenstore than its
givers' is refused by them and flagged by \`xvbd status\`), XVBD_KEEPERS (systemd: start a missing twin
with systemctl start xvbd-keeper@<slot>.service; spawn: detached; unset: systemd when it runs, the unit is
installed and the run dir is /run/xvbd), XVBD_KEEPER_XS_LOST_EXIT_MS (let go and exit when xenstore stays
unreachable that long; unset = never, the right choice on a real host).
Exit status: 0 nothing left to hold (or another keeper runs the slot), 1 error, 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, { list: { type: 'boolean' }, 'idle-exit': { type: 'string' }, slot: { type: 'string' } });
  if (!args) return 0;
  const { values } = args;
  const dir = runDir();
  if (values.list) {
    const lists = await keeperLists(dir);
    if (lists.length === 0) throw new CliError(`no keeper listens in ${dir}`);
    process.stdout.write(JSON.stringify(lists, null, 2) + '\n');
    return 0;
  }
  const slot = (values.slot ?? 'a') as KeeperSlot;
  if (!KEEPER_SLOTS.includes(slot)) throw new UsageError('keeper', `--slot takes ${KEEPER_SLOTS.join(' or ')}, not ${JSON.stringify(values.slot)}`);
  const idle = values['idle-exit'] !== undefined ? Number(values['idle-exit']) : undefined;
  if (idle !== undefined && (!Number.isInteger(idle) || idle < 0)) throw new UsageError('keeper', '--idle-exit needs a number of milliseconds');
  // keeper.log, or the journal when a unit runs the keeper itself (then with <N> prefixes, no time)
  const log = stampedLog(`keeper-${slot}[${process.pid}]: `);
  process.on('SIGHUP', () => log('SIGHUP ignored (the keeper never lets go of a live backend)'));
  const lostEnv = process.env.XVBD_KEEPER_XS_LOST_EXIT_MS;
  const xsLostExitMs = lostEnv && /^[0-9]+$/.test(lostEnv) ? Number(lostEnv) : undefined;
  try {
    await runKeeper({ runDir: dir, slot, connectXs: () => connect(), idleExitMs: idle, log, xsLostExitMs });
  } catch (err) {
    // a racing start of the same slot: the one that runs is the keeper
    if (err instanceof KeeperRunningError) return 0;
    throw err;
  }
  // nothing held, socket gone: do not wait for a xenstore reconnect back-off to run out
  process.exit(0);
}
