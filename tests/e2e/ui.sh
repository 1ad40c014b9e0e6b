#!/bin/sh
# Display front ends end to end: SeaBIOS boots with -display vnc=:N and an
# RFB client (python, below) sees its text screen; host-side failures (port
# in use, no X display for -display sdl) end the run with one clear line;
# -display sdl runs under Xvfb when xvfb-run is installed.
# Skipped (no PASS/FAIL lines) while the binary has no -display vnc.
. tests/e2e/lib.sh

if ! $RV --help 2>&1 | grep -q 'vnc='; then
    echo "SKIP ui: this retrovisor has no -display vnc yet"
    exit 0
fi

# A free TCP port above 5900 (the kernel's ephemeral range is far above it).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
disp=$((port - 5900))

# ---- VNC: the client sees SeaBIOS's 80x25 text screen ----
log="$E2E_TMP/ui-vnc.stdout"
$RV -display "vnc=:$disp" -serial none -run-for 120 >"$log" 2>&1 &
pid=$!
python3 - "$port" >"$E2E_TMP/ui-vnc.client" 2>&1 <<'EOF'
import socket, struct, sys, time
port = int(sys.argv[1])
deadline = time.time() + 60
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        break
    except OSError:
        if time.time() > deadline:
            print("cannot connect"); sys.exit(1)
        time.sleep(0.2)

def recv(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("server closed the connection")
        b += c
    return b

assert recv(12) == b"RFB 003.008\n"
s.sendall(b"RFB 003.008\n")
n = recv(1)[0]
types = recv(n)
assert 1 in types, types
s.sendall(b"\x01")
assert struct.unpack(">I", recv(4))[0] == 0
s.sendall(b"\x01")
w, h = struct.unpack(">HH", recv(4))
recv(16)
name = recv(struct.unpack(">I", recv(4))[0])
# 32 bpp little endian 0x00RRGGBB; Raw + DesktopSize
s.sendall(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
s.sendall(struct.pack(">BxHii", 2, 2, 0, -223))
fb = bytearray(w * h * 4)
while time.time() < deadline:
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    while True:
        t = recv(1)[0]
        if t == 0:
            break
        if t == 2:
            continue
        if t == 3:
            recv(3); recv(struct.unpack(">I", recv(4))[0]); continue
        raise SystemExit("unexpected message %d" % t)
    recv(1)
    for _ in range(struct.unpack(">H", recv(2))[0]):
        x, y, rw, rh, enc = struct.unpack(">HHHHi", recv(12))
        if enc == -223:
            w, h, fb = rw, rh, bytearray(rw * rh * 4)
            continue
        for row in range(rh):
            o = ((y + row) * w + x) * 4
            fb[o:o + rw * 4] = recv(rw * 4)
    lit = sum(1 for i in range(0, len(fb), 4) if fb[i:i + 3] != b"\0\0\0")
    if (w, h) == (720, 400) and lit > 500:
        print("frame %dx%d, %d lit pixels, name %s" % (w, h, lit, name.decode()))
        sys.exit(0)
    time.sleep(0.5)
print("last frame %dx%d with %d lit pixels" % (w, h, lit))
sys.exit(1)
EOF
rc=$?
if [ $rc -eq 0 ]; then
    pass "ui vnc: a client sees the 720x400 text screen ($(cat "$E2E_TMP/ui-vnc.client"))"
else
    fail "ui vnc: $(tail -2 "$E2E_TMP/ui-vnc.client" | tr '\n' ' ') / $(tail -2 "$log" | tr '\n' ' ')"
fi

# ---- VNC: the same port again while the first server holds it ----
$RV -display "vnc=:$disp" -serial none -run-for 1 >"$E2E_TMP/ui-vnc-busy.stdout" 2>&1
rc=$?
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ $rc -eq 2 ] && [ "$(wc -l <"$E2E_TMP/ui-vnc-busy.stdout")" -eq 1 ] &&
   grep -q -- "-display vnc=:$disp: .*:$port: .*in use" "$E2E_TMP/ui-vnc-busy.stdout"; then
    pass "ui vnc: port in use -> one line, status 2"
else
    fail "ui vnc: port in use gave status $rc: $(cat "$E2E_TMP/ui-vnc-busy.stdout")"
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

# ---- SDL under Xvfb ----
if command -v xvfb-run >/dev/null 2>&1; then
    out="$E2E_TMP/ui-sdl-xvfb.stdout"
    xvfb-run -a $RV -display sdl -serial none -run-for 3 >"$out" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "ui sdl: SeaBIOS runs in an SDL window under Xvfb"
    else
        fail "ui sdl: under Xvfb exited with status $rc: $(tail -3 "$out")"
    fi
else
    echo "SKIP ui sdl under Xvfb: xvfb-run is not installed"
fi
