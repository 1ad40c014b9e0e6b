#!/usr/bin/env python3
"""Hostile VNC clients for tests/e2e/vnc_hostile.sh (standard library only).

Every address is 127.0.0.1.  LOG is the guest's serial log (COM1) written
by tests/guest/vnc_tick.asm: a '.' per 10 ms of guest time, and "K" + two
hex digits for every byte the keyboard controller hands the guest.

  port                          prints a free TCP port in 40000-47999
  ws PORT ORIGIN                WebSocket upgrade from a page at ORIGIN, then
                                (if the server answers 101) an RFB session
                                over it with security None and a key press
                                of 'a'; prints "upgraded" or "refused" and
                                exits 0 either way; 1 on a protocol error
  ws-blind PORT ORIGIN          a hijacker that does not wait for answers: the
                                upgrade and a whole RFB session with key
                                events in one go; prints what the server sent
  rate LOG SECONDS              serial bytes per second over SECONDS
  flood PORT N LOG PID HOLD     opens N connections at once (raising its own
                                descriptor limit), holds them HOLD seconds;
                                prints the serial rate while held, whether PID
                                lived, and its highest descriptor
  wrongpw PORT N                N attempts with a wrong password, 50 ms apart;
                                prints "checked C refused R elapsed E ok O"
  garbage PORT                  malformed handshakes, huge SetEncodings and
                                ClientCutText counts, random bytes after the
                                handshake, each on its own connection; prints
                                how many the server closed and whether any
                                got a framebuffer update without asking
  name PORT                     prints the desktop name of ServerInit
  trickle PORT LOG SECONDS      one client sends the RFB version one byte
                                every 5 s, another stops mid-handshake;
                                prints the serial rate meanwhile and when
                                the server dropped each
"""
import os
import resource
import select
import socket
import struct
import sys
import time


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += d
    return b


def log_size(log):
    try:
        return os.path.getsize(log)
    except OSError:
        return 0


def rate(log, seconds):
    a = log_size(log)
    time.sleep(seconds)
    return (log_size(log) - a) / seconds


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def max_fd(pid):
    try:
        return max(int(x) for x in os.listdir("/proc/%d/fd" % pid))
    except (OSError, ValueError):
        return -1


# ---- WebSocket framing (client side: masked frames) ----

