#!/bin/sh
# PXE boot of the Linux guest to its shell (issue 19): -boot n, the card's
# iPXE ROM (Debian's ipxe-qemu) takes a lease from slirp, fetches boot.ipxe
# from slirp's TFTP server (a local directory), then the guest's kernel and
# initramfs (the ones tests/guest/build-linux.sh makes for make demo), and
# boots them.  The busybox shell on COM1 (-serial stdio, fed through a fifo)
# then runs what this script types.  A random word on the script's kernel
# command line proves the kernel came from this TFTP directory.
# PCnet under bt in make check; NE2000 PCI under RETROVISOR_LONG=1.  (The
# interpreter boots the same kernel too slowly for a test: its PXE path is
# net.sh's Multiboot kernel.)  No traffic leaves the machine: slirp serves
# TFTP itself.
. tests/e2e/lib.sh
L=build/linux
T="$E2E_TMP/pxe_linux"
rm -rf "$T"
mkdir -p "$T/tftp"
if [ ! -r /usr/lib/ipxe/qemu/pxe-pcnet.rom ] || [ ! -r /usr/lib/ipxe/qemu/pxe-ne2k_pci.rom ]; then
    fail "pxe linux: iPXE's ROMs are missing (install Debian's ipxe-qemu: make deps)"
    exit 0
fi
if ! sh tests/guest/build-linux.sh >"$T/build.log" 2>&1; then
    fail "pxe linux: building the guest failed: $(tail -2 "$T/build.log" | tr '\n' ' ')"
    exit 0
fi
cp "$L/vmlinuz" "$L/initramfs.cpio" "$T/tftp/"
word=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
printf '#!ipxe\nkernel vmlinuz console=ttyS0 panic=-1 rv.mode=shell rv.pxe=%s\ninitrd initramfs.cpio\nboot\n' \
    "$word" >"$T/tftp/boot.ipxe"
sha_busybox=$(sha256sum "$L/pkgroot/bin/busybox" | cut -d' ' -f1)

# pxe_boot ENGINE MODEL TIMEOUT: boot, wait for the shell, type, power off.
pxe_boot() {
    engine=$1 model=$2 limit=$3
    name="pxe linux $model ($engine)"
    log="$T/$engine-$model.log"
    keys="$T/$engine-$model.keys"
    mkfifo "$keys"
    trap '' PIPE     # a retrovisor that died must not take this script with it
    timeout "$limit" $RV -accel "$engine" -m 256 -boot n -nic "user,model=$model,tftp=$T/tftp,bootfile=boot.ipxe" \
        -display none -serial stdio -no-reboot <"$keys" >"$log" 2>"$log.stderr" &
    pid=$!
    exec 3>"$keys"
    i=0
    while ! grep -q "Type 'poweroff'" "$log" 2>/dev/null && [ $i -lt $((limit * 5)) ] && kill -0 $pid 2>/dev/null; do
        sleep 0.2
        i=$((i + 1))
    done
    sleep 1
    printf 'echo RV-PXE uname=$(uname -m) $(cat /proc/cmdline)\n' >&3
    printf 'echo RV-PXE-SHA $(sha256sum /bin/busybox)\n' >&3
    printf 'poweroff -f\n' >&3
    wait $pid
    rc=$?
    exec 3>&-
    trap - PIPE
    tr -d '\r' <"$log" >"$log.txt"
    if [ $rc -eq 0 ] && grep -q 'reboot: Power down' "$log.txt"; then
        pass "$name: booted over TFTP and powered off from its shell"
    else
        fail "$name: exit status $rc: $(tail -2 "$log.txt" "$log.stderr" | tr '\n' ' ')"
    fi
    expect_line "$log.txt" "^RV-PXE uname=i686 .*rv\.pxe=$word( |\$)" \
        "$name: the busybox shell answers; the kernel runs the command line of the TFTP script"
    expect_line "$log.txt" "^RV-PXE-SHA $sha_busybox " "$name: the initramfs came whole (sha256 of /bin/busybox)"
}

pxe_boot bt pcnet 600
if [ -n "${RETROVISOR_LONG:-}" ]; then
    pxe_boot bt ne2k_pci 600
fi
