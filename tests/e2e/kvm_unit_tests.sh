#!/bin/sh
# kvm-unit-tests (../shared/testsuites/kvm-unit-tests, written elsewhere):
# built once into build/kvm-unit-tests (./configure --arch=i386 && make),
# then every test of x86/unittests.cfg that is not x86_64-only runs as a
# Multiboot kernel with its -append arguments, COM1 as its log,
# isa-debug-exit (always at 0xF4) and -device pc-testdev, as upstream's
# x86/run starts QEMU.  One PASS/FAIL/SKIP line per test and engine:
# `-accel bt` in make check, bt and interp with RETROVISOR_LONG=1.
#
# The exit status is (code << 1) | 1: 1 is a pass, 3 a failure, 77 "every
# check skipped" (the test found a CPUID feature or a device missing and
# printed why).  Tests that need what the machine does not model (KVM's own
# interfaces, a second CPU, S3) are SKIPs with the reason when they do not
# pass; those that look for a CPUID feature this CPU has must run fully.
. tests/e2e/lib.sh

SRC=${KUT_DIR:-../shared/testsuites/kvm-unit-tests}
OUT=build/kvm-unit-tests
if [ ! -f "$SRC/x86/unittests.cfg" ]; then
    fail "kvm-unit-tests: $SRC/x86/unittests.cfg not found (../shared must sit beside the checkout)"
    exit 1
fi

# The shared copy keeps symbolic links as small files holding the target's
# path (x86/sieve.c is "../common/sieve.c"): make them links again.
relink() {
    find "$1" -type f -size -200c | while read -r f; do
        t=$(head -c 200 "$f")
        case "$t" in
        *[[:space:]]* | "") continue ;;
        */*) [ -f "$(dirname "$f")/$t" ] && ln -sf "$t" "$f" ;;
        esac
    done
}

# Rebuilt only when the sources change: the stamp holds a digest of them.
build() {
    digest=$( (cd "$SRC" && find . -type f | sort | xargs cat) | sha256sum | cut -c1-16)
    if [ -f "$OUT/.built" ] && [ "$(cat "$OUT/.built")" = "$digest" ]; then
        return 0
    fi
    rm -rf "$OUT"
    mkdir -p build
    cp -r "$SRC" "$OUT" && chmod -R u+w "$OUT" && relink "$OUT" || return 1
    (cd "$OUT" && ./configure --arch=i386 && make -j2) >"$OUT.log" 2>&1 || return 1
    echo "$digest" >"$OUT/.built"
}
if ! build; then
    fail "kvm-unit-tests: build failed: $(tail -3 "$OUT.log" 2>/dev/null | tr '\n' ' ')"
    exit 1
fi

# A reason to skip a test that does not pass, when it needs what this
# machine does not have.
known_missing() {
    case "$1" in
    hypercall | vmexit_vmcall) echo "KVM's hypercall (VMCALL/VMMCALL) is a hypervisor interface: without VMX or SVM both raise #UD, as under QEMU TCG" ;;
    s3) echo "needs ACPI S3 suspend and resume through the RTC alarm, which the machine does not model" ;;
    esac
}

# Tests that look for a CPUID feature the CPU has (issue 17): "every check
# skipped" means the feature went missing, a failure.
must_run() {
    case "$1" in
    tsc | tsc_adjust | smap | msr) return 0 ;;
    esac
    return 1
}

# unittests.cfg as one line per test: name|file|smp|args|params|arch|groups|accel|timeout|check
tests=$(awk '
    function flush() { if (name != "") print name "|" file "|" smp "|" args "|" params "|" arch "|" groups "|" accel "|" timeout "|" check }
    /^\[/ { flush(); name = substr($0, 2, index($0, "]") - 2); file = ""; smp = 1; args = ""; params = "";
            arch = ""; groups = ""; accel = ""; timeout = ""; check = ""; next }
    /^[ \t]*#/ || !/=/ { next }
    {
        key = $0; sub(/[ \t]*=.*/, "", key); gsub(/^[ \t]+/, "", key)
        val = $0; sub(/^[^=]*=[ \t]*/, "", val); gsub(/[|]/, " ", val)
        if (val ~ /^".*"$/ || val ~ /^\047.*\047$/) val = substr(val, 2, length(val) - 2)
        if (key == "file") file = val; else if (key == "smp") smp = val
        else if (key == "test_args") args = val
        else if (key == "qemu_params" || key == "extra_params") params = val
        else if (key == "arch") arch = val; else if (key == "groups") groups = val
        else if (key == "accel") accel = val; else if (key == "timeout") timeout = val
        else if (key == "check") check = val
    }
    END { flush() }' "$OUT/x86/unittests.cfg")

