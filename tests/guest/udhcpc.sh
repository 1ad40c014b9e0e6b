#!/bin/sh
# udhcpc's event script in the guest: configure the interface from the lease.
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "RV-LEASE $ip router=$router dns=$dns" >/dev/console
    ;;
deconfig)
    ip link set "$interface" up
    ip addr flush dev "$interface"
    ;;
esac
