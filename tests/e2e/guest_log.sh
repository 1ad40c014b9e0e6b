#!/bin/sh
# Guest-triggered log lines are rate-limited per kind (issue 26 #4): a guest
# that executes 10^6 undefined opcodes at distinct addresses, then reads 1000
# MSRs the CPU does not model, leaves fewer than 100 lines on stderr under
# both engines, and the count of held-back lines printed at the end adds up
# to what the guest did.
. tests/e2e/lib.sh

COUNT=1000000
MSRS=1000
rom="$E2E_TMP/undefined_flood.bin"
if ! nasm -f bin -DCOUNT=$COUNT -DMSRS=$MSRS tests/guest/undefined_flood.asm -o "$rom" 2>"$E2E_TMP/guest_log-nasm.log"; then
    fail "guest_log: nasm failed: $(head -3 "$E2E_TMP/guest_log-nasm.log")"
    exit 1
fi

# kind_total FILE KIND: the lines of that kind printed plus those reported suppressed.
kind_total() {
    shown=$(grep -c "^retrovisor: $2 " "$1")
    held=$(sed -n "s/^retrovisor: \([0-9]*\) more '$3' lines were suppressed$/\1/p" "$1")
    echo $((shown + ${held:-0}))
}

for engine in bt interp; do
    err="$E2E_TMP/guest_log-$engine.err"
    $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -max-insns 100000000 >/dev/null 2>"$err"
    rc=$?
    lines=$(wc -l <"$err")
    if [ $rc -ne 33 ]; then
        fail "guest_log: the flood ROM under -accel $engine ended with status $rc (33 expected): $(tail -1 "$err")"
    elif [ "$lines" -ge 100 ]; then
        fail "guest_log: $lines lines on stderr under -accel $engine (fewer than 100 expected)"
    else
        pass "guest_log: $COUNT undefined opcodes and $MSRS unmodelled MSRs give $lines stderr lines under -accel $engine"
    fi
    ud=$(kind_total "$err" "undefined opcode at" "undefined opcode")
    msr=$(kind_total "$err" "rdmsr of unmodelled MSR" "unmodelled MSR")
    if [ "$ud" -eq $COUNT ] && [ "$msr" -eq $MSRS ]; then
        pass "guest_log: the suppressed counts add up ($ud opcodes, $msr MSRs) under -accel $engine"
    else
        fail "guest_log: counted $ud undefined opcodes (want $COUNT) and $msr MSRs (want $MSRS) under -accel $engine"
    fi
done

# Triple faults are a guest-log kind too, and a run that ends with status 0
# says why: a ROM that triple-faults at once is restarted by every reset
# until -max-insns ends the run (one line says so), and every start shows on
# COM1, so the printed and suppressed triple faults must add up to the starts
# (the last start may be cut short by the budget).  Under -no-reboot the
# first one ends the run, with one line naming it.
tf_rom="$E2E_TMP/triple_fault.bin"
nasm -f bin tests/guest/triple_fault.asm -o "$tf_rom" 2>"$E2E_TMP/guest_log-nasm.log" ||
    fail "guest_log: nasm failed on triple_fault.asm: $(head -3 "$E2E_TMP/guest_log-nasm.log")"
for engine in bt interp; do
    err="$E2E_TMP/triple-$engine.err" ser="$E2E_TMP/triple-$engine.serial"
    $RV -accel $engine -bios "$tf_rom" -display none -serial "file:$ser" -m 16 -max-insns 3000 >/dev/null 2>"$err"
    rc=$?
    starts=$(tr -cd R <"$ser" | wc -c)
    faults=$(kind_total "$err" "triple fault at" "triple fault")
    if [ $rc -eq 0 ] && [ "$starts" -gt 20 ] && [ "$faults" -le "$starts" ] && [ "$faults" -ge $((starts - 1)) ] &&
            [ "$(wc -l <"$err")" -le 13 ] && grep -q '^retrovisor: -max-insns: the run ends after 300[0-9] instructions$' "$err"; then
        pass "guest_log: $starts starts of a triple-faulting ROM under -accel $engine: $faults triple faults counted in $(wc -l <"$err") lines, and the budget's end said"
    else
        fail "guest_log: triple faults under -accel $engine: status $rc, $starts starts, $faults counted, stderr: $(tail -3 "$err" | tr '\n' '|')"
    fi
    $RV -accel $engine -bios "$tf_rom" -display none -serial "file:$ser" -m 16 -no-reboot -max-insns 3000 >/dev/null 2>"$err"
    rc=$?
    if [ $rc -eq 0 ] && [ "$(tr -cd R <"$ser" | wc -c)" -eq 1 ] && [ "$(wc -l <"$err")" -eq 1 ] &&
            grep -q '^retrovisor: triple fault at 0008:000f[0-9a-f]*: the machine resets (-no-reboot: the run ends)$' "$err"; then
        pass "guest_log: under -accel $engine and -no-reboot the first triple fault ends the run, with one line naming it"
    else
        fail "guest_log: -no-reboot triple fault under -accel $engine: status $rc, stderr: $(head -3 "$err" | tr '\n' '|')"
    fi
done
