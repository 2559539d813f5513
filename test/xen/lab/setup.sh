#!/bin/bash
# xvbd Xen lab, host side set-up (idempotent), as root on Debian 12:
#   - installs the Debian packages the lab needs (QEMU, the Xen 4.17 hypervisor and tools, busybox-static)
#   - fetches Debian's linux-image package (apt-get download, not installed) for the dom0 kernel + modules
#   - builds, into the cache dir, the plain-ELF Xen image, the pre-decompressed dom0 vmlinux and a small
#     dom0 initramfs (busybox + the kernel modules + test/xen/lab/init.sh as /init + a skeleton /etc).
# dom0's userland is the host's own /usr, shared read-only over 9p at boot (see init.sh), so nothing else
# from the host is copied. Everything goes to $XVBD_XENLAB (default /var/tmp/xvbd-xenlab):
#   debs/ (the kernel .deb)  out/ (xen-4.17, vmlinux, dom0-initrd.cpio.gz, vmlinuz + domu-initrd.cpio.gz
#   for a guest, stamp)  runs/ (the last runs: run dir, serial console)
# A build is reused while out/stamp matches the inputs (this script, init.sh, the kernel and Xen versions).
# usage: setup.sh [--force]      prints "xenlab-ready <dir>" on success
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=${XVBD_XENLAB:-/var/tmp/xvbd-xenlab}
FORCE=0; [ "${1:-}" = --force ] && FORCE=1
log() { echo "[xen-setup] $*" >&2; }
mkdir -p "$LAB"/{debs,out,runs}
exec 9>"$LAB/.setup.lock"; flock 9        # two concurrent setups would race on out/

# ---- Debian packages ----
PKGS="qemu-system-x86 xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils xen-utils-common busybox-static
      xz-utils cpio file util-linux"
need=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
  log "installing:$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
XENGZ=/boot/xen-4.17-amd64.gz
[ -f "$XENGZ" ] || { log "missing $XENGZ after installing xen-hypervisor-4.17-amd64"; exit 1; }

# ---- the dom0 kernel package ----
deb=$(ls "$LAB"/debs/linux-image-*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
  if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1); fi
  [ -n "$kpkg" ] || { log "cannot find the linux-image package behind linux-image-amd64"; exit 1; }
  log "downloading $kpkg"
  id _apt >/dev/null 2>&1 && chown _apt "$LAB/debs"     # else apt warns it downloads unsandboxed
  (cd "$LAB/debs" && apt-get download -qq "$kpkg")
  deb=$(ls "$LAB"/debs/linux-image-*.deb | head -1)
fi

# ---- up to date? ----
xenver=$(dpkg-query -W -f '${Version}' xen-hypervisor-4.17-amd64)
# /usr/lib's entries are linked from the root's /lib: a package adding one there needs a rebuild
stamp=$( (cat "$HERE/setup.sh" "$HERE/init.sh"; ls /usr/lib /etc/xen/scripts) | sha256sum | cut -c1-16)-$(basename "$deb")-$xenver
if [ $FORCE = 0 ] && [ "$(cat "$LAB/out/stamp" 2>/dev/null || true)" = "$stamp" ] \
   && [ -s "$LAB/out/xen-4.17" ] && [ -s "$LAB/out/vmlinux" ] && [ -s "$LAB/out/dom0-initrd.cpio.gz" ] \
   && [ -s "$LAB/out/vmlinuz" ] && [ -s "$LAB/out/domu-initrd.cpio.gz" ]; then
  echo "xenlab-ready $LAB"
  exit 0
fi
log "building the lab in $LAB/out (stamp $stamp)"
rm -f "$LAB/out/stamp"
T=$(mktemp -d "$LAB/build.XXXXXX"); trap 'rm -rf "$T"' EXIT
dpkg-deb -x "$deb" "$T/k"
KV=$(ls "$T/k/lib/modules" | head -1)
MD=$T/k/lib/modules/$KV
[ -f "$MD/modules.dep" ] || /bin/busybox depmod -b "$T/k" "$KV"     # the .deb ships no modules.dep

# Xen: QEMU's multiboot loader needs the plain ELF, not the .gz
zcat "$XENGZ" > "$LAB/out/xen-4.17.new" && mv "$LAB/out/xen-4.17.new" "$LAB/out/xen-4.17"

