#!/bin/sh
# The translation cache from the command line: the same guest loop ends the
# same way under both engines, timer interrupts reach translated code, -d out_asm shows the guest block and the host code made for it, and
# -accel rejects engines that do not exist with one line and status 2.
# (Engine equivalence in depth is tests/unit/test_bt_fuzz.c.)
. tests/e2e/lib.sh

# assemble ASM BIN: nasm tests/guest/ASM into BIN; false (and a failure) if it fails.
assemble() {
    nasm -f bin "tests/guest/$1" -o "$2" 2>"$E2E_TMP/bt-nasm.log" && return 0
    fail "bt: nasm failed on $1: $(head -3 "$E2E_TMP/bt-nasm.log")"
    return 1
}

# expect_exit33 BIN ENGINE MAX-INSNS WHAT: BIN as the BIOS under -accel ENGINE
# must leave through isa-debug-exit with 0x10 (status 33); -max-insns turns a
# hang into a failure.  WHAT says what that shows.
expect_exit33() {
    $RV -accel "$2" -bios "$1" -display none -serial none -m 16 -max-insns "$3" >"$1.$2.out" 2>&1
    rc=$?
    if [ $rc -eq 33 ]; then
        pass "bt: $4 under -accel $2"
    else
        fail "bt: $(basename "$1") under -accel $2 ended with status $rc (33 expected): $(tail -1 "$1.$2.out")"
    fi
}

rom="$E2E_TMP/bt-loop.bin"
if ! nasm -f bin -DITERATIONS=100000 tests/guest/bench_loop.asm -o "$rom" 2>"$E2E_TMP/bt-nasm.log"; then
    fail "bt: nasm failed: $(head -3 "$E2E_TMP/bt-nasm.log")"
    exit 1
fi

# The loop exits through isa-debug-exit with 0x10: status (0x10 << 1) | 1.
for engine in bt interp; do
    $RV -accel $engine -bios "$rom" -display none -serial none -m 16 >"$E2E_TMP/bt-$engine.out" 2>&1
    rc=$?
    if [ $rc -eq 33 ]; then
        pass "bt: the loop ROM runs to its exit port under -accel $engine"
    else
        fail "bt: the loop ROM under -accel $engine ended with status $rc: $(tail -2 "$E2E_TMP/bt-$engine.out")"
    fi
done

# Interrupts after an STI in the middle of a block reach a loop of native
# instructions (the STI shadow must end there).  -max-insns turns a hang into
# a failure.
irq="$E2E_TMP/bt-irq.bin"
if assemble irq_wait.asm "$irq"; then
    for engine in bt interp; do
        expect_exit33 "$irq" $engine 200000000 "timer interrupts reach a native wait loop after STI"
    done
fi

# A CALL first in its block, with its stack page in the TLB after the first
# round: the ESP it writes must reach struct cpu at the block's exit.
call_rom="$E2E_TMP/bt-call.bin"
if assemble call_first.asm "$call_rom"; then
    expect_exit33 "$call_rom" bt 1000000 "CALL at the start of a block keeps ESP (1000 rounds)"
fi

# A loop that is one block jumping to its own start: bt keeps its flags in
# the host across the jump back and skips the entry check of EDI.  Timer
# interrupts at the loop's top must see EFLAGS as the loop left them, and the
# final state must be the interpreter's.
loop_rom="$E2E_TMP/bt-self-loop.bin"
if nasm -f bin tests/guest/self_loop.asm -o "$loop_rom" 2>"$E2E_TMP/bt-nasm.log"; then
    for engine in bt interp; do
        $RV -accel $engine -bios "$loop_rom" -display none -serial none -m 16 -max-insns 200000000 \
            -debugcon "file:$E2E_TMP/bt-self-loop-$engine.txt" >"$E2E_TMP/bt-self-loop-$engine.out" 2>&1
        rc=$?
        if [ $rc -eq 33 ]; then
            pass "bt: interrupts at a self-looping block's top see its flags under -accel $engine"
        else
            fail "bt: the self-loop ROM under -accel $engine ended with status $rc (33 expected; 35: EFLAGS did not match ECX)"
        fi
    done
    if [ -s "$E2E_TMP/bt-self-loop-bt.txt" ] &&
        [ "$(head -7 "$E2E_TMP/bt-self-loop-bt.txt")" = "$(head -7 "$E2E_TMP/bt-self-loop-interp.txt")" ]; then
        pass "bt: a self-looping block ends with the interpreter's registers and EFLAGS"
    else
        fail "bt: the self-loop ROM's registers differ: bt $(head -7 "$E2E_TMP/bt-self-loop-bt.txt" | tr '\n' ' '), interp $(head -7 "$E2E_TMP/bt-self-loop-interp.txt" | tr '\n' ' ')"
    fi
    checks=$(sed -n 8p "$E2E_TMP/bt-self-loop-bt.txt")
    if [ -n "$checks" ] && [ "$checks" != 00000000 ]; then
        pass "bt: timer interrupts came in at the self-looping block's top (0x$checks times)"
    else
        fail "bt: no timer interrupt came in at the self-looping block's top"
    fi
