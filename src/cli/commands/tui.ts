// `xvbd tui`: a live terminal UI of the disks, their drift and the pending plan (src/ui).
import { resolve } from 'node:path';
import { defaultConfigDir } from '../../config/index.js';
import { hostOption, parseCommand, UsageError } from '../args.js';
import { CliError } from '../errors.js';

const USAGE = `Usage: xvbd tui [--config DIR] [--host NAME] [--interval SECONDS] [--no-apply]

A live view of every desired disk and every backend of xvbd's: sync and health (with the reason),
loop device, diskseq, sharing, backend and frontend states; the drift findings; the pending plan.
It re-observes on xenstore watch events and config changes, and every --interval seconds.

Keys (? in the TUI lists them all): arrows or j/k select a disk, Enter shows its details (Esc back),
/ filters the disks by text (Esc clears), f shows only the disks that need attention, N O S H L
sort by domain, source, sync, health, loop device (again: reversed), e lists the daemon's recent
passes and the hook's requests (the header says whether a daemon runs, and its last pass), :
takes a command (:disks :events :help :quit), a applies the pending plan after a y/n confirmation,
p applies with prune (as \`xvbd apply --prune\`, never --allow-data-loss) after showing exactly
what it would detach, replace and free, r refreshes now, q quits (Ctrl-C too).

Options:
  --config DIR        the desired-state directory (default $XVBD_CONFIG or /etc/xvbd)
  --host NAME         in a fleet directory (with \`kind: Host\` documents), this host's desired state
                      (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --interval SECONDS  periodic refresh (default 5; 0 = only on events)
  --no-apply          view only: the a and p keys are disabled
Environment: XENSTORED_PATH selects the xenstore socket (e.g. the simulator's); NO_COLOR=1: no colours.
Needs a terminal on stdin and stdout.
Exit status: 0 quit, 1 error (no terminal...), 2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    config: { type: 'string' },
    host: { type: 'string' },
    interval: { type: 'string' },
    'no-apply': { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  let periodMs = 5000;
  if (values.interval !== undefined) {
    const s = values.interval;
    if (!/^\d+(\.\d+)?$/.test(s) || Number(s) > 86400) throw new UsageError('tui', `--interval: expected seconds between 0 and 86400, got ${JSON.stringify(s)}`);
    periodMs = Math.round(Number(s) * 1000);
  }
  if (!process.stdout.isTTY) throw new CliError('stdout is not a terminal: the TUI needs one (use `xvbd status` for text output)');
  if (!process.stdin.isTTY) throw new CliError('stdin is not a terminal: the TUI reads keys from it (use `xvbd status` for text output)');

  // React's production build (the development one checks every render: several times slower).
  process.env.NODE_ENV ??= 'production';
  // Ink draws nothing but the last frame when it believes it runs in CI (CI or CONTINUOUS_INTEGRATION
  // set, read once when ink is loaded). Both ends are terminals here, so this is an interactive
  // session whatever the environment says: an administrator's shell or a CI job's pty alike.
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  // NO_COLOR (https://no-color.org): Ink's colours come from chalk, which reads FORCE_COLOR (not
  // NO_COLOR) once when it is loaded, below.
  if (process.env.NO_COLOR) process.env.FORCE_COLOR = '0';
  const configDir = resolve(values.config ?? defaultConfigDir());
  const [{ render }, { createElement }, { LiveApp }, { WorkerSource }, { makeApply }] = await Promise.all([
    import('ink'),
    import('react'),
    import('../../ui/LiveApp.js'),
    import('../../ui/worker-source.js'),
    import('../../ui/apply.js'),
  ]);
  // Observations run in a worker thread: keys and redraws never wait for one.
  const { host } = hostOption('tui', values.host);
  const source = new WorkerSource({
    configDir,
    ...(host !== undefined ? { host } : {}),
    ...(process.env.XENSTORED_PATH ? { socket: process.env.XENSTORED_PATH } : {}),
    ...(values['no-apply'] ? {} : { apply: makeApply(configDir, host) }),
  });
  // The alternate screen, as full-screen terminal programs do: the shell's screen comes back on exit.
  process.stdout.write('\u001b[?1049h\u001b[H');
  const leave = () => process.stdout.write('\u001b[?1049l');
  process.once('exit', leave);
  try {
    const app = render(createElement(LiveApp, { source, options: { periodMs } }), { exitOnCtrlC: true });
    await app.waitUntilExit();
  } finally {
    await source.close();
    process.off('exit', leave);
    leave();
  }
  return 0;
}
