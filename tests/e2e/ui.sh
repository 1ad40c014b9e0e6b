#!/bin/sh
# The display end to end.  Every screen check is by pixels, with
# tests/e2e/screens.py:
#  - screendumps (-screendump) of a boot sector (tests/guest/vga_pattern.asm)
#    that sets mode 13h and a 640x480x32 VBE LFB mode through SeaVGABIOS's
#    int 10h and draws a pattern equal, pixel for pixel, to the one
#    screens.py computes (both engines);
#  - a VNC client (-display vnc=:N, -vnc :N) reads SeaBIOS's text screen back
#    glyph by glyph with the font of the VGA BIOS image, and the guest's own
#    screendump at exit is the same screen; the VBE pattern seen over VNC
#    equals the computed one and the screendump;
#  - keys typed by the VNC client reach the guest through the 8042 and int 16h;
#  - a real VNC client, gtk-vnc's gvnccapture (Debian package gvncviewer, in
#    make deps), captures SeaBIOS's text screen and the VBE pattern; its PNGs
#    (lossless) equal the guest's own screendumps (the VBE one pixel for
#    pixel, and the comparison is shown to fail on a one-pixel change);
#  - Linux (build/linux/disk-demo.img through SeaBIOS and syslinux): at the
#    shell on the VGA console (tty1), `echo hi` + Enter typed over VNC makes
#    `hi` appear on a line of its own below the command, read glyph by glyph
#    from the VNC frame and from the guest's screendump;
#  - host-side failures (port in use, no X display for -display sdl) end the
#    run with one clear line and status 2;
#  - -display sdl under Xvfb (when xvfb-run is installed): the window's
#    pixels, read from Xvfb's framebuffer, show SeaBIOS's text in the VGA
#    font, equal the screendump, and show the VBE pattern; closing the
#    window ends the run with status 0.
. tests/e2e/lib.sh

if ! $RV --help 2>&1 | grep -q 'vnc='; then
    echo "SKIP ui: this retrovisor has no -display vnc yet"
    exit 0
fi

SCREENS="python3 tests/e2e/screens.py"
VGAROM=/usr/share/seabios/vgabios-stdvga.bin

# A free TCP port above 5900 (the kernel's ephemeral range is far above it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Boot sectors on 1 MiB disk images.
build_image() {   # name nasm-defines...
    name=$1
    shift
    if ! nasm -f bin "$@" tests/guest/vga_pattern.asm -o "$E2E_TMP/vga-$name.bin" 2>"$E2E_TMP/vga-$name.nasm"; then
        fail "ui: nasm $*: $(head -3 "$E2E_TMP/vga-$name.nasm")"
        return 1
    fi
    cp "$E2E_TMP/vga-$name.bin" "$E2E_TMP/vga-$name.img" && truncate -s 1M "$E2E_TMP/vga-$name.img"
}
build_image mode13 -DMODE13 || exit 0
build_image vbe -DVBE || exit 0
build_image vbe-stay -DVBE -DSTAY || exit 0
build_image keys -DKEYS || exit 0

# ---- screendumps of the patterns drawn through int 10h ----
for accel in bt interp; do
    for mode in mode13 vbe; do
        out="$E2E_TMP/ui-$mode-$accel"
        $RV -accel $accel -display none -serial none -debugcon "file:$out.log" -hda "$E2E_TMP/vga-$mode.img" \
            -snapshot -run-for 60 -screendump "$out.png" >"$out.stdout" 2>&1
        rc=$?
        if [ $rc -ne 33 ] || ! grep -q '^DONE' "$out.log"; then
            fail "ui $mode ($accel): the guest did not finish (status $rc): $(tail -2 "$out.log" "$out.stdout" | tr '\n' ' ')"
        elif r=$($SCREENS png-pattern "$out.png" $mode 2>&1); then
            pass "ui $mode ($accel): the screendump equals the computed pattern"
        else
            fail "ui $mode ($accel): $r"
        fi
    done
