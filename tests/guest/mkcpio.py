#!/usr/bin/env python3
"""Write a Linux initramfs (cpio "newc" format) from a list of entries, so
device nodes such as /dev/console can be included without root.

usage: mkcpio.py OUT.cpio SPEC...
  SPEC is one of
    dir:PATH                 a directory (mode 0755)
    file:PATH:HOSTFILE[:MODE] a regular file copied from HOSTFILE (MODE octal, default 0644)
    nod:PATH:c:MAJOR:MINOR   a character device (mode 0600)
    slink:PATH:TARGET        a symbolic link
"""
import stat
import sys


def header(ino, mode, nlink, size, major, minor, name):
    fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def pad4(n):
    return (4 - n % 4) % 4


def entry(out, ino, mode, data=b"", major=0, minor=0, name=""):
    nm = name.encode()
    h = header(ino, mode, 2 if stat.S_ISDIR(mode) else 1, len(data), major, minor, nm)
    out.write(h + nm + b"\0")
    out.write(b"\0" * pad4(len(h) + len(nm) + 1))
    out.write(data)
    out.write(b"\0" * pad4(len(data)))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1], "wb") as out:
        ino = 1
        for spec in argv[2:]:
            kind, _, rest = spec.partition(":")
            if kind == "dir":
                entry(out, ino, stat.S_IFDIR | 0o755, name=rest)
            elif kind == "file":
                parts = rest.split(":")
                path, host = parts[0], parts[1]
                mode = int(parts[2], 8) if len(parts) > 2 else 0o644
                with open(host, "rb") as f:
                    entry(out, ino, stat.S_IFREG | mode, f.read(), name=path)
            elif kind == "nod":
                path, typ, major, minor = rest.split(":")
                if typ != "c":
                    sys.exit("mkcpio: only character devices are supported: " + spec)
                entry(out, ino, stat.S_IFCHR | 0o600, major=int(major), minor=int(minor), name=path)
            elif kind == "slink":
                path, target = rest.split(":", 1)
                entry(out, ino, stat.S_IFLNK | 0o777, target.encode(), name=path)
            else:
                sys.exit("mkcpio: unknown entry kind: " + spec)
            ino += 1
        entry(out, ino, 0, name="TRAILER!!!")


if __name__ == "__main__":
    main(sys.argv)
