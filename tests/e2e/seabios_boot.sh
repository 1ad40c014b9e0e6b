#!/bin/sh
# SeaBIOS (Debian's bios.bin) boots on retrovisor to "No bootable device.":
# its own log on the debug console shows the banner, the RAM size we gave it,
# the PCI devices it enumerated, and the boot failure.
. tests/e2e/lib.sh

for mb in 32 128 512; do
    out="$E2E_TMP/seabios-$mb.log"
    $RV -m "$mb" -display none -serial none -debugcon "file:$out" -icount 2 -run-for 8 -no-reboot \
        >"$E2E_TMP/seabios-$mb.stdout" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        fail "seabios -m $mb: retrovisor exited with status $rc: $(tail -3 "$E2E_TMP/seabios-$mb.stdout")"
        continue
    fi
    expect_line "$out" '^SeaBIOS \(version ' "seabios -m $mb: version banner"
    # SeaBIOS learns RAM from fw_cfg and prints its final e820 map: RAM above 1 MiB ends at -m.
    top=$(printf '%016x' $((mb * 1024 * 1024)))
    expect_line "$out" "^qemu/e820: addr 0x0000000000000000 len 0x$top \\[RAM\\]" "seabios -m $mb: fw_cfg e820 gives $mb MiB"
    expect_line "$out" ": 0000000000100000 - $top = 1 RAM\$" "seabios -m $mb: e820 map ends RAM at -m"
    expect_line "$out" 'Found [0-9]+ PCI devices' "seabios -m $mb: PCI enumeration"
    expect_line "$out" '^No bootable device\.' "seabios -m $mb: reaches 'No bootable device.'"
done