done

# ---- VNC: SeaBIOS's text screen, read glyph by glyph ----
port=$(free_port)
disp=$((port - 5900))
out="$E2E_TMP/ui-vnc-text"
$RV -display "vnc=:$disp" -serial none -run-for 120 -screendump "$out.dump.png" >"$out.stdout" 2>&1 &
pid=$!
$SCREENS vnc "$port" "$out.png" --text $VGAROM "No bootable device" >"$out.client" 2>&1
rc=$?
# The port is still held: a second server on it must fail cleanly.
$RV -display "vnc=:$disp" -serial none -run-for 1 >"$E2E_TMP/ui-vnc-busy.stdout" 2>&1
busy_rc=$?
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rv_rc=$?
if [ $rc -ne 0 ]; then
    fail "ui vnc: $(tail -2 "$out.client" | tr '\n' ' ') / $(tail -2 "$out.stdout" | tr '\n' ' ')"
elif [ $rv_rc -ne 0 ]; then
    fail "ui vnc: SIGTERM ended the run with status $rv_rc: $(tail -2 "$out.stdout" | tr '\n' ' ')"
else
    text=$($SCREENS text "$out.png" $VGAROM 2>&1)
    if echo "$text" | head -1 | grep -q '^SeaBIOS (version '; then
        pass "ui vnc: a client reads SeaBIOS's banner and 'No bootable device' in the VGA font: $(echo "$text" | head -1)"
    else
        fail "ui vnc: first line of the screen is '$(echo "$text" | head -1)'"
    fi
    if r=$($SCREENS same "$out.png" "$out.dump.png" 2>&1); then
        pass "ui vnc: the client's frame is the guest's own screendump"
    else
        fail "ui vnc: client frame vs screendump: $r"
    fi
fi
if [ $busy_rc -eq 2 ] && [ "$(wc -l <"$E2E_TMP/ui-vnc-busy.stdout")" -eq 1 ] &&
   grep -q -- "-display vnc=:$disp: .*:$port: .*in use" "$E2E_TMP/ui-vnc-busy.stdout"; then
    pass "ui vnc: port in use -> one line, status 2"
else
    fail "ui vnc: port in use gave status $busy_rc: $(cat "$E2E_TMP/ui-vnc-busy.stdout")"
fi

# ---- VNC (-vnc spelling): the VBE pattern, and the screendump at exit ----
port=$(free_port)
out="$E2E_TMP/ui-vnc-vbe"
$RV -vnc ":$((port - 5900))" -serial none -hda "$E2E_TMP/vga-vbe-stay.img" -snapshot -run-for 120 \
    -screendump "$out.dump.png" >"$out.stdout" 2>&1 &
pid=$!
$SCREENS vnc "$port" "$out.png" --pattern vbe >"$out.client" 2>&1
rc=$?
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rv_rc=$?
if [ $rc -ne 0 ]; then
    fail "ui vnc vbe: $(tail -2 "$out.client" | tr '\n' ' ') / $(tail -2 "$out.stdout" | tr '\n' ' ')"
elif [ $rv_rc -ne 0 ]; then
    fail "ui vnc vbe: SIGTERM ended the run with status $rv_rc"
elif r=$($SCREENS same "$out.png" "$out.dump.png" 2>&1) && $SCREENS png-pattern "$out.dump.png" vbe >/dev/null 2>&1; then
    pass "ui vnc vbe: the client sees the 640x480x32 pattern, equal to the screendump"
else
    fail "ui vnc vbe: client frame vs screendump: $r"
fi

# ---- VNC keyboard: keys reach the guest's int 16h ----
port=$(free_port)
out="$E2E_TMP/ui-vnc-keys"
$RV -display "vnc=:$((port - 5900))" -serial none -debugcon "file:$out.log" -hda "$E2E_TMP/vga-keys.img" \
    -snapshot -run-for 120 >"$out.stdout" 2>&1 &
