#!/bin/sh
# build-floppy-initramfs.sh OUT.cpio: an initramfs of busybox, Debian's
# floppy.ko and tests/guest/floppy-init.sh as /init, from the Linux guest's
# packages (tests/guest/build-linux.sh must have run; L=build/linux).
set -eu
L=${L:-build/linux}
HERE=$(cd "$(dirname "$0")" && pwd)
fdko=$(ls "$L"/pkgroot/lib/modules/*/kernel/drivers/block/floppy.ko 2>/dev/null | head -1)
if [ -z "$fdko" ]; then
    echo "build-floppy-initramfs: the guest kernel in $L has no floppy.ko" >&2
    exit 1
fi
python3 "$HERE/mkcpio.py" "$1" dir:bin dir:dev dir:proc dir:sys dir:tmp \
    nod:dev/console:c:5:1 nod:dev/null:c:1:3 nod:dev/ttyS0:c:4:64 \
    file:bin/busybox:"$L/pkgroot/bin/busybox":755 slink:bin/sh:busybox \
    file:init:"$HERE/floppy-init.sh":755 file:floppy.ko:"$fdko":644
