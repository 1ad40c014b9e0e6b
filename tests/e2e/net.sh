#!/bin/sh
# Networking: the Linux guest on each card (PCnet, NE2000 PCI) with user
# networking (libslirp) takes a DHCP lease, fetches a 16 MiB file from an
# HTTP server this script starts on the host's 127.0.0.1 (the guest's
# 10.0.2.2) and checks its sha256 against the host's, and answers one
# connection on a hostfwd port with bytes both ways.  One run captures
# with pcap=, one runs with restrict=on.  PXE through iPXE's ROMs, then the
# bad options.
# All traffic stays on 127.0.0.1.
. tests/e2e/lib.sh

if ! sh tests/guest/build-linux.sh >"$E2E_TMP/net-build.log" 2>&1; then
    fail "net: building the guest images failed: $(tail -3 "$E2E_TMP/net-build.log")"
    exit 1
fi
L=build/linux
T="$E2E_TMP/net"
rm -rf "$T"
mkdir -p "$T/www"
HELPER="python3 tests/e2e/net_helper.py"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

head -c 16777216 /dev/urandom >"$T/www/blob"
sha_blob=$(sha256sum "$T/www/blob" | cut -d' ' -f1)
$HELPER serve "$T/www" "$T/http.port" &
pids="$pids $!"
i=0
while [ ! -s "$T/http.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
http_port=$(cat "$T/http.port")

# guest_run NAME MODULES NETOPTS...: boot the guest in rv.mode=net and talk to its hostfwd port
guest_run() {
    name=$1 mods=$2
    shift 2
    img="$T/disk-$name.img"
    cp "$L/disk-test.img" "$img"
    cat >"$T/syslinux-$name.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd console=ttyS0,115200 panic=-1 rv.mode=net rv.mods=$mods rv.http=$http_port rv.ncport=5555 rv.wgettime=${WGET_TIME:-200}
CFG
    mcopy -o -i "$img" "$T/syslinux-$name.cfg" ::syslinux.cfg
    log="$T/$name.log"
    : >"$log"
    fwd_port=$($HELPER freeport)
    $HELPER talk "$log" "$fwd_port" "$T/$name.nc" &
    talker=$!
    # shellcheck disable=SC2068
    timeout 600 $RV -m 256 -hda "$img" -display none -serial "file:$log" -no-reboot \
        $(echo "$@" | sed "s/FWD/hostfwd=tcp::$fwd_port-:5555/") >"$log.stdout" 2>"$log.stderr"
    rc=$?
    wait "$talker"
    # poweroff -f: through ACPI's S5 (SeaBIOS installs the tables), or a halt without it.
    if [ "$rc" -eq 0 ] && { grep -q 'halted the CPU with interrupts disabled' "$log.stderr" ||
                            grep -q 'reboot: Power down' "$log"; }; then
        pass "net $name: the guest powered off by itself"
    else
        fail "net $name: did not power off by itself (status $rc): $(tail -2 "$log.stderr" | tr '\n' ' ')"
    fi
    expect_line "$log" '^RV-ETH0 ' "net $name: the driver found the card (eth0)"
    expect_line "$log" '^RV-LEASE 10\.0\.2\.15 ' "net $name: udhcpc got a lease from slirp"
    if grep -q "^RV-FROM-GUEST" "$T/$name.nc"; then
        pass "net $name: hostfwd 127.0.0.1:$fwd_port reached nc -l in the guest, guest to host"
    else
        fail "net $name: nothing from the guest's nc on hostfwd port $fwd_port"
    fi
    expect_line "$log" '^RV-NC-GOT RV-FROM-HOST' "net $name: hostfwd, host to guest"
}

guest_run pcnet mii,pcnet32 -netdev "user,id=n0,FWD,pcap=$T/pcnet.pcap" -device pcnet,netdev=n0,mac=52:54:00:aa:bb:01
expect_line "$T/pcnet.log" '^RV-ETH0 52:54:00:aa:bb:01' "net pcnet: the guest sees the MAC given with mac="
expect_line "$T/pcnet.log" "^RV-WGET-SHA $sha_blob" "net pcnet: wget of 16 MiB from the host, sha256 matches"
pc=$($HELPER pcap "$T/pcnet.pcap")
case "$pc" in
"frames "*" dhcp 0") fail "net pcnet: pcap= capture has no DHCP frames ($pc)" ;;
"frames "[0-9][0-9][0-9][0-9]*) pass "net pcnet: pcap= captured the traffic ($pc)" ;;
*) fail "net pcnet: pcap= capture too small ($pc)" ;;
esac

