#!/bin/sh
# The instructions a 64-bit host cannot run (DAA DAS AAA AAS AAM AAD, AAM 0,
# BOUND, PUSHA/POPA, INTO, LES/LDS, ARPL: tests/guest/sdm_insns.asm) under
# both engines, whose outputs must be the same byte for byte, and, when
# qemu-system-i386 is installed, under QEMU TCG, whose output is recorded now
# and compared with ours.  (Their values against the SDM's pseudo-code:
# tests/unit/test_interp_sdm.c.)
#
# Known QEMU deviation, masked explicitly: flags the SDM leaves undefined.
# QEMU's AAA/AAS leave SF, ZF, PF and OF as they were; retrovisor sets SF,
# ZF and PF from AL and clears OF, as the P6 does.  So only the defined
# flags are compared with QEMU: AAA/AAS CF AF; DAA/DAS all but OF; AAM/AAD
# SF ZF PF.  Everything else (registers, memory, exceptions) whole.
. tests/e2e/lib.sh

rom="$E2E_TMP/sdm-insns.bin"
if ! nasm -f bin tests/guest/sdm_insns.asm -o "$rom" 2>"$E2E_TMP/sdm-nasm.log"; then
    fail "sdm_rom: nasm failed: $(head -3 "$E2E_TMP/sdm-nasm.log")"
    exit 1
fi

# run_rom NAME CMD...: the ROM's debug console into $E2E_TMP/sdm-NAME.txt;
# true when it ended through isa-debug-exit with 0x10 (status 33) after its END line.
run_rom() {
    name=$1
    shift
    out="$E2E_TMP/sdm-$name.txt"
    rm -f "$out"
    "$@" -debugcon "file:$out" >"$E2E_TMP/sdm-$name.log" 2>&1
    rc=$?
    if [ $rc -ne 33 ]; then
        fail "sdm_rom: the ROM under $name ended with status $rc (33 expected): $(tail -1 "$E2E_TMP/sdm-$name.log")"
        return 1
    fi
    if ! grep -q '^END' "$out"; then
        fail "sdm_rom: no END line from the ROM under $name"
        return 1
    fi
    return 0
}

ok=true
for engine in interp bt; do
    run_rom $engine $RV -accel $engine -bios "$rom" -display none -serial none -m 16 -max-insns 50000000 || ok=false
done
$ok || exit 0

lines=$(wc -l <"$E2E_TMP/sdm-interp.txt")
# Each family has its lines (a missing one would make the comparisons empty).
missing=
for tag in DAA DAS AAA AAS AAM AAD AAM0 BOUND16 BOUND32 BOUNDREG PUSHA PUSHAD POPA POPAD INTO \
           LES16 LES32 LDS16 LDS32 LESREG ARPLREAL ARPL ARPLMEM; do
    grep -q "^$tag " "$E2E_TMP/sdm-interp.txt" || missing="$missing $tag"
done
if [ -n "$missing" ]; then
    fail "sdm_rom: no lines for$missing"
elif cmp -s "$E2E_TMP/sdm-interp.txt" "$E2E_TMP/sdm-bt.txt"; then
    pass "sdm_rom: $lines lines of BCD, AAM 0, BOUND, PUSHA/POPA, INTO, LES/LDS and ARPL results are the same under -accel interp and bt"
else
    fail "sdm_rom: -accel interp and bt differ: $(diff "$E2E_TMP/sdm-interp.txt" "$E2E_TMP/sdm-bt.txt" | head -3 | tr '\n' ' ')"
fi

if ! command -v qemu-system-i386 >/dev/null 2>&1; then
    echo "SKIP sdm_rom: qemu-system-i386 is not installed, so the ROM's results are not compared with QEMU TCG's"
    exit 0
fi
run_rom qemu qemu-system-i386 -accel tcg -nodefaults -bios "$rom" -display none -serial none -monitor none -m 16 \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 || exit 0

# mask_undefined < results: the last field (flags after) of the BCD lines
# reduced to the flags the SDM defines for them.
mask_undefined() {
    awk '
    function band(a, b,   r, bit) {
        r = 0
        for (bit = 1; bit <= 2048; bit *= 2)
            if (int(a / bit) % 2 && int(b / bit) % 2)
                r += bit
        return r
    }
    function hexval(s,   v, k, d) {
        v = 0
        for (k = 1; k <= length(s); k++) {
            d = index("0123456789ABCDEF", substr(toupper(s), k, 1)) - 1
            v = v * 16 + d
        }
        return v
    }
    BEGIN {
        # (decimal: mawk reads no hex constants)
        defined["AAA"] = 17; defined["AAS"] = 17             # 0x011: CF AF
        defined["DAA"] = 213; defined["DAS"] = 213           # 0x0D5: all but OF
        defined["AAM"] = 196; defined["AAD"] = 196           # 0x0C4: SF ZF PF
    }
    ($1 in defined) { $NF = sprintf("%04X", band(hexval($NF), defined[$1])) }
    { print }'
}

mask_undefined <"$E2E_TMP/sdm-interp.txt" >"$E2E_TMP/sdm-interp.masked"
mask_undefined <"$E2E_TMP/sdm-qemu.txt" >"$E2E_TMP/sdm-qemu.masked"
undefined_only=$(diff "$E2E_TMP/sdm-interp.txt" "$E2E_TMP/sdm-qemu.txt" | grep -c '^<')
if cmp -s "$E2E_TMP/sdm-interp.masked" "$E2E_TMP/sdm-qemu.masked"; then
    pass "sdm_rom: the same $lines lines as QEMU TCG's, recorded now ($undefined_only differ only in flags the SDM leaves undefined)"
else
    fail "sdm_rom: QEMU TCG's results differ: $(diff "$E2E_TMP/sdm-interp.masked" "$E2E_TMP/sdm-qemu.masked" | head -3 | tr '\n' ' ')"
fi
