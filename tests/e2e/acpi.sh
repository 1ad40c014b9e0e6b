#!/bin/sh
# The ACPI machine with the Linux guest (tests/guest/build-linux.sh), booted
# through SeaBIOS from a copy of the FAT disk whose syslinux.cfg is rewritten
# per run (rv.mode=acpi in tests/guest/init.sh):
#   1. realtime: the tables SeaBIOS installed from fw_cfg's table-loader are in
#      dmesg, the PM timer is found, the SCI is on IRQ 9, the power button
#      (SIGPWR to the monitor) reaches the guest as an ACPI event, and a plain
#      `poweroff` ends the run through S5 with status 0;
#   2. -icount: the PM timer passes Linux's rate check and is a clocksource,
#      and the TSC (checked against it by the clocksource watchdog) stays the
#      clocksource, where time is deterministic;
#   3. acpi=off on the kernel command line, and 4. -machine acpi=off: both
#      still boot and run init to the end.
# RETROVISOR_LONG=1 adds 10 realtime boots that must all keep the TSC.  On a
# loaded host this used to fail now and then: the host descheduled the VMM
# just as the PIT's 55 ms gate closed, the PM timer seemed fast and failed
# Linux's rate check, and jiffies, the clocksource watchdog left, could mark
# the TSC unstable.  The virtual clock now shows a running guest at most 1 ms
# per read (hosted-driver/vclock.c), so a stall looks like a paused CPU; the
# soak prints any rate-check failure it sees, which should be none.
. tests/e2e/lib.sh

if ! sh tests/guest/build-linux.sh >"$E2E_TMP/acpi-build.log" 2>&1; then
    fail "acpi: building the guest images failed: $(tail -3 "$E2E_TMP/acpi-build.log")"
    exit 1
fi
L=build/linux

# make_disk NAME APPEND: a copy of the test disk whose kernel line ends in APPEND.
make_disk() {
    img="$E2E_TMP/acpi-$1.img"
    cp "$L/disk-test.img" "$img"
    cat >"$E2E_TMP/acpi-$1.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd console=ttyS0,115200 panic=-1 $2
CFG
    mcopy -o -i "$img" "$E2E_TMP/acpi-$1.cfg" ::syslinux.cfg
    echo "$img"
}

# boot NAME DISK [options...]: runs the guest to its end; sets $log and $rc.
# When the guest prints RV-PWRBTN-READY the monitor gets SIGPWR (once).
boot() {
    name=$1 disk=$2
    shift 2
    log="$E2E_TMP/acpi-$name.log"
    rm -f "$log"
    $RV -m 256 -hda "$disk" -snapshot -display none -serial "file:$log" -no-reboot "$@" \
        >"$log.stdout" 2>"$log.stderr" &
    pid=$!
    pressed=no
    waited=0
    while kill -0 $pid 2>/dev/null && [ $waited -lt 6000 ]; do
        if [ $pressed = no ] && grep -q '^RV-PWRBTN-READY' "$log" 2>/dev/null; then
            kill -PWR $pid
            pressed=yes
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 $pid 2>/dev/null; then
        kill $pid
        fail "acpi $name: still running after 600 s"
    fi
    wait $pid
    rc=$?
}

# The run ended through S5: status 0, and not the "halted with interrupts
# disabled" stop that a kernel without ACPI power-off ends in.
expect_acpi_poweroff() {
    if [ "$rc" -eq 0 ] && grep -q '^RV-END' "$log" && ! grep -q 'halted the CPU' "$log.stderr"; then
        pass "acpi $1: poweroff ended the run through ACPI S5 with status 0"
    else
        fail "acpi $1: no ACPI power-off (status $rc): $(tail -2 "$log.stderr" | tr '\n' ' ')"
    fi
}

