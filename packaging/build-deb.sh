#!/bin/sh
# Builds the Debian package from the built tree (`npm run package` builds first):
#   dist/xvbd_<version>_<arch>.deb   (or into the directory given as $1)
# with dpkg-deb and no network: the program is dist/src + schemas + package.json, its node_modules are the
# production dependencies copied from ./node_modules (as `npm ls --omit=dev` lists them), the libxl hook
# is native/xvbd-hook.c compiled again with the packaged paths (/usr/bin/node,
# /usr/lib/xvbd/dist/src/cli/main.js: its defaults). The hook and koffi's native module make the package
# architecture-specific (dpkg --print-architecture; only koffi's build for it is kept).
# Layout and the Debian conventions: README.md, "Installing the Debian package".
set -eu
cd "$(dirname "$0")/.."
out=${1:-dist}
version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
case $arch in
  amd64) koffi=linux_x64 ;;
  arm64) koffi=linux_arm64 ;;
  *) echo "packaging/build-deb.sh: no koffi build known for architecture $arch" >&2; exit 1 ;;
esac
for f in dist/src/cli/main.js dist/src/config/validators.generated.cjs; do
  [ -e "$f" ] || { echo "packaging/build-deb.sh: $f is missing: run npm run build first (npm run package does)" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "packaging/build-deb.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
# one date for every timestamp (reproducible): the last commit's, else now
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xvbd-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
lib=$root/usr/lib/xvbd
doc=$root/usr/share/doc/xvbd
mkdir -p "$lib/dist/native" "$lib/node_modules" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/xen/scripts" \
  "$root/etc/xvbd" "$doc/examples" "$root/DEBIAN"

# the program
cp -R dist/src "$lib/dist/src"
find "$lib/dist/src" -name "*.map" -delete
cp -R schemas "$lib/schemas"
node -e '
  const p = require("./package.json");
  const keep = { name: p.name, version: p.version, description: p.description, type: p.type, license: p.license, bin: p.bin, engines: p.engines, dependencies: p.dependencies };
  process.stdout.write(JSON.stringify(keep, null, 2) + "\n");
' > "$lib/package.json"
chmod 0755 "$lib/dist/src/cli/main.js"
ln -s ../lib/xvbd/dist/src/cli/main.js "$root/usr/bin/xvbd"

# production dependencies only, from the installed tree (top-level entries; nested ones come with them)
deps=$(npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$(pwd)/node_modules/||p" | grep -v '/node_modules/' | sort -u)
[ -n "$deps" ] || { echo "packaging/build-deb.sh: npm ls --omit=dev listed no dependencies (npm ci first)" >&2; exit 1; }
for d in $deps; do
  mkdir -p "$lib/node_modules/$(dirname "$d")"
  cp -R "node_modules/$d" "$lib/node_modules/$d"
done
# koffi ships a native build per platform: keep this architecture's
for b in "$lib"/node_modules/koffi/build/koffi/*; do
  [ "$(basename "$b")" = "$koffi" ] || rm -rf "$b"
done
[ -e "$lib/node_modules/koffi/build/koffi/$koffi/koffi.node" ] || { echo "packaging/build-deb.sh: koffi has no build for $koffi" >&2; exit 1; }
rm -rf "$lib/node_modules/.bin" "$lib/node_modules/koffi/src" "$lib/node_modules/koffi/vendor"

# the libxl hook, with the packaged paths (the defaults of native/xvbd-hook.c), as /usr/lib/xvbd/dist/native/xvbd-hook
# (where `xvbd hook install` finds it);
# /etc/xen/scripts/xvbd is a symlink to it, so that an upgrade replaces it (no conffile prompt for a binary)
cc=${CC:-gcc}
flags="-std=c11 -O2 -Wall -Wextra -Werror -Wno-format-truncation -D_FORTIFY_SOURCE=2 -fstack-protector-strong"
# shellcheck disable=SC2086
$cc $flags -static -o "$lib/dist/native/xvbd-hook" native/xvbd-hook.c 2>/dev/null || $cc $flags -o "$lib/dist/native/xvbd-hook" native/xvbd-hook.c
strip --remove-section=.comment --remove-section=.note "$lib/dist/native/xvbd-hook" 2>/dev/null || true
ln -s /usr/lib/xvbd/dist/native/xvbd-hook "$root/etc/xen/scripts/xvbd"

# units
cp examples/systemd/xvbd.service "$root/lib/systemd/system/xvbd.service"
for u in examples/systemd/xvbd-keeper@.service; do
  [ -e "$u" ] && cp "$u" "$root/lib/systemd/system/"
done

# /etc/xvbd: no desired state (the daemon waits for one), only a README (not *.yaml: never read as config)
cp packaging/etc-xvbd-README "$root/etc/xvbd/README"

# docs
cp README.md "$doc/README.md"
cp docs/*.md "$doc/"
cp -R examples/host examples/fleet "$doc/examples/"
cp examples/systemd/fd-store-preserve.conf "$doc/examples/"
cp packaging/copyright "$doc/copyright"
{
  printf 'xvbd (%s) unstable; urgency=medium\n\n  * Built from the repository (packaging/build-deb.sh).\n\n' "$version"
  printf ' -- xvbd maintainers <maintainers@users.noreply.r-seed-c0c132dd.example>  %s\n' "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"

# Debian metadata
cp packaging/postinst packaging/postrm "$root/DEBIAN/"
printf '/etc/xvbd/README\n' > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: xvbd
Version: $version
Architecture: $arch
Maintainer: xvbd maintainers <maintainers@users.noreply.r-seed-c0c132dd.example>
Installed-Size: $size
Depends: nodejs (>= 20.19), xenstore-utils
Section: admin
Priority: optional
Description: declarative reconciler for Xen virtual block devices
 xvbd keeps a Xen host's file-backed guest disks converged with a directory
 of YAML files (/etc/xvbd): autoclear loop devices, xenstore backends in
 libxl's layout written in transactions, and the loop devices held across
 restarts. It serves libxl's hotplug script (script=xvbd, a small native
 client in /etc/xen/scripts/xvbd) and runs as a systemd daemon (xvbd.service).
CONTROL

# permissions: root-owned (dpkg-deb --root-owner-group), 0755 dirs, 0644 files but executables
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod u+rw,go+r,go-w {} +
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm" "$lib/dist/native/xvbd-hook"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
# md5sums of every file but the conffiles (as dh_md5sums writes it: dpkg --verify, debsums)
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' | LC_ALL=C sort | sed 's|^\./||' | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/xvbd_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
