#!/bin/sh
# mkiso.sh OUT.iso MODE [FILE...]: a bootable ISO 9660 image (xorriso,
# isolinux, El Torito no-emulation) holding the Linux guest of build/linux
# (tests/guest/build-linux.sh builds it), booting with rv.mode=MODE, and
# each FILE at the root of the disc.  With MODE "-" the ISO is data only.
set -eu
out=$1 mode=$2
shift 2
L=${OUT:-build/linux}
root="$out.root"
rm -rf "$root"
mkdir -p "$root"
for f in "$@"; do
    cp "$f" "$root/"
done
if [ "$mode" = - ]; then
    xorriso -as mkisofs -quiet -o "$out" -R -J "$root"
else
    mkdir -p "$root/isolinux"
    cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$root/isolinux/"
    cp "$L/vmlinuz" "$root/vmlinuz"
    cp "$L/initramfs.cpio" "$root/initrd"
    cat >"$root/isolinux/isolinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  APPEND initrd=/initrd console=ttyS0,115200 panic=-1 rv.mode=$mode
CFG
    xorriso -as mkisofs -quiet -o "$out" -b isolinux/isolinux.bin -c isolinux/boot.cat \
        -no-emul-boot -boot-load-size 4 -boot-info-table -R -J "$root"
fi
rm -rf "$root"
