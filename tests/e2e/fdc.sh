#!/bin/sh
# The floppy end to end: FreeDOS (../shared/testsuites/images/freedos722.img,
# on a copy) boots from A: through SeaBIOS, the FDC and ISA DMA to the
# A:\> prompt.  Over VNC (tests/e2e/dos_session.py types the keys and reads
# the text screen glyph by glyph):
#  - `ver` prints FreeCOM's version line below the command;
#  - `dir /w` lists the names, file count, byte total and free space that
#    mtools reads from the same image on the host;
#  - `echo hi from dos>A:\T.TXT`, then Ctrl+Alt+Del: after the reboot
#    `type A:\T.TXT` shows the line, and after the run mtools reads the
#    same bytes from the image on the host.
# Linux (Debian's kernel, booted with -kernel; its floppy.ko and
# tests/guest/floppy-init.sh in an initramfs of this test's own) reads the
# whole of /dev/fd0 from a 1.44M image of random bytes and writes 32 KiB at
# sector 1000: the checksums it prints, and the image after the run, are
# compared with the host's.  Then the terminal's Ctrl-A f takes the disk
# out, the host puts another file in its place, Ctrl-A f puts it in, and
# the guest, polling, reads the new disk whole.
# -boot: with a floppy and a hard disk, order=ac boots the floppy first and
# order=ca the disk (SeaBIOS's log, and the bootorder file it prints);
# menu=on shows SeaBIOS's "Press ESC" line, the default does not.
# Ctrl+Alt+F in the SDL window (Xvfb, xdotool) takes the disk out of A:
# and puts it back.
# Bad input: an image of no floppy size and a missing image each end the run
# with one line naming the file and status 2.
. tests/e2e/lib.sh

IMG=../shared/testsuites/images/freedos722.img
VGAROM=/usr/share/seabios/vgabios-stdvga.bin
out="$E2E_TMP/fdc"
mkdir -p "$out"

# ---- bad input ----
head -c 1000000 /dev/zero >"$out/odd.img"
$RV -fda "$out/odd.img" -display none -serial none -run-for 1 >"$out/odd.stdout" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$out/odd.stdout")" -eq 1 ] && grep -q "odd.img: 1000000 bytes is not the size of a floppy" "$out/odd.stdout"; then
    pass "fdc: an image of no floppy size -> one line naming it, status 2"
else
    fail "fdc: odd-sized image gave status $rc: $(cat "$out/odd.stdout")"
fi
$RV -drive "file=$out/missing.img,if=floppy" -display none -serial none -run-for 1 >"$out/missing.stdout" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$out/missing.stdout")" -eq 1 ] && grep -q "missing.img" "$out/missing.stdout"; then
    pass "fdc: a missing image -> one line naming it, status 2"
else
    fail "fdc: missing image gave status $rc: $(cat "$out/missing.stdout")"
fi

# ---- -boot ----
head -c 1474560 /dev/zero >"$out/blank-disk.img"
head -c 737280 /dev/zero >"$out/blank-floppy.img"
for order in ac ca; do
    $RV -boot "order=$order" -fda "$out/blank-floppy.img" -hda "$out/blank-disk.img" -snapshot -display none \
        -serial none -debugcon "file:$out/boot-$order.log" -run-for 3 >/dev/null 2>&1
done
first_ac=$(grep -m1 '^Booting from' "$out/boot-ac.log")
first_ca=$(grep -m1 '^Booting from' "$out/boot-ca.log")
if [ "$first_ac" = "Booting from Floppy..." ] && [ "$first_ca" = "Booting from Hard Disk..." ] &&
   grep -q '^1: /pci@i0cf8/isa@1/fdc@03f0/floppy@0' "$out/boot-ac.log" &&
   grep -q '^1: /pci@i0cf8/ide@1,1/drive@0/disk@0' "$out/boot-ca.log"; then
    pass "fdc -boot: order=ac boots the floppy first, order=ca the hard disk (fw_cfg bootorder)"
