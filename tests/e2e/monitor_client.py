#!/usr/bin/python3
"""Drives the monitor console over its unix socket (tests/e2e/monitor.sh).

Usage: monitor_client.py SOCKET SERIAL_LOG BOOT_IMAGE SCRATCH_DIR

Every command is sent, and its effect checked where the guest
(tests/guest/monitor_guest.asm) or the host can see it.  Prints one
"PASS name" / "FAIL name: why" line per check.  x/Ni output is compared
with capstone's own disassembly (Debian's python3-capstone) of the bytes
that xp reads at the same place.
"""
import os
import re
import socket
import struct
import sys
import time
import zlib

try:
    import capstone
except ImportError:
    capstone = None

PROMPT = b"(retrovisor) "
ALIAS = 0x400000        # the guest maps linear 0x400000 onto physical 0


def ok(name):
    print("PASS monitor: " + name, flush=True)


def bad(name, why):
    print("FAIL monitor: %s: %s" % (name, why), flush=True)


def check(cond, name, why):
    if cond:
        ok(name)
    else:
        bad(name, why)
    return cond


class Monitor:
    def __init__(self, path, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.s.settimeout(60)
        self.banner = self.read_prompt()

    def read_prompt(self):
        buf = b""
        while not buf.endswith(PROMPT):
            d = self.s.recv(65536)
            if not d:
                break
            buf += d
        return buf[:-len(PROMPT)].decode(errors="replace") if buf.endswith(PROMPT) else buf.decode()

    def cmd(self, line):
        self.s.sendall((line + "\n").encode())
        return self.read_prompt()

    def lines(self, line):
        return [l for l in self.cmd(line).split("\n") if l]


class Serial:
    def __init__(self, path):
        self.path = path

    def text(self):
        try:
            with open(self.path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def wait_for(self, pattern, start=0, timeout=60):
        """Waits until the log after offset `start` matches pattern; the match or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text()[start:], re.M)
            if m:
                return m
            time.sleep(0.1)
        return None

    def last_tick(self):
        ticks = re.findall(r"^tick ([0-9a-f]{8})$", self.text(), re.M)
        return int(ticks[-1], 16) if ticks else None


def dump_values(lines):
    """The values of x/xp lines ("ADDR: v v v"), as text."""
    vals = []
    for l in lines:
        if ":" not in l:
            return None
        vals += l.split(":", 1)[1].split()
    return vals


def test_memory(mon, image):
    regs = mon.cmd("info registers")
    m_eip = re.search(r"EIP=([0-9a-f]{8})", regs)
    m_cr0 = re.search(r"CR0=([0-9a-f]{8})", regs)
    if not check(m_eip and m_cr0, "info registers shows EIP and CR0", regs[:200]):
        return
    eip, cr0 = int(m_eip.group(1), 16), int(m_cr0.group(1), 16)
    check(cr0 & 0x80000001 == 0x80000001 and ALIAS + 0x7c00 <= eip < ALIAS + 0x7e00,
          "info registers: the guest runs paged, in its alias at 0x40xxxx",
          "CR0=%08x EIP=%08x" % (cr0, eip))
    cpu = mon.cmd("info cpu")
    check(re.search(r"\* CPU #0: pc=0x%08x" % eip, cpu), "info cpu: pc is CS base + EIP", cpu)

    # x through the page tables, xp physical, and the image file agree.
    words = [struct.unpack_from("<I", image, 4 * k)[0] for k in range(8)]
    x = dump_values(mon.lines("x/8xw 0x%x" % (ALIAS + 0x7c00)))
    xp = dump_values(mon.lines("xp/8xw 0x7c00"))
    check(x == ["0x%08x" % w for w in words], "x/8xw reads linear 0x407c00 through the page tables",
          "%s, image has %s" % (x, ["%08x" % w for w in words]))
    check(xp == x, "xp/8xw reads the same bytes at physical 0x7c00", "%s vs %s" % (xp, x))
    formats = {
        "4db": [str(b - 256 if b > 127 else b) for b in image[:4]],
        "4ub": [str(b) for b in image[:4]],
        "4ob": ["0%o" % b if b else "0" for b in image[:4]],
        "2xh": ["0x%04x" % struct.unpack_from("<H", image, 2 * k)[0] for k in range(2)],
        "1xg": ["0x%016x" % struct.unpack_from("<Q", image, 0)[0]],
        "12xb": ["0x%02x" % b for b in image[:12]],
    }
    for fmt, want in formats.items():
        got = dump_values(mon.lines("xp/%s 0x7c00" % fmt))
        check(got == want, "xp/%s formats the bytes as QEMU does" % fmt, "%s, expected %s" % (got, want))
    text = mon.cmd("xp/4c 0x%x" % (0x7c00 + image.index(b"boot")))
    check("'b' 'o' 'o' 't'" in text, "xp/4c shows characters", text)

    if capstone is None:
        bad("x/5i", "python3-capstone is missing (make deps)")
        return
    for where, mode, fmt, bits in (("$eip", capstone.CS_MODE_32, "5i", 32),
                                   ("0x%x" % (ALIAS + 0x7c00), capstone.CS_MODE_16, "5ih", 16)):
        out = mon.lines("x/%s %s" % (fmt, where))
        first = int(out[0].split(":")[0], 16) if out and out[0].startswith("0x") else None
        if not check(len(out) == 5 and first is not None, "x/%s %s prints five instructions" % (fmt, where),
                     "\n".join(out)):
            continue
        raw = dump_values(mon.lines("xp/64xb 0x%x" % (first - ALIAS)))
        code = bytes(int(v, 16) for v in raw)
        md = capstone.Cs(capstone.CS_ARCH_X86, mode)
        want = ["0x%08x:  %s%s%s" % (i.address, i.mnemonic, " " if i.op_str else "", i.op_str)
                for i in md.disasm(code, first, 5)]
        check(out == want, "x/%s %s matches capstone's %d-bit disassembly of the same bytes" % (fmt, where, bits),
              "got %s, capstone %s" % (out, want))


def test_info(mon, fda):
    for item, pattern in (("pic", r"^pic0: irr=[0-9a-f]{2} imr=[0-9a-f]{2}.*\npic1: "),
                          ("lapic", r"APIC base=0xfee00[0-9a-f]{3} \(enabled\)"),
                          ("pci", r"PCI device 8086:1237[\s\S]*PCI device 8086:7010"),
                          ("network", r"^net0: index=0,type=user\n \\ pcnet\.0: .*macaddr=52:54:00:12:34:56"),
                          ("mem", r"^00000000-00800000 00800000 -rw$"),
                          ("tlb", r"^00000000: 00000000 .*\n00400000: 00000000 "),
                          ("block", r"^floppy0: %s \(1474560 bytes\)$" % re.escape(fda))):
        text = mon.cmd("info " + item)
        check(re.search(pattern, text, re.M), "info %s" % item, "no match for %r in %r" % (pattern, text[:300]))
    text = mon.cmd("info snapshots")
    check(text.strip() and "unknown" not in text, "info snapshots answers", repr(text))
    listing = mon.cmd("info")
    check(all("info " + k in listing for k in ("registers", "cpu", "mem", "tlb", "pic", "lapic", "pci", "block",
                                                "snapshots", "network", "status")),
          "info alone lists every item", listing)


def test_run_control(mon, serial):
    check(mon.cmd("info status").strip() == "VM status: running", "info status: running", "")
    mon.cmd("stop")
    status = mon.cmd("info status").strip()
    check(status == "VM status: paused", "stop: info status says paused", status)
    time.sleep(0.3)
    size = serial.size()
    tick = serial.last_tick()
    time.sleep(1.0)
    check(serial.size() == size and serial.last_tick() == tick, "stop: the serial output stops growing",
          "%d -> %d bytes" % (size, serial.size()))
    return size


def test_cont(mon, serial, size):
    mon.cmd("cont")
    check(mon.cmd("info status").strip() == "VM status: running", "cont: info status says running", "")
    mon.cmd("stop")
    mon.cmd("c")
    check(mon.cmd("info status").strip() == "VM status: running", "c (cont's short name) resumes too", "")
    check(serial.wait_for(r"^tick ", start=size, timeout=30), "cont: the guest prints again", "no tick after cont")


def test_keys_and_power(mon, serial):
    start = serial.size()
    out = mon.cmd("sendkey ctrl-alt-delete")
    # The guest's tick lines may fall between the bytes (8 ms on the wire).
    seq = r"(?:tick \w+\n)*".join("key %s\n" % b for b in ("1d", "38", "e0", "53", "e0", "d3", "b8", "9d"))
    check(out == "" and serial.wait_for(seq, start=start, timeout=30),
          "sendkey ctrl-alt-delete: the guest reads the presses, then the releases in reverse order",
          repr(out) + " / " + serial.text()[start:start + 300])
    start = serial.size()
    out = mon.cmd("system_powerdown")
    check(out == "" and serial.wait_for(r"^power button$", start=start, timeout=30),
          "system_powerdown: the guest sees the ACPI power button", repr(out))


def test_screendump(mon, path):
    out = mon.cmd("screendump " + path)
    try:
        with open(path, "rb") as f:
            png = f.read()
    except OSError as e:
        bad("screendump", "%s: %s (%r)" % (path, e, out))
        return
    sig_ok = png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while sig_ok and pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + data) != crc:
            sig_ok = False
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBB", data[:10])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    if not check(sig_ok and ihdr, "screendump writes a PNG with valid chunks", repr(png[:16])):
        return
    w, h, depth, color = ihdr
    # The guest left SeaBIOS's text mode 3: 80x25 cells of 9x16 dots.
    check((w, h) == (720, 400), "screendump: the PNG is 720x400, text mode 3", "%dx%d" % (w, h))
    try:
        raw = zlib.decompress(idat)
        check(depth == 8 and color == 2 and len(raw) == h * (1 + 3 * w), "screendump: the pixel data is complete",
              "%d bytes" % len(raw))
    except zlib.error as e:
        bad("screendump: the pixel data is complete", str(e))


def test_media(mon, scratch):
    flop = os.path.join(scratch, "monitor-b.img")
    iso = os.path.join(scratch, "monitor.iso")
    with open(flop, "wb") as f:
        f.truncate(737280)
    with open(iso, "wb") as f:
        f.truncate(32 * 2048)
    out = mon.cmd("change floppy1 " + flop)
    block = mon.cmd("info block")
    check(out == "" and re.search(r"^floppy1: %s \(737280 bytes\)$" % re.escape(flop), block, re.M),
          "change floppy1: info block shows the new disk", out + block)
    out = mon.cmd("eject floppy1")
    block = mon.cmd("info block")
    check(out == "" and re.search(r"^floppy1: \[not inserted\]$", block, re.M), "eject floppy1", out + block)
    out = mon.cmd("change cdrom " + iso)
    block = mon.cmd("info block")
    check(out == "" and re.search(r"^ide1-cd0 \(cdrom\): %s \(32 sectors" % re.escape(iso), block, re.M),
          "change cdrom: info block shows the disc", out + block)
    out = mon.cmd("eject -f cdrom")
    block = mon.cmd("info block")
    check(out == "" and re.search(r"^ide1-cd0 \(cdrom\): \[not inserted\]$", block, re.M), "eject -f cdrom",
          out + block)


def test_snapshots(mon, serial):
    mon.cmd("stop")
    out = mon.cmd("savevm mon1")
    listing = mon.cmd("info snapshots")
    check(re.search(r"\bmon1\b", listing), "info snapshots lists mon1 after savevm", listing)
    check(out.strip() == "", "savevm mon1 succeeds silently", out)
    saved = serial.last_tick()
    mon.cmd("cont")
    check(serial.wait_for(r"^tick %08x$" % (saved + 3), timeout=30), "the guest runs on after savevm", "")
    mon.cmd("stop")
    start = serial.size()
    out = mon.cmd("loadvm mon1")
    mon.cmd("cont")
    check(out.strip() == "" and serial.wait_for(r"^tick %08x$" % (saved + 1), start=start, timeout=30),
          "loadvm mon1: the guest's counter goes back to the snapshot", out)
    out = mon.cmd("delvm mon1")
    check(out.strip() == "" and "mon1" not in mon.cmd("info snapshots"), "delvm mon1 removes it", out)


def test_reset(mon, serial):
    boots = serial.text().count("boot\n")
    start = serial.size()
    out = mon.cmd("system_reset")
    check(out == "" and serial.wait_for(r"^boot\n(.*\n)*tick 00000001$", start=start, timeout=60),
          "system_reset: the guest boots again and counts from 1", repr(out))
    check(serial.text().count("boot\n") == boots + 1, "system_reset: one more boot", "")


def test_stalled_client(path, mon):
    """A client that sends commands and never reads their answers is dropped
    once its socket is full; it holds up neither the others nor the guest."""
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(path)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.settimeout(10)
        stalled.sendall(b"info pci\n" * 20000)
    except OSError:
        pass        # dropped while we were still sending: that is the point
    check(mon.cmd("info status").strip() == "VM status: running",
          "a client that never reads is dropped; the others go on", "")
    stalled.close()


def test_bad_input(mon, serial):
    before = mon.cmd("info block")
    for line in ("bogus", "x/5z 0", "x/0x 0", "x/4xw 0x800000", "xp/4xb 0x10000000", "x/4xw $nosuch",
                 "xp/4xw 12junk", "sendkey ctrl-bogus", "change floppy7 /dev/null", "change floppy1",
                 "change floppy1 /nonexistent/file.img", "eject floppy9", "info bogus", "stop now",
                 "help bogus", "loadvm", "screendump", "x", "eject -x cdrom", "loadvm nosuch",
                 "delvm nosuch"):
        out = mon.cmd(line)
        lines = [l for l in out.split("\n") if l]
        check(len(lines) == 1, "bad input '%s' answers one error line" % line, repr(out))
    check(mon.cmd("info block") == before, "bad input changed no drive", "")
    check(mon.cmd("info status").strip() == "VM status: running", "bad input: the VM keeps running", "")
    start = serial.size()
    check(serial.wait_for(r"^tick ", start=start, timeout=30), "bad input: the guest still prints", "")
    mon.s.sendall(b"x" * 5000 + b"\n")
    out = mon.read_prompt()
    check("too long" in out, "an over-long line is refused", out[:100])


def test_two_clients(path, mon):
    other = Monitor(path)
    check("help" in other.banner, "a second client gets the banner", other.banner)
    check(other.cmd("info status").strip() == "VM status: running", "a second client runs commands at once", "")
    other.s.close()
    check(mon.cmd("info status").strip() == "VM status: running", "the first client carries on", "")


def main():
    sock, serial_path, image_path, scratch = sys.argv[1:5]
    fda = sys.argv[5] if len(sys.argv) > 5 else image_path
    with open(image_path, "rb") as f:
        image = f.read(512)
    serial = Serial(serial_path)
    mon = Monitor(sock)
    check("type 'help'" in mon.banner, "the banner points at help", mon.banner)
    if not check(serial.wait_for(r"^tick 0000000[2-9a-f]$", timeout=90), "the guest boots and runs",
                 serial.text()[-200:]):
        return
    helptext = mon.cmd("help")
    check(all(re.search(r"^%s\b" % c, helptext, re.M) for c in
              ("help", "info", "x/FMT", "xp/FMT", "stop", "cont", "system_reset", "system_powerdown", "quit",
               "sendkey", "screendump", "savevm", "loadvm", "delvm", "change", "eject")),
          "help lists every command", helptext)
    size = test_run_control(mon, serial)
    test_memory(mon, image)
    test_info(mon, fda)
    test_cont(mon, serial, size)
    test_keys_and_power(mon, serial)
    test_screendump(mon, os.path.join(scratch, "monitor-screen.png"))
    test_media(mon, scratch)
    test_two_clients(sock, mon)
    test_stalled_client(sock, mon)
    test_bad_input(mon, serial)
    test_snapshots(mon, serial)
    test_reset(mon, serial)
    mon.s.sendall(b"quit\n")
    rest = b""
    try:
        while True:
            d = mon.s.recv(4096)
            if not d:
                break
            rest += d
    except OSError:
        pass
    check(PROMPT not in rest, "quit closes the connection without a prompt", repr(rest))


if __name__ == "__main__":
    main()
