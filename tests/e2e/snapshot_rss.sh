#!/bin/sh
# A bounded -snapshot overlay (issue 26 #2: a guest writing 2 GiB to an 8 GiB
# sparse -snapshot disk grew the VMM to 2.2 GB).  tests/guest/disk_flood.asm
# writes 2 GiB through IDE bus-master DMA, 32 MiB per command (about 3 s an
# engine: the overlay spills to a file under $TMPDIR, else /var/tmp).  The VMM's peak RSS
# must stay under guest RAM + 256 MiB, and the base image must stay
# unwritten.  Where $TMPDIR has no room for the spill, the flood is cut to
# 256 MiB and the line says so.
. tests/e2e/lib.sh

MIB=2048
free_kb=$(df -Pk "${TMPDIR:-/var/tmp}" | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((3 * 1024 * 1024)) ]; then
    echo "snapshot_rss: only ${free_kb} KiB free under ${TMPDIR:-/var/tmp}: writing 256 MiB, not 2 GiB"
    MIB=256
fi
RAM_MB=16
rom="$E2E_TMP/disk_flood.bin"
if ! nasm -f bin -DMIB=$MIB tests/guest/disk_flood.asm -o "$rom" 2>"$E2E_TMP/disk_flood-nasm.log"; then
    fail "snapshot_rss: nasm failed: $(head -3 "$E2E_TMP/disk_flood-nasm.log")"
    exit 1
fi
disk="$E2E_TMP/snapshot_rss.img"
rm -f "$disk"
truncate -s 8G "$disk"
for engine in bt interp; do
    out=$(python3 - "$E2E_TMP/snapshot_rss-$engine.err" $RV -accel $engine -bios "$rom" -hda "$disk" -snapshot \
              -display none -serial none -net none -m $RAM_MB <<'PY'
import resource, subprocess, sys
err = open(sys.argv[1], "w")
rc = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
)
    rc=${out% *}
    kb=${out#* }
    limit=$(( (RAM_MB + 256) * 1024 ))
    if [ "$rc" != 33 ]; then
        fail "snapshot_rss: -accel $engine: $MIB MiB of writes ended with status $rc (33 expected): $(tail -2 "$E2E_TMP/snapshot_rss-$engine.err" | tr '\n' '|')"
    elif [ "$kb" -ge "$limit" ]; then
        fail "snapshot_rss: -accel $engine: peak RSS $kb KiB after $MIB MiB of -snapshot writes (under $limit KiB expected)"
    else
        pass "snapshot_rss: -accel $engine: $MIB MiB written to an 8 GiB -snapshot disk, peak RSS $kb KiB (guest RAM + 256 MiB is $limit KiB)"
    fi
done
if [ "$(du -k "$disk" | cut -f1)" = 0 ]; then
    pass "snapshot_rss: the base image was never written"
else
    fail "snapshot_rss: the base image has $(du -k "$disk" | cut -f1) KiB allocated after -snapshot runs"
fi
rm -f "$disk" "$rom"
