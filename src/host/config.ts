// The host's configuration, read from the environment once by a composition root (src/wire) and handed
// down as values: where xenstore, the run dir, the config and the backend sysfs are, this host's name,
// the hook script a backend names. Read at every call, not memoised: the demo and the tests change the
// environment between runs in one process.
import { defaultConfigDir, defaultHostName, defaultPaths, defaultXenBackendSysfs, hookScriptPath } from './env.js';
import { runDir } from './rundir.js';

export interface HostConfig {
  /** $XVBD_CONFIG, else /etc/xvbd. */
  configDir: string;
  /** $XVBD_HOST, else `uname -n`, lower case. */
  hostName: string;
  /** $XVBD_RUN_DIR, else /run/xvbd: the apply lock, the keepers' and the daemon's sockets. */
  runDir: string;
  /** Where xenstored is looked for, in order ($XENSTORED_PATH, $XENSTORED_RUNDIR, libxenstore's list). */
  xenstorePaths: string[];
  /** $XVBD_XEN_BACKEND_SYSFS, else /sys/bus/xen-backend/devices. */
  xenBackendSysfs: string;
  /** The `script` written into backends xvbd creates ($XVBD_HOOK_SCRIPT, else the installed hook). */
  hookScript: string | undefined;
}

export function hostConfig(env: NodeJS.ProcessEnv = process.env): HostConfig {
  return {
    configDir: defaultConfigDir(env),
    hostName: defaultHostName(env),
    runDir: runDir(env),
    xenstorePaths: defaultPaths(env),
    xenBackendSysfs: defaultXenBackendSysfs(env),
    hookScript: hookScriptPath(env),
  };
}
