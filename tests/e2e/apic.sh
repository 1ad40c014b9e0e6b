#!/bin/sh
# The local and I/O APIC from a guest's side (tests/guest/apic_check.asm, a
# Multiboot kernel): IA32_APIC_BASE and CPUID, self-IPI and EOI, TPR, an
# illegal vector's ESR bit, self-NMI, the timer waking HLT, the PIT through
# I/O APIC pin 2, #GP on an unknown MSR and on x2APIC enable, the APIC page
# moved over RAM and back, the APIC disabled in the MSR.  Under both engines.
# Each of the kernel's checks must print "ok NAME"; it exits with status 33.
. tests/e2e/lib.sh

kernel="$E2E_TMP/apic_check.bin"
if ! nasm -f bin tests/guest/apic_check.asm -o "$kernel" 2>"$E2E_TMP/apic-nasm.log"; then
    fail "apic: nasm failed: $(head -3 "$E2E_TMP/apic-nasm.log")"
    exit 1
fi
# The names of the checks, from the source: every one must report.
names=$(sed -n 's/^ *expect .*, "\([a-z0-9-]*\)"$/\1/p' tests/guest/apic_check.asm)

for engine in bt interp; do
    out="$E2E_TMP/apic-$engine.txt"
    timeout 120 $RV -accel "$engine" -kernel "$kernel" -display none -serial "file:$out" -no-reboot \
        >"$out.stderr" 2>&1
    rc=$?
    if [ $rc -eq 33 ]; then pass "apic $engine: the kernel ran to its exit (status 33)"
    else fail "apic $engine: exit status $rc, expected 33: $(tail -2 "$out.stderr" | tr '\n' ' ')"; fi
    for n in $names; do
        if grep -qx "ok $n" "$out"; then pass "apic $engine: $n"
        else fail "apic $engine: $n: $(grep -E "^bad $n( |$)" "$out" || echo 'not reported')"; fi
    done
    if grep -q '^bad' "$out"; then fail "apic $engine: $(grep '^bad' "$out" | head -3 | tr '\n' ' ')"; fi
done
