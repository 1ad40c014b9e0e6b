#!/bin/sh
# A Multiboot kernel written here (tests/guest/multiboot_kernel.asm) boots with
# -kernel, receives modules and a command line, and prints the memory map it
# was given; the map must describe exactly the RAM that -m asked for.
. tests/e2e/lib.sh

kernel="$E2E_TMP/multiboot_kernel.bin"
if ! nasm -f bin tests/guest/multiboot_kernel.asm -o "$kernel" 2>"$E2E_TMP/mb-nasm.log"; then
    fail "multiboot: nasm failed: $(head -3 "$E2E_TMP/mb-nasm.log")"
    exit 1
fi
printf 'first module\n' >"$E2E_TMP/mod1.txt"
printf 'second module\n' >"$E2E_TMP/mod2.txt"

for mb in 16 64 200; do
    out="$E2E_TMP/multiboot-$mb.txt"
    $RV -m "$mb" -kernel "$kernel" -append "console=ttyS0 hello=world" \
        -initrd "$E2E_TMP/mod1.txt arg1,$E2E_TMP/mod2.txt" \
        -display none -serial "file:$out" -no-reboot -icount 2 -run-for 10 >"$out.stderr" 2>&1
    rc=$?
    if [ $rc -eq 33 ]; then pass "multiboot -m $mb: kernel ran to its exit (status 33)"
    else fail "multiboot -m $mb: exit status $rc, expected 33: $(tail -2 "$out.stderr")"; fi
    expect_line "$out" '^multiboot magic ok$' "multiboot -m $mb: magic in EAX"
    # Memory above 1 MiB, in KiB and as the map's second RAM region, from -m.
    upper_kb=$(( (mb * 1024) - 1024 ))
    expect_line "$out" "^mem_lower=639 mem_upper=$upper_kb\$" "multiboot -m $mb: mem_upper=$upper_kb KiB"
    len=$(printf '%016x' $(( (mb << 20) - 0x100000 )))
    expect_line "$out" "^mmap base=0x0000000000100000 len=0x$len type=1\$" "multiboot -m $mb: RAM region above 1 MiB"
    expect_line "$out" "^mmap base=0x0000000000000000 len=0x000000000009fc00 type=1\$" "multiboot -m $mb: conventional memory region"
    total=0
    for hex in $(sed -n 's/^mmap base=0x[0-9a-f]* len=0x\([0-9a-f]*\) type=1$/\1/p' "$out"); do
        total=$((total + 0x$hex))
    done
    expect=$(( (mb << 20) - 0x100000 + 0x9fc00 ))
    if [ "$total" = "$expect" ]; then pass "multiboot -m $mb: usable RAM in the map adds up to $expect bytes"
    else fail "multiboot -m $mb: usable RAM in the map is $total bytes, expected $expect"; fi
    expect_line "$out" "^cmdline=.*multiboot_kernel.bin console=ttyS0 hello=world\$" "multiboot -m $mb: command line"
    expect_line "$out" "^module [0-9a-f]{5}000 [0-9a-f]{8} .*mod1.txt arg1 first module\$" "multiboot -m $mb: first module, page aligned, with its arguments"
    expect_line "$out" "^module [0-9a-f]{5}000 [0-9a-f]{8} .*mod2.txt second module\$" "multiboot -m $mb: second module"
    # The information structure lies in free memory after the kernel and
    # every module, never inside a loaded image.
    mbi=$(sed -n 's/^mbi=\([0-9a-f]*\) kernel_end=.*/\1/p' "$out")
    kend=$(sed -n 's/^mbi=[0-9a-f]* kernel_end=\([0-9a-f]*\)$/\1/p' "$out")
    last=$(sed -n 's/^module [0-9a-f]* \([0-9a-f]*\) .*/\1/p' "$out" | sort | tail -1)
    if [ -n "$mbi" ] && [ -n "$kend" ] && [ -n "$last" ] &&
       [ $((0x$mbi)) -ge $((0x$kend)) ] && [ $((0x$mbi)) -ge $((0x$last)) ] &&
       [ $((0x$mbi + 128)) -le $((mb << 20)) ]; then
        pass "multiboot -m $mb: information structure at 0x$mbi, after the kernel and the modules"
    else
        fail "multiboot -m $mb: information structure at 0x$mbi, kernel ends at 0x$kend, last module at 0x$last"
    fi
done