pid=$!
$SCREENS vnc "$port" "$out.png" --wait-log "$out.log" READY --type 'Hi, 42!q' >"$out.client" 2>&1
rc=$?
wait "$pid"
rv_rc=$?
if [ $rc -ne 0 ]; then
    kill "$pid" 2>/dev/null
    fail "ui vnc keys: $(tail -2 "$out.client" | tr '\n' ' ')"
elif [ $rv_rc -eq 33 ] && grep -qx 'KEYS Hi, 42!q' "$out.log"; then
    pass "ui vnc keys: typed 'Hi, 42!q' arrives through the 8042 as int 16h characters"
else
    fail "ui vnc keys: status $rv_rc, guest saw '$(grep KEYS "$out.log")'"
fi

# ---- a real VNC client: gvnccapture's PNGs are the guest's screendumps ----
# gvnc_run NAME SCREENS-GOAL-ARGS -- RETROVISOR-ARGS: runs retrovisor with
# -vnc on a free port, waits (with screens.py) until the screen shows the goal,
# captures it with gvnccapture into NAME.gvnc.png, then ends the run with
# SIGTERM so that the screendump NAME.dump.png is written.
gvnc_run() {
    name=$1
    shift
    goal=""
    while [ "$1" != "--" ]; do goal="$goal $1"; shift; done
    shift
    port=$(free_port)
    out="$E2E_TMP/ui-gvnc-$name"
    rm -f "$out.gvnc.png" "$out.dump.png"
    "$@" -vnc ":$((port - 5900))" -serial none -run-for 120 -screendump "$out.dump.png" >"$out.stdout" 2>&1 &
    pid=$!
    $SCREENS vnc "$port" "$out.ready.png" $goal >"$out.client" 2>&1 &&
        timeout 30 gvnccapture "127.0.0.1:$((port - 5900))" "$out.gvnc.png" >>"$out.client" 2>&1
    rc=$?
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    echo "retrovisor status $?" >>"$out.client"
    return $rc
}

if ! command -v gvnccapture >/dev/null 2>&1; then
    echo "SKIP ui gvnccapture: gvnccapture (package gvncviewer) is not installed (make deps)"
else
    out="$E2E_TMP/ui-gvnc-text"
    if ! gvnc_run text --text $VGAROM bootable -- $RV; then
        fail "ui gvnccapture text: $(tail -n 3 "$out.client" "$out.stdout" | tr '\n' ' ')"
    elif ! grep -q 'retrovisor status 0' "$out.client"; then
        fail "ui gvnccapture text: SIGTERM ended the run with $(grep 'retrovisor status' "$out.client")"
    elif ! text=$($SCREENS text "$out.gvnc.png" $VGAROM 2>&1) || ! echo "$text" | head -1 | grep -q '^SeaBIOS (version '; then
        fail "ui gvnccapture text: first line of gvnccapture's image is '$(echo "$text" | head -1)'"
    elif r=$($SCREENS same "$out.gvnc.png" "$out.dump.png" 2>&1); then
        pass "ui gvnccapture text: its PNG of SeaBIOS's screen reads '$(echo "$text" | head -1)' and is the guest's screendump"
    else
        fail "ui gvnccapture text: gvnccapture vs screendump: $r"
    fi

    out="$E2E_TMP/ui-gvnc-vbe"
    if ! gvnc_run vbe --pattern vbe -- $RV -hda "$E2E_TMP/vga-vbe-stay.img" -snapshot; then
        fail "ui gvnccapture vbe: $(tail -n 3 "$out.client" "$out.stdout" | tr '\n' ' ')"
    elif ! grep -q 'retrovisor status 0' "$out.client"; then
        fail "ui gvnccapture vbe: SIGTERM ended the run with $(grep 'retrovisor status' "$out.client")"
    elif ! r=$($SCREENS identical "$out.gvnc.png" "$out.dump.png" 2>&1); then
        fail "ui gvnccapture vbe: gvnccapture vs screendump: $r"
    elif ! r=$($SCREENS png-pattern "$out.gvnc.png" vbe 2>&1); then
        fail "ui gvnccapture vbe: gvnccapture vs the computed pattern: $r"
    elif ! $SCREENS perturb "$out.gvnc.png" "$out.perturbed.png" ||
         $SCREENS identical "$out.perturbed.png" "$out.dump.png" >/dev/null 2>&1; then
        fail "ui gvnccapture vbe: the comparison does not see a one-pixel change"
    else
        pass "ui gvnccapture vbe: its PNG of the 640x480x32 VBE pattern equals the screendump pixel for pixel (and a one-pixel change is caught)"
    fi
