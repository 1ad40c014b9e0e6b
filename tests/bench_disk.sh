#!/bin/sh
# make bench, disk rows: the Linux guest (tests/guest/build-disk-initrd.sh,
# rv.disk=bench) writes 256 MiB to its whole IDE disk with dd conv=fsync,
# drops its page cache and reads them back; the guest's own clock times
# both.  One row per format (raw, qcow2, VMDK) and direction, retrovisor
# beside QEMU TCG (given as $1; empty: no QEMU column).  A fresh empty image
# each run; DISK_RUNS runs each (default 1: a run is tens of seconds).
set -u
RV=./retrovisor
IMG=./retrovisor-img
QEMU=${1:-}
B=build/bench
RUNS=${DISK_RUNS:-1}
mkdir -p "$B"
if ! sh tests/guest/build-disk-initrd.sh >"$B/disk-initrd.log" 2>&1; then
    echo "(disk rows: the disk-test initrd could not be built: see $B/disk-initrd.log)"
    exit 0
fi
APPEND="console=ttyS0 panic=-1 rdinit=/diskinit rv.disk=bench"

run_once() { # who fmt: prints "write_cs read_cs" or nothing
    disk="$B/disk-bench.$2"
    rm -f "$disk"
    $IMG create -f "$2" "$disk" 300M >/dev/null || return
    log="$B/disk-$1-$2.log"
    rm -f "$log"
    if [ "$1" = rv ]; then
        timeout 900 $RV -m 256 -kernel build/linux/vmlinuz -initrd build/linux/initrd-disk.cpio -append "$APPEND" \
            -hda "$disk" -display none -serial "file:$log" -no-reboot >/dev/null 2>&1
    else
        timeout 900 $QEMU -accel tcg -cpu pentium2 -m 256 -display none -nodefaults -serial "file:$log" -no-reboot \
            -kernel build/linux/vmlinuz -initrd build/linux/initrd-disk.cpio -append "$APPEND" \
            -drive "file=$disk,format=$2,if=ide,index=0,media=disk" >/dev/null 2>&1
    fi
    sed -n 's/^RV-DISKBENCH write256_cs=\([0-9]*\) read256_cs=\([0-9]*\).*/\1 \2/p' "$log" | tail -1
    rm -f "$disk"
}

best() { # the smaller of two numbers, either possibly empty
    if [ -z "$1" ]; then echo "$2"; elif [ -z "$2" ]; then echo "$1"; elif [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi
}

ratio() { awk "BEGIN { if ($2 > 0) printf \"%.2fx\", $1 / $2; else print \"-\" }"; }

for fmt in raw qcow2 vmdk; do
    w_rv= r_rv= w_q= r_q=
    k=0
    while [ "$k" -lt "$RUNS" ]; do
        k=$((k + 1))
        set -- $(run_once rv "$fmt")
        w_rv=$(best "$w_rv" "${1:-}") r_rv=$(best "$r_rv" "${2:-}")
        if [ -n "$QEMU" ]; then
            set -- $(run_once q "$fmt")
            w_q=$(best "$w_q" "${1:-}") r_q=$(best "$r_q" "${2:-}")
        fi
        echo "[bench] disk $fmt run $k: retrovisor write/read ${w_rv:-?}/${r_rv:-?} cs, qemu ${w_q:-?}/${r_q:-?} cs" >&2
    done
    for dir in write read; do
        [ "$dir" = write ] && a=$w_rv b=$w_q
        [ "$dir" = read ] && a=$r_rv b=$r_q
        printf '%-44s %14s %14s %10s\n' "Linux: $dir 256 MiB, $fmt disk (cs)" "${a:--}" "${b:--}" \
            "$(if [ -n "$a" ] && [ -n "$b" ]; then ratio "$a" "$b"; else echo -; fi)"
    done
done
