#!/usr/bin/env python3
"""Input files for tests/e2e/cli.sh: kernels, firmware and images that are
wrong in one way each.  Usage: cli_fixtures.py DIR"""
import os
import struct
import sys

d = sys.argv[1]
MB_MAGIC = 0x1BADB002


def put(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sparse(name, size, head=b""):
    with open(os.path.join(d, name), "wb") as f:
        f.write(head)
        f.truncate(size)


def mb_header(flags):
    return struct.pack("<III", MB_MAGIC, flags, (-(MB_MAGIC + flags)) & 0xFFFFFFFF)


# ---- Multiboot, a.out kludge: header at file offset 0 of a 4 KiB image at 1 MiB ----
def aout(header_addr=0x100000, load_addr=0x100000, load_end=0x101000, bss_end=0x101000, entry=0x100020,
         size=4096):
    h = mb_header(0x00010000) + struct.pack("<IIIII", header_addr, load_addr, load_end, bss_end, entry)
    return h + b"\xf4" * (size - len(h))


put("mb-aout-truncated.bin", mb_header(0x00010000))
put("mb-aout-half-header.bin", mb_header(0x00010000) + struct.pack("<II", 0x100000, 0x100000))
put("mb-aout-header-below-load.bin", aout(header_addr=0xFF000))
put("mb-aout-header-past-file.bin", aout(load_addr=0x0F0000, header_addr=0x100000))
put("mb-aout-load-end-below.bin", aout(load_end=0x0F0000))
put("mb-aout-range-past-file.bin", aout(load_end=0x200000))
put("mb-aout-load-beyond-ram.bin", aout(header_addr=0x40000000, load_addr=0x40000000, load_end=0x40001000,
                                       bss_end=0x40001000, entry=0x40000020))
put("mb-aout-load-wraps.bin", aout(header_addr=0xFFFFF000, load_addr=0xFFFFF000, load_end=0, bss_end=0,
                                   entry=0xFFFFF020))
put("mb-aout-bss-huge.bin", aout(bss_end=0xFFFFF000))
put("mb-aout-bss-past-ram.bin", aout(bss_end=0x10000000))
put("mb-aout-entry-outside.bin", aout(entry=0x50000000))
put("mb-aout-entry-below.bin", aout(entry=0x1000))
put("mb-header-past-8k.bin", b"\0" * 8192 + mb_header(0x00010000) + b"\0" * 64)


# ---- Multiboot, ELF32 ----
def elf(phoff=52, phentsize=32, phnum=1, entry=0x100000, segs=None, ident=b"\x7fELF\x01\x01\x01", machine=3,
        total=4096):
    if segs is None:
        segs = [(1, 0x1000, 0x100000, 0x100000, 16, 16)]  # type, offset, vaddr, paddr, filesz, memsz
    eh = ident + b"\0" * (16 - len(ident))
    eh += struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, entry, phoff, 0, 0, 52, phentsize, phnum, 40, 0, 0)
    body = bytearray(eh)
    ph = b""
    for t, off, va, pa, fs, ms in segs:
        ph += struct.pack("<IIIIIIII", t, off, va, pa, fs, ms, 7, 0x1000)
    if phoff == 52:
        body += ph
    body += mb_header(0)
    if len(body) < total:
        body += b"\xf4" * (total - len(body))
    return bytes(body)


put("mb-elf-not-elf.bin", b"JUNK" + b"\0" * 60 + mb_header(0))
put("mb-elf-64bit.bin", elf(ident=b"\x7fELF\x02\x01\x01"))
put("mb-elf-big-endian.bin", elf(ident=b"\x7fELF\x01\x02\x01"))
put("mb-elf-not-i386.bin", elf(machine=62))
put("mb-elf-short.bin", b"\x7fELF\x01\x01\x01" + b"\0" * 9 + mb_header(0) + b"\0" * 8)
put("mb-elf-phoff-outside.bin", elf(phoff=0x100000))
put("mb-elf-phnum-huge.bin", elf(phnum=65535))
put("mb-elf-phentsize-small.bin", elf(phentsize=8))
put("mb-elf-seg-past-file.bin", elf(segs=[(1, 0x1000, 0x100000, 0x100000, 0x100000, 0x100000)]))
put("mb-elf-seg-offset-past-file.bin", elf(segs=[(1, 0x7FFFFFFF, 0x100000, 0x100000, 16, 16)]))
put("mb-elf-filesz-over-memsz.bin", elf(segs=[(1, 0x100, 0x100000, 0x100000, 64, 16)]))
put("mb-elf-seg-beyond-ram.bin", elf(entry=0x40000000, segs=[(1, 0x100, 0x40000000, 0x40000000, 16, 16)]))
put("mb-elf-memsz-huge.bin", elf(segs=[(1, 0x100, 0x100000, 0x100000, 16, 0xFFF00000)]))
put("mb-elf-seg-wraps.bin", elf(segs=[(1, 0x100, 0xFFFFFF00, 0xFFFFFF00, 16, 0x200)]))
put("mb-elf-entry-outside.bin", elf(entry=0xC0000000))


# ---- Linux bzImage ----
def bzimage(version=0x020A, loadflags=1, setup_sects=4, total=16384, cmdline_size=None):
    b = bytearray(max(total, 0x400))
    b[0x1F1] = setup_sects
    struct.pack_into("<H", b, 0x1FE, 0xAA55)
    b[0x201] = 0x6A                      # header ends at 0x26c
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, version)
    b[0x211] = loadflags
    struct.pack_into("<I", b, 0x22C, 0x37FFFFFF)
    if cmdline_size is not None:
        struct.pack_into("<I", b, 0x238, cmdline_size)
    return bytes(b[:total])


put("bz-good.bin", bzimage())
put("bz-protocol-too-old.bin", bzimage(version=0x0201))
put("bz-zimage.bin", bzimage(loadflags=0))
put("bz-setup-past-file.bin", bzimage(setup_sects=255, total=4096))
put("bz-setup-is-whole-file.bin", bzimage(setup_sects=7, total=4096))
put("bz-cmdline-255.bin", bzimage(version=0x0202))
put("bz-cmdline-size-16.bin", bzimage(cmdline_size=16))
sparse("bz-larger-than-ram.bin", 3 << 20, bzimage())

# ---- firmware and option ROMs ----
put("bios-1-byte.bin", b"\xea")
put("bios-63k.bin", b"\xff" * (63 << 10))
put("bios-65k.bin", b"\xff" * (65 << 10))
sparse("bios-300k.bin", 300 << 10)
sparse("bios-5m.bin", 5 << 20)
put("vgabios-no-signature.bin", b"\0" * 4096)
put("vgabios-2-bytes.bin", b"\x55\xaa")
sparse("vgabios-2m.bin", 2 << 20, b"\x55\xaa\x40")

# ---- disks, initrds, modules ----
put("disk.img", os.urandom(64 << 10))
put("disk2.img", os.urandom(64 << 10))
put("tiny.img", os.urandom(100))
put("random.bin", os.urandom(64 << 10))
put("initrd.img", os.urandom(4096))
put("module.txt", b"a module\n")
sparse("sparse-16m.img", 16 << 20)
sparse("sparse-4g.img", 4 << 30)
put("empty", b"")
