#!/bin/sh
# The monitor console (issue 21): retrovisor runs a small guest
# (tests/guest/monitor_guest.asm, a boot floppy) with
# -monitor unix:PATH,server,nowait, and tests/e2e/monitor_client.py sends
# every command over the socket and checks what it did: the guest stops and
# runs, sees keys and the power button, boots again; x/xp read its memory
# (x/Ni against capstone's disassembly of the same bytes); screendump writes
# a PNG; change/eject show in info block; bad input answers one error line;
# quit ends the run with status 0.
. tests/e2e/lib.sh

dir="$E2E_TMP/monitor"
rm -rf "$dir"
mkdir -p "$dir"
img="$dir/boot.img"
if ! nasm -f bin tests/guest/monitor_guest.asm -o "$img" 2>"$dir/nasm.log"; then
    fail "monitor: nasm failed: $(head -3 "$dir/nasm.log")"
    exit 1
fi
truncate -s 1474560 "$img"
sock="$dir/mon.sock"
# The client needs Debian's python3 (python3-capstone lives there).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

$RV -m 32 -fda "$img" -drive if=floppy,index=1 -drive media=cdrom,index=2 -display none \
    -serial "file:$dir/serial.txt" -monitor "unix:$sock,server,nowait" >"$dir/stderr.txt" 2>&1 &
pid=$!
timeout 300 "$PY" tests/e2e/monitor_client.py "$sock" "$dir/serial.txt" "$img" "$dir"
client=$?
# quit ends the run; a client that failed early leaves it running.
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
    kill $pid
    wait $pid
    fail "monitor: quit did not end retrovisor"
else
    wait $pid
    rc=$?
    if [ $rc -eq 0 ]; then pass "monitor: quit ends retrovisor with status 0"
    else fail "monitor: retrovisor exited with status $rc after quit: $(tail -2 "$dir/stderr.txt")"; fi
fi
[ $client -eq 0 ] || fail "monitor: the client exited with status $client"
if [ -e "$sock" ]; then fail "monitor: the socket $sock is left behind"
else pass "monitor: the socket is removed at the end"; fi

# -monitor stdio on a shared terminal: typed lines go to the serial port
# until Ctrl-A C gives the monitor the keyboard; its answers come on stdout
# among the guest's output.
wait_stdio() {   # wait_stdio PATTERN: until stdio.txt has a line matching it (60 s at most)
    i=0
    while ! grep -q "$1" "$dir/stdio.txt" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
}
rm -f "$dir/stdin"
mkfifo "$dir/stdin"
$RV -m 32 -fda "$img" -display none -serial stdio -monitor stdio <"$dir/stdin" >"$dir/stdio.txt" 2>&1 &
pid=$!
exec 3>"$dir/stdin"
wait_stdio '^tick 00000002$'
printf 'info cpu\n' >&3              # to the serial port: the monitor must not answer
printf '\001cinfo status\n' >&3
wait_stdio 'VM status: running$'
printf 'q\n' >&3                    # quit's short name
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill $pid 2>/dev/null
wait $pid
rc=$?
exec 3>&-
if [ $rc -eq 0 ] && grep -q 'VM status: running$' "$dir/stdio.txt" && grep -q '^boot$' "$dir/stdio.txt" &&
   ! grep -q 'CPU #0' "$dir/stdio.txt"; then
    pass "monitor: -monitor stdio shares the terminal with the serial port (Ctrl-A C), q ends it"
else
    fail "monitor: -monitor stdio: status $rc: $(grep -v '^tick' "$dir/stdio.txt" | tail -4)"
fi

# A bad -monitor is refused before the guest starts, in one line, status 2.
for spec in "tcp:127.0.0.1" "unix:" "pipe:x" "unix:$dir/m.sock,bogus"; do
    $RV -m 32 -fda "$img" -display none -serial none -monitor "$spec" >"$dir/bad.txt" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$dir/bad.txt")" -eq 1 ] && grep -q -- "-monitor" "$dir/bad.txt"; then
        pass "monitor: -monitor $spec is refused in one line (status 2)"
    else
        fail "monitor: -monitor $spec: status $rc: $(cat "$dir/bad.txt")"
    fi
done
