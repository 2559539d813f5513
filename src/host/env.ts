// The environment variables that name the host's places (xenstore, sysfs, config, host name, hook script),
// each with its default, in one place (the run dir and instance: instance.ts). hostConfig() (config.ts)
// reads them all at once for a composition root; the layers below take the values, or fall back on these
// when a caller passes none. Nothing heavy here: the CLI, the keeper and the hook read it first.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';

/** Where libxenstore would look, in order, given the environment. */
export function defaultPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.XENSTORED_PATH) return [env.XENSTORED_PATH];
  const rundir = env.XENSTORED_RUNDIR;
  const sockets = rundir ? [`${rundir}/socket`] : ['/run/xenstored/socket', '/var/run/xenstored/socket'];
  return [...sockets, '/dev/xen/xenbus', '/proc/xen/xenbus'];
}

/** Where the kernel lists the Xen backend devices (the simulator's blkback makes its own tree). */
export function defaultXenBackendSysfs(env: NodeJS.ProcessEnv = process.env): string {
  return env.XVBD_XEN_BACKEND_SYSFS || '/sys/bus/xen-backend/devices';
}

/** The machine's host name as `uname -n` prints it, folded to lower case: $XVBD_HOST, else os.hostname(). */
export function defaultHostName(env: NodeJS.ProcessEnv = process.env): string {
  return (env.XVBD_HOST && env.XVBD_HOST !== '' ? env.XVBD_HOST : hostname()).toLowerCase();
}

/** The default config directory: $XVBD_CONFIG, else /etc/xvbd. */
export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XVBD_CONFIG && env.XVBD_CONFIG !== '' ? env.XVBD_CONFIG : '/etc/xvbd';
}

export const DEFAULT_HOOK_SCRIPT = '/usr/local/bin/xvbd-hook';
/** Where `xvbd hook install` puts the C hook (a bare script=xvbd is looked up there). */
export const XEN_SCRIPTS_HOOK = '/etc/xen/scripts/xvbd';

/** The backend's `script`: $XVBD_HOOK_SCRIPT, else the installed hook if present, else none. */
export function hookScriptPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.XVBD_HOOK_SCRIPT !== undefined) return env.XVBD_HOOK_SCRIPT || undefined;
  return [XEN_SCRIPTS_HOOK, DEFAULT_HOOK_SCRIPT].find((p) => existsSync(p));
}
