#!/bin/sh
# The README's two commands, on a fresh Debian 12 machine as root:
#   ./dev.sh demo   the whole product on the embedded xenstore simulator with real loop devices
#   ./dev.sh test   the test suite (npm test)
# Each installs what it needs first: Debian's xenstore-utils and xen-utils-common (the real
# xenstore clients and the Xen `block` hotplug script the tests compare against), the npm
# packages from package-lock.json, and the TypeScript build.
set -eu
cd "$(dirname "$0")"

need=""
command -v xenstore-ls >/dev/null 2>&1 || need="$need xenstore-utils"
[ -x /etc/xen/scripts/block ] || need="$need xen-utils-common"
command -v losetup >/dev/null 2>&1 || need="$need mount"
if [ -n "$need" ]; then
  echo "dev.sh: installing Debian packages:$need" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

case "${1:-}" in
  demo) shift; npm run build --silent && exec node dist/src/cli/main.js demo "$@" ;;
  test) shift; exec npm test -- "$@" ;;
  *) echo "usage: ./dev.sh demo|test" >&2; exit 2 ;;
esac
