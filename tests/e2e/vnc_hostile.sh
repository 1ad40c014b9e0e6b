# Hostile VNC clients (issues 23, 24, 26): the VNC server must neither let
# a web page in through WebSockets, nor die of a connection flood, nor let
# a client stall the guest, nor listen off loopback without a password, nor
# let password guessing run at full speed.  Every client is on 127.0.0.1.
#
# The guest is tests/guest/vnc_tick.asm: '.' on COM1 every 10 ms of guest
# time (the heartbeat whose rate is compared), "K" + hex for every byte the
# keyboard controller hands it (so a key that got through is seen).
. tests/e2e/lib.sh

HOSTILE="python3 tests/e2e/vnc_hostile.py"
ROM="$E2E_TMP/vnc-tick.rom"
if ! nasm -f bin tests/guest/vnc_tick.asm -o "$ROM" 2>"$E2E_TMP/vnc-tick.nasm"; then
    fail "vnc_hostile: nasm: $(head -3 "$E2E_TMP/vnc-tick.nasm")"
    exit 0
fi

# start_vm NAME VNC-OPTIONS: the ROM with a VNC server on a free high port;
# sets $pid, $port, $log.
start_vm() {
    port=$($HOSTILE port)
    log="$E2E_TMP/vnc-$1.serial"
    rm -f "$log"
    $RV -bios "$ROM" -m 16 -serial "file:$log" -display "vnc=127.0.0.1:$((port - 5900))$2" \
        -run-for 300 >"$E2E_TMP/vnc-$1.stdout" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
        [ -s "$log" ] && break
        sleep 0.1
    done
}

stop_vm() {   # NAME: SIGTERM ends the run with status 0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    stop_rc=$?
}

keys_seen() { grep -c 'K' "$log"; }

