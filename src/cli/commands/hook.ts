// `xvbd hook add|remove`: libxl's script= for xvbd disks (install as /usr/local/bin/xvbd-hook, see docs).
import { runHook } from '../../apply/hook-run.js';

const USAGE = `Usage: xvbd hook add|remove [XENBUS_PATH=backend/vbd/DOMID/DEVID]

Run by libxl as a disk's hotplug script: in the xl disk spec write
  script=/usr/local/bin/xvbd-hook,target=/var/lib/xvbd/images/web1-private.img,vdev=xvdb
(/usr/local/bin/xvbd-hook being \`#!/bin/sh\\nexec xvbd hook "$@"\`). libxl sets XENBUS_PATH to
backend/vbd/<frontend domid>/<devid>. \`add\` checks the backend against the desired state (domain name,
vdev, params == source, mode, policy serve: hook|both), serves it (through the daemon when one listens
on $XVBD_RUN_DIR/control.sock, else itself with the keeper holding the loop device) and writes
hotplug-status (or hotplug-error) as the block script does. \`remove\` lets go of the device.
Environment: XENBUS_PATH, XVBD_CONFIG, XVBD_RUN_DIR, XENSTORED_PATH, XVBD_BACKEND_DOMID (driver domains).`;

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  return runHook(argv);
}
