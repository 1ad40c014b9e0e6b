#!/bin/sh
# The SDL window's machine controls, end to end: under Xvfb with a window
# manager (openbox: full screen is the window manager's job), keys typed
# with xdotool, the title read back with `xdotool getwindowname`.
#  - the title is "NAME - retrovisor [STATE]": -name, or the first disk's
#    file name without its extension;
#  - Linux (build/linux/disk-demo.img): Ctrl+Alt+P pauses (the title says
#    paused, and the serial output of a loop typed at the tty1 shell stops
#    growing), Ctrl+Alt+P again resumes it (the output grows again);
#  - Ctrl+Alt+Del reaches the guest through the 8042: the kernel hands it to
#    init (ctrl-alt-del = 0), whose handler prints RV-CTRLALTDEL on the
#    serial console and reboots (the second RV-BEGIN);
#  - Ctrl+Alt+Q presses the ACPI power button (a Linux guest that waits for
#    it sees its SCI and powers itself off: status 0); a second press powers
#    off at once; without ACPI the first does;
#  - Ctrl+Alt+Enter toggles full screen (the window takes the whole screen,
#    then gets its size back);
#  - Ctrl+Alt+S takes a snapshot while a loop counts at the Linux shell,
#    Ctrl+Alt+R ten counts later reverts to it: the count goes back (and
#    without a disk, the keys say what the snapshot code answered);
#  - -name: bad values end the run with one line and status 2;
#  - over VNC, the desktop name a viewer reads is the same "NAME -
#    retrovisor [STATE]", and says paused after the monitor's `stop`.
#  - the mouse grab (tests/guest/mouse_log.asm turns the PS/2 mouse on;
#    this Linux guest never does): the title offers the grab, a click takes
#    it and the title says how to let go, pointer motion then reaches the
#    guest as mouse bytes, Ctrl+Alt releases it and motion stays with the host.
. tests/e2e/lib.sh

for tool in xvfb-run xdotool openbox; do
    if ! command -v $tool >/dev/null 2>&1; then
        fail "window: $tool is needed (make deps)"
        exit 0
    fi
done

# Everything below runs inside one Xvfb, with openbox as its window manager.
if [ -z "${RV_WINDOW_INNER:-}" ]; then
    RV_WINDOW_INNER=1 exec xvfb-run -a -s "-screen 0 1024x768x24" sh "$0"
fi

# ---- -name: bad input (no display needed) ----
for bad in "" "vm,bogus=1"; do
    out="$E2E_TMP/window-badname.out"
    $RV -display none -serial none -run-for 0.01 -name "$bad" >"$out" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$out")" -eq 1 ] && grep -q -- '^retrovisor: -name ' "$out"; then
        pass "window: -name '$bad' -> one line, status 2"
    else
        fail "window: -name '$bad' gave status $rc: $(cat "$out")"
    fi
done

