#!/bin/busybox sh
# /init of the default Linux guest (busybox userland).  The kernel command
# line chooses what it does: rv.mode=test runs the end-to-end checks and
# powers off, rv.mode=bench times the in-guest jobs and powers off, anything
# else gives an interactive shell on the console.
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
    # check; Linux asks it because the machine has no ACPI tables yet (under
    # QEMU, ACPI disables PnPBIOS).
    dmesg | grep -iE 'unknown|unsupported|not supported' |
        grep -vE 'MMIO Stale Data: Unknown|intel_pstate: CPU model not supported' |
        grep -v 'PnPBIOS: dev_node_info: function not supported' |
        sed 's/^/RV-DMESG /'
    echo "RV-END"
    poweroff -f
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
    echo "Type 'poweroff -f' to stop the machine (or Ctrl-A X on the terminal)."
    echo
    # A second shell on the VGA console, for the window (SDL or VNC).
    if [ -c /dev/tty1 ]; then
        setsid sh -c 'exec sh -l </dev/tty1 >/dev/tty1 2>&1' &
    fi
    exec setsid cttyhack sh -l
    ;;
esac
