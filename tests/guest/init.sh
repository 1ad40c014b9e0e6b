#!/bin/busybox sh
# /init of the default Linux guest (busybox userland).  The kernel command
# line chooses what it does: rv.mode=test runs the end-to-end checks and
# powers off, rv.mode=bench times the in-guest jobs and powers off, anything
# else gives an interactive shell on the console (Ctrl+Alt+Del reboots).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
export PATH=/bin HOME=/ TERM=linux
mode=$(sed -n 's/.*rv\.mode=\([a-z]*\).*/\1/p' /proc/cmdline)
echo "RV-BEGIN $mode"

uptime_cs() { # uptime in centiseconds
    read up _ </proc/uptime
    echo "${up%.*}${up#*.}"
}

# The CD-ROM stack (modules in the initramfs, see build-linux.sh), and /dev/sr0.
# rv.libata=PARAM on the kernel command line is given to libata (e.g. dma=1:
# DMA for disks only, so the CD-ROM runs by PIO).
load_cd_modules() {
    for m in scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs \
             crct10dif_common crct10dif_generic crc-t10dif crc64 crc64_rocksoft_generic crc64-rocksoft t10-pi sd_mod; do
        args=
        [ $m = libata ] && args=$(sed -n 's/.*rv\.libata=\([^ ]*\).*/\1/p' /proc/cmdline)
        # shellcheck disable=SC2086 # no argument, or one
        insmod /lib/modules/$m.ko $args || echo "RV-CD-ERROR insmod $m"
    done
    i=0
    while [ ! -b /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# rv.NAME=VALUE from the kernel command line
arg() { sed -n "s/.*rv\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

# Load the card's driver modules (rv.mods=a,b) and take a DHCP lease on eth0.
net_up() {
    for mod in $(arg mods | tr , ' '); do insmod "/lib/modules/$mod.ko" || echo "RV-INSMOD-FAILED $mod"; done
    ip link set lo up
    if ip link set eth0 up; then echo "RV-ETH0 $(cat /sys/class/net/eth0/address)"; fi
    udhcpc -i eth0 -s /etc/udhcpc.sh -q -n -t 5 -T 2 >/dev/null 2>&1 || echo "RV-DHCP-FAILED"
}

case "$mode" in
snapdisk)
    # tests/e2e/snapshot.sh: a mark written raw near the end of the IDE disk
    # (free FAT space), after the host's snapshot was taken.
    load_cd_modules
    i=0
    while [ ! -b /dev/sda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ -b /dev/sda ] && echo "RV-SNAP-MARK $(arg mark)" | dd of=/dev/sda bs=512 seek=131000 conv=sync,fsync 2>/dev/null; then
        echo "RV-SNAP-WROTE"
    fi
    echo "RV-END"
    poweroff -f
    ;;
snapjob)
    # tests/e2e/snapshot.sh: a job long enough for the host to take a
    # snapshot in the middle of it.
    echo "RV-SNAP-JOB-START"
    echo "RV-SNAP-SHA $(dd if=/dev/zero bs=64k count=$(arg blocks) 2>/dev/null | sha256sum | cut -d' ' -f1)"
    echo "RV-END"
    poweroff -f
    ;;
test)
    echo "RV-UNAME $(uname -m)"
    echo "RV-CPU $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "RV-FPU $(grep -m1 '^fpu[[:space:]]' /proc/cpuinfo | sed 's/.*: //')"
    echo "RV-AWK $(awk 'BEGIN { s = 0; for (i = 1; i <= 1000; i++) s += i * i; print s, 22 / 7 }')"
    echo "RV-SHA-BUSYBOX $(sha256sum /bin/busybox | cut -d' ' -f1)"
    echo "RV-SHA-ZERO $(dd if=/dev/zero bs=64k count=256 2>/dev/null | sha256sum | cut -d' ' -f1)"
    echo "RV-MEM $(sed -n 's/^MemTotal: *//p' /proc/meminfo)"
    # Two lines describe the CPU model's age, not emulated hardware: a real
    # Pentium II (and QEMU's -cpu pentium2) gets them from this kernel too.
    # The third is SeaBIOS's PnP BIOS, which answers only the installation
    # check; Linux asks it when the machine has no ACPI tables (-machine
    # acpi=off, or acpi=off on the command line); with ACPI it is disabled.
    dmesg | grep -iE 'unknown|unsupported|not supported' |
        grep -vE 'MMIO Stale Data: Unknown|intel_pstate: CPU model not supported' |
        grep -v 'PnPBIOS: dev_node_info: function not supported' |
        sed 's/^/RV-DMESG /'
    echo "RV-END"
    poweroff -f
    ;;
