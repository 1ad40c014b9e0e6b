#!/bin/sh
# Snapshots of the whole machine (issue 21), without the monitor console:
#   1. fidelity under -icount (and -rtc base=, so that the RTC does not
#      start from the host's clock): a run snapshotted at instruction N, stopped,
#      and resumed from the snapshot ends in the same state, field by field
#      (retrovisor-img statediff), with the same serial and debug-console
#      output byte for byte, as a run that was never interrupted: under
#      the interpreter (SeaBIOS and the start of Linux, to an instruction
#      count) and under the translator (the Linux guest's test job, to its
#      power-off);
#   2. disks: savevm freezes a writable image; what the guest writes after
#      the snapshot lands in the layer, the image keeps its sha256, and
#      after loadvm the disk reads as it did at the snapshot;
#   3. bad snapshots (corrupt, truncated, another -m, a damaged index) are
#      refused with one line, status 2;
#   4. the Linux guest in the middle of a sha256 job: savevm through the
#      monitor console, quit, start again with -loadvm: the job finishes
#      with the host's digest.
. tests/e2e/lib.sh

if ! sh tests/guest/build-linux.sh >"$E2E_TMP/snapshot-build.log" 2>&1; then
    fail "snapshot: building the guest images failed: $(tail -3 "$E2E_TMP/snapshot-build.log")"
    exit 1
fi
L=build/linux
T="$E2E_TMP/snapshot"
rm -rf "$T"
mkdir -p "$T"
IMG=${IMG:-./retrovisor-img}

# icount_of DIR NAME: the instruction count the index gives snapshot NAME.
icount_of() { awk -v n="$2" '$1 == "snapshot" && $3 == n { print $6 }' "$1/index"; }
file_of() { awk -v n="$2" '$1 == "snapshot" && $3 == n { print $2 ".rvs" }' "$1/index"; }

# same_state NAME A B: the two state files agree field by field.
same_state() {
    if $IMG statediff "$2" "$3" >"$T/$1.diff" 2>&1; then
        pass "snapshot $1: the resumed run ends in the uninterrupted run's state, field by field"
    else
        fail "snapshot $1: states differ: $(head -5 "$T/$1.diff" | tr '\n' ' ')"
    fi
}
# same_output NAME WHOLE PART1 PART2: PART1 then PART2 is WHOLE, byte for byte.
same_output() {
    cat "$3" "$4" >"$T/$1.joined"
    if [ -s "$2" ] && cmp -s "$2" "$T/$1.joined"; then
        pass "snapshot $1: output before the snapshot plus after the resume is the uninterrupted output ($(wc -c <"$2") bytes)"
    else
        fail "snapshot $1: output differs ($(wc -c <"$2") vs $(wc -c <"$T/$1.joined") bytes): $(cmp "$2" "$T/$1.joined" 2>&1 | head -1)"
    fi
}

# fidelity NAME N M ARGS...: uninterrupted to M vs. stopped at N and resumed to M
# (M = end: the guest's own end).
fidelity() {
    name=$1 n=$2 m=$3
    shift 3
    d="$T/$name"
    mkdir -p "$d"
    if [ "$m" = end ]; then stop_whole= stop_rest=; else stop_whole="-max-insns $m" stop_rest="-max-insns $m"; fi
    # shellcheck disable=SC2086 # the stop options are words or nothing
    timeout 900 $RV "$@" -snapshot-dir "$d/a" -savevm-at "$m:final" $stop_whole \
        -serial "file:$d/whole.serial" -debugcon "file:$d/whole.debugcon" >"$d/whole.out" 2>&1
    rc_whole=$?
    timeout 900 $RV "$@" -snapshot-dir "$d/b" -savevm-at "$n:mid" -max-insns "$n" \
        -serial "file:$d/first.serial" -debugcon "file:$d/first.debugcon" >"$d/first.out" 2>&1
    # shellcheck disable=SC2086
    timeout 900 $RV "$@" -snapshot-dir "$d/b" -loadvm mid -savevm-at "$m:final" $stop_rest \
        -serial "file:$d/rest.serial" -debugcon "file:$d/rest.debugcon" >"$d/rest.out" 2>&1
    rc_rest=$?
    mid=$(icount_of "$d/b" mid)
    if [ "$rc_whole" -ne 0 ] || [ "$rc_rest" -ne 0 ] || [ -z "$mid" ]; then
        fail "snapshot $name: runs failed (status $rc_whole, $rc_rest; mid at '$mid'): $(tail -2 "$d/rest.out" | tr '\n' ' ')"
        return
    fi
    # The interpreter stops at the instruction asked for; the translator
    # at the end of the block it was in.
    if [ "$exact" = yes ] && [ "$mid" != "$n" ]; then
        fail "snapshot $name: the snapshot was asked for at instruction $n, taken at $mid"
    fi
    pass "snapshot $name: snapshot asked for at instruction $n, taken at $mid, resumed from it"
    same_state "$name" "$d/a/$(file_of "$d/a" final)" "$d/b/$(file_of "$d/b" final)"
    # The serial console only has something to compare once the kernel speaks.
    [ -s "$d/whole.serial" ] && same_output "$name serial" "$d/whole.serial" "$d/first.serial" "$d/rest.serial"
    same_output "$name debugcon" "$d/whole.debugcon" "$d/first.debugcon" "$d/rest.debugcon"
}

