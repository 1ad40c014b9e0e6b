#!/bin/sh
# The command-line and file-input table (issue 23): every case in
# tests/e2e/cli_cases.txt must end retrovisor at once with exactly one line
# on stderr, naming the problem, nothing on stdout and exit status 2; and
# no fixture file may change (sha256) or appear.
. tests/e2e/lib.sh

T="$E2E_TMP/cli"
MBK="$T/mbk.bin"
BIOS="$T/bios.bin"

# make_fixtures: (re)make every input file of the table in $T.
make_fixtures() {
    rm -rf "$T"
    mkdir -p "$T/dir"
    mkfifo "$T/fifo"
    python3 tests/e2e/cli_fixtures.py "$T" || return 1
    ln "$T/disk.img" "$T/disk-link.img"
    ln -s disk.img "$T/disk-sym.img"
    nasm -f bin tests/guest/multiboot_kernel.asm -o "$MBK" 2>"$T/nasm.log" || return 1
    # Any firmware image will do: the cases that name it fail before it runs.
    cp /usr/share/seabios/bios.bin "$BIOS" 2>/dev/null || head -c 65536 /dev/urandom >"$BIOS"
}
if ! make_fixtures; then
    fail "cli: the fixture files could not be made (python3 tests/e2e/cli_fixtures.py, nasm)"
    exit 1
fi

# The small fixture files are hashed after every case, all of them (the sparse
# giants included) before and after the table.
small_sums() {
    find "$T" -maxdepth 1 -type f -size -1100k ! -name '*.out' ! -name '*.err' ! -name '*.sums' | sort |
        xargs sha256sum
}
# The 4 GiB sparse file is checked by size and allocated blocks: hashing it
# would cost more than the whole table.
all_sums() {
    find "$T" -maxdepth 1 -type f ! -name '*.out' ! -name '*.err' ! -name '*.sums' ! -name 'sparse-4g.img' |
        sort | xargs sha256sum
    stat -c '%n %s %b' "$T/sparse-4g.img"
}
listing() {
    ls -a "$T" | grep -v -e '\.out$' -e '\.err$' -e '\.sums$'
}
small_sums >"$T/before.sums"
all_sums >"$T/all-before.sums"
listing >"$T/listing-before.sums"

cases=0
bad=0
while IFS= read -r line; do
    case "$line" in '#'* | '') continue ;; esac
    name=$(printf '%s' "$line" | sed 's/ | .*//')
    args=$(printf '%s' "$line" | sed 's/^[^|]* | //')
    cases=$((cases + 1))
    eval "set -- $args"
    timeout 20 $RV -display none "$@" >"$T/case.out" 2>"$T/case.err" </dev/null
    rc=$?
    nerr=$(wc -l <"$T/case.err")
    why=""
    if [ $rc -ne 2 ]; then
        why="exit status $rc (2 expected)"
    elif [ "$nerr" -ne 1 ]; then
        why="$nerr lines on stderr (1 expected)"
    elif ! grep -q '^retrovisor: ' "$T/case.err"; then
        why="the line does not start with 'retrovisor: '"
    elif [ -s "$T/case.out" ]; then
        why="it wrote to stdout"
    fi
    small_sums >"$T/after.sums"
    if [ -z "$why" ] && ! cmp -s "$T/before.sums" "$T/after.sums"; then
        why="a fixture file changed: $(diff "$T/before.sums" "$T/after.sums" | grep '^>' | head -1)"
    fi
    listing >"$T/listing-after.sums"
    if [ -z "$why" ] && ! cmp -s "$T/listing-before.sums" "$T/listing-after.sums"; then
        why="files appeared or vanished: $(diff "$T/listing-before.sums" "$T/listing-after.sums" | grep '^[<>]' | head -2 | tr '\n' ' ')"
    fi
    if [ -n "$why" ]; then
        bad=$((bad + 1))
        fail "cli: $name ($args): $why; stderr: $(head -c 300 "$T/case.err" | tr '\n' '|')"
        # Put the fixtures back so that one failure does not fail every later case.
        if ! cmp -s "$T/before.sums" "$T/after.sums" || ! cmp -s "$T/listing-before.sums" "$T/listing-after.sums"; then
            make_fixtures
            small_sums >"$T/before.sums"
        fi
    fi
done <tests/e2e/cli_cases.txt

# Oversized inputs are refused before they are read (issue 26 #7: a 4 GiB
# -initrd was read whole, 4.2 GB RSS, before it was refused): the peak RSS of
# each refusal stays far below the file's size.
for opts in "-bios $T/sparse-4g.img" "-kernel $T/sparse-4g.img" "-kernel $T/bz-good.bin -initrd $T/sparse-4g.img" \
    "-kernel $MBK -initrd $T/sparse-4g.img" "-vgabios $T/sparse-4g.img"; do
    # shellcheck disable=SC2086
    kb=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' $RV -display none $opts)
    if [ -n "$kb" ] && [ "$kb" -lt 262144 ]; then
        pass "cli: $opts (4 GiB) is refused with a peak RSS of $kb KiB"
    else
        fail "cli: $opts (4 GiB): peak RSS ${kb:-unknown} KiB (under 256 MiB expected)"
    fi
done

all_sums >"$T/all-after.sums"
if cmp -s "$T/all-before.sums" "$T/all-after.sums"; then
    pass "cli: every fixture file has its sha256 of before the table (the 4 GiB sparse one its size and blocks)"
else
    fail "cli: fixture files changed: $(diff "$T/all-before.sums" "$T/all-after.sums" | grep '^>' | head -3 | tr '\n' ' ')"
fi
if [ "$cases" -lt 300 ]; then
    fail "cli: the table has $cases cases (300 or more expected)"
fi
[ $bad -eq 0 ] && pass "cli: all $cases command-line and file-input cases give one line and exit status 2"
