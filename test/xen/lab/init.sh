#!/bin/sh
# /init of the xvbd dom0 initramfs (busybox sh). Built into the initramfs by setup.sh.
#  1. mounts proc/sys/dev, loads the Xen and 9p modules, mounts xenfs at /proc/xen
#  2. mounts the 9p shares QEMU offers: host0 -> /host (read-write, cache=none: the run dir with
#     run.conf, job.sh and out/), hostusr -> the host's /usr (read-only, cache=loose)
#  3. completes the userland root /newroot (setup.sh made it: bin, sbin, lib64 link into /usr, /lib holds
#     links into /usr/lib plus this kernel's modules, a small /etc): the host's /usr over 9p, /proc /sys
#     /dev bound in, tmpfs /run and /tmp; the extra read-only shares named in /host/run.conf
#     (MOUNTS="tag:/abs/path ...") are mounted there with cache=loose (the repo, node's prefix if not in /usr)
#  4. starts the real xenstored, xen-init-dom0 and xenconsoled inside /newroot
#  5. runs `bash /host/job.sh` inside /newroot (cwd /tmp); output -> console and /host/out/job.log,
#     exit code -> /host/out/job.rc; then reboots (QEMU runs with -no-reboot, so it exits).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ts() { echo "[dom0 $(cut -d' ' -f1 /proc/uptime)] $*"; }
ts "init: dom0 kernel $(uname -r)"
KV=$(uname -r)
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback loop virtio_pci 9pnet_virtio 9p; do
  modprobe $m || ts "modprobe $m FAILED"
done
mount -t xenfs xenfs /proc/xen || ts "mount xenfs FAILED"
ts "modules loaded"
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd; ln -sf fd/0 /dev/stdin; ln -sf fd/1 /dev/stdout; ln -sf fd/2 /dev/stderr

fail() { ts "FATAL: $*"; echo "=====XVBD-JOB-END rc=none====="; reboot -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none host0 /host || fail "no 9p share host0"
MOUNTS=""
[ -f /host/run.conf ] && . /host/run.conf
NR=/newroot        # prepared by setup.sh: links into /usr, modules, /etc, /xvbd-bin
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose hostusr $NR/usr || fail "no 9p share hostusr"
mount -o rbind /proc $NR/proc; mount -o rbind /sys $NR/sys; mount -o rbind /dev $NR/dev
mount -t tmpfs tmpfs $NR/run; mount -t tmpfs tmpfs $NR/tmp; mount -o bind /host $NR/host
mkdir -p $NR/run/xen $NR/run/xenstored $NR/run/lock
for tp in $MOUNTS; do
  tag=${tp%%:*}; p=${tp#*:}
  mkdir -p $NR$p && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose $tag $NR$p \
    || fail "cannot mount 9p share $tag at $p"
done
XB=$(ls -d $NR/usr/lib/xen-4.*/bin | head -1); XB=${XB#$NR}
ts "userland: host /usr; Xen tools $XB; shares: $MOUNTS"

in_root() { chroot $NR /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/xvbd-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:$XB "$@"; }
in_root $XB/xenstored --pid-file /run/xen/xenstored.pid
i=0; while [ ! -S $NR/run/xenstored/socket ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -S $NR/run/xenstored/socket ] || fail "xenstored did not start"
in_root $XB/xen-init-dom0 >/dev/null 2>&1 || ts "xen-init-dom0 FAILED"
in_root $XB/xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
ts "xenstored (pid $(cat $NR/run/xen/xenstored.pid)), xen-init-dom0, xenconsoled started"

mkdir -p /host/out; rm -f /host/out/job.rc
echo "=====XVBD-JOB-BEGIN====="
( in_root /bin/bash -c 'cd /tmp && exec /bin/bash /host/job.sh' 2>&1; echo $? > /host/out/job.rc ) | tee /host/out/job.log
rc=$(cat /host/out/job.rc 2>/dev/null)
echo "=====XVBD-JOB-END rc=${rc:-none}====="
if grep -q xvbd.shell /proc/cmdline; then exec setsid cttyhack sh; fi
# no sync/umount: /host is cache=none (already on the host), and a job may leave a device wedged
# (e.g. blkback holding a loop device forever) on which sync would hang
reboot -f