# 1a. The interpreter: SeaBIOS, the option ROM and the kernel's start.
exact=yes
fidelity interp 30000000 60000000 -accel interp -icount 0 -rtc base=2006-06-17T16:01:21 -m 64 -display none -net none -no-reboot \
    -kernel "$L/vmlinuz" -initrd "$L/initramfs.cpio" -append "console=ttyS0 panic=-1 rv.mode=test"

# 1b. The translator: the Linux guest's whole test job, to its power-off.
#     The snapshot is taken 90% of the way through, where the job's sha256
#     sums are running.
d="$T/bt-probe"
mkdir -p "$d"
BT_ARGS="-icount 0 -rtc base=2006-06-17T16:01:21 -m 128 -display none -net none -no-reboot -kernel $L/vmlinuz -initrd $L/initramfs.cpio"
# shellcheck disable=SC2086
timeout 900 $RV $BT_ARGS -append "console=ttyS0 panic=-1 rv.mode=test" -snapshot-dir "$d" \
    -savevm-at end:probe -serial "file:$d/serial" >"$d/out" 2>&1
total=$(icount_of "$d" probe)
if [ -z "$total" ] || ! grep -q '^RV-END' "$d/serial"; then
    fail "snapshot bt: the Linux test job did not run to its end under -icount: $(tail -2 "$d/out" | tr '\n' ' ')"
else
    exact=no
    # shellcheck disable=SC2086
    fidelity bt $((total * 9 / 10)) end $BT_ARGS -append "console=ttyS0 panic=-1 rv.mode=test"
    expect_line "$T/bt/rest.serial" '^RV-SHA-ZERO' "snapshot bt: the resumed guest finishes its sha256 job"
fi

# 2. Disks.
d="$T/disk"
mkdir -p "$d"
cp "$L/disk-test.img" "$d/disk.img"
base_sum=$(sha256sum <"$d/disk.img")
DISK_ARGS="-m 128 -display none -net none -no-reboot -kernel $L/vmlinuz -initrd $L/initramfs.cpio"
# The snapshot is taken early in the boot; the guest then writes its mark.
# shellcheck disable=SC2086
timeout 600 $RV $DISK_ARGS -append "console=ttyS0 panic=-1 rv.mode=snapdisk rv.mark=after-snapshot" \
    -hda "$d/disk.img" -savevm-at 20000000:before -serial "file:$d/serial1" >"$d/out1" 2>&1
expect_line "$d/serial1" '^RV-SNAP-WROTE' "snapshot disk: the guest wrote its mark after the snapshot"
if [ "$(sha256sum <"$d/disk.img")" = "$base_sum" ]; then
    pass "snapshot disk: the image frozen at savevm keeps its sha256"
else
    fail "snapshot disk: the frozen image changed"
fi
current=$(awk -F'\t' '/^current 0 / { sub(/^current 0 /, "", $1); print $1 }' "$d/disk.img.snapshots/index")
# mark_in FILE: the mark sector of the disk image chain FILE.
mark_in() {
    qemu-img convert -O raw "$1" "$d/flat.raw" 2>/dev/null &&
        dd if="$d/flat.raw" bs=512 skip=131000 count=1 2>/dev/null | tr -d '\0'
}
if [ -n "$current" ] && mark_in "$current" | grep -q 'RV-SNAP-MARK after-snapshot'; then
    pass "snapshot disk: the guest's write went to the layer ($(basename "$current"))"
else
    fail "snapshot disk: the mark is not in the current layer '$current'"
fi
# Back to the snapshot: the disk reads as at savevm (the mark is gone).
# shellcheck disable=SC2086
timeout 600 $RV $DISK_ARGS -append "console=ttyS0 panic=-1 rv.mode=snapdisk rv.mark=x" \
    -hda "$d/disk.img" -loadvm before -max-insns 20000001 -serial "file:$d/serial2" >"$d/out2" 2>&1
current=$(awk -F'\t' '/^current 0 / { sub(/^current 0 /, "", $1); print $1 }' "$d/disk.img.snapshots/index")
if [ -n "$current" ] && qemu-img convert -O raw "$current" "$d/flat.raw" 2>/dev/null &&
        [ "$(sha256sum <"$d/flat.raw")" = "$base_sum" ]; then
    pass "snapshot disk: after loadvm the disk reads as at the snapshot (the mark is gone)"
else
    fail "snapshot disk: after loadvm the disk is not the snapshot's ($(tail -1 "$d/out2"))"
fi
if [ "$(sha256sum <"$d/disk.img")" = "$base_sum" ]; then
    pass "snapshot disk: the base image is untouched after loadvm"
else
    fail "snapshot disk: the base image changed"
fi
layers=$(ls "$d/disk.img.snapshots" | grep -c 'qcow2$')
if [ "$layers" -eq 1 ]; then
    pass "snapshot disk: the abandoned layer was deleted (one layer left)"
