#!/bin/sh
# make bench: figures for retrovisor side by side with QEMU TCG
# (qemu-system-i386 from Debian, installed here if missing), in one run.
# Nothing here asserts a time; it prints measurements and ratios.
#   1. guest MIPS on a tight protected-mode loop (tests/guest/bench_loop.asm as
#      the BIOS), net of each VMM's start-up
#      and seconds for code that keeps its data in its own page (a loop, an
#      LZ decoder: tests/guest/bench_beside.asm)
#   2. wall time for SeaBIOS to reach "No bootable device."
#   3. the Linux guest: wall time to its init, in-guest sha256 of 16 MiB and
#      300 process spawns and a user-mode loop (awk), as ratios to QEMU
#   4. the same guest booted from an ISO reads a 64 MiB file from the
#      ATAPI CD-ROM (MB/s)
#   5. the Linux guest's wget of 64 MiB from the host's loopback, on the
#      PCnet and the NE2000, in MB/s
#   6. the Linux kernel reading a whole 1.44M floppy from /dev/fd0
#   7. savevm and loadvm of the 256 MiB Linux guest, through the monitor
# BENCH_ITER overrides the loop's iteration count.  The host is shared and
# noisy: every figure is the best of BENCH_RUNS runs (3), the Linux runs
# alternating between the two VMMs.
set -u
RV=./retrovisor
B=build/bench
mkdir -p "$B"
ITER=${BENCH_ITER:-150000000}
RUNS=${BENCH_RUNS:-3}
INSNS_PER_ITER=8

if ! command -v qemu-system-i386 >/dev/null 2>&1; then
    echo "[bench] installing qemu-system-x86 (Debian) for the side-by-side figures"
    SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null \
        || echo "[bench] could not install qemu-system-x86: QEMU columns will be empty"
fi
QEMU=$(command -v qemu-system-i386 || true)

now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }
ratio() { awk "BEGIN { if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"-\" }"; }
# The smaller of two figures; an empty or timed-out one does not count.
min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "timeout") print b; else if (b == "" || b == "timeout") print a; else print (b + 0 < a + 0 ? b : a) }'; }
# The larger of two figures; an empty one does not count.
max() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "") print a; else print (b + 0 > a + 0 ? b : a) }'; }
# best_time CMD...: the shortest wall time of RUNS runs of CMD.
best_time() {
    best=
    k=0
    while [ "$k" -lt "$RUNS" ]; do
        k=$((k + 1))
        t0=$(now)
        "$@" >/dev/null 2>&1
        best=$(min "$best" "$(elapsed "$t0" "$(now)")")
    done
    echo "$best"
}

# time_until FILE PATTERN TIMEOUT CMD...: run CMD in the background, return the
# seconds until a line of FILE matches PATTERN (or "timeout"), then stop CMD.
time_until() {
    file=$1 pat=$2 limit=$3
    shift 3
    rm -f "$file"
    : >"$file"
    t0=$(now)
    "$@" >/dev/null 2>&1 &
    pid=$!
    result=timeout
    while kill -0 "$pid" 2>/dev/null; do
        if grep -Eq "$pat" "$file" 2>/dev/null; then
            result=$(elapsed "$t0" "$(now)")
            break
        fi
        if [ "$(awk "BEGIN { print ($(elapsed "$t0" "$(now)") > $limit) }")" = 1 ]; then
            break
        fi
        sleep 0.05
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "$result"
}

printf '%-44s %14s %14s %10s\n' "benchmark" "retrovisor" "qemu-tcg" "ratio"

# 1. Tight loop.  A VMM's start-up (about 0.1 s for either) is not guest
# throughput: each is timed on the same ROM with one iteration too, and
# MIPS are the loop's instructions over the difference.
nasm -f bin -DITERATIONS="$ITER" tests/guest/bench_loop.asm -o "$B/bench_loop.bin"
nasm -f bin -DITERATIONS=1 tests/guest/bench_loop.asm -o "$B/bench_loop_empty.bin"
insns=$((ITER * INSNS_PER_ITER))
# loop_mips CMD...: guest MIPS of the loop ROM under CMD (-bios ROM appended).
loop_mips() {
    t_full=$(best_time "$@" -bios "$B/bench_loop.bin")
    t_empty=$(best_time "$@" -bios "$B/bench_loop_empty.bin")
    echo "[bench] tight loop under $1: ${t_full}s, ${t_empty}s with one iteration" >&2
    awk "BEGIN { d = $t_full - $t_empty; if (d > 0) printf \"%.1f\", $insns / d / 1e6; else print \"-\" }"
}
mips_rv=$(loop_mips $RV -display none -serial none -m 16)
mips_q=-
if [ -n "$QEMU" ]; then
    mips_q=$(loop_mips $QEMU -accel tcg -m 16 -display none -nodefaults -device isa-debug-exit,iobase=0xf4,iosize=4)
