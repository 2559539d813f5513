// `xvbd keeper`: holds loop-device fds for backends when no daemon runs (docs/fd-holding.md).
// Started on demand by `xvbd apply` and `xvbd hook`; not meant to be run by hand except to inspect it.
import { parseCommand } from '../args.js';
import { runDir } from '../../apply/rundir.js';
import { connectKeeper } from '../../daemon/keeper-client.js';
import { runKeeper } from '../../daemon/keeper.js';
import { connect } from '../../xenstore/client.js';
import { CliError } from '../errors.js';

const USAGE = `Usage: xvbd keeper [--list] [--idle-exit MS]

Holds the fds of loop devices that back xvbd's backends when no daemon runs, so that a frontend
reconnect (blkback closes and reopens the device) cannot let autoclear free them. Started on demand by
\`xvbd apply\` and \`xvbd hook add\`; exits when it holds nothing. See docs/fd-holding.md.

Options:
  --list           print what the running keeper holds (JSON) and exit
  --idle-exit MS   exit this long after the last fd was released (default 3000)
Environment: XVBD_RUN_DIR (default /run/xvbd), XENSTORED_PATH, XVBD_KEEPER_XS_LOST_EXIT_MS (let go and
exit when xenstore stays unreachable that long; unset = never, the right choice on a real host).`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, { list: { type: 'boolean' }, 'idle-exit': { type: 'string' } });
  if (!args) return 0;
  const { values } = args;
  const dir = runDir();
  if (values.list) {
    const c = await connectKeeper(dir).catch(() => {
      throw new CliError(`no keeper listens on ${dir}/keeper.sock`);
    });
    try {
      const rep = await c.request({ op: 'list' });
      process.stdout.write(JSON.stringify(rep, null, 2) + '\n');
    } finally {
      c.close();
    }
    return 0;
  }
  const idle = values['idle-exit'] !== undefined ? Number(values['idle-exit']) : undefined;
  if (idle !== undefined && (!Number.isInteger(idle) || idle < 0)) throw new CliError('--idle-exit needs a number of milliseconds');
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} keeper[${process.pid}]: ${line}\n`);
  process.on('SIGHUP', () => log('SIGHUP ignored (the keeper never lets go of a live backend)'));
  const lostEnv = process.env.XVBD_KEEPER_XS_LOST_EXIT_MS;
  const xsLostExitMs = lostEnv && /^[0-9]+$/.test(lostEnv) ? Number(lostEnv) : undefined;
  await runKeeper({ runDir: dir, connectXs: () => connect(), idleExitMs: idle, log, xsLostExitMs });
  // nothing held, socket gone: do not wait for a xenstore reconnect back-off to run out
  process.exit(0);
}
