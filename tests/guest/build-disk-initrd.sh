#!/bin/sh
# Builds $OUT/initrd-disk.cpio (default build/linux): the default guest's
# initramfs (tests/guest/build-linux.sh, run first) with a second cpio
# appended that carries the kernel's IDE (ata_piix) and FAT modules and
# tests/guest/diskinit.sh as /diskinit.  Boot it with -kernel vmlinuz
# -initrd initrd-disk.cpio -append "rdinit=/diskinit rv.disk=write|bench".
set -eu
OUT=${OUT:-build/linux}
HERE=$(cd "$(dirname "$0")" && pwd)
mods=$(ls -d "$OUT"/pkgroot/lib/modules/*/kernel | head -1)
target="$OUT/initrd-disk.cpio"
if [ -s "$target" ] && [ "$target" -nt "$OUT/initramfs.cpio" ] && [ "$target" -nt "$HERE/diskinit.sh" ] &&
    [ "$target" -nt "$HERE/build-disk-initrd.sh" ]; then
    exit 0
fi
# In load order: each after what it needs.
order="crct10dif_common crct10dif_generic crc-t10dif crc64 crc64_rocksoft_generic crc64-rocksoft t10-pi
       scsi_common scsi_mod sd_mod libata ata_piix fat vfat nls_cp437 nls_ascii"
specs="dir:mod dir:mnt"
: >"$OUT/disk-mod-order"
for n in $order; do
    f=$(find "$mods" -name "$n.ko" | head -1)
    [ -n "$f" ] || { echo "build-disk-initrd: module $n not found under $mods" >&2; exit 1; }
    specs="$specs file:mod/$n.ko:$f"
    echo "$n" >>"$OUT/disk-mod-order"
done
# shellcheck disable=SC2086
python3 "$HERE/mkcpio.py" "$OUT/disk-extra.cpio" $specs file:mod/order:"$OUT/disk-mod-order" \
    file:diskinit:"$HERE/diskinit.sh":755
cat "$OUT/initramfs.cpio" "$OUT/disk-extra.cpio" >"$target.tmp"
mv "$target.tmp" "$target"
