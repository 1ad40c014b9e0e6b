#!/usr/bin/env python3
"""Time monitor-console commands: hmp_time.py SOCKET PROMPT CMD...

Connects to a human monitor (QEMU's HMP or retrovisor's) on a unix socket,
waits for its PROMPT, then sends each command and prints, per command, the
seconds until the prompt came back and the text it answered."""
import re
import socket
import sys
import time


def read_until_prompt(s, prompt, limit=300.0):
    buf = b""
    end = time.monotonic() + limit
    s.settimeout(1.0)
    while not buf.rstrip().endswith(prompt.rstrip()):
        if time.monotonic() > end:
            raise TimeoutError("no prompt: %r" % buf[-200:])
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            raise EOFError("monitor closed: %r" % buf[-200:])
        buf += chunk
    return buf


def connect(path, limit=60.0):
    end = time.monotonic() + limit
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def main():
    path, prompt, cmds = sys.argv[1], sys.argv[2].encode(), sys.argv[3:]
    s = connect(path)
    read_until_prompt(s, prompt)
    for cmd in cmds:
        t0 = time.monotonic()
        s.sendall(cmd.encode() + b"\n")
        try:
            out = read_until_prompt(s, prompt)
        except EOFError:
            if cmd.strip() != "quit":
                raise
            out = prompt
        dt = time.monotonic() - t0
        # QEMU's line editor echoes with cursor moves: drop them.
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out.decode(errors="replace")).replace("\r", "")
        text = text.rsplit(prompt.decode(), 1)[0].strip()
        lines = [l for l in text.split("\n") if l.strip() and l.strip() != cmd]
        print("%.3f %s" % (dt, " | ".join(lines)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
