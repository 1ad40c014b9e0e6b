#!/bin/sh
# Crash safety (make check-long only): the Linux guest writes 1 MiB files to a
# FAT disk and syncs after each; the VMM is killed with SIGKILL at a random
# moment.  Then retrovisor-img check (and qemu-img check for qcow2) must pass
# (leaked clusters allowed) and every file the guest saw synced must be there
# with its sha256.  make check-long: 50 kills, rotating qcow2, VMDK and VHD;
# make check: 2 kills on qcow2 (IMG_CRASH_KILLS and IMG_CRASH_FORMATS override).
. tests/e2e/lib.sh
if [ -n "${RETROVISOR_LONG:-}" ]; then
    kills=${IMG_CRASH_KILLS:-50} formats=${IMG_CRASH_FORMATS:-"vmdk vpc qcow2"}
else
    kills=${IMG_CRASH_KILLS:-2} formats=${IMG_CRASH_FORMATS:-qcow2}
fi
IMG=${IMG:-./retrovisor-img}
T="$E2E_TMP/img-crash"
rm -rf "$T"
mkdir -p "$T"
if ! sh tests/guest/build-linux.sh >"$T/build.log" 2>&1 || ! sh tests/guest/build-disk-initrd.sh >>"$T/build.log" 2>&1; then
    fail "img crash: building the guest failed: $(tail -2 "$T/build.log")"
    exit 0
fi
# 96 MiB: room for more files than the guest writes before the kill.
mkfs.vfat -C -n DATA "$T/fat.raw" 98304 >/dev/null
nfmt=$(echo $formats | wc -w)
ok=0
writing=0
k=0
while [ $k -lt "$kills" ]; do
    k=$((k + 1))
    # shellcheck disable=SC2086 # one word per format
    fmt=$(echo $formats | cut -d' ' -f$(((k - 1) % nfmt + 1)))
    disk="$T/disk.$fmt"
    rm -f "$disk" "$T"/*.bin
    $IMG convert -f raw -O "$fmt" "$T/fat.raw" "$disk"
    log="$T/serial.log"
    rm -f "$log"
    $RV -m 256 -kernel build/linux/vmlinuz -initrd build/linux/initrd-disk.cpio \
        -append "console=ttyS0 panic=-1 rdinit=/diskinit rv.disk=loop" -hda "$disk" -display none \
        -serial "file:$log" -no-reboot >/dev/null 2>&1 &
    pid=$!
    # Until the guest has synced a random number of files (1-60; the disk
    # holds 95), then a random 0-1 s more: a random moment of the writing
    # loop however fast the host runs the guest.
    set -- $(awk -v s="$k$$" 'BEGIN { srand(s); printf "%d %.2f", 1 + int(rand() * 60), rand() }')
    w=0
    while [ $w -lt 1800 ] && [ "$(cat "$log" 2>/dev/null | grep -c '^RV-SYNCED')" -lt "$1" ] && kill -0 $pid 2>/dev/null; do
        sleep 0.1
        w=$((w + 1))
    done
    sleep "$2"
    # Still running: the kill lands while the guest writes (else it filled the disk and powered off).
    kill -0 $pid 2>/dev/null && writing=$((writing + 1))
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    why=""
    $IMG check "$disk" >"$T/check" 2>&1
    rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || why="retrovisor-img check exit $rc: $(head -1 "$T/check")"
    if [ "$fmt" = qcow2 ]; then
        qemu-img check -f qcow2 "$disk" >"$T/qcheck" 2>&1
        rc=$?
        [ $rc -eq 0 ] || [ $rc -eq 3 ] || why="$why qemu-img check exit $rc: $(head -1 "$T/qcheck")"
    fi
    qemu-img convert -f "$fmt" -O raw "$disk" "$T/back.raw"
    # The guest prints a file's line after its sync: the kill may cut the
    # last line short, and then the digest printed is a prefix of the file's.
    n=0
    while read -r _ name want; do
        [ -n "$name" ] || continue
        n=$((n + 1))
        mcopy -o -i "$T/back.raw" "::$name" "$T/$name" 2>/dev/null
        have=$([ -f "$T/$name" ] && sha256sum "$T/$name" | cut -d' ' -f1)
        case "$have" in
        "$want"*) [ -n "$have" ] || why="$why $name lost" ;;
        *) why="$why $name lost" ;;
        esac
    done <<LIST
$(tr -d '\r' <"$log" | grep -E '^RV-SYNCED f[0-9]+\.bin( [0-9a-f]*)?$')
LIST
    if [ -z "$why" ] && [ $n -gt 0 ]; then
        ok=$((ok + 1))
        echo "img crash: kill $k ($fmt) after $n synced files: clean" >>"$T/progress"
    else
        fail "img crash: kill $k ($fmt, $n files synced): ${why:-the guest never synced a file}"
    fi
done
[ $ok -eq "$kills" ] && pass "img crash: $kills SIGKILLs ($formats; $writing of them while the guest wrote) of a guest writing and syncing: every image checks clean and keeps every synced file"
