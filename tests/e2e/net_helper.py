#!/usr/bin/env python3
"""Host side of tests/e2e/net.sh.  Only ever touches 127.0.0.1.

  net_helper.py serve DIR PORTFILE      HTTP server for DIR on 127.0.0.1 (an
                                        unused port, written to PORTFILE)
  net_helper.py freeport                print a TCP port unused on 127.0.0.1
  net_helper.py hold PORTFILE           listen on an unused 127.0.0.1 port (written
                                        to PORTFILE) until killed
  net_helper.py talk LOG PORT OUT       wait for RV-NC-READY in the guest's serial
                                        LOG, then connect to 127.0.0.1:PORT, send a
                                        line, and write what the guest sent to OUT
  net_helper.py pcap FILE               print "frames N dhcp M" for a pcap capture
"""
import functools
import http.server
import os
import socket
import struct
import sys
import time


def serve(directory, portfile):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=directory)
    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass    # a guest cut off mid-transfer (a timed-out bench run) is no news

    srv = QuietServer(("127.0.0.1", 0), handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def hold(portfile):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    time.sleep(600)


def talk(log, port, out):
    deadline = time.time() + 400
    while time.time() < deadline:
        try:
            if b"RV-NC-READY" in open(log, "rb").read():
                break
        except OSError:
            pass
        time.sleep(0.5)
    got = b""
    for _ in range(60):
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
            s.sendall(b"RV-FROM-HOST\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            s.close()
            if got:
                break
        except OSError:
            pass
        time.sleep(1)
    with open(out, "wb") as f:
        f.write(got)


def pcap(path):
    d = open(path, "rb").read()
    if len(d) < 24 or struct.unpack("<I", d[:4])[0] != 0xA1B2C3D4:
        print("frames 0 dhcp 0 (not a pcap file)")
        return
    off, frames, dhcp = 24, 0, 0
    while off + 16 <= len(d):
        _, _, incl, _ = struct.unpack("<IIII", d[off:off + 16])
        f = d[off + 16:off + 16 + incl]
        off += 16 + incl
        frames += 1
        # IPv4 + UDP to or from the DHCP server port 67
        if len(f) >= 38 and f[12:14] == b"\x08\x00" and f[23] == 17:
            ihl = (f[14] & 15) * 4
            sport, dport = struct.unpack(">HH", f[14 + ihl:18 + ihl])
            if 67 in (sport, dport):
                dhcp += 1
    print("frames %d dhcp %d" % (frames, dhcp))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif cmd == "freeport":
        freeport()
    elif cmd == "hold":
        hold(sys.argv[2])
    elif cmd == "talk":
        talk(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "pcap":
        pcap(sys.argv[2])
