#!/bin/busybox sh
# /init of the floppy check (tests/e2e/fdc.sh boots it with -kernel): loads
# Debian's floppy.ko, reads the whole of /dev/fd0, writes 32 KiB of a
# pattern the host computes the same way at sector 1000, reads it back
# from the disk (caches dropped), and powers off.  With rv.fd=change it
# first waits for the host to change the disk and reads the new one.  Every line it prints for
# the host starts with RV-FD.  With rv.fd=bench on the kernel command line
# it only times a cold read of the whole disk (make bench).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
export PATH=/bin
echo "RV-FD-BEGIN"
insmod /floppy.ko || echo "RV-FD-ERROR insmod floppy"
i=0
while [ ! -b /dev/fd0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
uptime_cs() {
    read up _ </proc/uptime
    echo "${up%.*}${up#*.}"
}
if grep -q 'rv\.fd=bench' /proc/cmdline; then
    t0=$(uptime_cs)
    bytes=$(dd if=/dev/fd0 bs=18k 2>/dev/null | wc -c)
    t1=$(uptime_cs)
    echo "RV-FD-BENCH read_cs=$((t1 - t0)) bytes=$bytes"
    poweroff -f
fi
echo "RV-FD-READ-SHA $(dd if=/dev/fd0 bs=18k 2>/dev/null | sha256sum | cut -d' ' -f1)"
yes retrovisor-floppy | head -c 32768 >/tmp/pattern
if dd if=/tmp/pattern of=/dev/fd0 bs=512 seek=1000 conv=fsync 2>/dev/null; then
    echo "RV-FD-WRITE ok"
else
    echo "RV-FD-WRITE failed"
fi
sync
echo 3 >/proc/sys/vm/drop_caches
echo "RV-FD-READBACK-SHA $(dd if=/dev/fd0 bs=512 skip=1000 count=64 2>/dev/null | sha256sum | cut -d' ' -f1)"
if grep -q 'rv\.fd=change' /proc/cmdline; then
    # The host puts another disk in the drive (-fda-change) while this waits:
    # the driver sees the change line when /dev/fd0 is opened again.
    first=$(dd if=/dev/fd0 bs=512 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
    echo "RV-FD-WAITING"
    i=0
    while [ $i -lt 150 ]; do
        # Without a disk the read fails: wait on until one is in again.
        if dd if=/dev/fd0 bs=512 count=1 of=/tmp/sector0 2>/dev/null && [ "$(wc -c </tmp/sector0)" -eq 512 ]; then
            [ "$(sha256sum </tmp/sector0 | cut -d' ' -f1)" != "$first" ] && break
        else
            echo "RV-FD-NO-DISK"
        fi
        sleep 1
        i=$((i + 1))
    done
    echo "RV-FD-CHANGED-SHA $(dd if=/dev/fd0 bs=18k 2>/dev/null | sha256sum | cut -d' ' -f1)"
fi
dmesg | grep -i 'floppy\|fd0\|fdc' | sed 's/^/RV-FD-KLOG /'
echo "RV-FD-END"
poweroff -f