disk=$(make_disk main "rv.mode=acpi rv.pwrbtn")
boot main "$disk" -debugcon "file:$E2E_TMP/acpi-main.seabios"
expect_line "$E2E_TMP/acpi-main.seabios" 'Moving pm_base to 0x600' "acpi main: SeaBIOS sees etc/table-loader"
expect_line "$E2E_TMP/acpi-main.seabios" 'Using pmtimer, ioport 0x608' "acpi main: SeaBIOS times with the PM timer"
expect_line "$log" '^RV-DM .*ACPI: RSDP 0x0{11}F[0-9A-F]{4} 000014 \(v00 RETROV\)' "acpi main: RSDP in the F segment"
for t in RSDT FACP DSDT FACS APIC; do
    expect_line "$log" "^RV-DM .*ACPI: $t 0x" "acpi main: $t found"
done
expect_line "$log" '^RV-DM .*ACPI: PM-Timer IO Port: 0x608' "acpi main: PM timer at 0x608"
expect_line "$log" '^RV-DM .*ACPI: PM: \(supports S0 S5\)' "acpi main: S0 and S5 offered"
expect_line "$log" '^RV-DM .*PCI: Using ACPI for IRQ routing' "acpi main: PCI IRQ routing from the DSDT"
expect_line "$log" '^RV-SCI +9: .*acpi' "acpi main: the SCI is IRQ 9"
expect_line "$log" '^RV-PWRBTN [1-9]' "acpi main: the power button's SCI reached the guest"
expect_acpi_poweroff main

# expect_tsc_kept NAME: the TSC stayed the clocksource, never marked unstable.
expect_tsc_kept() {
    expect_line "$log" '^RV-CLOCKSOURCE tsc[[:space:]]*$' "acpi $1: the TSC stays the clocksource"
    if grep -qE 'TSC unstable' "$log"; then
        fail "acpi $1: $(grep -m1 -E 'TSC unstable' "$log")"
    else
        pass "acpi $1: no 'TSC unstable'"
    fi
}

disk=$(make_disk icount "rv.mode=acpi")
boot icount "$disk" -icount 2
expect_line "$log" '^RV-AVAILABLE .*acpi_pm' "acpi icount: acpi_pm is an available clocksource"
expect_tsc_kept icount
expect_acpi_poweroff icount

disk=$(make_disk cmdline-off "rv.mode=test acpi=off")
boot cmdline-off "$disk"
expect_line "$log" '^RV-END' "acpi cmdline-off: acpi=off on the kernel command line boots to the end"
if grep -q 'ACPI: RSDP' "$log"; then fail "acpi cmdline-off: the kernel still used ACPI"; else pass "acpi cmdline-off: no ACPI in use"; fi

boot machine-off "$L/disk-test.img" -machine acpi=off
expect_line "$log" '^RV-END' "acpi machine-off: -machine acpi=off boots to the end"
if grep -q 'ACPI: RSDP' "$log"; then
    fail "acpi machine-off: the guest found ACPI tables"
else
    pass "acpi machine-off: no ACPI tables"
fi
if [ "$rc" -eq 0 ] && grep -q 'halted the CPU' "$log.stderr"; then
    pass "acpi machine-off: poweroff -f halts as before"
else
    fail "acpi machine-off: status $rc: $(tail -2 "$log.stderr" | tr '\n' ' ')"
fi

if [ -n "${RETROVISOR_LONG:-}" ]; then
    disk=$(make_disk long "rv.mode=acpi")
    kept=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        boot "long$i" "$disk"
        if grep -q '^RV-CLOCKSOURCE tsc[[:space:]]*$' "$log" && ! grep -qE 'TSC unstable' "$log"; then
            kept=$((kept + 1))
        else
            echo "acpi long$i: $(grep -E 'RV-CLOCKSOURCE|TSC unstable' "$log" | tr '\n' ' ')"
        fi
        grep -E 'PM-Timer running at invalid rate' "$log" | sed "s/^/acpi long$i: /"
    done
    if [ $kept -eq 10 ]; then
        pass "acpi long: 10 of 10 boots kept the TSC"
    else
        fail "acpi long: only $kept of 10 boots kept the TSC"
    fi
fi
