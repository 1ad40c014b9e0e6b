#!/bin/sh
# The hostile-guest fuzzer (issue 23): tests/guest/hostile.asm, a ROM driven
# by a seed, performs random port I/O, stores and loads in the VGA window,
# the BARs and the APIC areas, PCI configuration accesses with BARs moved to
# random addresses, IDE commands and bus-master DMA with random descriptors,
# VGA/VBE register writes, ISA DMA and floppy controller programming, and
# the other devices: both network cards' registers, rings and remote DMA,
# ATAPI packets and DMA (a CD in the secondary master), fw_cfg and its DMA,
# the ACPI PM block, pc-testdev, every ISA DMA channel, the APICs.
# Under both engines every run must reach its exit (status 33: all
# operations done, the monitor alive) within its instruction budget, with a
# disk and a floppy attached (-snapshot: the images stay as they were).
# The other ends are told apart: 37 is a CPU exception in the ROM; under
# -no-reboot a reset (the ROM never asks for one) ends the run with 0 and
# the triple-fault line, and the budget's end says so on stderr.
# make check: 10^5 operations per engine; make check-long: 10^7 across 100
# seeds per engine.
. tests/e2e/lib.sh

OPS=100000
seeds="1"
[ -n "${RETROVISOR_LONG:-}" ] && seeds=$(seq 1 100)
disk="$E2E_TMP/hostile-disk.img"
head -c 1048576 /dev/urandom >"$disk"
sum_before=$(sha256sum <"$disk")
floppy="$E2E_TMP/hostile-floppy.img"
head -c 1474560 /dev/urandom >"$floppy"
floppy_before=$(sha256sum <"$floppy")
cd_image="$E2E_TMP/hostile-cd.iso"
head -c 1048576 /dev/urandom >"$cd_image"
# The network cards (00:03.0 PCnet, 00:04.0 NE2000) on restricted user
# networking: slirp answers the guest's ARP requests, nothing leaves the host.
devices="-cdrom $cd_image -device pc-testdev -netdev user,id=n0,restrict=on -device pcnet,netdev=n0
 -netdev user,id=n1,restrict=on -device ne2k_pci,netdev=n1"

for seed in $seeds; do
    rom="$E2E_TMP/hostile-$seed.bin"
    if ! nasm -f bin -DSEED=$seed -DOPS=$OPS tests/guest/hostile.asm -o "$rom" 2>"$E2E_TMP/hostile-nasm.log"; then
        fail "hostile: nasm failed: $(head -3 "$E2E_TMP/hostile-nasm.log")"
        exit 1
    fi
    for engine in bt interp; do
        err="$E2E_TMP/hostile-$seed-$engine.err"
        timeout 600 $RV -accel $engine -bios "$rom" -hda "$disk" -fda "$floppy" $devices -snapshot -display none -serial none -m 16 \
            -no-reboot -max-insns 1000000000 >"$err" 2>&1
        rc=$?
        if [ $rc -ne 33 ]; then
            case $rc in
            37) why="the ROM took a CPU exception" ;;
            0) why="the machine reset or the instruction budget ran out" ;;
            124) why="killed after 600 s" ;;
            *) why="status $rc" ;;
            esac
            fail "hostile: seed $seed under -accel $engine: $why (33 expected): $(tail -2 "$err" | tr '\n' '|')"
        elif grep -Eq 'AddressSanitizer|runtime error|Assertion|too many' "$err"; then
            fail "hostile: seed $seed under -accel $engine: $(grep -Em1 'AddressSanitizer|runtime error|Assertion|too many' "$err")"
        else
            pass "hostile: seed $seed, $OPS random device operations under -accel $engine"
        fi
    done
    rm -f "$rom"
done
if [ "$(sha256sum <"$disk")" = "$sum_before" ] && [ "$(sha256sum <"$floppy")" = "$floppy_before" ]; then
    pass "hostile: the -snapshot disk and floppy images are unchanged"
else
    fail "hostile: a -snapshot disk or floppy image changed"
fi
