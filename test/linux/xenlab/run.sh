#!/bin/bash
# Run src/linux's lab job in the xenlab (a real Xen 4.17 + blkback under QEMU): builds nothing, uses
# dist/ as it is (run `npx tsc -p tsconfig.json` first). Its own share dir, so other lab users are not
# disturbed. Usage: test/linux/xenlab/run.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export SHARE=${SHARE:-/var/tmp/xvbd-linux-xenlab-share}
export HOSTUSR=1
export QEMU_EXTRA="-virtfs local,path=$repo,mount_tag=xvbd,security_model=none,readonly=on,id=xvbd"
exec /work/shared/xenlab/run-xen.sh "$here/blkback-registry.sh"
