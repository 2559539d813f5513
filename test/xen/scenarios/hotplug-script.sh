#!/bin/bash
# Xen's own /etc/xen/scripts/block (what libxl runs) against the real blkback: add sets up a loop device and writes physical-device, removing the backend frees it
# xen-suite: opt-in (about a minute under TCG: the script forks a lot); run it with --only hotplug-script
set -euo pipefail
D=51792; B=/local/domain/0/backend/vbd/1/$D; F=/local/domain/1/device/vbd/$D
truncate -s 16M "$XVBD_TMP/hp.img"
fail() { echo "FAIL: $*"; xenstore-ls -f $B || true; losetup -a; exit 1; }
xenstore-write $F/state 1 $F/backend $B $F/backend-id 0 $F/virtual-device $D $F/device-type disk
xenstore-write $B/frontend $F $B/frontend-id 1 $B/online 1 $B/state 1 $B/params "$XVBD_TMP/hp.img" $B/mode w $B/type phy $B/device-type disk
for i in $(seq 50); do [ "$(xenstore-read $B/state)" = 2 ] && break; sleep 0.2; done
[ "$(xenstore-read $B/state)" = 2 ] || fail "backend not in InitWait"
t0=$EPOCHREALTIME
XENBUS_PATH=backend/vbd/1/$D /etc/xen/scripts/block add || fail "block add exit $?"
echo "# block add: $(echo "$EPOCHREALTIME - $t0" | bc) s"
pd=$(xenstore-read $B/physical-device); node=$(xenstore-read $B/node); hs=$(xenstore-read $B/hotplug-status)
echo "# physical-device=$pd node=$node hotplug-status=$hs"
[ "$hs" = connected ] || fail "hotplug-status $hs"
[[ "$node" =~ ^/dev/loop[0-9]+$ ]] || fail "node $node"
[ "$pd" = "$(stat -L -c %t:%T "$node")" ] || fail "physical-device $pd is not $node"
[ "$(cat /sys/block/${node#/dev/}/loop/backing_file)" = "$XVBD_TMP/hp.img" ] || fail "loop backing file"
echo "# autoclear set by the block script: $(cat /sys/block/${node#/dev/}/loop/autoclear)"
for i in $(seq 50); do [ -e /sys/bus/xen-backend/devices/vbd-1-$D/physical_device ] && break; sleep 0.2; done
[ "$(cat /sys/bus/xen-backend/devices/vbd-1-$D/physical_device)" = "$pd" ] || fail "blkback does not hold $pd"
xenstore-write $F/state 6
for i in $(seq 50); do [ "$(xenstore-read $B/state)" = 6 ] && break; sleep 0.2; done
XENBUS_PATH=backend/vbd/1/$D /etc/xen/scripts/block remove || fail "block remove exit $?"
echo "# after block remove (blkback still holds it): $(losetup -a | grep -c hp.img) loop device(s) on hp.img"
xenstore-rm $B
for i in $(seq 50); do [ -e /sys/block/${node#/dev/}/loop/backing_file ] || break; sleep 0.2; done
[ ! -e /sys/block/${node#/dev/}/loop/backing_file ] || fail "$node still bound after remove"
xenstore-rm $F
echo "# $node freed after backend removal + block remove"
