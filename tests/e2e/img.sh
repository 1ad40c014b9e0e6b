#!/bin/sh
# Disk image formats against the reference tools (Debian's qemu-utils and
# libvhdi-utils): retrovisor-img's images read by qemu-img and qemu-img's by
# retrovisor-img, with the data compared by sha256 of raw conversions;
# qemu-img check on every qcow2 retrovisor wrote; delta chains and commit;
# bad images refused with one line and status 2; image locks against
# qemu-io in both orders; and the Linux guest booting from a qcow2, a VMDK
# and a VHD made from its raw disk, and writing a file to each.
. tests/e2e/lib.sh
IMG=${IMG:-./retrovisor-img}
T="$E2E_TMP/img"
rm -rf "$T"
mkdir -p "$T"

if ! command -v qemu-img >/dev/null; then
    fail "img: qemu-img not installed (make deps installs qemu-utils)"
    exit 0
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

# A 24 MiB raw disk: random runs, zero gaps, a partial last megabyte.
head -c 25165824 /dev/zero >"$T/src.raw"
for at in 0 3 7 8 15 22; do
    head -c 1048576 /dev/urandom | dd of="$T/src.raw" bs=1M seek=$at conv=notrunc status=none
done
head -c 70000 /dev/urandom | dd of="$T/src.raw" bs=1 seek=12345678 conv=notrunc status=none
src_sha=$(sha "$T/src.raw")
src_size=$(stat -c %s "$T/src.raw")

# head_matches RAW: the first src_size bytes are the source (VHD rounds sizes up to a CHS geometry).
head_matches() { [ "$(head -c "$src_size" "$1" | sha256sum | cut -d' ' -f1)" = "$src_sha" ]; }