fi

# ---- VNC keyboard into Linux: `echo hi` at the shell on the VGA console ----
# The demo image's init (tests/guest/init.sh) runs a shell on the serial
# console and one on tty1; the serial banner says the boot is over, the
# prompt on the screen that tty1's shell reads the keyboard.
if ! sh tests/guest/build-linux.sh >"$E2E_TMP/ui-linux-build.log" 2>&1; then
    fail "ui vnc linux: building the guest images failed: $(tail -3 "$E2E_TMP/ui-linux-build.log" | tr '\n' ' ')"
else
    port=$(free_port)
    out="$E2E_TMP/ui-vnc-linux"
    rm -f "$out.log" "$out.dump.png"
    start=$(date +%s)
    $RV -m 256 -hda build/linux/disk-demo.img -snapshot -vnc ":$((port - 5900))" -serial "file:$out.log" \
        -run-for 180 -screendump "$out.dump.png" >"$out.stdout" 2>&1 &
    pid=$!
    $SCREENS vnc "$port" "$out.png" --timeout 80 --font $VGAROM --wait-log "$out.log" 'retrovisor demo guest' \
        --wait-screen '/ #' --type 'echo hi
' --lines '/ # echo hi' hi >"$out.client" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rv_rc=$?
    if [ $rc -ne 0 ]; then
        fail "ui vnc linux: after ${took}s: $(tail -2 "$out.client" | tr '\n' ' ') / serial: $(tail -2 "$out.log" | tr '\n' ' ')"
    elif [ $rv_rc -ne 0 ]; then
        fail "ui vnc linux: SIGTERM ended the run with status $rv_rc: $(tail -2 "$out.stdout" | tr '\n' ' ')"
    elif ! r=$($SCREENS lines "$out.dump.png" $VGAROM '/ # echo hi' hi 2>&1); then
        fail "ui vnc linux: the client saw 'hi' but the guest's screendump does not: $r"
    elif $SCREENS lines "$out.dump.png" $VGAROM '/ # echo hi' ho >/dev/null 2>&1; then
        fail "ui vnc linux: the line check accepts 'ho' for 'hi'"
    else
        pass "ui vnc linux: 'echo hi' + Enter typed over VNC at the tty1 shell prints 'hi' on a line below it, in the VNC frame and the screendump (${took}s)"
    fi
fi

# ---- SDL without an X display ----
out="$E2E_TMP/ui-sdl-nodisplay.stdout"
env -u DISPLAY -u WAYLAND_DISPLAY SDL_VIDEODRIVER=x11 $RV -display sdl -serial none -run-for 1 >"$out" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$out")" -eq 1 ] && grep -q -- '-display sdl: .*-display vnc=:0' "$out"; then
    pass "ui sdl: no display -> one line suggesting vnc/none, status 2"
else
    fail "ui sdl: without a display gave status $rc: $(cat "$out")"
fi

# ---- SDL under Xvfb: the window's pixels ----
if ! command -v xvfb-run >/dev/null 2>&1; then
    echo "SKIP ui sdl under Xvfb: xvfb-run is not installed (make deps)"
    exit 0
