#!/bin/bash
# A lab job (run by test/linux/xenlab/run.sh inside the xenlab dom0): src/linux's LoopRegistry against
# the real xen-blkback. Needs the host /usr (HOSTUSR=1) and this checkout shared read-only at /xvbd.
set -u
mkdir -p /nr && mount -t tmpfs tmpfs /nr && mkdir -p /nr/{usr,proc,sys,dev,run,tmp,etc,host,root,xvbd}
mount -o bind /hostusr /nr/usr
for d in bin sbin lib lib64; do ln -s usr/$d /nr/$d; done
mount -o rbind /proc /nr/proc; mount -o rbind /sys /nr/sys; mount -o rbind /dev /nr/dev
mount -o bind /run /nr/run; mount -o bind /host /nr/host; mount -o bind /xvbd /nr/xvbd
cp /etc/passwd /etc/group /nr/etc/; cp -a /etc/xen /nr/etc/
echo "dom0 kernel: $(uname -r)"
chroot /nr /usr/bin/node --input-type=module -e "$(cat /xvbd/test/linux/xenlab/blkback-registry.mjs)"
