#!/usr/bin/env python3
"""Screen helpers for tests/e2e/ui.sh (standard library only).

  png-pattern PNG mode13|vbe      the PNG equals, pixel for pixel, the pattern
                                  tests/guest/vga_pattern.asm draws (computed here)
  text IMAGE ROM                  prints the text on an 80x25 screen image,
                                  read back glyph by glyph with the font found
                                  in the VGA BIOS image ROM
  lines IMAGE ROM A B             the text screen (read as above) has a line A
                                  and, below it, a line B (whole lines)
  same A.png B.png                two images are equal; the one cell that holds
                                  the blinking text cursor may differ in its
                                  bottom rows
  identical A.png B.png           two images are equal pixel for pixel
  perturb IN.png OUT.png          OUT is IN with the pixel at the centre of the
                                  screen inverted (to check that a comparison
                                  can fail)
  vnc PORT OUT.png [--text ROM S] [--pattern P] [--timeout T]
                                  RFB client: keeps requesting frames until the
                                  screen shows string S (read with the font from
                                  ROM) or equals pattern P, then saves it
  vnc PORT OUT.png --wait-log FILE S --type KEYS
                                  RFB client: once FILE (the guest's debug
                                  console) holds S, types the characters KEYS
                                  (key events with X keysyms; newline is
                                  Return) and leaves
  vnc PORT OUT.png --font ROM --wait-screen P --type KEYS --lines A B
                                  RFB client: once a line of the text screen
                                  starts with P, types KEYS, then waits for a
                                  line A with a line B below it (both whole
                                  lines; a kernel message may come between)
                                  and saves that screen
  xvfb FBFILE OUT.png W H [--text ROM S] [--pattern P] [--timeout T]
                                  the same for a W x H window on an Xvfb screen
                                  (the XWD file Xvfb -fbdir keeps) with a black
                                  root window (Xvfb -br), placed by its lit pixels

  xclose NAME                     asks the top-level X window whose title holds
                                  NAME to close (WM_DELETE_WINDOW, as a window
                                  manager's close button does), on $DISPLAY

Exit status 0 on success, 1 with one line saying why.
"""
import os
import socket
import struct
import sys
import time
import zlib


# ---- PNG (8-bit RGB/RGBA, what ui/screendump.c writes) ----