else
    fail "fdc -boot: order=ac starts with '$first_ac', order=ca with '$first_ca'"
fi
for menu in on off; do
    $RV -boot "menu=$menu" -fda "$out/blank-floppy.img" -snapshot -display none -serial none -run-for 1.5 \
        -screendump "$out/menu-$menu.png" >/dev/null 2>&1
done
if python3 tests/e2e/screens.py text "$out/menu-on.png" $VGAROM 2>&1 | grep -q '^Press ESC for boot menu' &&
   ! python3 tests/e2e/screens.py text "$out/menu-off.png" $VGAROM 2>&1 | grep -q 'Press ESC'; then
    pass "fdc -boot: menu=on offers SeaBIOS's boot menu, menu=off does not"
else
    fail "fdc -boot: menu=on/off screens: $(python3 tests/e2e/screens.py text "$out/menu-on.png" $VGAROM 2>&1 | head -3 | tr '\n' '|')"
fi

# ---- Ctrl+Alt+F in the SDL window (under Xvfb, typed with xdotool) ----
if command -v xvfb-run >/dev/null && command -v xdotool >/dev/null; then
    cat >"$out/sdlkey.sh" <<SH
$RV -display sdl -serial none -fda "$out/blank-floppy.img" -snapshot -run-for 10 2>"$out/sdl.err" &
pid=\$!
i=0
while [ \$i -lt 100 ] && [ -z "\$(xdotool search --name retrovisor 2>/dev/null)" ]; do sleep 0.1; i=\$((i + 1)); done
wid=\$(xdotool search --name retrovisor | head -1)
xdotool windowactivate --sync "\$wid" 2>/dev/null
xdotool windowfocus --sync "\$wid" 2>/dev/null
sleep 0.5
xdotool key ctrl+alt+f
sleep 0.5
xdotool key ctrl+alt+f
wait \$pid
SH
    timeout 120 xvfb-run -a sh "$out/sdlkey.sh" >/dev/null 2>&1
    expect_line "$out/sdl.err" "^retrovisor: A: .*blank-floppy.img taken out" "fdc: Ctrl+Alt+F in the SDL window takes the disk out of A:"
    expect_line "$out/sdl.err" "^retrovisor: A: .*blank-floppy.img put in" "fdc: Ctrl+Alt+F again puts it back"
else
    fail "fdc: xvfb-run and xdotool are needed for the window key test (make deps)"
fi

# ---- Linux: /dev/fd0 ----
L=build/linux
if ! sh tests/guest/build-linux.sh >"$out/linux-build.log" 2>&1; then
    fail "fdc linux: building the guest failed: $(tail -3 "$out/linux-build.log" | tr '\n' ' ')"
elif ! sh tests/guest/build-floppy-initramfs.sh "$out/fd-initramfs.cpio" >"$out/cpio.log" 2>&1; then
    fail "fdc linux: building the initramfs failed: $(tail -2 "$out/cpio.log" | tr '\n' ' ')"
