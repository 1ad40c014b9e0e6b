#!/bin/busybox sh
# /diskinit of the disk-test guest (tests/guest/build-disk-initrd.sh): the
# default guest's initramfs plus the kernel's IDE and FAT modules, chosen
# with rdinit=/diskinit.  rv.disk=write mounts the FAT disk /dev/sda, writes
# a 32 MiB file, syncs and prints its sha256; rv.disk=bench times a
# sequential write and read of 256 MiB on the whole of /dev/sda;
# rv.disk=loop writes 1 MiB files one after another, printing each one's
# sha256 after a sync has made it durable (the crash soak kills the VMM).
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $(cat /mod/order); do insmod "/mod/$m.ko" || echo "RV-INSMOD-FAILED $m"; done
i=0
while [ ! -b /dev/sda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
uptime_cs() { read up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
case "$(sed -n 's/.*rv\.disk=\([a-z]*\).*/\1/p' /proc/cmdline)" in
write)
    if mount -t vfat /dev/sda /mnt && dd if=/dev/urandom of=/mnt/data.bin bs=1M count=32 2>/dev/null && sync; then
        echo "RV-DISK-SHA $(sha256sum /mnt/data.bin | cut -d' ' -f1)"
        umount /mnt && echo RV-DISK-DONE
    fi
    ;;
loop)
    mount -t vfat /dev/sda /mnt || poweroff -f
    i=0
    while dd if=/dev/urandom of=/mnt/f$i.bin bs=64k count=16 2>/dev/null && sync; do
        echo "RV-SYNCED f$i.bin $(sha256sum /mnt/f$i.bin | cut -d' ' -f1)"
        i=$((i + 1))
    done
    ;;
bench)
    t0=$(uptime_cs)
    dd if=/dev/zero of=/dev/sda bs=1M count=256 conv=fsync 2>/dev/null
    t1=$(uptime_cs)
    echo 3 >/proc/sys/vm/drop_caches
    t2=$(uptime_cs)
    dd if=/dev/sda of=/dev/null bs=1M count=256 2>/dev/null
    t3=$(uptime_cs)
    echo "RV-DISKBENCH write256_cs=$((t1 - t0)) read256_cs=$((t3 - t2))"
    ;;
esac
poweroff -f
