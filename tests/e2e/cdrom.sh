#!/bin/sh
# The ATAPI CD-ROM under SeaBIOS and Linux:
#   1. an ISO made here with xorriso + isolinux (the project's kernel and
#      initramfs, and a random 32 MiB file) boots through SeaBIOS's El Torito
#      path (-cdrom, -boot d);
#   2. the guest loads the CD-ROM modules, mounts /dev/sr0 and checks the
#      file's sha256 against the host's; the kernel's cdrom layer reports the
#      table of contents, session, disc status and sub-channel the host
#      computes from the ISO's size (cdctl info);
#   3. the guest ejects the disc (START STOP UNIT), sees the tray open and no
#      medium, then the host puts in a second ISO (-cdrom-change) and the
#      guest reads it; a third change waits while the guest keeps that disc
#      mounted (the tray locked) and happens once it unmounts;
#   4. bad images on the command line: one line, exit status 2.
. tests/e2e/lib.sh

if ! command -v xorriso >/dev/null || [ ! -e /usr/lib/ISOLINUX/isolinux.bin ] ||
   [ ! -e /usr/lib/syslinux/modules/bios/ldlinux.c32 ]; then
    fail "cdrom: xorriso, isolinux and syslinux-common are needed (make deps)"
    exit 1
fi
if ! sh tests/guest/build-linux.sh >"$E2E_TMP/cdrom-build.log" 2>&1; then
    fail "cdrom: building the guest images failed: $(tail -3 "$E2E_TMP/cdrom-build.log")"
    exit 1
fi
T="$E2E_TMP/cdrom"
rm -rf "$T"
mkdir -p "$T"

# Disc A: bootable, with a big random file; disc B: data only.
head -c 33554432 /dev/urandom >"$T/big.bin"
echo A >"$T/disc-id"
sha_a=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
# The same disc twice: Linux's libata runs the CD-ROM by DMA by default, by
# PIO with dma=1 (DMA for disks only).
if ! sh tests/guest/mkiso.sh "$T/a.iso" cdtest "$T/big.bin" "$T/disc-id" >"$T/mkiso.log" 2>&1 ||
   ! sh tests/guest/mkiso.sh "$T/a-pio.iso" "cdtest rv.libata=dma=1" "$T/big.bin" "$T/disc-id" >"$T/mkiso.log" 2>&1; then
    fail "cdrom: building the bootable ISO failed: $(tail -2 "$T/mkiso.log")"
    exit 1
fi
head -c 1048576 /dev/urandom >"$T/small.bin"
echo B >"$T/disc-id"
sha_b=$(sha256sum "$T/small.bin" | cut -d' ' -f1)
if ! sh tests/guest/mkiso.sh "$T/b.iso" - "$T/small.bin" "$T/disc-id" >>"$T/mkiso.log" 2>&1; then
    fail "cdrom: building the data ISO failed: $(tail -2 "$T/mkiso.log")"
    exit 1
fi

# Deterministic time (-icount), so that the disc change at 90 s of virtual
# time comes after the guest has read disc A and opened the tray (about
# 35 s in) however loaded the host is; the wait costs nothing, since virtual
# time skips ahead while the guest is idle.  A change that came early would
# still wait while the guest holds the tray locked (mounted).
log="$T/serial.log"
timeout 600 $RV -m 256 -icount 2 -cdrom "$T/a.iso" -boot d -cdrom-change "90:$T/b.iso" \
    -cdrom-change "150:$T/a.iso" -display none -serial "file:$log" -debugcon "file:$T/bios.log" -no-reboot >"$T/stdout" 2>"$T/stderr"
rc=$?
# Through SeaBIOS the kernel finds the ACPI tables and powers off through S5
# (-machine acpi=off: poweroff -f halts the CPU).
if [ "$rc" -eq 0 ] && { grep -q 'halted the CPU with interrupts disabled' "$T/stderr" ||
                        grep -q 'reboot: Power down' "$log"; }; then
    pass "cdrom boot: powered off by itself"
else
    fail "cdrom boot: did not power off by itself (status $rc): $(tail -2 "$T/stderr" | tr '\n' ' ')"