else
    head -c 1474560 /dev/urandom >"$out/linux.img"
    read_sha=$(sha256sum "$out/linux.img" | cut -d' ' -f1)
    yes retrovisor-floppy | head -c 32768 >"$out/pattern"
    pattern_sha=$(sha256sum "$out/pattern" | cut -d' ' -f1)
    cp "$out/linux.img" "$out/linux-expected.img"
    dd if="$out/pattern" of="$out/linux-expected.img" bs=512 seek=1000 conv=notrunc 2>/dev/null
    head -c 1474560 /dev/urandom >"$out/linux2.img"
    changed_sha=$(sha256sum "$out/linux2.img" | cut -d' ' -f1)
    # The terminal (-serial stdio, fed through a fifo) takes the disk out
    # with Ctrl-A f once the guest waits; once the guest has seen the drive
    # empty, the host swaps the file and puts it back with Ctrl-A f.
    rm -f "$out/keys"
    mkfifo "$out/keys"
    trap '' PIPE     # a retrovisor that died must not take this script with it
    $RV -kernel "$L/vmlinuz" -initrd "$out/fd-initramfs.cpio" -append "console=ttyS0 panic=-1 quiet rv.fd=change" \
        -fda "$out/linux.img" -display none -serial stdio -run-for 240 <"$out/keys" >"$out/linux.log" 2>"$out/linux.stderr" &
    pid=$!
    exec 3>"$out/keys"
    i=0
    while ! grep -q '^RV-FD-WAITING' "$out/linux.log" && [ $i -lt 900 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.2
        i=$((i + 1))
    done
    printf '\001f' >&3
    i=0
    while ! grep -q '^RV-FD-NO-DISK' "$out/linux.log" && [ $i -lt 300 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.2
        i=$((i + 1))
    done
    mv "$out/linux.img" "$out/linux-written.img"
    cp "$out/linux2.img" "$out/linux.img"
    printf '\001f' >&3
    wait $pid
    rc=$?
    exec 3>&-
    trap - PIPE
    if ! grep -q '^RV-FD-END' "$out/linux.log"; then
        fail "fdc linux: the guest did not finish (status $rc): $(tail -3 "$out/linux.log" "$out/linux.stderr" | tr '\n' ' ')"
    else
        expect_line "$out/linux.log" 'FDC 0 is a post-1991 82077' "fdc linux: the kernel's driver finds a post-1991 82077"
        expect_line "$out/linux.log" "^RV-FD-READ-SHA $read_sha" "fdc linux: sha256 of all of /dev/fd0 is the image's"
        expect_line "$out/linux.log" "^RV-FD-READBACK-SHA $pattern_sha" "fdc linux: 32 KiB written to /dev/fd0 read back from the disk"
        expect_line "$out/linux.log" "^RV-FD-CHANGED-SHA $changed_sha" \
            "fdc linux: a disk changed while the guest runs (Ctrl-A f out, another file, Ctrl-A f in) is seen and read whole"
        expect_line "$out/linux.stderr" "A: .*linux.img taken out" "fdc linux: Ctrl-A f says the disk is out"
        expect_line "$out/linux.log" "^RV-FD-NO-DISK" "fdc linux: without a disk in A: the guest's read fails"
        if cmp -s "$out/linux-written.img" "$out/linux-expected.img"; then
            pass "fdc linux: the image holds the guest's write at sector 1000 and nothing else changed"
        else
            fail "fdc linux: the image differs from the expected one: $(cmp "$out/linux-written.img" "$out/linux-expected.img" 2>&1)"
        fi
    fi
fi

if [ ! -r "$IMG" ]; then
    echo "SKIP fdc freedos: $IMG is missing"
    exit 0
fi
if ! command -v mdir >/dev/null 2>&1; then
    fail "fdc freedos: mtools is not installed (make deps)"
    exit 0
fi

# ---- FreeDOS from A: ----
cp "$IMG" "$out/freedos.img" && chmod u+w "$out/freedos.img"
mdir -i "$out/freedos.img" ::/ >"$out/mdir.txt" 2>&1     # before DOS writes to it
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s)
$RV -fda "$out/freedos.img" -boot a -vnc ":$((port - 5900))" -serial none -run-for 400 >"$out/rv.stdout" 2>&1 &
pid=$!
python3 tests/e2e/dos_session.py "$port" $VGAROM timeout 150 prompt 'A:\>' \
    run cls run ver save "$out/ver.txt" \
    run cls run 'dir /w' save "$out/dir.txt" \
    run 'echo hi from dos>A:\T.TXT' reboot prompt 'A:\>' \
    run cls run 'type A:\T.TXT' save "$out/type.txt" >"$out/session.log" 2>&1
rc=$?
took=$(($(date +%s) - start))
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rv_rc=$?
if [ $rc -ne 0 ]; then
    fail "fdc freedos: after ${took}s: $(tail -1 "$out/session.log") / $(tail -2 "$out/rv.stdout" | tr '\n' ' ')"
    exit 0
fi
pass "fdc freedos: boots from A: to the A:\\> prompt, and commands typed over VNC run (${took}s for the session)"

if [ $rv_rc -ne 0 ]; then
    fail "fdc freedos: SIGTERM ended the run with status $rv_rc"
fi

# ver: FreeCOM's version line, the first one below the command.
if awk 'after && NF { ok = /^FreeCom version [0-9]/; after = 0 } $0 == "A:\\>ver" { after = 1 } END { exit !ok }' "$out/ver.txt"; then
    pass "fdc freedos ver: $(grep '^FreeCom version' "$out/ver.txt")"
else
    fail "fdc freedos ver: no FreeCom version line below 'A:\\>ver': $(tr '\n' '|' <"$out/ver.txt")"
fi

# dir /w against mtools' listing of the same image, taken before the run (the names of the files
# and directories, the number of files, their bytes, the bytes free).
# One line per entry: NAME SIZE, or [NAME] - for a directory.
awk '$1 ~ /^[0-9]/ { next }
    $2 == "<DIR>" { print "[" $1 "] -"; next }
    NF >= 5 && $3 ~ /^[0-9]+$/ { print $1 "." $2, $3; next }
    NF >= 4 && $2 ~ /^[0-9]+$/ && $3 ~ /-/ { print $1, $2 }' "$out/mdir.txt" >"$out/mdir-entries.txt"
expected=$(awk '{ print $1 }' "$out/mdir-entries.txt" | sort | tr '\n' ' ')
seen=$(sed -n '/Directory of A:/,/file(s)/p' "$out/dir.txt" | grep -v 'Directory of\|file(s)' | tr -s ' ' '\n' |
    grep -v '^$' | sort | tr '\n' ' ')
files=$(awk '$2 != "-"' "$out/mdir-entries.txt" | wc -l)
bytes=$(awk '$2 != "-" { s += $2 } END { print s }' "$out/mdir-entries.txt")
free=$(grep 'bytes free' "$out/mdir.txt" | tr -dc '0-9')
dos_files=$(grep 'file(s)' "$out/dir.txt" | awk '{ print $1 }')
dos_bytes=$(grep 'file(s)' "$out/dir.txt" | awk '{ print $3 }' | tr -dc '0-9')
dos_free=$(grep 'bytes free' "$out/dir.txt" | awk '{ print $3 }' | tr -dc '0-9')
if [ -z "$expected" ] || [ "$seen" != "$expected" ]; then
    fail "fdc freedos dir: DOS lists '$seen', mtools '$expected'"
elif [ "$dos_files" != "$files" ] || [ "$dos_bytes" != "$bytes" ] || [ "$dos_free" != "$free" ]; then
    fail "fdc freedos dir: DOS counts $dos_files files, $dos_bytes bytes, $dos_free free; mtools $files, $bytes, $free"
else
    pass "fdc freedos dir: the $(echo "$expected" | wc -w) names, $files files, $bytes bytes and $free bytes free are what mtools reads"
fi

# The file written before Ctrl+Alt+Del, after it and on the host.
if awk 'prev == "A:\\>type A:\\T.TXT" && $0 == "hi from dos" { ok = 1 } { prev = $0 } END { exit !ok }' "$out/type.txt"; then
    pass "fdc freedos: a file written from DOS is read back after a reboot of the VM"
else
    fail "fdc freedos: after the reboot 'type A:\\T.TXT' shows: $(tr '\n' '|' <"$out/type.txt")"
fi
host=$(mtype -i "$out/freedos.img" ::/T.TXT 2>&1 | tr -d '\r')
if [ "$host" = "hi from dos" ]; then
    pass "fdc freedos: mtools reads 'hi from dos' from A:\\T.TXT on the host"
else
    fail "fdc freedos: mtools reads '$host' from T.TXT"
fi
