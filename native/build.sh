#!/bin/sh
# Builds native/ into dist/native/; run by `npm run build` after tsc:
#  - xvbd-hook (native/xvbd-hook.c), libxl's script=xvbd. Static when the C library allows it (the Xen
#    suite runs it in a dom0 whose /usr is the host's), else dynamic against libc only. The Node binary and
#    the CLI entry point are compiled in (the on-demand hook server is `node dist/src/cli/main.js hook
#    server`); XVBD_NODE / XVBD_CLI_MAIN override them at run time;
#  - bench-burst (native/bench-burst.c): `npm run bench -- hook` starts a domain's scripts with it, as
#    libxl does (fork + exec from C).
# Each is rebuilt only when its source, this script or (for the hook) the compiled-in paths changed.
set -eu
cd "$(dirname "$0")/.."
cc=${CC:-gcc}
node=${npm_node_execpath:-$(command -v node)}
main=$(pwd)/dist/src/cli/main.js
flags="-std=c11 -O2 -Wall -Wextra -Werror -Wno-format-truncation -D_FORTIFY_SOURCE=2 -fstack-protector-strong"
mkdir -p dist/native

stale() { # stale OUT SRC [STAMP]: whether OUT must be built again
  [ -x "$1" ] && [ "$1" -nt "$2" ] && [ "$1" -nt native/build.sh ] && [ "$(cat "$1.paths" 2>/dev/null)" = "${3:-}" ] && return 1
  return 0
}

compile() { # compile OUT SRC [CC ARGS...]: static if possible, else dynamic
  out=$1 src=$2
  shift 2
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "native/build.sh: $cc not found: the hook needs a C compiler (apt-get install gcc libc6-dev)" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # $flags is a list of words
  if ! "$cc" $flags "$@" -static -o "$out.tmp" "$src" 2>/dev/null; then
    if ! "$cc" $flags "$@" -o "$out.tmp" "$src"; then
      echo "native/build.sh: cannot compile $src (the C library headers come with libc6-dev)" >&2
      exit 1
    fi
  fi
  mv "$out.tmp" "$out"
}

stamp="$node|$main"
if stale dist/native/xvbd-hook native/xvbd-hook.c "$stamp"; then
  compile dist/native/xvbd-hook native/xvbd-hook.c "-DXVBD_NODE=\"$node\"" "-DXVBD_CLI_MAIN=\"$main\""
  printf '%s' "$stamp" > dist/native/xvbd-hook.paths
fi
if stale dist/native/bench-burst native/bench-burst.c; then
  compile dist/native/bench-burst native/bench-burst.c
  : > dist/native/bench-burst.paths
fi