def ws_frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    head = b"\x82" + (bytes([0x80 | n]) if n < 126 else b"\xfe" + struct.pack(">H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WsReader:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def read(self, n):
        while len(self.buf) < n:
            h = recv_exact(self.s, 2)
            ln = h[1] & 0x7f
            if ln == 126:
                ln = struct.unpack(">H", recv_exact(self.s, 2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", recv_exact(self.s, 8))[0]
            mask = recv_exact(self.s, 4) if h[1] & 0x80 else None
            data = recv_exact(self.s, ln)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if h[0] & 0x0f == 8:
                raise EOFError("WebSocket close frame")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def upgrade_request(port, origin):
    return ("GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n"
            "Origin: %s\r\n\r\n" % (port, origin)).encode()


def key_events(sym):
    return struct.pack(">BBxxI", 4, 1, sym) + struct.pack(">BBxxI", 4, 0, sym)


def cmd_ws(port, origin):
    s = connect(port)
    s.sendall(upgrade_request(port, origin))
    head = b""
    try:
        while b"\r\n\r\n" not in head:
            d = s.recv(1)
            if not d:
                break
            head += d
    except OSError:
        pass
    status = head.split(b"\r\n")[0].decode("latin-1")
    if " 101 " not in status:
        rest = b""
        try:
            rest = s.recv(64)
        except OSError:
            pass
        if rest:
            print("refused with '%s' but then sent %r" % (status, rest))
            return 1
        print("refused: %s" % (status or "closed without an answer"))
        return 0
    ws = WsReader(s)
    ver = ws.read(12)
    if ver != b"RFB 003.008\n":
        print("bad greeting %r" % ver)
        return 1
    s.sendall(ws_frame(b"RFB 003.008\n"))
    n = ws.read(1)[0]
    types = ws.read(n)
    if 1 not in types:
        print("no security type None: %r" % types)
        return 1
    s.sendall(ws_frame(b"\x01"))
    if struct.unpack(">I", ws.read(4))[0] != 0:
        print("security failed")
        return 1
    s.sendall(ws_frame(b"\x01"))                    # ClientInit, shared
    w, h = struct.unpack(">HH", ws.read(4))
    ws.read(16)
    ws.read(struct.unpack(">I", ws.read(4))[0])
    s.sendall(ws_frame(key_events(ord("a"))))
    time.sleep(0.5)
    s.close()
    print("upgraded: RFB session %dx%d, typed 'a'" % (w, h))
    return 0


def cmd_ws_blind(port, origin):
    s = connect(port)
    # Everything a hijacking page would send, without waiting for answers.
    s.sendall(upgrade_request(port, origin) + ws_frame(b"RFB 003.008\n") + ws_frame(b"\x01")
              + ws_frame(b"\x01") + ws_frame(key_events(ord("a")) * 4))
    got = b""
    s.settimeout(3)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    print("server sent %d bytes: %r" % (len(got), got[:80]))
    return 0 if b"RFB" not in got and b" 101 " not in got else 1


def cmd_flood(port, n, log, pid, hold):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    base = rate(log, 2)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    top = max_fd(pid)
    a, t0 = log_size(log), time.time()
    while time.time() - t0 < hold:
        time.sleep(0.5)
        top = max(top, max_fd(pid))
    held = (log_size(log) - a) / (time.time() - t0)
    greeted = 0
    for s in socks:
        try:
            if s.recv(12, socket.MSG_PEEK).startswith(b"RFB"):
                greeted += 1
        except OSError:
            pass
    print("opened %d; serial %.0f/s before, %.0f/s during; alive %s; highest fd %d; %d got a greeting"
          % (n, base, held, alive(pid), top, greeted))
    for s in socks:
        s.close()
    return 0


def wrong_attempt(port):
    """'checked' when the server asked for a password and refused the wrong
    one, 'refused' when it closed the connection first, 'ok' if it let us in."""
    try:
        s = connect(port, 5)
    except OSError:
        return "refused"
    try:
        ver = s.recv(12)
        if not ver:
            return "refused"
        s.sendall(b"RFB 003.008\n")
        n = recv_exact(s, 1)[0]
        types = recv_exact(s, n)
        if 1 in types:
            return "ok"
        s.sendall(b"\x02")
        recv_exact(s, 16)
        s.sendall(os.urandom(16))
        res = struct.unpack(">I", recv_exact(s, 4))[0]
        return "ok" if res == 0 else "checked"
    except (EOFError, OSError):
        return "refused"
    finally:
        s.close()


def cmd_wrongpw(port, n):
    counts = {"checked": 0, "refused": 0, "ok": 0}
    t0 = time.time()
    for _ in range(n):
        counts[wrong_attempt(port)] += 1
        time.sleep(0.05)
    print("checked %d refused %d elapsed %.1f ok %d"
          % (counts["checked"], counts["refused"], time.time() - t0, counts["ok"]))
    return 0


def dropped_after(s, t0, limit):
    s.setblocking(False)
    try:
        d = s.recv(4096)
        if d == b"":
            return time.time() - t0
    except BlockingIOError:
        return None
    except OSError:
        return time.time() - t0
    return None


def cmd_trickle(port, log, seconds):
    base = rate(log, 3)
    trickler = connect(port)
    trickler.settimeout(5)
    recv_exact(trickler, 12)
    staller = connect(port)
    recv_exact(staller, 12)
    staller.sendall(b"RFB 003.008\n"[:5])       # and nothing more
    t0 = time.time()
    a = log_size(log)
    msg = b"RFB 003.008\n"
    sent, drop_t, drop_s, next_send = 0, None, None, t0
    while time.time() - t0 < seconds:
        if drop_t is None and time.time() >= next_send and sent < len(msg):
            try:
                trickler.sendall(msg[sent:sent + 1])
                sent += 1
            except OSError:
                drop_t = time.time() - t0
            next_send += 5
        if drop_t is None:
            drop_t = dropped_after(trickler, t0, seconds)
        if drop_s is None:
            drop_s = dropped_after(staller, t0, seconds)
        time.sleep(0.1)
    during = (log_size(log) - a) / (time.time() - t0)
    print("serial %.0f/s before, %.0f/s during; trickler dropped after %s s, staller after %s s"
          % (base, during, "%.1f" % drop_t if drop_t is not None else "never",
             "%.1f" % drop_s if drop_s is not None else "never"))
    return 0


def none_session(port):
    """An RFB 3.8 session with security None up to ServerInit."""
    return none_handshake(port)[0]


def none_handshake(port):
    """none_session's socket, and the desktop name from ServerInit."""
    s = connect(port)
    recv_exact(s, 12)
    s.sendall(b"RFB 003.008\n")
    n = recv_exact(s, 1)[0]
    recv_exact(s, n)
    s.sendall(b"\x01")
    recv_exact(s, 4)
    s.sendall(b"\x01")
    recv_exact(s, 20)
    return s, recv_exact(s, struct.unpack(">I", recv_exact(s, 4))[0])


def cmd_name(port):
    """Prints the desktop name a client reads in ServerInit."""
    s, name = none_handshake(port)
    s.close()
    print(name.decode("utf-8", "replace"))
    return 0


def closed_by_server(s, wait):
    """True when the server closes s within wait seconds (it may send first)."""
    s.settimeout(wait)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def cmd_garbage(port):
    import random
    rnd = random.Random(23)
    cases = []
    # malformed handshakes
    for name, data in (("bad version", b"RFB 999.999\n"), ("not RFB", b"XXXXXXXXXXXX"),
                       ("binary version", bytes(range(12))), ("short version", b"RFB 003")):
        s = connect(port)
        recv_exact(s, 12)
        s.sendall(data)
        cases.append((name, s))
    s = connect(port)
    recv_exact(s, 12)
    s.sendall(b"RFB 003.008\n")
    recv_exact(s, 1 + 1)
    s.sendall(b"\x63")                              # security type 99: never offered
    cases.append(("unoffered security type", s))
    # after the handshake
    s = none_session(port)
    s.sendall(struct.pack(">BxH", 2, 65535) + b"\0\0\0\0" * 2)    # SetEncodings: 65535 promised, 2 sent
    cases.append(("SetEncodings count 65535", s))
    s = none_session(port)
    s.sendall(struct.pack(">BxxxI", 6, 0x7fffffff) + b"x" * 1000)  # ClientCutText of 2 GiB
    cases.append(("ClientCutText 2 GiB", s))
    s = none_session(port)
    s.sendall(struct.pack(">Bxxxi", 6, -0x7fffffff) + b"x" * 1000)  # extended clipboard, absurd length
    cases.append(("ClientCutText negative length", s))
    s = none_session(port)
    s.sendall(bytes(rnd.randrange(256) for _ in range(4096)))
    cases.append(("4 KiB of random bytes", s))
    closed = [name for name, s in cases if closed_by_server(s, 8)]
    for _, s in cases:
        s.close()
    print("%d of %d closed by the server; left open: %s"
          % (len(closed), len(cases), ", ".join(n for n, _ in cases if n not in closed) or "none"))
    return 0


def cmd_port():
    import random
    for _ in range(200):
        p = random.randint(40000, 47999)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            print(p)
            return 0
        except OSError:
            pass
        finally:
            s.close()
    return 1


def main(argv):
    cmd, a = argv[1], argv[2:]
    if cmd == "port":
        return cmd_port()
    if cmd == "ws":
        return cmd_ws(int(a[0]), a[1])
    if cmd == "ws-blind":
        return cmd_ws_blind(int(a[0]), a[1])
    if cmd == "rate":
        print("%.0f" % rate(a[0], float(a[1])))
        return 0
    if cmd == "flood":
        return cmd_flood(int(a[0]), int(a[1]), a[2], int(a[3]), float(a[4]))
    if cmd == "wrongpw":
        return cmd_wrongpw(int(a[0]), int(a[1]))
    if cmd == "garbage":
        return cmd_garbage(int(a[0]))
    if cmd == "name":
        return cmd_name(int(a[0]))
    if cmd == "trickle":
        return cmd_trickle(int(a[0]), a[1], float(a[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