openbox >"$E2E_TMP/window-openbox.log" 2>&1 &
wm=$!
trap 'kill $wm 2>/dev/null' EXIT
T="$E2E_TMP/window"
mkdir -p "$T"

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s; false on timeout.
wait_until() {
    n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
find_window() { wid=$(xdotool search --pid "$1" 2>/dev/null | head -1); [ -n "$wid" ]; }
# focus_window PID: sets $wid to the retrovisor window and gives it the keyboard.
focus_window() {
    wait_until 30 find_window "$1" || return 1
    xdotool windowactivate --sync "$wid" >/dev/null 2>&1
    xdotool windowfocus --sync "$wid" >/dev/null 2>&1
    sleep 0.3
}
title() { xdotool getwindowname "$wid" 2>/dev/null; }
title_has() { title | grep -qF -- "$1"; }
log_has() { grep -q -- "$2" "$1" 2>/dev/null; }
log_count_at_least() { [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; }
size() { wc -c <"$1"; }
grew() { [ "$(size "$1")" -gt "$2" ]; }
last_tick() { grep -a '^RV-TICK' "$1" | tail -1 | tr -dc '0-9'; }
tick_past() { [ "$(last_tick "$1")" -gt "$2" ]; }
window_size() { xdotool getwindowgeometry "$wid" | sed -n 's/.*Geometry: //p'; }

if ! sh tests/guest/build-linux.sh >"$T/linux-build.log" 2>&1; then
    fail "window: building the guest images failed: $(tail -3 "$T/linux-build.log" | tr '\n' ' ')"
    exit 0
fi

# ---- Linux demo: title, pause, Ctrl+Alt+Del, power off ----
log="$T/demo.log"
rm -f "$log"
rm -rf "$T/snaps"
$RV -m 256 -hda build/linux/disk-demo.img -snapshot -snapshot-dir "$T/snaps" -display sdl -serial "file:$log" \
    -run-for 600 2>"$T/demo.err" &
pid=$!
if ! wait_until 120 log_has "$log" 'retrovisor demo guest' || ! focus_window $pid; then
    fail "window linux: no booted guest and window: $(tail -2 "$log" "$T/demo.err" | tr '\n' ' ')"
    kill $pid
    wait $pid
    exit 0
fi
t=$(title)
if [ "$t" = "disk-demo - retrovisor [running]" ]; then
    pass "window linux: the title is '$t' (the disk's name, the state)"
else
    fail "window linux: the title is '$t'"
fi

# A loop at the tty1 shell writes to the serial port while the guest runs.
sleep 1
xdotool type --delay 40 'i=0; while true; do i=$((i+1)); echo RV-TICK $i >/dev/ttyS0; sleep 0.2; done'
xdotool key Return
if ! wait_until 30 log_count_at_least "$log" '^RV-TICK' 5; then
    fail "window linux: the loop typed at tty1 does not tick: $(tail -2 "$log" | tr '\n' ' ')"
else
    xdotool key ctrl+alt+p
    if wait_until 10 title_has "[paused]"; then
        pass "window linux: Ctrl+Alt+P pauses: '$(title)'"
    else
        fail "window linux: after Ctrl+Alt+P the title is '$(title)'"
    fi
    s0=$(size "$log")
    sleep 3
    s1=$(size "$log")
    if [ "$s0" -eq "$s1" ]; then
        pass "window linux: while paused the serial output stays at $s1 bytes for 3 s"
    else
        fail "window linux: while paused the serial output grew from $s0 to $s1 bytes"
    fi
    xdotool key ctrl+alt+p
    if wait_until 10 title_has "[running]" && wait_until 30 grew "$log" "$s1"; then
        pass "window linux: Ctrl+Alt+P again resumes: '$(title)', the output grows past $s1 bytes"
    else
        fail "window linux: after the second Ctrl+Alt+P: '$(title)', $(size "$log") bytes"
    fi

    # Ctrl+Alt+S at tick S, Ctrl+Alt+R ten ticks later: the loop's counter
    # goes back (the serial file is the host's, so it keeps both runs).
    xdotool key ctrl+alt+s
    if wait_until 60 log_has "$T/demo.err" '^retrovisor: snapshot hotkey-.* \(taken\|failed\)'; then
        snap=$(last_tick "$log")
        line=$(grep -m1 '^retrovisor: snapshot hotkey-' "$T/demo.err" | sed 's/^retrovisor: //')
        if echo "$line" | grep -q ' taken$' && wait_until 5 title_has "disk-demo - retrovisor [running] - $line"; then
            pass "window linux: Ctrl+Alt+S at RV-TICK $snap: '$line' (stderr and the title)"
        else
            fail "window linux: Ctrl+Alt+S: '$line', title '$(title)'"
        fi
        wait_until 30 tick_past "$log" $((snap + 10))
        before=$(wc -l <"$log")
        top=$(last_tick "$log")
        xdotool key ctrl+alt+r
        if wait_until 60 log_has "$T/demo.err" '^retrovisor: \(revert\|reverted\)' &&
           wait_until 30 sh -c "tail -n +$((before + 1)) '$log' | grep -a -q '^RV-TICK'"; then
            line=$(grep -m1 '^retrovisor: \(revert\|reverted\)' "$T/demo.err" | sed 's/^retrovisor: //')
            next=$(tail -n +$((before + 1)) "$log" | grep -a -m1 '^RV-TICK' | tr -dc '0-9')
            if echo "$line" | grep -q '^reverted to snapshot hotkey-' && [ "$next" -le $((snap + 2)) ]; then
                pass "window linux: Ctrl+Alt+R at RV-TICK $top: '$line'; the loop goes on from RV-TICK $next"
            else
                fail "window linux: Ctrl+Alt+R at RV-TICK $top (snapshot at $snap): '$line', next RV-TICK $next"
            fi
        else
            fail "window linux: Ctrl+Alt+R: $(tail -2 "$T/demo.err" | tr '\n' ' ')"
        fi
    else
        fail "window linux: Ctrl+Alt+S: nothing on stderr: $(tail -2 "$T/demo.err" | tr '\n' ' ')"
    fi
fi

if log_has "$log" 'RV-CTRLALTDEL'; then
    fail "window linux: RV-CTRLALTDEL before Ctrl+Alt+Del was pressed"
fi
xdotool key ctrl+alt+Delete
if wait_until 30 log_has "$log" '^RV-CTRLALTDEL'; then
    pass "window linux: Ctrl+Alt+Del reaches the guest: its init's ctrlaltdel handler printed '$(grep -a -m1 -o 'RV-CTRLALTDEL.*' "$log")'"
    if wait_until 120 log_count_at_least "$log" '^RV-BEGIN' 2; then
        pass "window linux: and the guest rebooted (a second RV-BEGIN)"
    else
        fail "window linux: no reboot after Ctrl+Alt+Del: $(tail -2 "$log" | tr '\n' ' ')"
    fi
else
    fail "window linux: Ctrl+Alt+Del did not reach init: $(tail -2 "$log" | tr '\n' ' ')"
fi

# The demo guest does not act on the power button: the second press powers off.
wait_until 120 log_count_at_least "$log" 'retrovisor demo guest' 2
focus_window $pid
xdotool key ctrl+alt+q
if wait_until 10 title_has "power button pressed"; then
    pass "window linux: Ctrl+Alt+Q presses the power button: '$(title)'"
else
    fail "window linux: after Ctrl+Alt+Q the title is '$(title)'"
fi
xdotool key ctrl+alt+q
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null"
if kill -0 $pid 2>/dev/null; then
    kill $pid
    wait $pid
    fail "window linux: still running after the second Ctrl+Alt+Q"
else
    wait $pid
    rc=$?
    if [ $rc -eq 0 ] && grep -q 'powered off (Ctrl+Alt+Q)' "$T/demo.err"; then
        pass "window linux: the second Ctrl+Alt+Q powers off: status 0"
    else
        fail "window linux: second Ctrl+Alt+Q: status $rc, $(tail -2 "$T/demo.err" | tr '\n' ' ')"
    fi
fi

# ---- Linux that waits for the power button: one Ctrl+Alt+Q, ACPI shutdown ----
img="$T/pwrbtn.img"
cp build/linux/disk-test.img "$img"
cat >"$T/pwrbtn.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd console=ttyS0,115200 panic=-1 rv.mode=acpi rv.pwrbtn
CFG
mcopy -o -i "$img" "$T/pwrbtn.cfg" ::syslinux.cfg
log="$T/pwrbtn.log"
rm -f "$log"
$RV -m 256 -hda "$img" -snapshot -display sdl -serial "file:$log" -no-reboot -run-for 600 2>"$T/pwrbtn.err" &
pid=$!
if wait_until 120 log_has "$log" '^RV-PWRBTN-READY' && focus_window $pid; then
    xdotool key ctrl+alt+q
    wait_until 60 sh -c "! kill -0 $pid 2>/dev/null"
fi
if kill -0 $pid 2>/dev/null; then
    kill $pid
    wait $pid
    fail "window acpi: the guest did not power off after Ctrl+Alt+Q: $(tail -2 "$log" | tr '\n' ' ')"
else
    wait $pid
    rc=$?
    if [ $rc -eq 0 ] && grep -q '^RV-PWRBTN [1-9]' "$log" && grep -q '^RV-END' "$log" &&
       ! grep -q 'powered off (Ctrl+Alt+Q)' "$T/pwrbtn.err"; then
        pass "window acpi: one Ctrl+Alt+Q: the guest saw the power button ($(grep -m1 '^RV-PWRBTN [0-9]' "$log")) and powered itself off, status 0"
    else
        fail "window acpi: status $rc, $(grep '^RV-PWRBTN' "$log" | tr '\n' ' ') $(tail -2 "$T/pwrbtn.err" | tr '\n' ' ')"
    fi
fi

# ---- SeaBIOS only, no ACPI: -name, full screen, snapshot keys, power off ----
err="$T/bios.err"
rm -rf "$T/bios-snaps"
$RV -display sdl -serial none -machine acpi=off -name "my test vm" -snapshot-dir "$T/bios-snaps" -run-for 600 2>"$err" &
pid=$!
if ! focus_window $pid; then
    fail "window bios: no window: $(tail -2 "$err" | tr '\n' ' ')"
    kill $pid
    wait $pid
    exit 0
fi
if wait_until 10 title_has "my test vm - retrovisor [running]"; then
    pass "window bios: -name gives the title '$(title)'"
else
    fail "window bios: with -name the title is '$(title)'"
fi

before=$(window_size)
xdotool key ctrl+alt+Return
wait_until 10 sh -c "[ \"\$(xdotool getwindowgeometry $wid | sed -n 's/.*Geometry: //p')\" = 1024x768 ]"
full=$(window_size)
xdotool key ctrl+alt+Return
wait_until 10 sh -c "[ \"\$(xdotool getwindowgeometry $wid | sed -n 's/.*Geometry: //p')\" = \"$before\" ]"
after=$(window_size)
if [ "$before" != 1024x768 ] && [ "$full" = 1024x768 ] && [ "$after" = "$before" ]; then
    pass "window bios: Ctrl+Alt+Enter: $before -> full screen $full -> $after"
else
    fail "window bios: Ctrl+Alt+Enter: $before -> $full -> $after"
fi

# The snapshot keys call the snapshot code and report what it said.
xdotool key ctrl+alt+s
if wait_until 10 log_has "$err" '^retrovisor: snapshot hotkey-[0-9]\{8\}-[0-9]\{6\} \(taken\|failed: .\)'; then
    line=$(grep -m1 '^retrovisor: snapshot hotkey-' "$err" | sed 's/^retrovisor: //')
    if wait_until 5 title_has "$line"; then
        pass "window bios: Ctrl+Alt+S calls snapshot_save; stderr and the title say '$line'"
    else
        fail "window bios: Ctrl+Alt+S said '$line' on stderr, the title is '$(title)'"
    fi
else
    fail "window bios: Ctrl+Alt+S: nothing on stderr: $(tail -2 "$err" | tr '\n' ' ')"
fi
xdotool key ctrl+alt+r
if wait_until 10 log_has "$err" '^retrovisor: \(revert\|reverted\)'; then
    line=$(grep -m1 '^retrovisor: \(revert\|reverted\)' "$err" | sed 's/^retrovisor: //')
    if grep -q '^retrovisor: snapshot hotkey-.* taken' "$err" && ! echo "$line" | grep -q '^reverted to snapshot hotkey-'; then
        fail "window bios: a snapshot was taken but Ctrl+Alt+R said '$line'"
    elif wait_until 5 title_has "$line"; then
        pass "window bios: Ctrl+Alt+R calls snapshot_load of the last snapshot; stderr and the title say '$line'"
    else
        fail "window bios: Ctrl+Alt+R said '$line' on stderr, the title is '$(title)'"
    fi
else
    fail "window bios: Ctrl+Alt+R: nothing on stderr: $(tail -2 "$err" | tr '\n' ' ')"
fi

# No ACPI: the first Ctrl+Alt+Q powers off.
xdotool key ctrl+alt+q
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null"
if kill -0 $pid 2>/dev/null; then
    kill $pid
    wait $pid
    fail "window bios: still running after Ctrl+Alt+Q without ACPI"
else
    wait $pid
    rc=$?
    if [ $rc -eq 0 ] && grep -q 'powered off (Ctrl+Alt+Q)' "$err"; then
        pass "window bios: without ACPI one Ctrl+Alt+Q powers off: status 0"
    else
        fail "window bios: Ctrl+Alt+Q: status $rc, $(tail -2 "$err" | tr '\n' ' ')"
    fi
fi

# ---- The mouse grab: a guest that turns its PS/2 mouse on ----
mouse_rom="$T/mouse_log.rom"
if ! nasm -f bin tests/guest/mouse_log.asm -o "$mouse_rom" 2>"$T/mouse-nasm.err"; then
    fail "window mouse: nasm: $(head -3 "$T/mouse-nasm.err" | tr '\n' ' ')"
else
    log="$T/mouse.serial"
    err="$T/mouse.err"
    rm -f "$log"
    $RV -display sdl -bios "$mouse_rom" -m 16 -serial "file:$log" -name mouse -run-for 300 2>"$err" &
    pid=$!
    mouse_bytes() { grep -c '^M' "$log" 2>/dev/null; }
    more_mouse_bytes() { [ "$(mouse_bytes)" -gt "$1" ]; }
    if ! focus_window $pid || ! wait_until 10 log_has "$log" READY; then
        fail "window mouse: no window or no READY: $(tail -2 "$err" | tr '\n' ' ')"
    else
        if wait_until 10 title_has "click to grab the mouse"; then
            pass "window mouse: the guest enabled its mouse, the title says '$(title)'"
        else
            fail "window mouse: the title is '$(title)'"
        fi
        eval "$(xdotool getwindowgeometry --shell "$wid")"
        xdotool mousemove --window "$wid" $((WIDTH / 2)) $((HEIGHT / 2)) click 1
        if wait_until 10 title_has "Press Ctrl+Alt to release the mouse"; then
            pass "window mouse: a click grabs the pointer: '$(title)'"
        else
            fail "window mouse: after the click the title is '$(title)'"
        fi
        before=$(mouse_bytes)
        for _ in 1 2 3 4 5; do xdotool mousemove_relative -- 7 -5; sleep 0.1; done
        if wait_until 10 more_mouse_bytes "$before"; then
            pass "window mouse: grabbed, pointer motion reaches the guest ($before -> $(mouse_bytes) bytes from the mouse)"
        else
            fail "window mouse: grabbed, motion gave no mouse bytes ($before)"
        fi
        xdotool key ctrl+alt
        if wait_until 10 title_has "click to grab the mouse"; then
            pass "window mouse: Ctrl+Alt releases it: '$(title)'"
        else
            fail "window mouse: after Ctrl+Alt the title is '$(title)'"
        fi
        sleep 0.5
        before=$(mouse_bytes)
        for _ in 1 2 3 4 5; do xdotool mousemove_relative -- 7 -5; sleep 0.1; done
        sleep 1
        if [ "$(mouse_bytes)" -eq "$before" ]; then
            pass "window mouse: released, motion over the window stays with the host"
        else
            fail "window mouse: released, the guest still got $(( $(mouse_bytes) - before )) bytes"
        fi
    fi
    kill -TERM $pid 2>/dev/null
    wait $pid
fi

# ---- VNC: viewers read "NAME - retrovisor [STATE]" as the desktop name ----
HOSTILE="python3 tests/e2e/vnc_hostile.py"
port=$($HOSTILE port)
sock="$T/vnc-name.sock"
err="$T/vnc-name.err"
$RV -display "vnc=127.0.0.1:$((port - 5900))" -serial none -name "my vnc vm" -monitor "unix:$sock,server,nowait" \
    -run-for 120 2>"$err" &
pid=$!
vnc_name() { $HOSTILE name "$port" 2>/dev/null; }
vnc_name_has() { vnc_name | grep -qF -- "$1"; }
if wait_until 10 vnc_name_has "my vnc vm - retrovisor [running]"; then
    pass "window vnc: the desktop name is '$(vnc_name)'"
else
    fail "window vnc: the desktop name is '$(vnc_name)': $(tail -2 "$err" | tr '\n' ' ')"
fi
wait_until 10 test -S "$sock"
python3 - "$sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
def upto_prompt():
    buf = b""
    while not buf.endswith(b"(retrovisor) "):
        d = s.recv(4096)
        if not d:
            break
        buf += d
upto_prompt()
s.sendall(b"stop\n")
upto_prompt()
PY
if wait_until 10 vnc_name_has "my vnc vm - retrovisor [paused]"; then
    pass "window vnc: after the monitor's stop a new viewer reads '$(vnc_name)'"
else
    fail "window vnc: after stop the desktop name is '$(vnc_name)'"
fi
kill -TERM $pid
wait $pid
