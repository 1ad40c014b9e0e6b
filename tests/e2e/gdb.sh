#!/bin/sh
# The gdb stub, driven by Debian's gdb (-batch -ex ...) and by a raw client:
#   1. bt: the Linux guest started with -S -gdb stops at start_kernel (a
#      breakpoint by address), registers and memory read back (the bytes are
#      compared with the kernel image's own), three single steps, detach: the
#      guest boots on to its shell.  Bad packets meanwhile get '-' or E
#      replies, Ctrl-C stops a running guest with T02.
#   2. SeaBIOS from its reset vector under each engine: a breakpoint at its
#      entry point, single steps in real mode, a write watchpoint on the BIOS
#      data area's base memory size, detach: SeaBIOS runs on.
#   3. A breakpoint at the top of a loop bt translates as one block jumping
#      to itself, by gdb and by a raw client (M, X, g, qXfer, k), both engines.
#   4. Watchpoints on a ROM's known loads and stores, both engines: gdb's
#      awatch, rwatch and watch stop right after the accessing instruction
#      (EIPs from nasm's listing), a raw client checks the stop replies'
#      kind and address, a write of the same value, removal, and the E
#      replies to bad lengths and to one watchpoint too many.
# The address of start_kernel: Debian's System.map is a placeholder (the real
# one is in the -dbg package), so unless it names start_kernel, a first boot
# (nokaslr, as the debugged one) reads it from the guest's /proc/kallsyms.
. tests/e2e/lib.sh

if ! command -v gdb >/dev/null 2>&1; then
    fail "gdb: Debian's gdb is not installed (make deps)"
    exit 1
fi
if ! sh tests/guest/build-linux.sh >"$E2E_TMP/gdb-linux-build.log" 2>&1; then
    fail "gdb: building the Linux guest failed: $(tail -3 "$E2E_TMP/gdb-linux-build.log")"
    exit 1
fi
L=build/linux
T=$E2E_TMP/gdb
mkdir -p "$T"
APPEND="console=ttyS0 nokaslr quiet panic=-1"
trap '' PIPE

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (90 s at most, or PID ends)
wait_for() {
    i=0
    while ! grep -Eq -- "$2" "$1" 2>/dev/null && [ $i -lt 450 ] && kill -0 "$3" 2>/dev/null; do
        sleep 0.2
        i=$((i + 1))
    done
    grep -Eq -- "$2" "$1" 2>/dev/null
}

# wait_listening PORT PID: until something listens on 127.0.0.1:PORT (read from
# /proc/net/tcp: a probing connection would attach and, leaving, resume the guest)
wait_listening() {
    i=0
    while ! awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp &&
            [ $i -lt 50 ] && kill -0 "$2" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
}

# ---- the address of start_kernel ----
addr=$(awk '$3 == "start_kernel" { print $1 }' "$L"/pkgroot/boot/System.map-* 2>/dev/null | head -1)
if [ -z "$addr" ]; then
    rm -f "$T/keys"
    mkfifo "$T/keys"
    timeout 120 $RV -m 128 -kernel "$L/vmlinuz" -initrd "$L/initramfs.cpio" -append "$APPEND" -display none \
        -net none -serial stdio -no-reboot <"$T/keys" >"$T/kallsyms.log" 2>"$T/kallsyms.stderr" &
    pid=$!
    exec 3>"$T/keys"
    wait_for "$T/kallsyms.log" 'retrovisor demo guest' $pid
    sleep 0.5
    printf 'grep -w start_kernel /proc/kallsyms; poweroff -f\n' >&3
    wait $pid
    exec 3>&-
    addr=$(tr -d '\r' <"$T/kallsyms.log" | awk '$3 == "start_kernel" { print $1 }' | head -1)
fi
if [ -z "$addr" ]; then
    fail "gdb: no address of start_kernel (System.map has none, /proc/kallsyms gave none: $T/kallsyms.log)"
    exit 1
fi
addr=$(printf '%x' "0x$addr")

# ---- 1. the Linux guest under bt ----
port=$(free_port)
log=$T/linux.log
timeout 300 $RV -m 128 -kernel "$L/vmlinuz" -initrd "$L/initramfs.cpio" -append "$APPEND" -display none -net none \
    -serial "file:$log" -no-reboot -S -gdb "tcp::$port" 2>"$T/linux.stderr" &