else
    fail "snapshot disk: $layers layer files left: $(ls "$d/disk.img.snapshots" | tr '\n' ' ')"
fi
if qemu-img check "$current" >/dev/null 2>&1 && $IMG check "$current" >/dev/null 2>&1; then
    pass "snapshot disk: qemu-img and retrovisor-img check accept the layer"
else
    fail "snapshot disk: the layer does not pass check"
fi

# 3. Bad snapshots: one line, status 2, and nothing runs.
S="$T/interp/b"
good=$(file_of "$S" mid)
MB_ARGS="-accel interp -icount 0 -m 64 -display none -net none -no-reboot -kernel $L/vmlinuz -initrd $L/initramfs.cpio"
refused() { # refused NAME PATTERN ARGS...
    what=$1 pattern=$2
    shift 2
    # shellcheck disable=SC2086
    $RV $MB_ARGS -max-insns 1000 "$@" >"$T/bad.out" 2>"$T/bad.err"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] && grep -q -- "$pattern" "$T/bad.err"; then
        pass "snapshot bad input: $what is refused with one line ($(cat "$T/bad.err"))"
    else
        fail "snapshot bad input: $what: status $rc, stderr: $(head -3 "$T/bad.err" | tr '\n' '|')"
    fi
}
cp "$S/$good" "$T/good.rvs"
size=$(wc -c <"$S/$good")
# A flipped byte in the middle (the RAM image).
python3 -c "
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(b)" "$S/$good"
refused "a corrupt file" "checksum" -snapshot-dir "$S" -loadvm mid
head -c $((size / 3)) "$T/good.rvs" >"$S/$good"
refused "a truncated file" "$good" -snapshot-dir "$S" -loadvm mid
cp "$T/good.rvs" "$S/$good"
refused "another machine's RAM size" "-m 64" -m 32 -snapshot-dir "$S" -loadvm mid
python3 -c "
import sys
b = bytearray(open('/usr/share/seabios/bios.bin', 'rb').read())
b[100] ^= 1
open(sys.argv[1], 'wb').write(b)" "$T/bios-other.bin"
refused "another firmware" "firmware" -bios "$T/bios-other.bin" -snapshot-dir "$S" -loadvm mid
cp "$S/index" "$T/index.good"
echo "snapshot one" >>"$S/index"
refused "a damaged index" "index: line" -snapshot-dir "$S" -loadvm mid
cp "$T/index.good" "$S/index"
refused "an unknown snapshot" "no such snapshot" -snapshot-dir "$S" -loadvm nosuch

# 4. Mid-job, in real time, through the monitor console.
d="$T/midjob"
mkdir -p "$d"
blocks=8192     # 512 MiB of zeros through sha256sum: several seconds, even on a quiet host
expect=$(head -c $((blocks * 65536)) /dev/zero | sha256sum | cut -d' ' -f1)
JOB_ARGS="-m 256 -display none -net none -no-reboot -kernel $L/vmlinuz -initrd $L/initramfs.cpio -snapshot-dir $d/snaps"
# shellcheck disable=SC2086
$RV $JOB_ARGS -append "console=ttyS0 panic=-1 rv.mode=snapjob rv.blocks=$blocks" -serial "file:$d/serial1" \
    -monitor "unix:$d/mon.sock,server,nowait" >"$d/out1" 2>&1 &
pid=$!
i=0
while [ $i -lt 3000 ] && kill -0 $pid 2>/dev/null && ! grep -q '^RV-SNAP-JOB-START' "$d/serial1" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
python3 tests/hmp_time.py "$d/mon.sock" '(retrovisor)' "savevm midjob" "info snapshots" "quit" >"$d/hmp1" 2>&1
i=0
while [ $i -lt 300 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill $pid 2>/dev/null
wait $pid
rc=$?
if [ $rc -eq 0 ] && grep -q '^RV-SNAP-JOB-START' "$d/serial1" && ! grep -q '^RV-SNAP-SHA' "$d/serial1" &&
        grep -q 'midjob' "$d/hmp1"; then
    pass "snapshot midjob: savevm while the guest's sha256 job ran, then quit (savevm took $(head -1 "$d/hmp1" | cut -d' ' -f1) s)"
else
    fail "snapshot midjob: no snapshot in the middle of the job (status $rc): $(tr '\n' ' ' <"$d/hmp1" | head -c 300)"
fi
# shellcheck disable=SC2086
timeout 600 $RV $JOB_ARGS -append "console=ttyS0 panic=-1 rv.mode=snapjob rv.blocks=$blocks" \
    -serial "file:$d/serial2" -loadvm midjob >"$d/out2" 2>&1
expect_line "$d/serial2" "^RV-SNAP-SHA $expect" "snapshot midjob: resumed with -loadvm, the job ends with the host's digest"
if grep -q '^RV-SNAP-JOB-START' "$d/serial2"; then
    fail "snapshot midjob: the resumed guest started the job again instead of finishing it"
else
    pass "snapshot midjob: the resumed guest did not start over (no second job start)"
fi