def png_read(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("%s: not a PNG" % path)
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise SystemExit("%s: unsupported PNG (depth %d, colour type %d)" % (path, depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = w * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        if bpp == 4:
            line = bytearray(v for k, v in enumerate(line) if k % 4 != 3)
        out += line
    return w, h, bytes(out)


def png_write(path, w, h, rgb):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
    raw = b"".join(b"\0" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- the patterns of tests/guest/vga_pattern.asm ----

def six_to_eight(v):
    return (v << 2) | (v >> 4)


def pattern(name):
    if name == "mode13":
        pal = [(six_to_eight(i >> 2), six_to_eight(i & 63), six_to_eight(63 - (i >> 2))) for i in range(256)]
        out = bytearray()
        for y in range(200):
            for x in range(320):
                out += bytes(pal[((x + 3 * y) ^ (x >> 6)) & 0xff])
        return 320, 200, bytes(out)
    if name == "vbe":
        out = bytearray()
        for y in range(480):
            for x in range(640):
                out += bytes((x >> 2, y >> 1, (x ^ y) & 0xff))
        return 640, 480, bytes(out)
    raise SystemExit("unknown pattern %s" % name)


def first_difference(a, b):
    aw, ah, ap = a
    bw, bh, bp = b
    if (aw, ah) != (bw, bh):
        return "size %dx%d, expected %dx%d" % (aw, ah, bw, bh)
    if ap == bp:
        return None
    n = sum(1 for i in range(0, len(ap), 3) if ap[i:i + 3] != bp[i:i + 3])
    i = next(i for i in range(0, len(ap), 3) if ap[i:i + 3] != bp[i:i + 3])
    return "%d of %d pixels differ, first at (%d,%d): %s, expected %s" % (
        n, aw * ah, (i // 3) % aw, (i // 3) // aw, ap[i:i + 3].hex(), bp[i:i + 3].hex())


# ---- text screens read back with the VGA BIOS font ----

# The capital A of the IBM VGA 8x16 font; it locates the 256-glyph table in the ROM.
GLYPH_A = bytes([0, 0, 0x10, 0x38, 0x6c, 0xc6, 0xc6, 0xfe, 0xc6, 0xc6, 0xc6, 0xc6, 0, 0, 0, 0])


def rom_font(path):
    rom = open(path, "rb").read()
    at = rom.find(GLYPH_A)
    if at < 0x41 * 16:
        raise SystemExit("%s: no 8x16 VGA font in this ROM" % path)
    base = at - 0x41 * 16
    glyphs = {}
    # Printable ASCII first, so it wins over look-alike glyphs elsewhere in the table.
    for c in list(range(0x20, 0x7f)) + list(range(0x100)):
        glyphs.setdefault(rom[base + c * 16:base + c * 16 + 16], chr(c) if 0x20 <= c < 0x7f else "?")
    return glyphs


def screen_text(img, glyphs, cols=80, rows=25):
    w, h, px = img
    cw, ch = w // cols, h // rows
    if ch != 16 or cw not in (8, 9):
        return None
    lines = []
    for r in range(rows):
        line = ""
        for c in range(cols):
            g = bytearray(16)
            for y in range(16):
                o = ((r * 16 + y) * w + c * cw) * 3
                bits = 0
                for x in range(8):
                    if px[o + x * 3:o + x * 3 + 3] != b"\0\0\0":
                        bits |= 0x80 >> x
                g[y] = bits
            line += glyphs.get(bytes(g), "?")
        lines.append(line.rstrip())
    return lines


def same_screens(a, b):
    """None when equal but for one text cell's bottom rows (the blinking cursor)."""
    aw, ah, ap = a
    bw, bh, bp = b
    if (aw, ah) != (bw, bh):
        return "size %dx%d vs %dx%d" % (aw, ah, bw, bh)
    cells = set()
    for i in range(0, len(ap), 3):
        if ap[i:i + 3] != bp[i:i + 3]:
            x, y = (i // 3) % aw, (i // 3) // aw
            if y % 16 < 12:
                return "pixel (%d,%d) differs: %s vs %s" % (x, y, ap[i:i + 3].hex(), bp[i:i + 3].hex())
            cells.add((x // (aw // 80), y // 16))
    if len(cells) > 1:
        return "%d text cells differ: %s" % (len(cells), sorted(cells)[:5])
    return None


# ---- waiting for a screen ----

class Goal:
    def __init__(self, args):
        self.text = self.glyphs = self.pattern = None
        self.log = self.log_text = self.keys = None
        self.wait_screen = self.lines = None
        self.timeout = 60.0
        i = 0
        while i < len(args):
            if args[i] == "--text":
                self.glyphs, self.text = rom_font(args[i + 1]), args[i + 2]
                i += 3
            elif args[i] == "--pattern":
                self.pattern = pattern(args[i + 1])
                i += 2
            elif args[i] == "--font":
                self.glyphs = rom_font(args[i + 1])
                i += 2
            elif args[i] == "--wait-screen":
                self.wait_screen = args[i + 1]
                i += 2
            elif args[i] == "--lines":
                self.lines = (args[i + 1], args[i + 2])
                i += 3
            elif args[i] == "--wait-log":
                self.log, self.log_text = args[i + 1], args[i + 2]
                i += 3
            elif args[i] == "--type":
                self.keys = args[i + 1]
                i += 2
            elif args[i] == "--timeout":
                self.timeout = float(args[i + 1])
                i += 2
            else:
                raise SystemExit("unknown argument %s" % args[i])
        if (self.wait_screen is not None or self.lines is not None) and self.glyphs is None:
            raise SystemExit("--wait-screen and --lines need --font ROM")
        self.last = "nothing seen"

    def text_lines(self, img):
        lines = screen_text(img, self.glyphs)
        if lines is None:
            self.last = "a %dx%d screen, not 80x25 text" % (img[0], img[1])
        else:
            self.last = "text screen: " + " | ".join(l for l in lines if l.strip())[-400:]
        return lines

    def prompt(self, img):
        lines = self.text_lines(img)
        return lines is not None and any(l.startswith(self.wait_screen) for l in lines)

    def after_typing(self):
        return self.text is not None or self.pattern is not None or self.lines is not None

    def reached(self, img):
        if self.lines is not None:
            lines = self.text_lines(img)
            return lines is not None and self.lines[0] in lines and \
                self.lines[1] in lines[lines.index(self.lines[0]) + 1:]
        if self.text is not None:
            lines = screen_text(img, self.glyphs)
            if lines is None:
                self.last = "a %dx%d screen, not 80x25 text" % (img[0], img[1])
                return False
            if any(self.text in l for l in lines):
                return True
            self.last = "text screen: " + " | ".join(l for l in lines if l.strip())[:300]
            return False
        if self.pattern is not None:
            d = first_difference(img, self.pattern)
            self.last = d or ""
            return d is None
        return True


def rfb_capture(port, goal):
    deadline = time.time() + goal.timeout
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("cannot connect to VNC port %d" % port)
            time.sleep(0.2)

    def recv(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise SystemExit("the VNC server closed the connection (%s)" % goal.last)
            b += c
        return b

    if recv(12) != b"RFB 003.008\n":
        raise SystemExit("not an RFB 3.8 server")
    s.sendall(b"RFB 003.008\n")
    types = recv(recv(1)[0])
    if 1 not in types:
        raise SystemExit("the server wants authentication %s" % list(types))
    s.sendall(b"\x01")
    if struct.unpack(">I", recv(4))[0] != 0:
        raise SystemExit("security handshake failed")
    s.sendall(b"\x01")
    w, h = struct.unpack(">HH", recv(4))
    recv(16)
    recv(struct.unpack(">I", recv(4))[0])
    # 32 bpp little endian 0x00RRGGBB; Raw + DesktopSize
    s.sendall(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
    s.sendall(struct.pack(">BxHii", 2, 2, 0, -223))
    state = {"w": w, "h": h, "fb": bytearray(w * h * 4), "incremental": 0}

    def frame():
        """Asks for an update and returns the screen after it.  The server
        answers an incremental request only once something changed: after
        2 s of silence the screen is returned as it was."""
        w, h, fb = state["w"], state["h"], state["fb"]
        s.sendall(struct.pack(">BBHHHH", 3, state["incremental"], 0, 0, w, h))
        state["incremental"] = 1
        while True:
            s.settimeout(2)
            try:
                t = recv(1)[0]
            except socket.timeout:
                t = None
            s.settimeout(10)
            if t is None or t == 0:
                break
            if t == 2:
                continue
            if t == 3:
                recv(3)
                recv(struct.unpack(">I", recv(4))[0])
                continue
            raise SystemExit("unexpected RFB message %d" % t)
        if t == 0:
            recv(1)
            for _ in range(struct.unpack(">H", recv(2))[0]):
                x, y, rw, rh, enc = struct.unpack(">HHHHi", recv(12))
                if enc == -223:
                    w, h, fb = rw, rh, bytearray(rw * rh * 4)
                    state.update(w=w, h=h, fb=fb, incremental=0)
                    continue
                if enc != 0:
                    raise SystemExit("unexpected encoding %d" % enc)
                for row in range(rh):
                    o = ((y + row) * w + x) * 4
                    fb[o:o + rw * 4] = recv(rw * 4)
        rgb = bytearray(w * h * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = fb[2::4], fb[1::4], fb[0::4]
        return w, h, bytes(rgb)

    if goal.keys is not None:
        if goal.log is not None:
            while goal.log_text not in open_text(goal.log):
                if time.time() > deadline:
                    raise SystemExit("timed out waiting for %r in %s" % (goal.log_text, goal.log))
                time.sleep(0.2)
        if goal.wait_screen is not None:
            while not goal.prompt(frame()):
                if time.time() > deadline:
                    raise SystemExit("timed out waiting for a line starting with %r: %s" %
                                     (goal.wait_screen, goal.last))
                time.sleep(0.3)
        for ch in goal.keys:
            for down in (1, 0):
                s.sendall(struct.pack(">BBxxI", 4, down, 0xff0d if ch == "\n" else ord(ch)))
                time.sleep(0.03)
        if not goal.after_typing():
            time.sleep(0.5)
            return None
    while time.time() < deadline:
        img = frame()
        if goal.reached(img):
            return img
        time.sleep(0.3)
    raise SystemExit("timed out: %s" % goal.last)


def open_text(path):
    try:
        return open(path, "rb").read().decode("latin-1")
    except OSError:
        return ""


def xwd_read(path):
    d = open(path, "rb").read()
    f = struct.unpack(">25I", d[:100])
    hsize, depth, w, h, byte_order, bpp, bpl = f[0], f[3], f[4], f[5], f[7], f[11], f[12]
    rmask, gmask, bmask, ncolors = f[14], f[15], f[16], f[19]
    if bpp != 32:
        raise SystemExit("%s: %d bits per pixel, want an Xvfb screen of depth 24" % (path, bpp))
    off = hsize + ncolors * 12
    pix = d[off:off + bpl * h]
    rgb = bytearray(w * h * 3)
    for y in range(h):
        row = pix[y * bpl:y * bpl + w * 4]
        if byte_order == 0 and (rmask, gmask, bmask) == (0xff0000, 0xff00, 0xff):
            rgb[y * w * 3 + 0:(y + 1) * w * 3:3] = row[2::4]
            rgb[y * w * 3 + 1:(y + 1) * w * 3:3] = row[1::4]
            rgb[y * w * 3 + 2:(y + 1) * w * 3:3] = row[0::4]
        else:
            raise SystemExit("%s: unexpected pixel layout" % path)
    return w, h, bytes(rgb)


def first_lit(img):
    w, h, px = img
    for y in range(h):
        row = px[y * w * 3:(y + 1) * w * 3]
        if row.strip(b"\0"):
            x = next(x for x in range(w) if row[x * 3:x * 3 + 3] != b"\0\0\0")
            return x, y
    return None


def crop(img, x0, y0, cw, ch):
    w, h, px = img
    return cw, ch, b"".join(px[((y0 + y) * w + x0) * 3:((y0 + y) * w + x0 + cw) * 3] for y in range(ch))


def plausible_origin(img, x0, y0, cw, ch, goal):
    """Cheap test of a window origin: the first lit pixel must fall on a glyph
    of the font (text) or its row must match the pattern's row (pattern)."""
    w, h, px = img
    lx, ly = first_lit(img)
    if x0 < 0 or y0 < 0 or x0 + cw > w or y0 + ch > h:
        return False
    if goal.text is not None:
        cell_w = cw // 80
        cx, cy = x0 + (lx - x0) // cell_w * cell_w, y0 + (ly - y0) // 16 * 16
        g = bytearray(16)
        for y in range(16):
            for x in range(8):
                o = ((cy + y) * w + cx + x) * 3
                if px[o:o + 3] != b"\0\0\0":
                    g[y] |= 0x80 >> x
        return goal.glyphs.get(bytes(g), "?") not in " ?"
    if goal.pattern is not None:
        pw, ph, pp = goal.pattern
        y = ly - y0
        return px[(ly * w + x0) * 3:(ly * w + x0 + cw) * 3] == pp[y * pw * 3:(y + 1) * pw * 3]
    return True


def xvfb_capture(path, cw, ch, goal):
    """The window is somewhere on a black root: its origin is within a text
    cell (or a pixel) up-left of the first lit pixel."""
    deadline = time.time() + goal.timeout
    while time.time() < deadline:
        try:
            img = xwd_read(path)
        except (OSError, struct.error):
            time.sleep(0.3)
            continue
        at = first_lit(img)
        if at:
            for dy in range(16):
                for dx in range(9):
                    x0, y0 = at[0] - dx, at[1] - dy
                    if plausible_origin(img, x0, y0, cw, ch, goal):
                        win = crop(img, x0, y0, cw, ch)
                        if goal.reached(win):
                            return win
        else:
            goal.last = "the Xvfb screen is all black"
        time.sleep(0.3)
    raise SystemExit("timed out: %s" % goal.last)


# ---- a minimal X11 client: close a window the way a window manager does ----

def x_auth(display):
    path = os.environ.get("XAUTHORITY") or os.path.expanduser("~/.Xauthority")
    try:
        d = open(path, "rb").read()
    except OSError:
        return b"", b""
    pos = 0
    while pos + 2 <= len(d):
        fields = []
        pos += 2                                  # family
        for _ in range(4):                        # address, number, name, data
            n = struct.unpack(">H", d[pos:pos + 2])[0]
            fields.append(d[pos + 2:pos + 2 + n])
            pos += 2 + n
        if fields[1] == display.encode() and fields[2] == b"MIT-MAGIC-COOKIE-1":
            return fields[2], fields[3]
    return b"", b""


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def x_close(title):
    disp = os.environ.get("DISPLAY", "")
    if not disp.startswith(":"):
        raise SystemExit("DISPLAY=%r is not a local display" % disp)
    num = disp[1:].split(".")[0]
    s = socket.socket(socket.AF_UNIX)
    s.connect("/tmp/.X11-unix/X" + num)

    def recv(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise SystemExit("the X server closed the connection")
            b += c
        return b

    name, data = x_auth(num)
    s.sendall(struct.pack("<BxHHHHxx", 0x6c, 11, 0, len(name), len(data)) + pad4(name) + pad4(data))
    head = recv(8)
    body = recv(struct.unpack("<H", head[6:8])[0] * 4)
    if head[0] != 1:
        raise SystemExit("X connection refused: %r" % body[:head[1]])
    vendor_len, nformats = struct.unpack("<H", body[16:18])[0], body[21]
    root = struct.unpack("<I", body[32 + len(pad4(b"x" * vendor_len)) + 8 * nformats:][:4])[0]

    def reply():
        r = recv(32)
        if r[0] == 0:
            raise SystemExit("X error %d" % r[1])
        return r, recv(struct.unpack("<I", r[4:8])[0] * 4)

    def atom(n):
        s.sendall(struct.pack("<BBHHxx", 16, 0, 2 + len(pad4(n)) // 4, len(n)) + pad4(n))
        return struct.unpack("<I", reply()[0][8:12])[0]

    wm_protocols, wm_delete = atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW")
    s.sendall(struct.pack("<BxHI", 15, 2, root))          # QueryTree
    r, body = reply()
    children = struct.unpack("<%dI" % struct.unpack("<H", r[16:18])[0], body)
    for w in children:
        # GetProperty WM_NAME (atom 39), any type
        s.sendall(struct.pack("<BBHIIIII", 20, 0, 6, w, 39, 0, 0, 256))
        r, value = reply()
        if title.encode() in value:
            ev = struct.pack("<BBHII5I", 33, 32, 0, w, wm_protocols, wm_delete, 0, 0, 0, 0)
            s.sendall(struct.pack("<BBHIIxxxx", 25, 0, 11, w, 0)[:12] + ev)    # SendEvent
            s.sendall(struct.pack("<BxH", 43, 1))          # GetInputFocus: a round trip
            reply()
            return w
    raise SystemExit("no top-level window titled '%s' among %d" % (title, len(children)))


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "png-pattern":
        d = first_difference(png_read(argv[2]), pattern(argv[3]))
        if d:
            raise SystemExit(d)
        print("%s equals the %s pattern" % (argv[2], argv[3]))
    elif cmd == "text":
        img = png_read(argv[2])
        lines = screen_text(img, rom_font(argv[3]))
        if lines is None:
            raise SystemExit("%s: %dx%d is not an 80x25 text screen" % (argv[2], img[0], img[1]))
        print("\n".join(lines).rstrip())
    elif cmd == "same":
        d = same_screens(png_read(argv[2]), png_read(argv[3]))
        if d:
            raise SystemExit(d)
        print("%s and %s are the same screen" % (argv[2], argv[3]))
    elif cmd == "lines":
        goal = Goal(["--font", argv[3], "--lines", argv[4], argv[5]])
        if not goal.reached(png_read(argv[2])):
            raise SystemExit("no line %r with a line %r below it: %s" % (argv[4], argv[5], goal.last))
        print("%s shows %r then %r" % (argv[2], argv[4], argv[5]))
    elif cmd == "identical":
        d = first_difference(png_read(argv[2]), png_read(argv[3]))
        if d:
            raise SystemExit(d)
        print("%s and %s are identical" % (argv[2], argv[3]))
    elif cmd == "perturb":
        w, h, px = png_read(argv[2])
        o = ((h // 2) * w + w // 2) * 3
        px = px[:o] + bytes(255 - v for v in px[o:o + 3]) + px[o + 3:]
        png_write(argv[3], w, h, px)
    elif cmd == "vnc":
        img = rfb_capture(int(argv[2]), Goal(argv[4:]))
        if img:
            png_write(argv[3], *img)
            print("captured %dx%d" % img[:2])
        else:
            print("typed")
    elif cmd == "xvfb":
        img = xvfb_capture(argv[2], int(argv[4]), int(argv[5]), Goal(argv[6:]))
        png_write(argv[3], *img)
        print("captured %dx%d" % img[:2])
    elif cmd == "xclose":
        print("asked window 0x%x to close" % x_close(argv[2]))
    else:
        raise SystemExit("unknown command %s" % cmd)


if __name__ == "__main__":
    main(sys.argv)
