#!/bin/sh
# Builds the C hook (native/xvbd-hook.c) into dist/native/xvbd-hook; run by `npm run build` after tsc.
# Static when the C library allows it (the Xen suite runs it in a dom0 whose /usr is the host's), else
# dynamic against libc only. The Node binary and the CLI entry point are compiled in (the on-demand hook
# server is `node dist/src/cli/main.js hook server`); XVBD_NODE / XVBD_CLI_MAIN override them at run time.
set -eu
cd "$(dirname "$0")/.."
src=native/xvbd-hook.c
out=dist/native/xvbd-hook
cc=${CC:-gcc}
node=${npm_node_execpath:-$(command -v node)}
main=$(pwd)/dist/src/cli/main.js
stamp="$node|$main"
mkdir -p dist/native
# rebuilt only when the source, this script or the compiled-in paths changed (the build is incremental)
if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt native/build.sh ] && [ "$(cat "$out.paths" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native/build.sh: $cc not found: the hook needs a C compiler (apt-get install gcc libc6-dev)" >&2
  exit 1
fi
flags="-std=c11 -O2 -Wall -Wextra -Werror -Wno-format-truncation -D_FORTIFY_SOURCE=2 -fstack-protector-strong"
# shellcheck disable=SC2086 # $flags is a list of words
if ! "$cc" $flags "-DXVBD_NODE=\"$node\"" "-DXVBD_CLI_MAIN=\"$main\"" -static -o "$out.tmp" "$src" 2>/dev/null; then
  "$cc" $flags "-DXVBD_NODE=\"$node\"" "-DXVBD_CLI_MAIN=\"$main\"" -o "$out.tmp" "$src"
fi
mv "$out.tmp" "$out"
printf '%s' "$stamp" > "$out.paths"
