#!/bin/sh
# Runs every unit-test binary given as arguments and every end-to-end script in
# tests/e2e/ (each prints "PASS name" / "FAIL name: why" lines), then prints one
# summary line "N passed, N failed" and exits non-zero if anything failed.
# Set RETROVISOR_LONG=1 for the long matrices (make check-long).
# Set TESTS=pattern to run only the e2e scripts whose name contains pattern.
passed=0
failed=0
failures=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
    name=$(basename "$bin")
    echo "== unit: $name"
    "$bin" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # crashed or failed before cmocka could summarise
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -ne 0 ] && failures="$failures $name"
done

for script in tests/e2e/*.sh; do
    [ -e "$script" ] || continue
    case "$script" in *"${TESTS:-}"*) ;; *) continue ;; esac
    name=$(basename "$script" .sh)
    echo "== e2e: $name"
    sh "$script" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL $name: script exited with status $rc"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -ne 0 ] && failures="$failures $name"
done

[ -n "$failures" ] && echo "failing:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