fi
printf '%-44s %14s %14s %10s\n' "guest MIPS, tight loop, -accel bt" "$mips_rv" "$mips_q" \
    "$( [ "$mips_q" = - ] && echo - || ratio "$mips_rv" "$mips_q")x"
# The reference interpreter on the same loop (-accel interp), a fiftieth of the iterations.
nasm -f bin -DITERATIONS=$((ITER / 50)) tests/guest/bench_loop.asm -o "$B/bench_loop_short.bin"
t_i=$(RUNS=1 best_time $RV -accel interp -bios "$B/bench_loop_short.bin" -display none -serial none -m 16)
t_ie=$(RUNS=1 best_time $RV -accel interp -bios "$B/bench_loop_empty.bin" -display none -serial none -m 16)
mips_i=$(awk "BEGIN { d = $t_i - $t_ie; if (d > 0) printf \"%.1f\", $insns / 50 / d / 1e6; else print \"-\" }")
printf '%-44s %14s %14s %10s\n' "guest MIPS, tight loop, -accel interp" "$mips_i" "$mips_q" \
    "$( [ "$mips_q" = - ] && echo - || ratio "$mips_i" "$mips_q")x"

# Code beside data (tests/guest/bench_beside.asm): a loop whose data lives
# 64 bytes past its code, and an LZ77 decoder whose output lands beside its
# own code, both run from RAM.
nasm -f bin -DWORKLOAD=1 -DITERATIONS=2000000 tests/guest/bench_beside.asm -o "$B/beside_loop.bin"
python3 tests/guest/lz.py "$B/beside.lz" 98304
nasm -f bin -DWORKLOAD=2 -DLZ_FILE="\"$B/beside.lz\"" -DROUNDS=500 tests/guest/bench_beside.asm -o "$B/beside_lz.bin"
for w in loop lz; do
    t_rv=$(best_time $RV -display none -serial none -m 16 -bios "$B/beside_$w.bin")
    t_q=-
    [ -n "$QEMU" ] && t_q=$(best_time $QEMU -accel tcg -m 16 -display none -nodefaults \
        -device isa-debug-exit,iobase=0xf4,iosize=4 -bios "$B/beside_$w.bin")
    case $w in
    loop) label="loop, data 64 B past its code, 2e6 iter. (s)" ;;
    lz) label="LZ77 decoding beside its code, 48 MiB (s)" ;;
    esac
    printf '%-44s %14s %14s %10s\n' "$label" "$t_rv" "$t_q" "$( [ "$t_q" = - ] && echo - || ratio "$t_rv" "$t_q")x"
done

# 2. SeaBIOS to "No bootable device."
s_rv=$(time_until "$B/seabios-rv.log" '^No bootable device' 120 \
    $RV -display none -serial none -debugcon "file:$B/seabios-rv.log" -m 128)
s_q=-
if [ -n "$QEMU" ]; then
    # QEMU's -debugcon is port 0xE9; SeaBIOS logs to 0x402.
    s_q=$(time_until "$B/seabios-q.log" '^No bootable device' 120 \
        $QEMU -accel tcg -m 128 -display none -nodefaults -no-reboot \
        -chardev "file,id=seabios,path=$B/seabios-q.log" -device isa-debugcon,iobase=0x402,chardev=seabios)
fi
printf '%-44s %14s %14s %10s\n' "SeaBIOS to 'No bootable device.' (s)" "$s_rv" "$s_q" \
    "$(case "$s_rv$s_q" in *timeout*|*-*) echo -;; *) echo "$(ratio "$s_rv" "$s_q")x";; esac)"