engines=bt
[ -n "$RETROVISOR_LONG" ] && engines="bt interp"

run_one() { # run_one ENGINE NAME FILE SMP ARGS PARAMS TIMEOUT
    engine=$1 name=$2 file=$3 smp=$4 args=$5 params=$6 limit=$7
    tag="kvm-unit-tests/$engine $name"
    mem=$(printf '%s\n' "$params" | sed -n 's/.*-m \([0-9]*\).*/\1/p')
    [ -z "$mem" ] && mem=128                   # QEMU's default
    [ "$mem" -gt 3584 ] && mem=3584
    # unittests.cfg's timeouts (90 s unless given) are for KVM; a shared
    # host running the translator takes up to twice that, the interpreter more.
    [ -z "$limit" ] && limit=90
    limit=$((limit * 2))
    [ "$engine" = interp ] && limit=$((limit * 8))
    log="$E2E_TMP/kut-$engine-$name.log"
    timeout "$limit" $RV -accel "$engine" -m "$mem" -kernel "$OUT/x86/$file" ${args:+-append "$args"} \
        -device pc-testdev -display none -serial "file:$log" -no-reboot >"$log.stderr" 2>&1
    rc=$?
    summary=$(grep '^SUMMARY:' "$log" | tail -1 | sed 's/^SUMMARY: //')
    note=""
    [ "$smp" -gt 1 ] 2>/dev/null && note=" (asks for $smp CPUs; ran on the machine's one)"
    case $rc in
    1) if must_run "$name" && grep -q 'not supported' "$log"; then
           fail "$tag: $(grep 'not supported' "$log" | head -2 | tr '\n' ' ')"
       else
           pass "$tag: ${summary:-passed}$note"
       fi
       return ;;
    77) why="every check skipped: $(grep -E '^SKIP|not supported|not available|not enabled|Skipping' "$log" | head -2 | tr '\n' ' ')"
        if ! must_run "$name"; then
            echo "SKIP $tag: $why"
            return
        fi ;;
    124) why="timed out after ${limit}s" ;;
    3) why="$summary: $(grep '^FAIL' "$log" | head -3 | tr '\n' ' ')" ;;
    *) why="exit status $rc: $(grep -E 'Unhandled exception|assert|FAIL' "$log" | head -2 | tr '\n' ' ')$(tail -1 "$log.stderr")" ;;
    esac
    reason=$(known_missing "$name")
    if [ -n "$reason" ]; then
        echo "SKIP $tag: $reason ($why)"
    else
        fail "$tag: $why$note"
    fi
}

for engine in $engines; do
    printf '%s\n' "$tests" | while IFS='|' read -r name file smp args params arch groups accel limit check; do
        [ -z "$name" ] && continue
        tag="kvm-unit-tests/$engine $name"
        if [ "$arch" = x86_64 ]; then
            echo "SKIP $tag: x86_64 only"
        elif [ "$accel" = kvm ]; then
            echo "SKIP $tag: runs under KVM only"
        elif [ -n "$check" ]; then
            echo "SKIP $tag: needs a KVM host setting ($check)"
        elif case " $groups " in *" hyperv "*) true ;; *) false ;; esac; then
            echo "SKIP $tag: Hyper-V enlightenments are KVM's, not hardware"
        elif [ ! -f "$OUT/x86/$file" ]; then
            # svm_unsupported_instruction_intercept_test names no arch, but
            # x86/Makefile.i386 builds no svm.flat: an x86_64-only binary.
            if grep -qF "/${file%.flat}.\$(exe)" "$OUT/x86/Makefile.x86_64"; then
                echo "SKIP $tag: $file is built for x86_64 only"
            else
                fail "$tag: $OUT/x86/$file was not built"
            fi
        else
            run_one "$engine" "$name" "$file" "$smp" "$args" "$params" "$limit"
        fi
    done
done