fi
# sdl_run NAME GOAL-ARGS -- RETROVISOR-ARGS: runs retrovisor with -display sdl
# (no -display: the default with $DISPLAY set) on a black-rooted Xvfb whose
# framebuffer file screens.py reads; ends the run with SIGTERM once the
# window shows the goal.
sdl_run() {
    name=$1
    w=$2
    h=$3
    shift 3
    goal=""
    while [ "$1" != "--" ]; do goal="$goal $1"; shift; done
    shift
    fbdir="$E2E_TMP/xvfb-$name"
    rm -rf "$fbdir"
    mkdir -p "$fbdir"
    xvfb-run -a -s "-screen 0 1024x768x24 -fbdir $fbdir -br" sh -c '
        "$@" &
        pid=$!
        '"$SCREENS"' xvfb '"$fbdir"'/Xvfb_screen0 '"$fbdir"'/window.png '"$w $h $goal"' >'"$fbdir"'/client 2>&1
        rc=$?
        kill -TERM $pid 2>/dev/null
        wait $pid
        echo "retrovisor status $?" >>'"$fbdir"'/client
        exit $rc' sh "$@" >"$fbdir/stdout" 2>&1
}

sdl_run text 720 400 --text $VGAROM bootable -- \
    $RV -serial none -run-for 120 -screendump "$E2E_TMP/xvfb-text.dump.png"
rc=$?
fbdir="$E2E_TMP/xvfb-text"
if [ $rc -ne 0 ]; then
    fail "ui sdl: $(tail -n 3 "$fbdir/client" "$fbdir/stdout" | tr '\n' ' ')"
elif ! grep -q 'retrovisor status 0' "$fbdir/client"; then
    fail "ui sdl: $(grep 'retrovisor status' "$fbdir/client")"
else
    text=$($SCREENS text "$fbdir/window.png" $VGAROM 2>&1)
    if echo "$text" | head -1 | grep -q '^SeaBIOS (version '; then
        pass "ui sdl: the window (default display with \$DISPLAY) shows SeaBIOS's banner in the VGA font: $(echo "$text" | head -1)"
    else
        fail "ui sdl: first line of the window is '$(echo "$text" | head -1)'"
    fi
    if r=$($SCREENS same "$fbdir/window.png" "$E2E_TMP/xvfb-text.dump.png" 2>&1); then
        pass "ui sdl: the window's pixels are the guest's screendump"
    else
        fail "ui sdl: window vs screendump: $r"
    fi
fi

sdl_run vbe 640 480 --pattern vbe -- \
    $RV -display sdl -serial none -hda "$E2E_TMP/vga-vbe-stay.img" -snapshot -run-for 120
rc=$?
fbdir="$E2E_TMP/xvfb-vbe"
if [ $rc -eq 0 ] && grep -q 'retrovisor status 0' "$fbdir/client"; then
    pass "ui sdl: the window shows the 640x480x32 VBE pattern pixel for pixel"
else
    fail "ui sdl vbe: $(tail -n 3 "$fbdir/client" "$fbdir/stdout" | tr '\n' ' ')"
fi

# Closing the window (WM_DELETE_WINDOW, a window manager's close button)
# powers the guest off: status 0, long before -run-for.
out="$E2E_TMP/ui-sdl-close.stdout"
start=$(date +%s)
xvfb-run -a -s "-screen 0 1024x768x24" sh -c '
    "$@" &
    pid=$!
    for i in $(seq 1 100); do
        '"$SCREENS"' xclose retrovisor && break
        sleep 0.3
    done
    wait $pid
    echo "retrovisor status $?"' sh $RV -display sdl -serial none -run-for 120 >"$out" 2>&1
took=$(($(date +%s) - start))
if grep -q '^retrovisor status 0$' "$out" && [ $took -lt 60 ]; then
    pass "ui sdl: closing the window ends the run with status 0 (after ${took}s)"
else
    fail "ui sdl: window close: $(tail -n 3 "$out" | tr '\n' ' ') after ${took}s"
fi
