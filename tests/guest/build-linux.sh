#!/bin/sh
# Builds the default Linux guest from Debian's i386 packages (the kernel of
# linux-image-686 and busybox-static) into $OUT (default build/linux):
#   vmlinuz            the kernel
#   initramfs.cpio     busybox + tests/guest/init.sh as /init, the CD-ROM
#                      modules in /lib/modules and cdctl (rv.mode=cdtest)
#   disk-MODE.img      a FAT disk with syslinux, booting vmlinuz + initramfs
#                      with rv.mode=MODE (demo, test, bench) through the BIOS
# Everything is cached: a second run only rebuilds what is missing.
# Needs the i386 architecture in dpkg (make deps adds it), mtools, dosfstools,
# syslinux and python3; no root.
set -eu
OUT=${OUT:-build/linux}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/debs" "$OUT/pkgroot"
step() { echo "[linux guest] $*" >&2; }

if ! dpkg --print-foreign-architectures | grep -qx i386; then
    echo "build-linux: the i386 architecture is not enabled in dpkg; run 'make deps' first" >&2
    exit 1
fi

kernel_pkg=$(apt-cache depends linux-image-686:i386 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-686\)\(:i386\)\?$/\1/p' | head -1)
if [ -z "$kernel_pkg" ]; then
    echo "build-linux: cannot resolve linux-image-686:i386 (run 'make deps', which runs apt-get update)" >&2
    exit 1
fi

fetch() { # fetch PACKAGE: download the .deb once and unpack it into pkgroot
    if ! ls "$OUT/debs/$1"_*.deb >/dev/null 2>&1; then
        step "downloading $1 (apt-get download)"
        (cd "$OUT/debs" && apt-get download "$1:i386" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2)
    fi
    if [ ! -e "$OUT/pkgroot/.$1" ]; then
        step "unpacking $1"
        dpkg-deb -x "$OUT/debs/$1"_*.deb "$OUT/pkgroot"
        touch "$OUT/pkgroot/.$1"
    fi
}
fetch "$kernel_pkg"
fetch busybox-static

if [ ! -s "$OUT/vmlinuz" ]; then
    cp "$OUT"/pkgroot/boot/vmlinuz-*-686 "$OUT/vmlinuz"
fi

# The CD-ROM stack (and sd_mod for the IDE disks), loaded by init in this
# order for rv.mode=cdtest and snapdisk (the
# kernel has them all as modules; there is no modprobe or depmod in the guest).
CD_MODULES="drivers/scsi/scsi_common drivers/scsi/scsi_mod drivers/ata/libata drivers/ata/ata_piix
            drivers/cdrom/cdrom drivers/scsi/sr_mod fs/isofs/isofs
            crypto/crct10dif_common crypto/crct10dif_generic lib/crc-t10dif lib/crc64
            crypto/crc64_rocksoft_generic lib/crc64-rocksoft block/t10-pi drivers/scsi/sd_mod"
moddir=$(ls -d "$OUT"/pkgroot/lib/modules/*/kernel)
cd_module_args=
for m in $CD_MODULES; do
    cd_module_args="$cd_module_args file:lib/modules/${m##*/}.ko:$moddir/$m.ko:644"
done
if [ ! -s "$OUT/cdctl" ] || [ "$HERE/cdctl.c" -nt "$OUT/cdctl" ]; then
    step "building cdctl (gcc -m32 -static)"
    gcc -m32 -static -Os -o "$OUT/cdctl" "$HERE/cdctl.c"
fi

# The network cards' drivers, found in the kernel package by name; the
# guest loads them itself (insmod, in dependency order: rv.mods=).
NET_MODULES="mii pcnet32 8390 ne2k-pci"
net_module_args=
for mod in $NET_MODULES; do
    ko=$(find "$moddir" -name "$mod.ko" | head -1)
    if [ -z "$ko" ]; then
        echo "build-linux: the kernel package has no $mod.ko" >&2
        exit 1
    fi
    net_module_args="$net_module_args file:lib/modules/$mod.ko:$ko"
done

# The ACPI button driver is a module in Debian's kernel: init loads it to see
# the power button's events (tests/e2e/acpi.sh).
button_ko=$(ls "$OUT"/pkgroot/lib/modules/*/kernel/drivers/acpi/button.ko | head -1)
if [ ! -s "$OUT/initramfs.cpio" ] || [ "$HERE/init.sh" -nt "$OUT/initramfs.cpio" ] ||
   [ "$HERE/udhcpc.sh" -nt "$OUT/initramfs.cpio" ] ||
   [ "$HERE/build-linux.sh" -nt "$OUT/initramfs.cpio" ] || [ "$OUT/cdctl" -nt "$OUT/initramfs.cpio" ]; then
    step "building initramfs.cpio (busybox + init + CD, network and button modules)"
    # shellcheck disable=SC2086 # the module arguments are words
    python3 "$HERE/mkcpio.py" "$OUT/initramfs.cpio.tmp" \
        dir:bin dir:dev dir:proc dir:sys dir:tmp dir:root dir:mnt dir:etc dir:lib dir:lib/modules \
        file:lib/button.ko:"$button_ko":644 \
        $cd_module_args file:bin/cdctl:"$OUT/cdctl":755 \
        file:etc/udhcpc.sh:"$HERE/udhcpc.sh":755 $net_module_args \
        nod:dev/console:c:5:1 nod:dev/null:c:1:3 nod:dev/ttyS0:c:4:64 \
        file:bin/busybox:"$OUT/pkgroot/bin/busybox":755 \
        slink:bin/sh:busybox \
        file:init:"$HERE/init.sh":755
    mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
fi

for mode in demo test bench; do
    img="$OUT/disk-$mode.img"
    if [ -s "$img" ] && [ "$img" -nt "$OUT/initramfs.cpio" ] && [ "$img" -nt "$HERE/build-linux.sh" ]; then
        continue
    fi
    step "building disk-$mode.img (FAT + syslinux, rv.mode=$mode)"
    rm -f "$img.tmp"
    mkfs.vfat -C -n RETROVISOR "$img.tmp" 65536 >/dev/null
    cat >"$OUT/syslinux-$mode.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd console=tty0 console=ttyS0,115200 panic=-1 rv.mode=$mode
CFG
    mcopy -i "$img.tmp" "$OUT/vmlinuz" ::vmlinuz
    mcopy -i "$img.tmp" "$OUT/initramfs.cpio" ::initrd
    mcopy -i "$img.tmp" "$OUT/syslinux-$mode.cfg" ::syslinux.cfg
    syslinux --install "$img.tmp"
    mv "$img.tmp" "$img"
done
step "ready in $OUT"
