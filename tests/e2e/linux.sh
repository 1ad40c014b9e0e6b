#!/bin/sh
# Debian's i386 kernel with a busybox initramfs (tests/guest/build-linux.sh)
# boots to its init, which runs commands and powers off (rv.mode=test):
#   1. directly, with -kernel/-initrd/-append;
#   2. through SeaBIOS from a FAT disk image with syslinux (-hda, -snapshot).
# Expected values are computed here on the host from the same inputs.
. tests/e2e/lib.sh

if ! sh tests/guest/build-linux.sh >"$E2E_TMP/linux-build.log" 2>&1; then
    fail "linux: building the guest images failed: $(tail -3 "$E2E_TMP/linux-build.log")"
    exit 1
fi
L=build/linux
sha_busybox=$(sha256sum "$L/pkgroot/bin/busybox" | cut -d' ' -f1)
sha_zero=$(head -c 16777216 /dev/zero | sha256sum | cut -d' ' -f1)
awk_expect=$(awk 'BEGIN { s = 0; for (i = 1; i <= 1000; i++) s += i * i; print s, 22 / 7 }')

check_run() { # check_run NAME LOG STATUS
    name=$1 log=$2 rc=$3
    # Without ACPI (-kernel: no firmware) poweroff -f halts the CPU; through
    # SeaBIOS the kernel finds the ACPI tables and powers off through S5.
    if [ "$rc" -eq 0 ] && { grep -q 'halted the CPU with interrupts disabled' "$log.stderr" ||
                            grep -q 'reboot: Power down' "$log"; }; then
        pass "linux $name: powered off by itself"
    else
        fail "linux $name: did not power off by itself (status $rc): $(tail -2 "$log.stderr" | tr '\n' ' ')"
    fi
    expect_line "$log" '^RV-BEGIN test' "linux $name: init started"
    expect_line "$log" '^RV-UNAME i686' "linux $name: uname -m is i686"
    expect_line "$log" '^RV-FPU yes' "linux $name: /proc/cpuinfo reports an FPU"
    expect_line "$log" "^RV-AWK $awk_expect" "linux $name: awk arithmetic ($awk_expect)"
    expect_line "$log" "^RV-SHA-BUSYBOX $sha_busybox" "linux $name: sha256 of /bin/busybox matches the host's"
    expect_line "$log" "^RV-SHA-ZERO $sha_zero" "linux $name: sha256 of 16 MiB of zeros matches the host's"
    expect_line "$log" '^RV-END' "linux $name: init ran to the end"
    if grep -q '^RV-DMESG' "$log"; then
        fail "linux $name: dmesg complains about emulated hardware: $(grep '^RV-DMESG' "$log" | head -3 | tr '\n' '|')"
    else
        pass "linux $name: no unknown/unsupported complaints in dmesg"
    fi
}

log="$E2E_TMP/linux-direct.log"
rm -f "$log.png"
timeout 600 $RV -m 256 -kernel "$L/vmlinuz" -initrd "$L/initramfs.cpio" \
    -append "console=tty0 console=ttyS0 panic=-1 rv.mode=test" -display none -serial "file:$log" -no-reboot \
    -debugcon "file:$log.seabios" -screendump "$log.png" >"$log.stdout" 2>"$log.stderr"
check_run direct "$log" $?
# -kernel boots through SeaBIOS and the project's option ROM, so SeaVGABIOS
# has loaded the text-mode font: the kernel's last words are readable on screen.
expect_line "$log.seabios" '^Booting from ROM' "linux direct: SeaBIOS boots the linuxboot option ROM"
if python3 tests/e2e/screens.py text "$log.png" /usr/share/seabios/vgabios-stdvga.bin 2>&1 |
        grep -q 'reboot: Power down'; then
    pass "linux direct: the VGA text console is readable (the font is loaded)"
else
    fail "linux direct: no 'reboot: Power down' readable on the screen ($log.png)"
fi

log="$E2E_TMP/linux-disk.log"
timeout 600 $RV -m 256 -hda "$L/disk-test.img" -snapshot -display none -serial "file:$log" -no-reboot \
    >"$log.stdout" 2>"$log.stderr"
check_run disk "$log" $?