pid=$!
wait_listening $port $pid
timeout 120 gdb -batch -nx -ex 'set architecture i386' -ex "target remote 127.0.0.1:$port" \
    -ex 'printf "START %x\n", $eip' \
    -ex "break *0x$addr" -ex continue \
    -ex 'printf "HIT %x\n", $eip' -ex 'info registers' \
    -ex "x/16xb 0x$addr" \
    -ex stepi -ex 'printf "STEP %x\n", $eip' -ex stepi -ex 'printf "STEP %x\n", $eip' \
    -ex stepi -ex 'printf "STEP %x\n", $eip' \
    -ex 'x/4xb 0xfffff000' \
    -ex detach >"$T/gdb-linux.out" 2>&1
out=$T/gdb-linux.out
expect_line "$out" '^START fff0$' "gdb linux: -S stops before the first instruction (eip fff0)"
expect_line "$out" "^HIT $addr\$" "gdb linux: the breakpoint at start_kernel (0x$addr) is hit, eip equals it"
ok=1
for r in eax ecx edx ebx esp ebp esi edi eip eflags cs ss ds es fs gs cr0 cr3; do
    grep -Eq "^$r +0x[0-9a-f]+" "$out" || { ok=0; fail "gdb linux: 'info registers' shows no $r"; }
done
[ $ok = 1 ] && pass "gdb linux: info registers shows the general, segment and control registers"
cr0=$(awk '$1 == "cr0" { print $2 }' "$out")
if [ -n "$cr0" ] && [ $((cr0 & 0x80000001)) -eq $((0x80000001)) ]; then
    pass "gdb linux: cr0 ($cr0) has PE and PG set at start_kernel"
else
    fail "gdb linux: cr0 at start_kernel is '$cr0', expected PE and PG set"
fi
want=$(python3 tests/e2e/gdb_kernel_bytes.py "$L/vmlinuz" "$addr" 16 2>&1)
got=$(grep -A1 "^0x$addr" "$out" | sed 's/^[^:]*://' | tr -s ' \t\n' ' ' | sed 's/0x//g; s/^ //; s/ $//')
if [ -n "$got" ] && [ "$got" = "$want" ]; then
    pass "gdb linux: 16 bytes read at start_kernel through the page tables match the kernel image ($got)"
else
    fail "gdb linux: memory at start_kernel reads '$got', the kernel image has '$want'"
