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
    # SeaBIOS reports RAM as "Ram Size=0x..." in hex bytes (below 4G).
    hex=$(printf '0x%08x' $((mb * 1024 * 1024)))
    expect_line "$out" "Ram Size=$hex" "seabios -m $mb: RAM size $hex detected"
    expect_line "$out" 'Found [0-9]+ PCI devices' "seabios -m $mb: PCI enumeration"
    expect_line "$out" '^No bootable device\.' "seabios -m $mb: reaches 'No bootable device.'"
done