fi
expect_line "$T/bios.log" 'Booting from DVD/CD' "cdrom boot: SeaBIOS boots from the CD (El Torito)"
expect_line "$log" '^RV-BEGIN cdtest' "cdrom boot: the kernel and initramfs came from the ISO (isolinux)"
expect_line "$log" '^RV-CD-MODEL RETROVSR CD-ROM' "cdrom linux: sr0 is the ATAPI drive (INQUIRY)"
expect_line "$log" '^RV-CD-XFER XFER_MW_DMA_2' "cdrom linux: libata drives the CD-ROM by bus-master DMA"
expect_line "$log" '^RV-CD-MOUNT ok' "cdrom linux: mount -t iso9660 /dev/sr0"
expect_line "$log" '^RV-CD-ID A' "cdrom linux: disc A's files read"
expect_line "$log" "^RV-CD-SHA $sha_a" "cdrom linux: sha256 of a 32 MiB file on the CD matches the host's"
# The kernel's cdrom layer on READ TOC (LBA and MSF), multisession, disc
# status, READ SUB-CHANNEL and the capabilities page, against the ISO's size.
n=$(($(stat -c %s "$T/a.iso") / 2048))
msf=$(awk -v n="$n" 'BEGIN { f = n + 150; printf "%02d:%02d:%02d", int(f / 4500), int(f / 75) % 60, f % 75 }')
grep -a '^RV-CD-INFO' "$log" | tr -d '\r' >"$T/info.txt"
expect_line "$T/info.txt" '^RV-CD-INFO toc-header 1 1$' "cdrom linux: one track (READ TOC header)"
expect_line "$T/info.txt" '^RV-CD-INFO toc-lba 1 ctrl 4 lba 0$' "cdrom linux: track 1 is data at LBA 0"
expect_line "$T/info.txt" '^RV-CD-INFO toc-msf 1 00:02:00$' "cdrom linux: track 1 at 00:02:00 (MSF)"
expect_line "$T/info.txt" "^RV-CD-INFO toc-lba 170 ctrl 4 lba $n\$" "cdrom linux: the lead-out at LBA $n, the ISO's size"
expect_line "$T/info.txt" "^RV-CD-INFO toc-msf 170 $msf\$" "cdrom linux: the lead-out at $msf (MSF)"
expect_line "$T/info.txt" '^RV-CD-INFO multisession xa 0 lba 0$' "cdrom linux: one session from LBA 0 (READ TOC format 1)"
expect_line "$T/info.txt" '^RV-CD-INFO disc-status data-1$' "cdrom linux: a mode-1 data disc"
expect_line "$T/info.txt" '^RV-CD-INFO subchannel audio 0x15 track 1 index 1 lba 0$' "cdrom linux: READ SUB-CHANNEL position"
expect_line "$T/info.txt" '^RV-CD-INFO capability open-tray close-tray lock media-changed$' "cdrom linux: tray, lock and media change capabilities"
expect_line "$log" '^RV-CD-EJECT ok' "cdrom linux: the guest's eject (START STOP UNIT) succeeds"
expect_line "$log" '^RV-CD-EJECTED tray-open' "cdrom linux: the tray is open after the eject"
expect_line "$log" '^RV-CD-EMPTY-MOUNT failed' "cdrom linux: nothing to mount with the tray open"
expect_line "$log" '^RV-CD-CHANGED disc-ok' "cdrom linux: the guest sees the disc the host put in"
expect_line "$log" '^RV-CD-ID2 B' "cdrom linux: disc B's files read after the change"
expect_line "$log" "^RV-CD-SHA2 $sha_b" "cdrom linux: sha256 of disc B's file matches the host's"
expect_line "$log" '^RV-CD-HELD B' "cdrom linux: a change while the guest holds the tray locked waits"
expect_line "$log" '^RV-CD-ID3 A' "cdrom linux: the waiting change happens once the guest unmounts"
no_errors() { # LOG NAME
    if grep -qE '^RV-(CD-ERROR|KLOG.*(exception Emask|failed command|timeout|I/O error))' "$1"; then
        fail "$2: errors in the kernel log: $(grep -E '^RV-(CD-ERROR|KLOG.*(exception Emask|failed command|timeout|I/O error))' "$1" | head -3 | tr '\n' '|')"
    else
        pass "$2: no ATA exceptions, timeouts or I/O errors in the kernel log"
    fi
}
no_errors "$log" "cdrom linux"

# By PIO: the data comes in blocks of the byte count limit libata asks for.
log="$T/serial-pio.log"
timeout 600 $RV -m 256 -icount 2 -cdrom "$T/a-pio.iso" -boot d -cdrom-change "90:$T/b.iso" -cdrom-change "150:$T/a.iso" \
    -display none -serial "file:$log" -no-reboot >"$T/stdout" 2>"$T/stderr"
