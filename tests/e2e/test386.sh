#!/bin/sh
# test386.asm (../shared/testsuites/test386, written elsewhere) runs as the BIOS.
# Two builds: the default 64 KiB ROM printing its 0xEE results to port 0xE9
# (retrovisor's debug console), and the 128 KiB ROM (adds the TSS task-switch
# test 0x22) printing them through COM1.  Both with TEST_UNDEF off and
# CPU_FAMILY set to the family our CPUID reports.
# Each must end on POST 0xFF, and its 0xEE output must equal the reference.
. tests/e2e/lib.sh

SRC=${TEST386_DIR:-../shared/testsuites/test386}
if [ ! -f "$SRC/src/test386.asm" ]; then
    fail "test386: $SRC/src/test386.asm not found (../shared must sit beside the checkout)"
    exit 1
fi
family=$(sed -n 's/^#define CPU_FAMILY \([0-9]*\).*/\1/p' monitor/interp.h)

# post_name CODE: the test a POST code stands for, from the README's table.
post_name() {
    grep -i "^| 0x$1 " "$SRC/README.md" | cut -d'|' -f3 | sed 's/^ *//; s/ *$//'
}

build() { # build DIR ROM128 OUT_PORT COM_PORT
    dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$SRC/src" "$dir/"
    sed -i -e "s/^ROM128 equ .*/ROM128 equ $2/" -e "s/^OUT_PORT equ .*/OUT_PORT equ $3/" \
        -e "s/^COM_PORT equ .*/COM_PORT equ $4/" -e "s/^TEST_UNDEF equ .*/TEST_UNDEF equ 0/" \
        -e "s/^CPU_FAMILY equ .*/CPU_FAMILY equ $family/" "$dir/src/configuration.asm"
    (cd "$dir" && nasm -i./src/ -f bin src/test386.asm -w-all -l test386.lst -o test386.bin) \
        >"$dir/nasm.log" 2>&1
}

run_case() { # run_case NAME ROM128 OUT_PORT COM_PORT
    name=$1
    dir="$E2E_TMP/test386-$name"
    if ! build "$dir" "$2" "$3" "$4"; then
        fail "test386 $name: nasm failed: $(tail -3 "$dir/nasm.log")"
        return
    fi
    if [ "$4" != 0 ]; then serial="file:$dir/ee.txt"; debugcon=none; else serial=none; debugcon="file:$dir/ee.txt"; fi
    $RV -bios "$dir/test386.bin" -display none -serial "$serial" -debugcon "$debugcon" \
        -post-port 0x190 -d post -icount 0 -run-for 60 -no-reboot \
        >"$dir/stdout.txt" 2>"$dir/post.txt"
    last=$(sed -n 's/^POST \([0-9a-fA-F]*\).*/\1/p' "$dir/post.txt" | tail -1 | tr a-f A-F)
    if [ "$last" = "FF" ]; then
        pass "test386 $name: reached POST 0xFF"
    else
        fail "test386 $name: stopped at POST 0x$last ($(post_name "$last")); see $dir/post.txt and $dir/test386.lst"
    fi
    # Compared byte for byte: no normalisation is needed when the ROM prints LF line ends.
    if cmp -s "$dir/ee.txt" "$SRC/test386-EE-reference.txt"; then
        pass "test386 $name: 0xEE output equals test386-EE-reference.txt"
    else
        first=$(diff "$dir/ee.txt" "$SRC/test386-EE-reference.txt" | sed -n '2p;4p' | tr -d '\r' | paste -sd'|')
        fail "test386 $name: 0xEE output differs from the reference ($(diff "$dir/ee.txt" "$SRC/test386-EE-reference.txt" | grep -c '^<') lines): $first"
    fi
}

run_case rom64 0 0xE9 0
run_case rom128 1 0 1