# 3. The Linux guest, booted through the BIOS from its disk image (rv.mode=bench).
if sh tests/guest/build-linux.sh >"$B/linux-build.log" 2>&1; then
    # One run gives all four figures: the time to the init script's first
    # line, then the guest's own timings.  The host is shared and noisy, so
    # the runs alternate between the two VMMs and each figure is the best of
    # BENCH_RUNS.
    run=0
    while [ "$run" -lt "$RUNS" ]; do
        run=$((run + 1))
        for who in rv q; do
            log="$B/linux-$who.log"
            if [ "$who" = rv ]; then
                cmd="$RV -m 256 -display none -serial file:$log -hda build/linux/disk-bench.img -snapshot -no-reboot"
            elif [ -n "$QEMU" ]; then
                cmd="$QEMU -accel tcg -cpu pentium2 -m 256 -display none -nodefaults -serial file:$log -hda build/linux/disk-bench.img -snapshot -no-reboot"
            else
                continue
            fi
            rm -f "$log"
            : >"$log"
            t0=$(now)
            $cmd >/dev/null 2>&1 &
            pid=$!
            t_init=timeout
            while kill -0 $pid 2>/dev/null && ! grep -q '^RV-BENCH' "$log" 2>/dev/null; do
                if [ "$t_init" = timeout ] && grep -q '^RV-BEGIN' "$log" 2>/dev/null; then
                    t_init=$(elapsed "$t0" "$(now)")
                fi
                [ "$(awk "BEGIN { print ($(elapsed "$t0" "$(now)") > 900) }")" = 1 ] && break
                sleep 0.05
            done
            kill $pid 2>/dev/null
            wait $pid 2>/dev/null
            line=$(grep '^RV-BENCH' "$log" | tail -1)
            echo "[bench] run $run, $who: init ${t_init}s, $line" >&2
            eval "init_$who=\$(min \"\${init_$who:-}\" \"\$t_init\")"
            for f in sha256_16MiB_cs:sha spawn300_cs:spawn userloop_cs:loop; do
                v=$(echo "$line" | sed -n "s/.*${f%%:*}=\([0-9]*\).*/\1/p")
                eval "${f##*:}_$who=\$(min \"\${${f##*:}_$who:-}\" \"\$v\")"
            done
        done
    done
    show() { # label rv q (centiseconds or seconds)
        printf '%-44s %14s %14s %10s\n' "$1" "${2:--}" "${3:--}" \
            "$(if [ -n "${2:-}" ] && [ -n "${3:-}" ] && [ "$2" != timeout ] && [ "$3" != timeout ]; then echo "$(ratio "$2" "$3")x"; else echo -; fi)"
    }
    show "Linux: wall time to init (s)" "${init_rv:-}" "${init_q:-}"
    show "Linux: sha256 of 16 MiB in guest (cs)" "${sha_rv:-}" "${sha_q:-}"
    show "Linux: 300 process spawns in guest (cs)" "${spawn_rv:-}" "${spawn_q:-}"
    show "Linux: user-mode loop, awk 2e6 iter. (cs)" "${loop_rv:-}" "${loop_q:-}"

    # 4. The CD-ROM: the same Linux guest booted from an ISO (-cdrom, -boot
    # d) reads a 64 MiB file from it, cold; MB/s, best of BENCH_RUNS.
    head -c 67108864 /dev/urandom >"$B/big.bin"
    if sh tests/guest/mkiso.sh "$B/cdbench.iso" cdbench "$B/big.bin" >"$B/mkiso.log" 2>&1; then
        run=0
        while [ "$run" -lt "$RUNS" ]; do
            run=$((run + 1))
            for who in rv q; do
                log="$B/cd-$who.log"
                if [ "$who" = rv ]; then
                    cmd="$RV -m 256 -display none -serial file:$log -cdrom $B/cdbench.iso -boot d -no-reboot"
                elif [ -n "$QEMU" ]; then
                    cmd="$QEMU -accel tcg -cpu pentium2 -m 256 -display none -nodefaults -serial file:$log -cdrom $B/cdbench.iso -boot d -no-reboot"
                else
                    continue
                fi
                rm -f "$log"
                timeout 900 $cmd >/dev/null 2>&1
                cs=$(sed -n 's/^RV-BENCH cdread_cs=\([0-9]*\) bytes=67108864.*/\1/p' "$log" | tail -1)
                mbs=$(awk -v cs="$cs" 'BEGIN { if (cs > 0) printf "%.1f", 64 * 100 / cs }')
                echo "[bench] run $run, $who: CD read of 64 MiB in ${cs:-?} cs" >&2
                eval "cd_$who=\$(max \"\${cd_$who:-}\" \"\$mbs\")"
            done
        done
        printf '%-44s %14s %14s %10s\n' "Linux: 64 MiB read from the CD (MB/s)" "${cd_rv:--}" "${cd_q:--}" \
            "$(if [ -n "${cd_rv:-}" ] && [ -n "${cd_q:-}" ]; then echo "$(ratio "$cd_rv" "$cd_q")x"; else echo -; fi)"
    else
        echo "(CD image not built: see $B/mkiso.log)"
    fi
else
    echo "(Linux guest not built: see $B/linux-build.log)"