expect_line "$log" '^RV-CD-XFER XFER_PIO_4' "cdrom linux pio: libata drives the CD-ROM by PIO"
expect_line "$log" "^RV-CD-SHA $sha_a" "cdrom linux pio: sha256 of the 32 MiB file matches the host's"
expect_line "$log" "^RV-CD-SHA2 $sha_b" "cdrom linux pio: sha256 of disc B's file matches the host's"
no_errors "$log" "cdrom linux pio"

# -boot picks between a bootable hard disk and the bootable CD.
for order in d:DVD/CD c:'Hard Disk' dc:DVD/CD cd:'Hard Disk'; do
    rm -f "$T/order.log"
    $RV -icount 2 -run-for 2 -m 64 -display none -serial none -debugcon "file:$T/order.log" \
        -hda build/linux/disk-test.img -snapshot -cdrom "$T/a.iso" -boot "${order%%:*}" >/dev/null 2>&1
    expect_line "$T/order.log" "^Booting from ${order#*:}" "cdrom: -boot ${order%%:*} with a disk and a CD boots from the ${order#*:}"
done

# Ctrl+Alt+E in the SDL window (under Xvfb, typed with xdotool) ejects the
# disc and puts it back (disc B boots nothing: the guest idles meanwhile).
if command -v xvfb-run >/dev/null && command -v xdotool >/dev/null; then
    cat >"$T/sdlkey.sh" <<SH
$RV -display sdl -serial none -cdrom "$T/b.iso" -run-for 10 2>"$T/sdl.err" &
pid=\$!
i=0
while [ \$i -lt 100 ] && [ -z "\$(xdotool search --name retrovisor 2>/dev/null)" ]; do sleep 0.1; i=\$((i + 1)); done
wid=\$(xdotool search --name retrovisor | head -1)
xdotool windowactivate --sync "\$wid" 2>/dev/null
xdotool windowfocus --sync "\$wid" 2>/dev/null
sleep 0.5
xdotool key ctrl+alt+e
sleep 0.5
xdotool key ctrl+alt+e
wait \$pid
SH
    timeout 120 xvfb-run -a sh "$T/sdlkey.sh" >/dev/null 2>&1
    expect_line "$T/sdl.err" "^retrovisor: CD-ROM: ejected .*b.iso" "cdrom: Ctrl+Alt+E in the SDL window ejects the disc"
    expect_line "$T/sdl.err" "^retrovisor: CD-ROM: inserted .*b.iso" "cdrom: Ctrl+Alt+E again puts it back"
else
    fail "cdrom: xvfb-run and xdotool are needed for the window key test (make deps)"
fi

# Bad input: one line naming the option and file, exit status 2.
bad_input() { # NAME ARGS...
    name=$1
    shift
    $RV -display none -serial none -run-for 0.01 "$@" >"$T/bad.out" 2>"$T/bad.err"
    st=$?
    lines=$(wc -l <"$T/bad.err")
    if [ "$st" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- '-cdrom' "$T/bad.err"; then
        pass "cdrom bad input: $name (exit 2, one line)"
    else
        fail "cdrom bad input: $name: status $st, $lines lines: $(head -2 "$T/bad.err" | tr '\n' '|')"
    fi
}
bad_input "missing file" -cdrom "$T/no-such.iso"
: >"$T/empty.iso"
bad_input "empty file" -cdrom "$T/empty.iso"
bad_input "a directory" -cdrom "$T"
bad_input "a change without a drive" -cdrom-change "5:$T/b.iso"
# A size that is not a multiple of 2048: accepted, the tail ignored, a warning.
head -c 11264 /dev/zero >"$T/odd.iso"
$RV -display none -serial none -run-for 0.01 -drive "file=$T/odd.iso,media=cdrom,index=3" >"$T/odd.out" 2>"$T/odd.err"
st=$?
if [ "$st" -eq 0 ] && [ "$(wc -l <"$T/odd.err")" -eq 1 ] &&
   grep -q 'odd.iso: size 11264 is not a multiple of 2048; the last 1024 bytes are ignored' "$T/odd.err"; then
    pass "cdrom: an image of 11264 bytes is accepted with one warning (its last 1024 bytes ignored)"
else
    fail "cdrom: an image of 11264 bytes: status $st: $(head -2 "$T/odd.err" | tr '\n' '|')"
fi