cdbench)
    load_cd_modules
    # The time to read big.bin (64 MiB) from the CD, cold: nothing of it
    # is in the page cache after the boot.
    mount -t iso9660 -o ro /dev/sr0 /mnt
    t0=$(uptime_cs)
    dd if=/mnt/big.bin of=/dev/null bs=64k 2>/dev/null
    t1=$(uptime_cs)
    echo "RV-BENCH cdread_cs=$((t1 - t0)) bytes=$(stat -c %s /mnt/big.bin)"
    poweroff -f
    ;;
cdtest)
    # The CD-ROM: boot disc A (big.bin, disc-id A) is read and checked, the
    # guest ejects it, and waits for the host to put in disc B (-cdrom-change).
    load_cd_modules
    echo "RV-CD-MODEL $(cat /sys/block/sr0/device/vendor /sys/block/sr0/device/model 2>/dev/null | tr -s ' \n' ' ')"
    echo "RV-CD-XFER $(cat /sys/class/ata_device/dev2.0/xfer_mode 2>/dev/null)"
    if mount -t iso9660 -o ro /dev/sr0 /mnt; then echo "RV-CD-MOUNT ok"; else echo "RV-CD-MOUNT failed"; fi
    echo "RV-CD-ID $(cat /mnt/disc-id)"
    cdctl info /dev/sr0 | sed 's/^/RV-CD-INFO /'
    t0=$(uptime_cs)
    echo "RV-CD-SHA $(sha256sum /mnt/big.bin | cut -d' ' -f1)"
    t1=$(uptime_cs)
    echo "RV-CD-SHA-CS $((t1 - t0))"
    umount /mnt
    # Without this, the next open would close the tray on disc A again.
    echo 0 >/proc/sys/dev/cdrom/autoclose
    if cdctl eject /dev/sr0; then echo "RV-CD-EJECT ok"; else echo "RV-CD-EJECT failed"; fi
    echo "RV-CD-EJECTED $(cdctl status /dev/sr0)"
    if mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then echo "RV-CD-EMPTY-MOUNT ok"; umount /mnt; else echo "RV-CD-EMPTY-MOUNT failed"; fi
    echo "RV-CD-WAITING"
    i=0
    while [ "$(cdctl status /dev/sr0)" != disc-ok ] && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done
    echo "RV-CD-CHANGED $(cdctl status /dev/sr0)"
    if mount -t iso9660 -o ro /dev/sr0 /mnt; then
        echo "RV-CD-ID2 $(cat /mnt/disc-id)"
        echo "RV-CD-SHA2 $(sha256sum /mnt/small.bin | cut -d' ' -f1)"
        # Keep disc B mounted (the tray locked) past the host's next change
        # (at 150 s): the change must wait until the disc is unmounted.
        while [ "$(cut -d. -f1 /proc/uptime)" -lt 170 ]; do sleep 1; done
        echo "RV-CD-HELD $(cat /mnt/disc-id)"
        umount /mnt
        i=0
        id=
        while [ "$id" != A ] && [ $i -lt 30 ]; do
            sleep 1
            i=$((i + 1))
            mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null && id=$(cat /mnt/disc-id) && umount /mnt
        done
        echo "RV-CD-ID3 $id"
    fi
    dmesg | grep -E 'ata[0-9]|sr0|sr 1:|cdrom|isofs|ISO 9660' | sed 's/^/RV-KLOG /'
    echo "RV-END"
    poweroff -f
    ;;
