#!/bin/sh
# A guest that toggles the IDE function's I/O decode and moves PCI BARs 10^6
# times (tests/guest/bar_churn.asm, a Multiboot kernel) must not exhaust the
# bus's tables (issue 26 #3: "too many port I/O registrations" ended the VMM),
# and after it parks a BAR over 0xCF8-0xCFF and resets, SeaBIOS must find
# configuration space and the reset port again and boot as on a fresh machine
# (issue 26 #5): the same PCI devices, then "No bootable device.".
. tests/e2e/lib.sh

kernel="$E2E_TMP/bar_churn.bin"
if ! nasm -f bin tests/guest/bar_churn.asm -o "$kernel" 2>"$E2E_TMP/bar_churn-nasm.log"; then
    fail "bar_churn: nasm failed: $(head -3 "$E2E_TMP/bar_churn-nasm.log")"
    exit 1
fi

# What SeaBIOS finds on a machine no guest has touched.
fresh="$E2E_TMP/bar_churn-fresh.log"
$RV -display none -serial none -debugcon "file:$fresh" -icount 2 -run-for 8 -no-reboot >/dev/null 2>&1
want=$(grep -Eo 'Found [0-9]+ PCI devices' "$fresh")
if [ -z "$want" ]; then
    fail "bar_churn: SeaBIOS on a fresh machine printed no 'Found N PCI devices'"
    exit 1
fi

for engine in bt interp; do
    log="$E2E_TMP/bar_churn-$engine.log"
    com1="$E2E_TMP/bar_churn-$engine.com1"
    $RV -accel $engine -kernel "$kernel" -display none -serial "file:$com1" -debugcon "file:$log" \
        -icount 2 -run-for 8 >"$log.stderr" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        fail "bar_churn: under -accel $engine the run ended with status $rc: $(tail -1 "$log.stderr")"
        continue
    fi
    expect_line "$com1" '^churned$' "bar_churn: 10^6 decode toggles and BAR moves done under -accel $engine"
    expect_line "$log" "^$want" "bar_churn: after the reset SeaBIOS finds the bridge and the same devices ($want) under -accel $engine"
    expect_line "$log" '^No bootable device\.' "bar_churn: SeaBIOS boots to 'No bootable device.' under -accel $engine"
done
