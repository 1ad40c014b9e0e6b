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
    # With ACPI, SeaBIOS keeps the top of RAM for the tables it placed
    # (etc/table-loader) and marks it reserved: RAM runs up to that, the
    # reserved part (at most its 256 KiB high zone) up to -m.
    ram_end=$(sed -n 's/.*: 0000000000100000 - \([0-9a-f]\{16\}\) = 1 RAM\r*$/\1/p' "$out" | head -1)
    if [ -n "$ram_end" ] && grep -Eq ": $ram_end - $top = 2 RESERVED" "$out" &&
       [ $((0x$top - 0x$ram_end)) -le 262144 ]; then
        pass "seabios -m $mb: e820 map: RAM, then the firmware's tables, up to -m"
    else
        fail "seabios -m $mb: e820 map does not end at -m with RAM then the tables' reserved range: $(grep -E ' = [12] ' "$out" | tr '\n' '|')"
    fi
    expect_line "$out" 'Found [0-9]+ PCI devices' "seabios -m $mb: PCI enumeration"
    expect_line "$out" '^No bootable device\.' "seabios -m $mb: reaches 'No bootable device.'"
done

# The older machine: no tables, so RAM above 1 MiB ends exactly at -m.
out="$E2E_TMP/seabios-noacpi.log"
$RV -m 128 -machine acpi=off -display none -serial none -debugcon "file:$out" -icount 2 -run-for 8 -no-reboot \
    >"$E2E_TMP/seabios-noacpi.stdout" 2>&1
expect_line "$out" ": 0000000000100000 - 0000000008000000 = 1 RAM\$" "seabios -machine acpi=off: e820 map ends RAM at -m"
expect_line "$out" '^No bootable device\.' "seabios -machine acpi=off: reaches 'No bootable device.'"