fi
sh tests/bench_disk.sh "$QEMU"
# 4. Network: the Linux guest wgets a 64 MiB file from an HTTP server on the
# host's 127.0.0.1 (the guest's 10.0.2.2) through user networking, to
# /dev/null, timed by the guest (rv.mode=netbench), on each card, beside
# QEMU TCG with the same card and its own user networking.
if [ -s build/linux/disk-test.img ]; then
    NB="$B/net"
    NET_TIMEOUT=${BENCH_NET_TIMEOUT:-240}
    slow_limit=$(awk "BEGIN { printf \"%.1f\", 64 * 1.048576 / $NET_TIMEOUT }")
    rm -rf "$NB"
    mkdir -p "$NB/www"
    head -c 67108864 /dev/urandom >"$NB/www/blob"
    python3 tests/e2e/net_helper.py serve "$NB/www" "$NB/http.port" &
    http_pid=$!
    k=0
    while [ ! -s "$NB/http.port" ] && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
    http_port=$(cat "$NB/http.port")
    for card in pcnet:mii,pcnet32 ne2k_pci:8390,ne2k-pci; do
        model=${card%%:*} mods=${card#*:}
        img="$NB/disk-$model.img"
        cp build/linux/disk-test.img "$img"
        printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  APPEND initrd=initrd console=ttyS0,115200 panic=-1 rv.mode=netbench rv.mods=%s rv.http=%s\n' \
            "$mods" "$http_port" >"$NB/syslinux-$model.cfg"
        mcopy -o -i "$img" "$NB/syslinux-$model.cfg" ::syslinux.cfg
        best_rv= best_q= slow_rv= slow_q=
        run=0
        while [ "$run" -lt "$RUNS" ]; do
            run=$((run + 1))
            for who in rv q; do
                log="$NB/$model-$who.log"
                : >"$log"
                if [ "$who" = rv ]; then
                    timeout "$NET_TIMEOUT" $RV -m 256 -display none -serial "file:$log" -hda "$img" -snapshot -no-reboot \
                        -netdev user,id=n0 -device "$model,netdev=n0" >/dev/null 2>&1
                elif [ -n "$QEMU" ]; then
                    timeout "$NET_TIMEOUT" $QEMU -accel tcg -cpu pentium2 -m 256 -display none -nodefaults -serial "file:$log" \
                        -hda "$img" -snapshot -no-reboot -netdev user,id=n0 -device "$model,netdev=n0" >/dev/null 2>&1
                else
                    continue
                fi
                cs=$(sed -n 's/^RV-NETBENCH wget_cs=\([0-9]*\).*/\1/p' "$log" | tail -1)
                grep -q '^RV-WGET-FAILED' "$log" && cs=
                echo "[bench] net run $run, $model, $who: ${cs:-failed or over ${NET_TIMEOUT}s} cs" >&2
                # MB/s from the guest's centiseconds; a run cut off by the
                # timeout while the guest was fetching counts as "below 64 MiB / timeout"
                mbs=$( [ -n "$cs" ] && [ "$cs" -gt 0 ] && awk "BEGIN { printf \"%.1f\", 64 * 1.048576 * 100 / $cs }")
                if [ -z "$mbs" ] && grep -q '^RV-LEASE' "$log"; then
                    if [ "$who" = rv ]; then slow_rv="<$slow_limit"; else slow_q="<$slow_limit"; fi
                fi
                if [ "$who" = rv ]; then
                    best_rv=$(awk -v a="$best_rv" -v b="$mbs" 'BEGIN { print (b != "" && (a == "" || b + 0 > a + 0)) ? b : a }')
                else
                    best_q=$(awk -v a="$best_q" -v b="$mbs" 'BEGIN { print (b != "" && (a == "" || b + 0 > a + 0)) ? b : a }')
                fi
            done
        done
        [ -z "$best_rv" ] && best_rv=$slow_rv
        [ -z "$best_q" ] && best_q=$slow_q
        printf '%-44s %14s %14s %10s\n' "guest wget 64 MiB, $model (MB/s)" "${best_rv:--}" "${best_q:--}" \
            "$(case "$best_rv$best_q" in *"<"*) echo -;; *) if [ -n "$best_rv" ] && [ -n "$best_q" ]; then echo "$(ratio "$best_rv" "$best_q")x"; else echo -; fi;; esac)"
    done
    kill "$http_pid" 2>/dev/null
    wait "$http_pid" 2>/dev/null
    rm -f "$NB/www/blob" "$NB"/disk-*.img
fi
# 6. The floppy: the Linux kernel (booted directly, with floppy.ko and
# tests/guest/floppy-init.sh in a small initramfs) reads a whole 1.44M disk
# from /dev/fd0, cold; the guest's own time, best of BENCH_RUNS.
if [ -s build/linux/vmlinuz ] && sh tests/guest/build-floppy-initramfs.sh "$B/fd-initramfs.cpio" >"$B/fd-build.log" 2>&1; then
    head -c 1474560 /dev/urandom >"$B/floppy.img"
    run=0
    while [ "$run" -lt "$RUNS" ]; do
        run=$((run + 1))
        for who in rv q; do
            log="$B/fd-$who.log"
            boot="-kernel build/linux/vmlinuz -initrd $B/fd-initramfs.cpio"
            if [ "$who" = rv ]; then
                cmd="$RV -m 128 -display none -serial file:$log -fda $B/floppy.img -snapshot -no-reboot"
            elif [ -n "$QEMU" ]; then
                cmd="$QEMU -accel tcg -cpu pentium2 -m 128 -display none -nodefaults -serial file:$log -fda $B/floppy.img -snapshot -no-reboot"
            else
                continue
            fi
            rm -f "$log"
            timeout 300 $cmd $boot -append "console=ttyS0 panic=-1 quiet rv.fd=bench" >/dev/null 2>&1
            cs=$(sed -n 's/^RV-FD-BENCH read_cs=\([0-9]*\) bytes=1474560.*/\1/p' "$log" | tail -1)
            echo "[bench] run $run, $who: floppy read of 1.44 MB in ${cs:-?} cs" >&2
            eval "fd_$who=\$(min \"\${fd_$who:-}\" \"\$cs\")"
        done
    done
    printf '%-44s %14s %14s %10s\n' "Linux: 1.44 MB read from /dev/fd0 (cs)" "${fd_rv:--}" "${fd_q:--}" \
        "$(if [ -n "${fd_rv:-}" ] && [ -n "${fd_q:-}" ]; then echo "$(ratio "$fd_rv" "$fd_q")x"; else echo -; fi)"
else
    echo "(floppy initramfs not built: see $B/fd-build.log)"
fi
# 7. Snapshots: savevm and loadvm of the 256 MiB Linux guest at its shell,
# through each VMM's monitor console, QEMU's to its qcow2 disk (internal
# snapshot), retrovisor's to its snapshot folder; the first of each.
if [ -s build/linux/vmlinuz ]; then
    for who in rv q; do
        sock="$B/snap-$who.sock"
        log="$B/snap-$who.log"
        rm -rf "$sock" "$log" "$B/snap-$who.qcow2" "$B/snap-$who.snapshots"
        qemu-img create -q -f qcow2 -b "$PWD/build/linux/disk-demo.img" -F raw "$B/snap-$who.qcow2" || continue
        if [ "$who" = rv ]; then
            cmd="$RV -m 256 -display none -net none -serial file:$log -hda $B/snap-$who.qcow2 -snapshot-dir $B/snap-$who.snapshots -monitor unix:$sock,server,nowait"
            prompt='(retrovisor)'
        elif [ -n "$QEMU" ]; then
            cmd="$QEMU -accel tcg -cpu pentium2 -m 256 -display none -nodefaults -net none -serial file:$log -hda $B/snap-$who.qcow2 -monitor unix:$sock,server=on,wait=off"
            prompt='(qemu)'
        else
            continue
        fi
        : >"$log"
        $cmd >"$B/snap-$who.out" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 1800 ] && kill -0 $pid 2>/dev/null && ! grep -q '^RV-BEGIN' "$log"; do sleep 0.1; i=$((i + 1)); done
        sleep 3
        times=$(python3 tests/hmp_time.py "$sock" "$prompt" "savevm bench" "loadvm bench" 2>"$B/snap-$who.err" | cut -d' ' -f1 | tr '\n' ' ')
        echo "[bench] $who: savevm/loadvm $times" >&2
        kill $pid 2>/dev/null
        wait $pid 2>/dev/null
        eval "savevm_$who=\$(echo \"\$times\" | cut -d' ' -f1)"
        eval "loadvm_$who=\$(echo \"\$times\" | cut -d' ' -f2)"
    done
    for op in savevm loadvm; do
        eval "a=\${${op}_rv:-}; b=\${${op}_q:-}"
        printf '%-44s %14s %14s %10s\n' "$op of the 256 MiB Linux guest (s)" "${a:--}" "${b:--}" \
            "$(if [ -n "$a" ] && [ -n "$b" ]; then echo "$(ratio "$a" "$b")x"; else echo -; fi)"
    done
fi
echo "(ratios are retrovisor / QEMU: above 1 is better for MIPS and MB/s, below 1 is better for times)"