acpi)
    # What the ACPI machine looks like from inside (tests/e2e/acpi.sh).
    dmesg | grep -E 'ACPI|PM-Timer|clocksource|TSC|tsc' | sed 's/^/RV-DM /'
    cs=/sys/devices/system/clocksource/clocksource0
    echo "RV-CLOCKSOURCE $(cat $cs/current_clocksource)"
    echo "RV-AVAILABLE $(cat $cs/available_clocksource)"
    echo "RV-SCI $(grep -m1 acpi /proc/interrupts)"
    if grep -q 'rv\.pwrbtn' /proc/cmdline; then
        # The host presses the power button (SIGPWR) once it sees READY;
        # the fixed-feature event counter shows the SCI came in.
        insmod /lib/button.ko
        f=/sys/firmware/acpi/interrupts/ff_pwr_btn
        echo "RV-PWRBTN-READY"
        n=0 i=0
        while [ $i -lt 600 ]; do
            read n _ <$f
            [ "$n" -gt 0 ] && break
            sleep 0.1
            i=$((i + 1))
        done
        echo "RV-PWRBTN $n"
    fi
    echo "RV-END"
    # Plain poweroff signals PID 1 (SIGUSR2), as busybox init expects; this
    # init answers as busybox init does, with the kernel's power-off (ACPI S5).
    trap 'poweroff -f' USR2
    poweroff
    sleep 30
    echo "RV-POWEROFF-FAILED"
    ;;
net)
    # The network e2e (tests/e2e/net.sh): load the card's driver, take a
    # DHCP lease from slirp, fetch a file from the host's 127.0.0.1 (the
    # guest's 10.0.2.2), and answer one connection on a forwarded port.
    net_up
    if timeout "$(arg wgettime)" wget -q -O /tmp/blob "http://10.0.2.2:$(arg http)/blob"; then
        echo "RV-WGET-SHA $(sha256sum /tmp/blob | cut -d' ' -f1)"
    else
        echo "RV-WGET-FAILED"
    fi
    rm -f /tmp/blob
    echo "RV-NC-READY"
    echo "RV-FROM-GUEST" | timeout 120 nc -l -p "$(arg ncport)" >/tmp/nc.out
    echo "RV-NC-GOT $(cat /tmp/nc.out)"
    echo "RV-END"
    poweroff -f
    ;;
netbench)
    # make bench: time a wget of the host's file to /dev/null.
    net_up
    t0=$(uptime_cs)
    wget -q -O /dev/null "http://10.0.2.2:$(arg http)/blob" || echo "RV-WGET-FAILED"
    t1=$(uptime_cs)
    echo "RV-NETBENCH wget_cs=$((t1 - t0))"
    poweroff -f
    ;;
bench)
    t0=$(uptime_cs)
    dd if=/dev/zero bs=64k count=256 2>/dev/null | sha256sum >/dev/null
    t1=$(uptime_cs)
    i=0
    while [ $i -lt 300 ]; do /bin/true; i=$((i + 1)); done
    t2=$(uptime_cs)
    awk 'BEGIN { s = 0; for (i = 0; i < 2000000; i++) s += i % 7; print s }' >/dev/null
    t3=$(uptime_cs)
    echo "RV-BENCH sha256_16MiB_cs=$((t1 - t0)) spawn300_cs=$((t2 - t1)) userloop_cs=$((t3 - t2))"
    poweroff -f
    ;;
*)
    echo
    echo "retrovisor demo guest: Debian's i386 kernel with a busybox shell."
    echo "Type 'poweroff' to stop the machine (or Ctrl-A X on the terminal)."
    echo
    # A second shell on the VGA console, for the window (SDL or VNC).
    if [ -c /dev/tty1 ]; then
        setsid sh -c 'exec sh -l </dev/tty1 >/dev/tty1 2>&1' &
    fi
    # Ctrl+Alt+Del, as busybox init's ::ctrlaltdel: action: the kernel sends
    # PID 1 SIGINT instead of restarting at once (ctrl-alt-del = 0), and
    # this init says so on the serial console and reboots, as busybox's
    # default inittab does.  So this init stays PID 1 and waits.
    echo 0 >/proc/sys/kernel/ctrl-alt-del
    trap 'echo "RV-CTRLALTDEL rebooting"; reboot -f' INT
    # busybox's poweroff, halt and reboot signal PID 1 (USR2, USR1, TERM),
    # as they would its init.
    trap 'poweroff -f' USR2
    trap 'halt -f' USR1
    trap 'reboot -f' TERM
    setsid cttyhack sh -l </dev/console >/dev/console 2>&1 &
    while :; do
        wait
        sleep 1
    done
    ;;
esac