fi
steps=$(grep '^STEP ' "$out" | awk '{ print $2 }' | tr '\n' ' ')
set -- $steps
if [ $# -eq 3 ] && [ "$1" != "$addr" ] && [ "$2" != "$1" ] && [ "$3" != "$2" ]; then
    pass "gdb linux: three single steps, eip changes each time ($addr -> $steps)"
else
    fail "gdb linux: three single steps from $addr gave eip '$steps'"
fi
expect_line "$out" 'Cannot access memory at address 0xfffff000' \
    "gdb linux: an unmapped address reads as an error (E14), not a crash"
expect_line "$out" 'Inferior 1 .* detached' "gdb linux: gdb detaches"

# A raw client: bad input, then a running guest stopped with Ctrl-C.
python3 - "$port" >"$T/raw.out" 2>&1 <<'PYEOF'
import sys, time
sys.path.insert(0, 'tests/e2e')
from rsp_client import Rsp, frame
c = Rsp(sys.argv[1], 10)
c.send(b'$g#00')
while b'-' not in c.buf:
    c.fill()
print('BADSUM', 'nak' if c.buf.startswith(b'-') else repr(c.buf))
c.buf = b''
print('OVERLONG', c.ask(b'm' + b'0' * 6000 + b',4'))
print('UNMAPPED', c.ask('mfffff000,10'))
print('HUGE', len(c.ask('m0,ffffffff')))
print('OUTSIDE', c.ask('Mfffffffe,4:00000000'))
print('BADHEX', c.ask('Mzz,1:00'))
print('BADREG', c.ask('p999'))
print('UNKNOWN', repr(c.ask('qNoSuchQuery')))
c.send(frame(b'c'))
time.sleep(1)
c.send(b'\x03')
print('CTRLC', c.reply())
print('DETACH', c.ask('D'))
c.close()
PYEOF
raw=$T/raw.out
expect_line "$raw" '^BADSUM nak$' "gdb raw: a packet with a bad checksum is answered '-'"
expect_line "$raw" '^OVERLONG E' "gdb raw: a packet longer than the buffer gets an E reply"
expect_line "$raw" '^UNMAPPED E14$' "gdb raw: a read of an unmapped linear address gets E14"
expect_line "$raw" '^HUGE [1-9][0-9]*$' "gdb raw: a read of 4 GiB is answered in part, within the packet size"
expect_line "$raw" '^OUTSIDE E14$' "gdb raw: a write past the end of the linear space gets E14"
expect_line "$raw" '^BADHEX E01$' "gdb raw: a malformed address gets E01"
expect_line "$raw" '^BADREG E01$' "gdb raw: a register number out of range gets E01"
expect_line "$raw" "^UNKNOWN ''\$" "gdb raw: an unknown query gets the empty reply"
expect_line "$raw" '^CTRLC T02' "gdb raw: Ctrl-C stops the running guest (T02)"
expect_line "$raw" '^DETACH OK$' "gdb raw: detach answers OK"
# A client that connects (the guest stops) and goes away without D: the guest runs on, as after a detach.
early=$(grep -c 'retrovisor demo guest' "$log")
python3 -c "
import sys
sys.path.insert(0, 'tests/e2e')
from rsp_client import Rsp
c = Rsp($port, 10)
c.send(b'\$?#3f')
while b'#' not in c.buf:
    c.fill()
print('STOPPED', c.buf.decode())
c.close()" >"$T/raw-leave.out" 2>&1
expect_line "$T/raw-leave.out" '^STOPPED \+\$T05' "gdb raw: a client connecting to a running guest finds it stopped (T05)"
if [ "$early" != 0 ]; then
    fail "gdb linux: the shell was up before the client that leaves without D came: nothing shows it resumes the guest"
elif wait_for "$log" 'retrovisor demo guest' $pid; then
    pass "gdb linux: after the detaches and a client that left without one, the guest boots on to its shell"
else
    fail "gdb linux: the guest did not reach its shell after the detaches: $(tail -2 "$log" | tr '\n' ' ')"
fi
kill $pid 2>/dev/null
wait $pid 2>/dev/null

# ---- 2. SeaBIOS from its reset vector, under both engines ----
for engine in interp bt; do
    port=$(free_port)
    log=$T/bios-$engine.log
    timeout 120 $RV -accel $engine -m 32 -display none -net none -serial none -debugcon "file:$log" -no-reboot \
        -S -gdb "tcp::$port" 2>"$T/bios-$engine.stderr" &
    pid=$!
    wait_listening $port $pid
    # The reset vector's far jump goes to F000:E05B (linear 0xfe05b).
    timeout 120 gdb -batch -nx -ex 'set architecture i8086' -ex "target remote 127.0.0.1:$port" \
        -ex 'break *0xfe05b' -ex continue -ex 'printf "HIT %x %x\n", $cs, $eip' -ex 'delete' \
        -ex stepi -ex 'printf "STEP %x\n", $eip' -ex stepi -ex 'printf "STEP %x\n", $eip' \
        -ex stepi -ex 'printf "STEP %x\n", $eip' \
        -ex 'watch *(unsigned short *)0x413' -ex continue -ex 'printf "BASEMEM %d\n", *(unsigned short *)0x413' \
        -ex 'delete' -ex detach >"$T/gdb-bios-$engine.out" 2>&1
    out=$T/gdb-bios-$engine.out
    expect_line "$out" '^HIT f000 e05b$' "gdb bios $engine: the breakpoint at SeaBIOS's entry F000:E05B is hit"
    steps=$(grep '^STEP ' "$out" | awk '{ print $2 }' | tr '\n' ' ')
    set -- $steps
    if [ $# -eq 3 ] && [ "$1" != "e05b" ] && [ "$2" != "$1" ] && [ "$3" != "$2" ]; then
        pass "gdb bios $engine: three single steps in real mode, eip changes each time (e05b -> $steps)"
    else
        fail "gdb bios $engine: three single steps from e05b gave eip '$steps'"
    fi
    # The BIOS data area's base memory size (KiB) at 0x413, which SeaBIOS sets early.
    newval=$(sed -n 's/^New value = \([0-9]*\)$/\1/p' "$out" | head -1)
    if grep -q '^Hardware watchpoint 2: \*(unsigned short \*)0x413' "$out" && [ -n "$newval" ] && [ "$newval" != 0 ] &&
            grep -q "^BASEMEM $newval\$" "$out"; then
        pass "gdb bios $engine: a write watchpoint stops when SeaBIOS stores the base memory size at 0x413 ($newval KiB)"
    else
        fail "gdb bios $engine: the write watchpoint on 0x413 did not report SeaBIOS's store ($out)"
    fi
    expect_line "$out" 'Inferior 1 .* detached' "gdb bios $engine: gdb detaches"
    # With no disk, the end of SeaBIOS's POST (well after 0x413 is set).
    if wait_for "$log" 'No bootable device' $pid; then
        pass "gdb bios $engine: after the detach SeaBIOS runs on to the end of its POST"
    else
        fail "gdb bios $engine: SeaBIOS did not reach the end of its POST after the detach ($log)"
    fi
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null
done

# ---- 3. a breakpoint at the top of a loop that bt translates as one block jumping to itself ----
rom=$T/self_loop.bin
if ! nasm -f bin tests/guest/self_loop.asm -o "$rom" -l "$T/self_loop.lst" 2>"$T/nasm.log"; then
    fail "gdb loop: nasm failed on self_loop.asm: $(head -2 "$T/nasm.log")"
    exit 0
fi
# The ROM runs from physical 0xf0000 with flat segments: loop_top's linear address is 0xf0000 + its offset.
off=$(awk '/loop_top:$/ { getline; print $2; exit }' "$T/self_loop.lst")
loop=$(printf '%x' $((0xf0000 + 0x$off)))
for engine in bt interp; do
    port=$(free_port)
    timeout 120 $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -S -gdb "tcp::$port"         >"$T/loop-$engine.stdout" 2>&1 &
    pid=$!
    wait_listening $port $pid
    timeout 60 gdb -batch -nx -ex 'set architecture i386' -ex "target remote 127.0.0.1:$port"         -ex "break *0x$loop" -ex continue -ex 'printf "ECX %d %x\n", $ecx, $eip'         -ex continue -ex 'printf "ECX %d %x\n", $ecx, $eip' -ex continue -ex 'printf "ECX %d %x\n", $ecx, $eip'         -ex detach >"$T/gdb-loop-$engine.out" 2>&1
    wait $pid
    rc=$?
    # gdb steps over a breakpoint it stopped at before it continues, so the
    # block at the loop's top is entered by its own jump back only when a
    # client continues from there at once, as this raw one does.
    port=$(free_port)
    timeout 120 $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -S -gdb "tcp::$port" \
        >"$T/loop-raw-$engine.stdout" 2>&1 &
    rawpid=$!
    wait_listening $port $rawpid
    python3 - "$port" "$loop" $engine >"$T/loop-raw-$engine.out" 2>&1 <<'PYEOF'
import sys
sys.path.insert(0, 'tests/e2e')
from rsp_client import Rsp
c = Rsp(sys.argv[1])
ask = c.ask
print('Z0', ask('Z0,' + sys.argv[2] + ',1'))
for k in range(3):
    stop = ask('c')
    ecx = int.from_bytes(bytes.fromhex(ask('p1')), 'little')
    eip = int.from_bytes(bytes.fromhex(ask('p8')), 'little')
    print('ECX %d %x %s' % (ecx, eip, stop))
print('z0', ask('z0,' + sys.argv[2] + ',1'))
# Memory the ROM does not use: M, then X with bytes that must be escaped ('}' and '#').
print('M', ask('M3000,4:deadbeef'), ask('m3000,4'))
print('X', ask(b'X3000,2:}]}\x03'), ask('m3000,4'))
print('REGS', len(ask('g')))
print('XML', ask('qXfer:features:read:target.xml:0,40')[:1])
if sys.argv[3] == 'interp':
    c.send(b'$k#6b')
    print('K sent')
else:
    print('D', ask('D'))
PYEOF
    wait $rawpid
    rawrc=$?
    raw=$T/loop-raw-$engine.out
    expect_line "$raw" '^M OK deadbeef$' "gdb raw: under -accel $engine M writes guest memory that m reads back"
    expect_line "$raw" '^X OK 7d23beef$' "gdb raw: under -accel $engine X writes escaped binary data"
    expect_line "$raw" '^REGS 384$' "gdb raw: under -accel $engine g returns the 36 registers of the target description"
    expect_line "$raw" '^XML m$' "gdb raw: under -accel $engine qXfer reads target.xml in parts"
    if [ $engine = interp ]; then
        if [ $rawrc -eq 0 ]; then
            pass "gdb raw: k ends retrovisor (status 0)"
        else
            fail "gdb raw: after k retrovisor ended with status $rawrc"
        fi
    fi
    rawhits=$(awk -v a="$loop" '$1 == "ECX" && $3 == a { print $2 }' "$T/loop-raw-$engine.out" | tr '\n' ' ')
    set -- $rawhits
    if [ $# -eq 3 ] && [ $(($1 - $2)) -ge 0 ] && [ $(($1 - $2)) -le 1 ] && [ $(($2 - $3)) -ge 0 ] &&
            [ $(($2 - $3)) -le 1 ] && [ $3 -lt $1 ]; then
        pass "gdb loop: under -accel $engine continuing from the breakpoint itself stops at the next turn (ECX $rawhits)"
    else
        fail "gdb loop: under -accel $engine continuing from the breakpoint at 0x$loop gave ECX '$rawhits' ($T/loop-raw-$engine.out)"
    fi
    hits=$(awk -v a="$loop" '$1 == "ECX" && $3 == a { print $2 }' "$T/gdb-loop-$engine.out" | tr '\n' ' ')
    set -- $hits
    # Each stop is the next arrival at the loop's top: ECX counts down by one a
    # turn (by none when a timer interrupt returned there in between).
    if [ $# -eq 3 ] && [ $(($1 - $2)) -ge 0 ] && [ $(($1 - $2)) -le 1 ] && [ $(($2 - $3)) -ge 0 ] &&
            [ $(($2 - $3)) -le 1 ] && [ $3 -lt $1 ]; then
        pass "gdb loop: under -accel $engine a breakpoint at a self-looping block's top stops every turn (ECX $hits)"
    else
        fail "gdb loop: under -accel $engine the breakpoint at the loop's top 0x$loop gave ECX '$hits' ($T/gdb-loop-$engine.out)"
    fi
    if [ $rc -eq 33 ]; then
        pass "gdb loop: under -accel $engine the ROM runs to its end after the detach (status 33)"
    else
        fail "gdb loop: under -accel $engine the ROM ended with status $rc after the detach (33 expected)"
    fi
done

# ---- 4. watchpoints on known accesses ----
rom=$T/watch_access.bin
if ! nasm -f bin tests/guest/watch_access.asm -o "$rom" -l "$T/watch_access.lst" 2>"$T/nasm-watch.log"; then
    fail "gdb watch: nasm failed on watch_access.asm: $(head -2 "$T/nasm-watch.log")"
    exit 0
fi
# label NAME: the linear address of the instruction at NAME (the ROM runs at 0xf0000).
label() {
    off=$(awk -v l="$1:" '$2 == l { f = 1; next } f && $2 ~ /^[0-9A-F]+$/ && length($2) == 8 { print $2; exit }' \
        "$T/watch_access.lst")
    [ -n "$off" ] && printf '%x' $((0xf0000 + 0x$off))
}
after_store=$(label after_store)
after_load=$(label after_load)
after_same_store=$(label after_same_store)
after_overlap_load=$(label after_overlap_load)
after_rmw=$(label after_rmw)
rep_store=$(label rep_store)
after_beside=$(label after_beside)
for engine in interp bt; do
    port=$(free_port)
    timeout 120 $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -S -gdb "tcp::$port" \
        >"$T/watch-$engine.stdout" 2>&1 &
    pid=$!
    wait_listening $port $pid
    timeout 60 gdb -batch -nx -ex 'set architecture i386' -ex "target remote 127.0.0.1:$port" \
        -ex 'awatch *(int *)0x5000' -ex continue -ex 'printf "STOP %x\n", $eip' \
        -ex continue -ex 'printf "STOP %x\n", $eip' -ex delete \
        -ex 'rwatch *(int *)0x5000' -ex continue -ex 'printf "STOP %x\n", $eip' \
        -ex continue -ex 'printf "STOP %x\n", $eip' -ex delete \
        -ex 'watch *(int *)0x5000' -ex continue -ex 'printf "STOP %x ECX %d\n", $eip, $ecx' -ex delete \
        -ex detach >"$T/gdb-watch-$engine.out" 2>&1
    wait $pid
    rc=$?
    out=$T/gdb-watch-$engine.out
    stops=$(sed -n 's/^STOP //p' "$out" | tr '\n' ' ' | sed 's/ $//')
    want="$after_store $after_load $after_overlap_load $after_rmw $rep_store ECX 1"
    if [ "$(grep -c '^Hardware access (read/write) watchpoint 1: ' "$out")" -ge 3 ] &&
            [ "$(grep -c '^Hardware read watchpoint 2: ' "$out")" -ge 3 ] && [ "$stops" = "$want" ]; then
        pass "gdb watch: under -accel $engine awatch, rwatch and watch stop after the accessing instructions ($stops)"
    else
        fail "gdb watch: under -accel $engine the stops were '$stops', expected '$want' ($out)"
    fi
    if [ $rc -eq 33 ]; then
        pass "gdb watch: under -accel $engine the ROM runs to its end after the detach (status 33)"
    else
        fail "gdb watch: under -accel $engine the ROM ended with status $rc after the detach (33 expected)"
    fi

    port=$(free_port)
    timeout 120 $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -S -gdb "tcp::$port" \
        >"$T/watch-raw-$engine.stdout" 2>&1 &
    pid=$!
    wait_listening $port $pid
    python3 - "$port" >"$T/watch-raw-$engine.out" 2>&1 <<'PYEOF'
import sys
sys.path.insert(0, 'tests/e2e')
from rsp_client import Rsp
ask = Rsp(sys.argv[1]).ask
def cont(tag):
    stop = ask('c')
    eip = int.from_bytes(bytes.fromhex(ask('p8')), 'little') if stop.startswith('T') else 0
    print(tag, stop, '%x' % eip)
print('Z2', ask('Z2,5000,4'))
cont('WRITE')
cont('SAMEWRITE')
print('z2', ask('z2,5000,4'))
print('Z4', ask('Z4,5003,1'))
cont('ACCESS')
print('z4', ask('z4,5003,1'))
print('BADLEN', ask('Z3,5000,0'), ask('Z4,5000,41'), ask('Z2,ffffffff,2'))
print('FILL', ' '.join(ask('Z2,%x,4' % (0x6000 + 16 * k)) for k in range(8)))
print('TOOMANY', ask('Z3,5000,4'))
print('UNFILL', ' '.join(ask('z2,%x,4' % (0x6000 + 16 * k)) for k in range(8)))
print('Z4', ask('Z4,5000,4'), ask('z4,5000,4'))
print('Z3', ask('Z3,5004,4'))
cont('READ')
print('z3', ask('z3,5004,4'))
print('END', ask('c'))
PYEOF
    wait $pid
    rawrc=$?
    raw=$T/watch-raw-$engine.out
    expect_line "$raw" "^WRITE T05watch:5000;thread:01; $after_store\$" \
        "gdb watch raw: under -accel $engine Z2 stops after a store with watch:5000"
    expect_line "$raw" "^SAMEWRITE T05watch:5000;thread:01; $after_same_store\$" \
        "gdb watch raw: under -accel $engine a store of the value already there stops too, as on hardware"
    expect_line "$raw" "^ACCESS T05awatch:5003;thread:01; $after_overlap_load\$" \
        "gdb watch raw: under -accel $engine Z4 on one byte stops after a load that overlaps it, with awatch:5003"
    expect_line "$raw" '^BADLEN E[0-9a-f]{2} E[0-9a-f]{2} E[0-9a-f]{2}$' \
        "gdb watch raw: under -accel $engine lengths 0 and 65 and a range past 4 GiB get E replies"
    expect_line "$raw" '^FILL OK OK OK OK OK OK OK OK$' "gdb watch raw: under -accel $engine 8 watchpoints are accepted"
    expect_line "$raw" '^TOOMANY E[0-9a-f]{2}$' "gdb watch raw: under -accel $engine a ninth gets an E reply"
    expect_line "$raw" "^READ T05rwatch:5004;thread:01; $after_beside\$" \
        "gdb watch raw: under -accel $engine removed watchpoints stay quiet and Z3 stops after the read with rwatch:5004"
    expect_line "$raw" '^END W21$' "gdb watch raw: under -accel $engine with all removed the ROM runs to its end (W21)"
    [ $rawrc -eq 33 ] || fail "gdb watch raw: under -accel $engine the ROM ended with status $rawrc (33 expected)"
done
exit 0