# ---- WebSockets on: the Origin decides ----
start_vm ws ",websocket=on"
r=$($HOSTILE ws-blind "$port" http://evil.example 2>&1)
rc=$?
sleep 0.5
if [ $rc -ne 0 ]; then
    fail "vnc_hostile origin: a page from http://evil.example got an answer: $r"
elif [ "$(keys_seen)" -ne 0 ]; then
    fail "vnc_hostile origin: keys from http://evil.example reached the guest: $(grep K "$log" | head -3 | tr '\n' ' ')"
else
    pass "vnc_hostile origin: http://evil.example gets no 101 and no RFB, and none of its keys reach the guest ($r)"
fi
r=$($HOSTILE ws "$port" http://evil.example 2>&1)
if echo "$r" | grep -q '^refused: .* 403 '; then
    pass "vnc_hostile origin: an evil Origin waiting for answers is refused with 403"
else
    fail "vnc_hostile origin: evil Origin: $r"
fi
r=$($HOSTILE ws "$port" "http://127.0.0.1:$port" 2>&1)
sleep 0.5
if echo "$r" | grep -q '^upgraded' && grep -q 'K1e' "$log" && grep -q 'K9e' "$log"; then
    pass "vnc_hostile origin: a same-origin page (http://127.0.0.1:$port) gets an RFB session and its 'a' reaches the guest as 1e/9e"
else
    fail "vnc_hostile origin: same origin: $r; guest keys: $(grep K "$log" | tr '\n' ' ')"
fi
if [ "$(grep -c 'evil.example' "$E2E_TMP/vnc-ws.stdout")" -eq 1 ]; then
    pass "vnc_hostile origin: the refused origin is logged once for two attempts"
else
    fail "vnc_hostile origin: log of refused origins: $(cat "$E2E_TMP/vnc-ws.stdout" | tr '\n' ' ')"
fi
if grep -q 'websockets are on without a password' "$E2E_TMP/vnc-ws.stdout"; then
    pass "vnc_hostile origin: websocket=on without a password warns at start"
else
    fail "vnc_hostile origin: no warning about websockets without a password"
fi
stop_vm
start_vm wslist ",websocket=on,websocket-origins=http://novnc.example:6080"
a=$($HOSTILE ws "$port" http://novnc.example:6080 2>&1)
b=$($HOSTILE ws "$port" "http://127.0.0.1:$port" 2>&1)
stop_vm
if echo "$a" | grep -q '^upgraded' && echo "$b" | grep -q '^refused'; then
    pass "vnc_hostile origin: websocket-origins= allows the listed origin and only it"
else
    fail "vnc_hostile origin: websocket-origins: listed: $a / same host: $b"
fi

# ---- default server: a stalled client, an upgrade request, a flood ----
start_vm flood ""
r=$($HOSTILE trickle "$port" "$log" 12 2>&1)
before=$(echo "$r" | sed -n 's/^serial \([0-9]*\)\/s before, \([0-9]*\)\/s during.*/\1/p')
during=$(echo "$r" | sed -n 's/^serial \([0-9]*\)\/s before, \([0-9]*\)\/s during.*/\2/p')
if [ -z "$before" ] || [ "$before" -eq 0 ]; then
    fail "vnc_hostile trickle: no heartbeat before the clients came: $r"
elif [ $((during * 2)) -lt "$before" ]; then
    fail "vnc_hostile trickle: the guest slowed down while clients stalled: $r"
elif echo "$r" | grep -q 'never'; then
    fail "vnc_hostile trickle: a stalled client was never dropped: $r"
else
    pass "vnc_hostile trickle: clients stalled mid-message do not slow the guest, and are dropped: $r"
fi

r=$($HOSTILE ws "$port" "http://127.0.0.1:$port" 2>&1)
if echo "$r" | grep -q '^refused'; then
    pass "vnc_hostile websocket off: by default an upgrade request is refused ($r)"
else
    fail "vnc_hostile websocket off: $r"
fi

a=$(wc -c <"$log")
r=$($HOSTILE garbage "$port" 2>&1)
b=$(wc -c <"$log")
if ! kill -0 "$pid" 2>/dev/null; then
    fail "vnc_hostile garbage: the VMM died: $r / $(tail -2 "$E2E_TMP/vnc-flood.stdout" | tr '\n' ' ')"
elif ! echo "$r" | grep -q 'left open: none$' || [ "$b" -le "$a" ]; then
    fail "vnc_hostile garbage: $r; serial $a -> $b"
else
    pass "vnc_hostile garbage: malformed handshakes, huge SetEncodings/ClientCutText counts and random bytes: $r; the heartbeat went on ($a -> $b bytes)"
fi

r=$($HOSTILE flood "$port" 1500 "$log" "$pid" 4 2>&1)
before=$(echo "$r" | sed -n 's/.*serial \([0-9]*\)\/s before, \([0-9]*\)\/s during.*/\1/p')
during=$(echo "$r" | sed -n 's/.*serial \([0-9]*\)\/s before, \([0-9]*\)\/s during.*/\2/p')
top=$(echo "$r" | sed -n 's/.*highest fd \([0-9-]*\).*/\1/p')
if ! echo "$r" | grep -q 'alive True' || ! kill -0 "$pid" 2>/dev/null; then
    fail "vnc_hostile flood: the VMM died: $r / $(tail -2 "$E2E_TMP/vnc-flood.stdout" | tr '\n' ' ')"
elif [ -z "$during" ] || [ $((during * 2)) -lt "$before" ]; then
    fail "vnc_hostile flood: the guest slowed down: $r"
elif [ -z "$top" ] || [ "$top" -ge 1024 ]; then
    fail "vnc_hostile flood: the VMM held descriptor $top: $r"
else
    pass "vnc_hostile flood: 1500 connections at once: $r"
fi
# The flood's connections are closed now; idle ones would have timed out.
if ! command -v gvnccapture >/dev/null 2>&1; then
    echo "SKIP vnc_hostile flood gvnccapture: gvnccapture (package gvncviewer) is not installed (make deps)"
else
    rm -f "$E2E_TMP/vnc-flood.png"
    a=$(wc -c <"$log")
    timeout 30 gvnccapture "127.0.0.1:$((port - 5900))" "$E2E_TMP/vnc-flood.png" >"$E2E_TMP/vnc-flood.gvnc" 2>&1
    rc=$?
    sleep 1
    b=$(wc -c <"$log")
    if [ $rc -eq 0 ] && [ -s "$E2E_TMP/vnc-flood.png" ] && [ "$b" -gt "$a" ]; then
        pass "vnc_hostile flood: afterwards gvnccapture gets the screen and the serial log still grows ($a -> $b bytes)"
    else
        fail "vnc_hostile flood: gvnccapture after the flood: status $rc, $(tail -2 "$E2E_TMP/vnc-flood.gvnc" | tr '\n' ' '), serial $a -> $b"
    fi
fi
stop_vm
if [ "$stop_rc" -eq 0 ]; then
    pass "vnc_hostile flood: the run still ends cleanly on SIGTERM"
else
    fail "vnc_hostile flood: SIGTERM ended the run with status $stop_rc: $(tail -2 "$E2E_TMP/vnc-flood.stdout" | tr '\n' ' ')"
fi

# ---- an idle connection does not keep its slot: max-clients=1 ----
start_vm idle ",max-clients=1"
python3 -c 'import socket,time,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); time.sleep(13)' "$port" &
idler=$!
sleep 11.5      # the pre-authentication timeout is 10 s
if command -v gvnccapture >/dev/null 2>&1; then
    timeout 20 gvnccapture "127.0.0.1:$((port - 5900))" "$E2E_TMP/vnc-idle.png" >"$E2E_TMP/vnc-idle.gvnc" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -s "$E2E_TMP/vnc-idle.png" ]; then
        pass "vnc_hostile idle: an idle unauthenticated connection loses its slot; gvnccapture gets in with max-clients=1"
    else
        fail "vnc_hostile idle: gvnccapture status $rc: $(tail -2 "$E2E_TMP/vnc-idle.gvnc" | tr '\n' ' ')"
    fi
fi
wait $idler
stop_vm

# ---- wrong passwords are slowed down, per address ----
RETROVISOR_VNC_PASSWORD=r1ght-pw
export RETROVISOR_VNC_PASSWORD
start_vm pw ",password"
r=$($HOSTILE wrongpw "$port" 100 2>&1)
stop_vm
unset RETROVISOR_VNC_PASSWORD
checked=$(echo "$r" | sed -n 's/^checked \([0-9]*\) refused \([0-9]*\) elapsed \([0-9.]*\) ok \([0-9]*\)/\1/p')
refused=$(echo "$r" | sed -n 's/^checked \([0-9]*\) refused \([0-9]*\) elapsed \([0-9.]*\) ok \([0-9]*\)/\2/p')
elapsed=$(echo "$r" | sed -n 's/^checked \([0-9]*\) refused \([0-9]*\) elapsed \([0-9.]*\) ok \([0-9]*\)/\3/p')
ok=$(echo "$r" | sed -n 's/^checked \([0-9]*\) refused \([0-9]*\) elapsed \([0-9.]*\) ok \([0-9]*\)/\4/p')
# Waits of 1, 2, 4, ... s: n checked guesses need 2^(n-1) - 1 s at least.
bound=$(python3 -c 'import math,sys; print(int(math.log2(float(sys.argv[1]) + 1)) + 1)' "${elapsed:-0}")
if [ -z "$checked" ] || [ "$ok" -ne 0 ]; then
    fail "vnc_hostile password: $r"
elif [ "$checked" -lt 2 ] || [ "$checked" -gt "$bound" ] || [ "$refused" -lt 50 ]; then
    fail "vnc_hostile password: $r (want 2..$bound checked, at least 50 refused)"
else
    pass "vnc_hostile password: 100 wrong passwords in ${elapsed}s: $checked checked (back-off allows at most $bound), $refused refused before the greeting, none let in"
fi

# ---- start-up refusals ----
out="$E2E_TMP/vnc-any.stdout"
port=$($HOSTILE port)
$RV -bios "$ROM" -m 16 -serial none -vnc "0.0.0.0:$((port - 5900))" -run-for 1 >"$out" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$out")" -eq 1 ] && grep -q 'insecure' "$out"; then
    pass "vnc_hostile loopback: -vnc 0.0.0.0:N without a password: status 2, one line: $(cat "$out")"
else
    fail "vnc_hostile loopback: -vnc 0.0.0.0:N gave status $rc: $(cat "$out")"
fi
# (',insecure' is not started here: it would listen beyond loopback.)
RETROVISOR_VNC_PASSWORD=123456789 $RV -bios "$ROM" -m 16 -serial none -vnc ":$((port - 5900)),password" \
    -run-for 1 >"$out" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$out")" -eq 1 ] && grep -q 'first 8' "$out"; then
    pass "vnc_hostile password: a 9-character password is refused at start: $(cat "$out")"
else
    fail "vnc_hostile password: a 9-character password gave status $rc: $(cat "$out")"
fi