# ---- retrovisor-img writes, qemu-img reads ----
for spec in qcow2: qcow2:compat=0.10 vmdk:subformat=monolithicSparse vmdk:subformat=monolithicFlat \
            vmdk:subformat=twoGbMaxExtentSparse vpc:subformat=dynamic vpc:subformat=fixed; do
    fmt=${spec%%:*} opt=${spec#*:}
    name="ours-$fmt-$(echo "$opt" | tr '=.' '__')"
    out="$T/$name.$fmt"
    if ! $IMG convert -f raw -O "$fmt" ${opt:+-o "$opt"} "$T/src.raw" "$out" 2>"$T/err"; then
        fail "img: retrovisor-img convert to $spec: $(cat "$T/err")"
        continue
    fi
    qemu-img convert -f "$fmt" -O raw "$out" "$T/$name.q.raw" 2>"$T/err"
    $IMG convert -f "$fmt" -O raw "$out" "$T/$name.r.raw" 2>>"$T/err"
    if head_matches "$T/$name.q.raw" && [ "$(sha "$T/$name.q.raw")" = "$(sha "$T/$name.r.raw")" ]; then
        pass "img: $spec written by retrovisor-img reads the same in qemu-img"
    else
        fail "img: $spec written by retrovisor-img: qemu-img reads other data $(cat "$T/err")"
    fi
    if [ "$fmt" = qcow2 ]; then
        if qemu-img check -f qcow2 "$out" >"$T/check" 2>&1; then
            pass "img: qemu-img check accepts retrovisor's $fmt${opt:+ ($opt)}"
        else
            fail "img: qemu-img check on retrovisor's $spec: $(head -3 "$T/check" | tr '\n' ' ')"
        fi
    fi
done

# ---- qemu-img writes, retrovisor-img reads ----
for spec in qcow2:compat=1.1 qcow2:compat=0.10 qcow2:cluster_size=4096 vmdk: vmdk:subformat=streamOptimized \
            vmdk:subformat=twoGbMaxExtentFlat vpc:subformat=dynamic vpc:subformat=fixed; do
    fmt=${spec%%:*} opt=${spec#*:}
    name="qemu-$fmt-$(echo "$opt" | tr '=.' '__')"
    out="$T/$name.$fmt"
    qemu-img convert -f raw -O "$fmt" ${opt:+-o "$opt"} "$T/src.raw" "$out"
    qemu-img convert -f "$fmt" -O raw "$out" "$T/$name.q.raw"
    if $IMG convert -f "$fmt" -O raw "$out" "$T/$name.r.raw" 2>"$T/err" &&
        [ "$(sha "$T/$name.q.raw")" = "$(sha "$T/$name.r.raw")" ] && head_matches "$T/$name.r.raw"; then
        pass "img: $spec written by qemu-img reads the same in retrovisor-img"
    else
        fail "img: $spec written by qemu-img: retrovisor-img reads other data $(cat "$T/err")"
    fi
done
# Compressed qcow2 (qemu-img convert -c): read, and opened read-only (a writer is told to use -snapshot).
qemu-img convert -c -f raw -O qcow2 "$T/src.raw" "$T/qemu-compressed.qcow2"
if $IMG convert -O raw "$T/qemu-compressed.qcow2" "$T/qc.r.raw" 2>"$T/err" && [ "$(sha "$T/qc.r.raw")" = "$src_sha" ] &&
    $IMG check "$T/qemu-compressed.qcow2" >/dev/null 2>&1; then
    pass "img: compressed qcow2 written by qemu-img reads the same in retrovisor-img, and checks clean"
else
    fail "img: compressed qcow2: $(cat "$T/err")"
fi
if $RV -display none -hda "$T/qemu-compressed.qcow2" -run-for 1 >/dev/null 2>"$T/err"; then
    fail "img: a compressed qcow2 opened read-write"
else
    grep -q 'compressed clusters are read-only' "$T/err" && pass "img: a compressed qcow2 opens read-only: $(cat "$T/err")" ||
        fail "img: compressed qcow2 read-write: $(head -2 "$T/err" | tr '\n' '|')"
fi

# Formats detected from the header (fixed VHD has its footer at the end only).
for f in "$T"/qemu-qcow2-compat_1_1.qcow2 "$T"/qemu-vmdk-.vmdk "$T"/qemu-vpc-subformat_dynamic.vpc \
         "$T"/qemu-vpc-subformat_fixed.vpc "$T"/src.raw; do
    got=$($IMG info "$f" | sed -n 's/^file format: //p')
    want=$(qemu-img info -f "$(case "$f" in *.qcow2) echo qcow2;; *.vmdk) echo vmdk;; *.vpc) echo vpc;; *) echo raw;; esac)" "$f" |
           sed -n 's/^file format: //p')
    if [ "$got" = "$want" ]; then pass "img: info detects $(basename "$f") as $got"; else fail "img: info says $got for $(basename "$f"), expected $want"; fi
done

# qemu-img rewrites a descriptor file in place when its text gets shorter (a
# new CID), leaving the old text's tail after a NUL: the text ends at the NUL.
$IMG create -f vmdk -o subformat=monolithicFlat "$T/tail.vmdk" 1M >/dev/null 2>&1
printf '\000\nddb.stale = "x"\n\000\000' >>"$T/tail.vmdk"
if $IMG info "$T/tail.vmdk" >/dev/null 2>"$T/err"; then
    pass "img: a VMDK descriptor with an old tail after its NUL opens (as QEMU reads it)"
else
    fail "img: a VMDK descriptor with an old tail after its NUL: $(cat "$T/err")"
fi

# ---- delta chains: base + two deltas, written by qemu-io, read and committed by retrovisor-img ----
for fmt in qcow2 vmdk; do
    b="$T/chain0.$fmt" d1="$T/chain1.$fmt" d2="$T/chain2.$fmt"
    $IMG convert -f raw -O "$fmt" "$T/src.raw" "$b"
    base_sha=$(sha "$b")
    $IMG create -f "$fmt" -b "chain0.$fmt" "$d1" >/dev/null &&
    qemu-io -f "$fmt" -c 'write -P 0x11 1M 192k' -c 'write -P 0x12 9M 4k' "$d1" >/dev/null &&
    $IMG create -f "$fmt" -b "chain1.$fmt" "$d2" >/dev/null &&
    qemu-io -f "$fmt" -c 'write -P 0x21 1088k 64k' -c 'write -P 0x22 20M 512' "$d2" >/dev/null
    qemu-img convert -f "$fmt" -O raw "$d2" "$T/chain.q.raw"
    $IMG convert -O raw "$d2" "$T/chain.r.raw"
    expect=$(python3 -c "
import hashlib,sys
d=bytearray(open('$T/src.raw','rb').read())
def w(off,n,v): d[off:off+n]=bytes([v])*n
w(1<<20,192<<10,0x11); w(9<<20,4096,0x12); w(1088<<10,64<<10,0x21); w(20<<20,512,0x22)
print(hashlib.sha256(d).hexdigest())")
    if [ "$(sha "$T/chain.r.raw")" = "$expect" ] && [ "$(sha "$T/chain.q.raw")" = "$expect" ]; then
        pass "img: $fmt base + two deltas: the top reads the newest data (as qemu-img does)"
    else
        fail "img: $fmt base + two deltas: retrovisor $(sha "$T/chain.r.raw"), qemu $(sha "$T/chain.q.raw"), expected $expect"
    fi
    if [ "$(sha "$b")" = "$base_sha" ]; then pass "img: $fmt chain: the base is unchanged"; else fail "img: $fmt chain: the base changed"; fi
    $IMG commit "$d2" >/dev/null 2>"$T/err" && $IMG commit "$d1" >/dev/null 2>>"$T/err"
    $IMG convert -O raw "$b" "$T/chain.c.raw"
    if [ "$(sha "$T/chain.c.raw")" = "$expect" ]; then pass "img: $fmt commit folds both deltas into the base"; else fail "img: $fmt commit: base has other data $(cat "$T/err")"; fi
    if [ "$fmt" = qcow2 ]; then
        ok=1
        for f in "$b" "$d1" "$d2"; do qemu-img check -f qcow2 "$f" >/dev/null 2>&1 || ok=0; done
        if [ $ok = 1 ]; then pass "img: qemu-img check accepts the committed chain"; else fail "img: qemu-img check refuses the committed chain"; fi
        # Like qemu-img commit, commit empties a qcow2 delta: it holds nothing and reads through.
        qemu-img convert -f qcow2 -O raw "$d2" "$T/chain.e.raw"
        if [ "$(qemu-img map --output=json -f qcow2 "$d1" | grep -c '"depth": 0, .*"data": true')" = 0 ] &&
           [ "$(qemu-img map --output=json -f qcow2 "$d2" | grep -c '"depth": 0, .*"data": true')" = 0 ] &&
           [ "$(sha "$T/chain.e.raw")" = "$expect" ]; then
            pass "img: commit leaves both qcow2 deltas empty, and the top still reads the newest data"
        else
            fail "img: after commit: $(qemu-img map -f qcow2 "$d2" | head -3 | tr '\n' ' ') sha $(sha "$T/chain.e.raw")"
        fi
    fi
done

# ---- VHD differencing disk, read by libvhdi ----
$IMG convert -O vpc "$T/src.raw" "$T/vbase.vhd"
$IMG create -f vpc -b vbase.vhd "$T/vdiff.vhd" >/dev/null
if command -v vhdiinfo >/dev/null; then
    vhdiinfo "$T/vbase.vhd" >"$T/vb.info" 2>&1
    vhdiinfo "$T/vdiff.vhd" >"$T/vd.info" 2>&1
    id=$(sed -n 's/^[[:space:]]*Identifier[[:space:]]*: //p' "$T/vb.info")
    if grep -q 'Differential' "$T/vd.info" && grep -q "Parent identifier.*: $id" "$T/vd.info" &&
        grep -q 'Parent filename.*vbase.vhd' "$T/vd.info"; then
        pass "img: libvhdi reads retrovisor's VHD differencing disk and its parent's ID"
    else
        fail "img: vhdiinfo on the differencing disk: $(tr '\n' ' ' <"$T/vd.info" | head -c 300)"
    fi
else
    fail "img: vhdiinfo not installed (make deps installs libvhdi-utils)"
fi

# ---- bad images: one line naming the file, status 2 ----
cp "$T/ours-qcow2-.qcow2" "$T/bad.qcow2"
printf '\377\377\377\377\377\377\377\377' | dd of="$T/bad.qcow2" bs=1 seek=40 conv=notrunc status=none
$IMG create -f qcow2 -b bad.qcow2 -F qcow2 "$T/badkid.qcow2" >/dev/null 2>&1
printf 'not a descriptor\377\376\n' >"$T/junk.vmdk"
for case in "$IMG info $T/bad.qcow2|bad.qcow2" "$RV -display none -hda $T/bad.qcow2|bad.qcow2" \
            "$RV -display none -drive file=$T/junk.vmdk,format=vmdk|junk.vmdk" \
            "$IMG info -f vpc $T/src.raw|src.raw" "$IMG create -f qcow2 -b missing.img $T/x.qcow2|missing.img"; do
    cmd=${case%|*} name=${case#*|}
    $cmd >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "$name" "$T/err"; then
        pass "img: refused with one line naming $name: $(cat "$T/err")"
    else
        fail "img: '$cmd' gave status $rc and: $(head -3 "$T/err" | tr '\n' '|')"
    fi
done

# ---- locks: a retrovisor writer and a qemu writer exclude each other, in both orders ----
lock_img="$T/lock.qcow2"
$IMG create -f qcow2 "$lock_img" 64M >/dev/null
fifo="$T/qemu-io.in"
rm -f "$fifo"
mkfifo "$fifo"
qemu-io -f qcow2 "$lock_img" <"$fifo" >"$T/qemu-io.out" 2>&1 &
qpid=$!
exec 7>"$fifo"      # qemu-io holds the image open read-write until its input closes
sleep 1
$RV -display none -hda "$lock_img" -run-for 1 >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q 'lock.qcow2.*locked' "$T/err"; then
    pass "img: retrovisor refuses an image qemu is writing: $(cat "$T/err")"
else
    fail "img: retrovisor on an image qemu is writing: status $rc: $(head -2 "$T/err" | tr '\n' '|')"
fi
exec 7>&-
wait $qpid
$RV -display none -serial none -hda "$lock_img" -run-for 30 >"$T/rv.out" 2>"$T/rv.err" &
rpid=$!
sleep 2
if qemu-io -f qcow2 -c 'write 0 512' "$lock_img" >"$T/out" 2>&1; then
    fail "img: qemu-io wrote an image retrovisor is running on"
else
    grep -q 'lock' "$T/out" && pass "img: qemu refuses an image retrovisor is writing: $(grep -m1 lock "$T/out")" ||
        fail "img: qemu-io failed without a lock message: $(head -2 "$T/out" | tr '\n' '|')"
fi
kill "$rpid" 2>/dev/null
wait "$rpid" 2>/dev/null
rm -f "$fifo"

# The same against qemu-system-i386 (issue 23: a VM on each side).
if command -v qemu-system-i386 >/dev/null; then
    qemu-system-i386 -accel tcg -m 16 -display none -nodefaults -drive "file=$lock_img,format=qcow2,if=ide" \
        >"$T/qemu.out" 2>&1 &
    qpid=$!
    sleep 2
    $RV -display none -hda "$lock_img" -run-for 1 >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q 'lock.qcow2.*locked' "$T/err"; then
        pass "img: retrovisor refuses an image qemu-system-i386 is running on"
    else
        fail "img: retrovisor on an image qemu-system-i386 runs on: status $rc: $(head -2 "$T/err" | tr '\n' '|')"
    fi
    kill "$qpid" 2>/dev/null
    wait "$qpid" 2>/dev/null
    $RV -display none -serial none -hda "$lock_img" -run-for 30 >"$T/rv.out" 2>"$T/rv.err" &
    rpid=$!
    sleep 2
    timeout 20 qemu-system-i386 -accel tcg -m 16 -display none -nodefaults -drive "file=$lock_img,format=qcow2,if=ide" \
        >"$T/qemu.out" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'lock' "$T/qemu.out"; then
        pass "img: qemu-system-i386 refuses an image retrovisor is running on: $(grep -m1 lock "$T/qemu.out")"
    else
        fail "img: qemu-system-i386 on an image retrovisor runs on: status $rc: $(head -2 "$T/qemu.out" | tr '\n' '|')"
    fi
    kill "$rpid" 2>/dev/null
    wait "$rpid" 2>/dev/null
else
    fail "img: qemu-system-i386 not installed (make deps installs qemu-system-x86)"
fi

# ---- the Linux guest writes a file to a FAT data disk in each format; the host reads it back ----
# tests/guest/build-disk-initrd.sh adds the kernel's IDE and FAT modules and /diskinit.
guest_writes() {
    if ! sh tests/guest/build-disk-initrd.sh >"$T/disk-initrd.log" 2>&1; then
        fail "img: building the disk-test initrd failed: $(tail -2 "$T/disk-initrd.log")"
        return
    fi
    rm -f "$T/fat.raw"
    mkfs.vfat -C -n DATA "$T/fat.raw" 49152 >/dev/null
    for spec in qcow2: vmdk: vpc:subformat=dynamic; do
        fmt=${spec%%:*} opt=${spec#*:}
        disk="$T/data.$fmt"
        rm -f "$disk"
        $IMG convert -f raw -O "$fmt" ${opt:+-o "$opt"} "$T/fat.raw" "$disk"
        log="$T/write-$fmt.log"
        timeout 600 $RV -m 256 -kernel build/linux/vmlinuz -initrd build/linux/initrd-disk.cpio \
            -append "console=ttyS0 panic=-1 rdinit=/diskinit rv.disk=write" -hda "$disk" -display none \
            -serial "file:$log" -no-reboot >"$log.stdout" 2>"$log.stderr"
        guest_sha=$(sed -n 's/^RV-DISK-SHA \([0-9a-f]*\).*/\1/p' "$log")
        qemu-img convert -f "$fmt" -O raw "$disk" "$T/back.raw"
        rm -f "$T/data.bin"
        mcopy -i "$T/back.raw" ::data.bin "$T/data.bin" 2>/dev/null
        if [ -n "$guest_sha" ] && grep -q '^RV-DISK-DONE' "$log" && [ -f "$T/data.bin" ] &&
            [ "$(sha "$T/data.bin")" = "$guest_sha" ]; then
            pass "img: Linux writes 32 MiB to a $fmt disk; the host reads the same file back (sha256)"
        else
            fail "img: Linux writing to a $fmt disk: guest sha '$guest_sha', $(grep -m2 'RV-INSMOD\|error' "$log" | tr '\n' ' ') $(tail -1 "$log.stderr")"
        fi
        if [ "$fmt" = qcow2 ]; then
            qemu-img check -f qcow2 "$disk" >"$T/check" 2>&1 && pass "img: qemu-img check accepts the qcow2 the guest wrote" ||
                fail "img: qemu-img check on the qcow2 the guest wrote: $(head -3 "$T/check" | tr '\n' ' ')"
        fi
        $IMG check "$disk" >"$T/check" 2>&1 && pass "img: retrovisor-img check accepts the $fmt the guest wrote" ||
            fail "img: retrovisor-img check on the $fmt the guest wrote: $(head -2 "$T/check" | tr '\n' ' ')"
    done
}

# ---- the Linux guest boots through SeaBIOS and syslinux from every format ----
if [ -z "${IMG_SKIP_GUEST:-}" ] && sh tests/guest/build-linux.sh >"$T/linux-build.log" 2>&1; then
    for spec in qcow2: vmdk: vpc:subformat=dynamic; do
        fmt=${spec%%:*} opt=${spec#*:}
        disk="$T/linux.$fmt"
        $IMG convert -f raw -O "$fmt" ${opt:+-o "$opt"} build/linux/disk-test.img "$disk"
        log="$T/linux-$fmt.log"
        timeout 600 $RV -m 256 -hda "$disk" -display none -serial "file:$log" -no-reboot >"$log.stdout" 2>"$log.stderr"
        if grep -q '^RV-END' "$log"; then
            pass "img: Linux boots from a $fmt disk and runs its tests"
        else
            fail "img: Linux from a $fmt disk: $(tail -2 "$log.stderr" | tr '\n' ' ')"
        fi
        if [ "$fmt" = qcow2 ]; then
            qemu-img check -f qcow2 "$disk" >/dev/null 2>&1 && pass "img: qemu-img check accepts the booted qcow2" ||
                fail "img: qemu-img check refuses the qcow2 after the boot"
        fi
    done
    guest_writes
else
    [ -z "${IMG_SKIP_GUEST:-}" ] && fail "img: building the Linux guest failed: $(tail -2 "$T/linux-build.log")"
fi
