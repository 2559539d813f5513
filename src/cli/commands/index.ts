// The command table. Modules load lazily: a command pays only for what it imports.
export interface CommandModule {
  /** Runs the command with the arguments after its name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<CommandModule>;
}

// Each command adds its own line here when its module lands.
export const COMMANDS: CommandEntry[] = [
  { name: 'plan', summary: 'show what apply would do (+ attach, - detach, ~ replace) and the drift findings', load: () => import('./plan.js') },
  { name: 'show', summary: 'print a plan saved by `plan -out FILE` (--json too)', load: () => import('./show.js') },
  { name: 'status', summary: 'every disk: sync and health, loop device, diskseq, sharing, states; then the findings', load: () => import('./status.js') },
  { name: 'sim', summary: 'serve a simulated xenstore + blkback on a unix socket (no Xen needed)', load: () => import('./sim.js') },
  { name: 'validate', summary: 'check the desired-state YAML (schema, duplicates, sharing, paths)', load: () => import('./validate.js') },
  { name: 'apply', summary: 'carry out the plan: attach, serve, (with --prune) detach and free', load: () => import('./apply.js') },
  { name: 'hook', summary: "libxl's script= for xvbd disks: hook add|remove (XENBUS_PATH)", load: () => import('./hook.js') },
  { name: 'demo', summary: 'the example host on a simulated Xen host with real loop devices; cleans up after itself', load: () => import('./demo.js') },
  { name: 'keeper', summary: 'hold loop-device fds for backends when no daemon runs (started on demand)', load: () => import('./keeper.js') },
  { name: 'reconcile', summary: 'converge once (exit 0/2/3/1), or --watch: the daemon (systemd notify, fd store, control socket)', load: () => import('./reconcile.js') },
  { name: 'tui', summary: 'live terminal UI: disks, health and drift, the pending plan; apply from it', load: () => import('./tui.js') },
];