else
    fail "bt: nasm failed on self_loop.asm: $(head -3 "$E2E_TMP/bt-nasm.log")"
fi

# [EBX + disp] operands whose page is reached only by wrapping at 4 GiB: the
# base register's entry check must refuse them (else the access lands 4 GiB
# past the page's host address).
wrap_rom="$E2E_TMP/bt-base-wrap.bin"
if assemble base_wrap.asm "$wrap_rom"; then
    expect_exit33 "$wrap_rom" bt 1000000 "[reg + disp] operands that wrap at 4 GiB read what was stored (1000 rounds)"
fi

# A block whose covered [ESP + disp] page leaves the TLB before every entry
# (INVLPG in the loop's other block): its entry check fails each round, and
# bt_run must fill the TLB and run it again without losing a store.
refill_rom="$E2E_TMP/bt-covered-refill.bin"
if assemble covered_refill.asm "$refill_rom"; then
    expect_exit33 "$refill_rom" bt 1000000 "a block whose covered page left the TLB runs again (1000 rounds)"
    expect_exit33 "$refill_rom" interp 1000000 "the same loop"
fi

# A carry that crosses blocks: through a chained jump (the flags in AX,
# put back into the host's by the block that reads them) and through a
# side exit, into INC (which keeps CF) and ADC.
carry_rom="$E2E_TMP/bt-flags-chain.bin"
if assemble flags_chain.asm "$carry_rom"; then
    expect_exit33 "$carry_rom" bt 10000000 "a 64-bit sum whose carry crosses chained blocks and a side exit (100000 rounds)"
    expect_exit33 "$carry_rom" interp 10000000 "the same sum"
fi

# An instruction that crosses into the next page, last in a block run from
# RAM under paging: after the second page is remapped, and after stores into
# either page, each round must add the immediate the bytes say now.
cross_rom="$E2E_TMP/bt-page-cross.bin"
if assemble page_cross.asm "$cross_rom"; then
    for engine in bt interp; do
        # (status 35-41: the phase that went wrong)
        expect_exit33 "$cross_rom" $engine 10000000 "a page-crossing instruction follows remaps and stores of both its pages"
    done
fi

trace="$E2E_TMP/bt-out_asm.txt"
$RV -bios "$rom" -display none -serial none -m 16 -d out_asm -D "$trace" -max-insns 5000 >/dev/null 2>&1
expect_line "$trace" '^IN: ' "bt: -d out_asm names each translated block"
expect_line "$trace" 'add eax, ecx' "bt: -d out_asm disassembles the guest loop (add eax, ecx)"
expect_line "$trace" '^OUT: [0-9]+ bytes' "bt: -d out_asm lists the host code of each block"
expect_line "$trace" 'pushfq|lahf' "bt: the loop's flags come from the host (pushfq or lahf in the host code)"

# -d bt: the cache's totals and the threaded opcodes (the loop ROM's OUT is
# threaded; the loop itself is native and runs 100000 rounds from the cache).
stats="$E2E_TMP/bt-stats.txt"
$RV -bios "$rom" -display none -serial none -m 16 -d bt -D "$stats" >/dev/null 2>&1
expect_line "$stats" '^bt: [1-9][0-9]* blocks translated, 0 invalidated, [0-9]+ flushes, [1-9][0-9]* block entries' \
    "bt: -d bt prints the translation cache's totals at exit"
expect_line "$stats" '^bt: +e6 +[1-9]' "bt: -d bt counts the threaded OUT (opcode e6)"

for bad in kvm nonsense; do
    $RV -accel $bad -display none >"$E2E_TMP/bt-accel.out" 2>&1
    rc=$?
    lines=$(wc -l <"$E2E_TMP/bt-accel.out")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q "^retrovisor: -accel $bad" "$E2E_TMP/bt-accel.out"; then
        pass "bt: -accel $bad is refused with one line and status 2"
    else
        fail "bt: -accel $bad: status $rc, output: $(head -2 "$E2E_TMP/bt-accel.out")"
    fi
done