# dom0 kernel: the xz payload of the bzImage, decompressed (Xen then skips ~2.5 s of xz under TCG)
VZ=$T/k/boot/vmlinuz-$KV
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$VZ" | head -1 | cut -d: -f1)
[ -n "$off" ] || { log "no xz payload in $VZ"; exit 1; }
tail -c +$((off + 1)) "$VZ" | xz -dc > "$T/vmlinux" 2>/dev/null || true   # trailing bytes make xz complain
file "$T/vmlinux" | grep -q 'ELF 64-bit' || { log "vmlinux extraction failed"; exit 1; }
mv "$T/vmlinux" "$LAB/out/vmlinux"

# ---- initramfs ----
# /newroot is the userland root dom0's jobs run in (chroot): its /usr is the host's /usr over 9p
# (mounted by init.sh), so it is prepared here as links into /usr, this kernel's modules, a small /etc.
R=$T/root
N=$R/newroot
mkdir -p "$R"/{bin,dev,proc,sys,run,tmp,host,lib} "$N"/{usr,etc,proc,sys,dev,run,tmp,root,host,lib,xvbd-bin}
mkdir -p "$N"/var/{lib/xen,lib/xenstored,log/xen/console,tmp}
ln -s ../run "$N/var/run"; ln -s ../run/lock "$N/var/lock"
ln -s usr/bin "$N/bin"; ln -s usr/sbin "$N/sbin"; ln -s usr/lib64 "$N/lib64"
for e in /usr/lib/*; do n=${e##*/}; [ "$n" = modules ] || ln -s "../usr/lib/$n" "$N/lib/$n"; done
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
# kmod is not part of a minimal Debian: busybox's module tools, first on the jobs' PATH
cp /bin/busybox "$N/xvbd-bin/busybox"
for a in modprobe insmod rmmod lsmod depmod; do ln -s busybox "$N/xvbd-bin/$a"; done

MODS="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-blkfront loop
      9p 9pnet 9pnet_virtio virtio_pci"
need=""
for m in $MODS; do
  line=$(grep -E "/${m//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$MD/modules.dep") || { log "kernel $KV has no module $m"; exit 1; }
  need="$need ${line%%:*} ${line#*:}"
done
for p in $(echo $need | tr ' ' '\n' | sort -u); do
  mkdir -p "$N/lib/modules/$KV/$(dirname "$p")"; cp "$MD/$p" "$N/lib/modules/$KV/$p"
done
cp "$MD"/modules.{order,builtin} "$N/lib/modules/$KV/"
[ -f "$MD/modules.builtin.modinfo" ] && cp "$MD/modules.builtin.modinfo" "$N/lib/modules/$KV/"
/bin/busybox depmod -b "$N" "$KV"
ln -s ../newroot/lib/modules "$R/lib/modules"        # init's own modprobe, before /usr is there

# /etc: only what the tools read
S=$N/etc
for f in passwd group nsswitch.conf hosts ld.so.cache ld.so.conf; do [ -e /etc/$f ] && cp -aL /etc/$f "$S/"; done
[ -d /etc/ld.so.conf.d ] && cp -a /etc/ld.so.conf.d "$S/"
[ -d /etc/alternatives ] && cp -a /etc/alternatives "$S/"
mkdir -p "$S/xen"; cp -a /etc/xen/scripts "$S/xen/"; cp /etc/xen/xl.conf "$S/xen/"
echo "xvbd-dom0" > "$S/hostname"

# a PV guest for the domains scenario: Debian's kernel (bzImage) + a busybox initramfs that idles
cp "$T/k/boot/vmlinuz-$KV" "$LAB/out/vmlinuz"
U=$T/domu; mkdir -p "$U"/{bin,proc,sys,dev}
cp /bin/busybox "$U/bin/busybox"; for a in sh mount sleep echo; do ln -s busybox "$U/bin/$a"; done
printf '#!/bin/sh\nmount -t proc proc /proc\necho xvbd-domu up\nwhile :; do sleep 3600; done\n' > "$U/init"; chmod 755 "$U/init"
(cd "$U" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$LAB/out/domu-initrd.cpio.gz")

cp "$HERE/init.sh" "$R/init"; chmod 755 "$R/init"
(cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$LAB/out/dom0-initrd.cpio.gz.new")
mv "$LAB/out/dom0-initrd.cpio.gz.new" "$LAB/out/dom0-initrd.cpio.gz"
echo "$KV" > "$LAB/out/kernel-version"
echo "$stamp" > "$LAB/out/stamp"
log "dom0 kernel $KV, initrd $(du -h "$LAB/out/dom0-initrd.cpio.gz" | cut -f1); cache $(du -sh "$LAB" | cut -f1)"
echo "xenlab-ready $LAB"
