#!/usr/bin/env python3
"""Drives a text-mode guest (DOS) over VNC, for tests/e2e/fdc.sh.

  dos_session.py PORT ROM STEP...

Steps, run in order (the screen is read glyph by glyph with the font of the
VGA BIOS image ROM, through screens.py):
  prompt P        wait until the last non-blank line of the screen is P (and,
                  after a reboot, the screen changed)
  run CMD         type CMD and Return, wait until the screen changed and its
                  last non-blank line is the prompt again (the prompt given
                  to the last 'prompt' step), twice in a row
  save FILE       write the screen's 25 lines to FILE
  reboot          press Ctrl+Alt+Del
  timeout SECS    time allowed to each later step (default 120)

Exit status 0 when every step finished, 1 with one line saying why.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import screens  # noqa: E402

XK_RETURN, XK_CONTROL_L, XK_ALT_L, XK_DELETE = 0xff0d, 0xffe3, 0xffe9, 0xffff


class Rfb:
    def __init__(self, port, deadline):
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("cannot connect to VNC port %d" % port)
                time.sleep(0.3)
        if self.recv(12)[:4] != b"RFB ":
            raise SystemExit("not an RFB server")
        self.s.sendall(b"RFB 003.008\n")
        if 1 not in self.recv(self.recv(1)[0]):
            raise SystemExit("the server wants authentication")
        self.s.sendall(b"\x01")
        if struct.unpack(">I", self.recv(4))[0] != 0:
            raise SystemExit("security handshake failed")
        self.s.sendall(b"\x01")
        self.w, self.h = struct.unpack(">HH", self.recv(4))
        self.recv(16)
        self.recv(struct.unpack(">I", self.recv(4))[0])
        self.s.sendall(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        self.s.sendall(struct.pack(">BxHii", 2, 2, 0, -223))
        self.fb = bytearray(self.w * self.h * 4)
        self.incremental = 0

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise SystemExit("the VNC server closed the connection")
            b += c
        return b

    def frame(self):
        """The screen after the next update (or as it was after 1 s without one)."""
        self.s.sendall(struct.pack(">BBHHHH", 3, self.incremental, 0, 0, self.w, self.h))
        self.incremental = 1
        while True:
            self.s.settimeout(1)
            try:
                t = self.recv(1)[0]
            except socket.timeout:
                t = None
            self.s.settimeout(10)
            if t is None or t == 0:
                break
            if t == 2:
                continue
            if t == 3:
                self.recv(3)
                self.recv(struct.unpack(">I", self.recv(4))[0])
                continue
            raise SystemExit("unexpected RFB message %d" % t)
        if t == 0:
            self.recv(1)
            for _ in range(struct.unpack(">H", self.recv(2))[0]):
                x, y, rw, rh, enc = struct.unpack(">HHHHi", self.recv(12))
                if enc == -223:
                    self.w, self.h, self.fb, self.incremental = rw, rh, bytearray(rw * rh * 4), 0
                    continue
                if enc != 0:
                    raise SystemExit("unexpected encoding %d" % enc)
                for row in range(rh):
                    o = ((y + row) * self.w + x) * 4
                    self.fb[o:o + rw * 4] = self.recv(rw * 4)
        rgb = bytearray(self.w * self.h * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = self.fb[2::4], self.fb[1::4], self.fb[0::4]
        return self.w, self.h, bytes(rgb)

    def key(self, keysym, down):
        self.s.sendall(struct.pack(">BBxxI", 4, down, keysym))
        time.sleep(0.03)

    def type(self, text):
        for ch in text:
            sym = XK_RETURN if ch == "\n" else ord(ch)
            self.key(sym, 1)
            self.key(sym, 0)


def last_line(lines):
    filled = [l for l in lines if l.strip()]
    return filled[-1] if filled else ""


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    port, glyphs = int(argv[1]), screens.rom_font(argv[2])
    steps = argv[3:]
    timeout, prompt = 120.0, None
    rfb = Rfb(port, time.time() + timeout)
    seen = "nothing"

    def text():
        nonlocal seen
        lines = screens.screen_text(rfb.frame(), glyphs)
        if lines is None:
            seen = "not an 80x25 text screen"
            return None
        seen = " | ".join(l for l in lines if l.strip())[-500:]
        return lines

    def wait_prompt(before):
        """Waits until the screen differs from `before` and ends with the prompt, stably."""
        deadline = time.time() + timeout
        previous = None
        while time.time() < deadline:
            lines = text()
            if lines is not None and lines != before and last_line(lines) == prompt:
                if lines == previous:
                    return lines
                previous = lines
            else:
                previous = None
            time.sleep(0.3)
        raise SystemExit("timed out waiting for the prompt %r: %s" % (prompt, seen))

    i = 0
    lines = None
    while i < len(steps):
        op, arg = steps[i], steps[i + 1] if i + 1 < len(steps) else None
        i += 2
        if op == "timeout":
            timeout = float(arg)
        elif op == "prompt":
            prompt = arg
            lines = wait_prompt(lines)
        elif op == "run":
            before = lines if lines is not None else text()
            rfb.type(arg + "\n")
            lines = wait_prompt(before)
        elif op == "save":
            with open(arg, "w") as f:
                f.write("\n".join(lines if lines is not None else text()) + "\n")
        elif op == "reboot":
            i -= 1
            lines = text()
            for sym in (XK_CONTROL_L, XK_ALT_L, XK_DELETE):
                rfb.key(sym, 1)
            for sym in (XK_DELETE, XK_ALT_L, XK_CONTROL_L):
                rfb.key(sym, 0)
        else:
            raise SystemExit("unknown step %s" % op)
    print("done: %s" % seen)


if __name__ == "__main__":
    main(sys.argv)