guest_run ne2k 8390,ne2k-pci -nic user,model=ne2k_pci,FWD
expect_line "$T/ne2k.log" "^RV-WGET-SHA $sha_blob" "net ne2k: wget of 16 MiB from the host, sha256 matches"

WGET_TIME=10 guest_run restrict mii,pcnet32 -nic "user,model=pcnet,restrict=on,FWD"
expect_line "$T/pcnet.log" '^RV-LEASE 10\.0\.2\.15 router=10\.0\.2\.2 dns=10\.0\.2\.3' "net pcnet: the lease names slirp's gateway and DNS"
expect_line "$T/restrict.log" '^RV-WGET-FAILED' "net restrict=on: the guest cannot reach the host's HTTP server"

# ---- PXE: -boot n, iPXE's ROM on the card's ROM BAR, DHCP and TFTP from slirp ----
# iPXE fetches a script, then the Multiboot test kernel and a module over
# TFTP, and boots it; the kernel reports on COM1 and exits with status 33.
# Under both engines (iPXE's clock needs the interrupt taken right after an
# STI's shadowed instruction, which bt does too).
if [ -r /usr/lib/ipxe/qemu/pxe-pcnet.rom ] && [ -r /usr/lib/ipxe/qemu/pxe-ne2k_pci.rom ]; then
    mkdir -p "$T/tftp"
    nasm -f bin tests/guest/multiboot_kernel.asm -o "$T/tftp/mbk.bin"
    printf 'pxe module\n' >"$T/tftp/mod.txt"
    printf '#!ipxe\nkernel mbk.bin hello=pxe\nmodule mod.txt\nboot\n' >"$T/tftp/boot.ipxe"
    for engine_model in bt:pcnet interp:pcnet bt:ne2k_pci interp:ne2k_pci; do
        engine=${engine_model%%:*} model=${engine_model#*:}
        log="$T/pxe-$engine-$model.log"
        timeout 300 $RV -accel $engine -m 64 -boot n -nic "user,model=$model,tftp=$T/tftp,bootfile=boot.ipxe" \
            -display none -serial "file:$log" -no-reboot >"$log.stdout" 2>"$log.stderr"
        rc=$?
        if [ "$rc" -eq 33 ]; then
            pass "net pxe $model ($engine): -boot n booted the TFTP kernel (exit status 33)"
        else
            fail "net pxe $model ($engine): exit status $rc, expected 33: $(tail -2 "$log.stderr" | tr '\n' ' ')"
        fi
        expect_line "$log" '^cmdline=tftp://10\.0\.2\.2/mbk\.bin hello=pxe$' "net pxe $model ($engine): the kernel came over TFTP with its command line"
        expect_line "$log" '^module .* tftp://10\.0\.2\.2/mod\.txt pxe module$' "net pxe $model ($engine): and its module"
    done
else
    fail "net pxe: iPXE's ROMs are missing (install Debian's ipxe-qemu: make deps)"
fi

# ---- bad options: one line, exit status 2 ----
bad_option() { # bad_option NAME PATTERN ARGS...
    name=$1 pattern=$2
    shift 2
    out="$T/bad.out"
    timeout 20 $RV -display none -serial none -run-for 1 "$@" >"$out" 2>&1
    rc=$?
    lines=$(wc -l <"$out")
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -Eq -- "$pattern" "$out"; then
        pass "net bad option: $name"
    else
        fail "net bad option: $name: status $rc, $lines lines: $(head -2 "$out" | tr '\n' ' ')"
    fi
}
$HELPER hold "$T/held.port" &
pids="$pids $!"
i=0
while [ ! -s "$T/held.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
held=$(cat "$T/held.port")
bad_option "hostfwd on a taken port names it" "port 127\.0\.0\.1:$held" -nic "user,hostfwd=tcp:127.0.0.1:$held-:22"
bad_option "hostfwd without an address binds 127.0.0.1 (taken there)" "port 127\.0\.0\.1:$held" -netdev "user,id=a,hostfwd=tcp::$held-:22" -device pcnet,netdev=a
bad_option "malformed hostfwd" "hostfwd=tcp:nonsense" -netdev user,id=a,hostfwd=tcp:nonsense -device pcnet,netdev=a
bad_option "unknown backend" "-netdev tap,id=a" -netdev tap,id=a
bad_option "unknown -netdev parameter" "unknown parameter 'colour'" -netdev user,id=a,colour=red
bad_option "-device naming no -netdev" "no -netdev with id 'nope'" -device pcnet,netdev=nope
bad_option "-device without netdev=" "netdev= is required" -device ne2k_pci
bad_option "unknown card model" "model 'e1000'" -nic user,model=e1000
bad_option "bad MAC" "mac=52:54:zz" -nic user,mac=52:54:zz:00:00:01
bad_option "multicast MAC" "multicast" -device pcnet,netdev=a,mac=01:00:00:00:00:01 -netdev user,id=a
bad_option "two cards on one netdev" "already has a card" -netdev user,id=a -device pcnet,netdev=a -device ne2k_pci,netdev=a
bad_option "pcap file that cannot be created" "pcap=/nonexistent/x.pcap" -netdev user,id=a,pcap=/nonexistent/x.pcap -device pcnet,netdev=a
bad_option "-net other than none" "-net nic" -net nic
head -c 4096 /dev/zero >"$T/notrom.bin"
bad_option "-boot n with a romfile that is no ROM" "not an option ROM" -boot n -nic "user,romfile=$T/notrom.bin"
bad_option "-boot n with a romfile over 1 MiB" "too large" -boot n -nic "user,romfile=$T/www/blob"
bad_option "two -netdev with one id" "id 'a' is already used" -netdev user,id=a -netdev user,id=a -device pcnet,netdev=a

# ---- the default machine has one PCnet; -net none has none (SeaBIOS's PCI scan says) ----
pci_scan() { # pci_scan NAME ARGS...: SeaBIOS's debug log of a short run
    name=$1
    shift
    timeout 60 $RV -display none -serial none -run-for 1 -debugcon "file:$T/$name.dbg" "$@" >/dev/null 2>&1
}
pci_scan default
pci_scan none -net none
pci_scan two -nic user,model=ne2k_pci -nic user
if grep -q 'init bdf=00:03.0 id=1022:2000' "$T/default.dbg"; then pass "net: the default machine has a PCnet at 00:03.0"
else fail "net: no PCnet at 00:03.0 in SeaBIOS's PCI scan of the default machine"; fi
if grep -Eq 'id=(1022:2000|10ec:8029)' "$T/none.dbg"; then fail "net: -net none still has a network card"
elif grep -q 'init bdf=00:02.0' "$T/none.dbg"; then pass "net: -net none has no network card"
else fail "net: -net none: no PCI scan in SeaBIOS's log"; fi
if grep -q 'init bdf=00:03.0 id=10ec:8029' "$T/two.dbg" && grep -q 'init bdf=00:04.0 id=1022:2000' "$T/two.dbg"; then
    pass "net: two -nic give an NE2000 at 00:03.0 and a PCnet at 00:04.0"
else
    fail "net: two -nic: not an NE2000 at 00:03.0 and a PCnet at 00:04.0"
fi
