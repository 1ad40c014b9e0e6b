#!/usr/bin/env python3
"""Print N bytes (hex, space separated) of the kernel image at virtual
address ADDR: the bzImage's XZ payload is unpacked here and the vmlinux
ELF's program headers say where ADDR lies in the file.
usage: gdb_kernel_bytes.py BZIMAGE ADDR N"""
import lzma
import struct
import sys


def vmlinux(bzimage):
    data = open(bzimage, 'rb').read()
    start = data.find(b'\xfd7zXZ\x00')
    if start < 0:
        sys.exit('no XZ payload in ' + bzimage)
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])


def bytes_at(elf, addr, n):
    if elf[:4] != b'\x7fELF' or elf[4] != 1:
        sys.exit('the payload is not a 32-bit ELF')
    phoff, = struct.unpack_from('<I', elf, 28)
    phentsize, phnum = struct.unpack_from('<HH', elf, 42)
    for k in range(phnum):
        p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from('<5I', elf, phoff + k * phentsize)
        if p_type == 1 and p_vaddr <= addr and addr + n <= p_vaddr + p_filesz:
            off = p_offset + addr - p_vaddr
            return elf[off:off + n]
    sys.exit('address %#x is in no loaded segment' % addr)


def main():
    bzimage, addr, n = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
    print(' '.join('%02x' % b for b in bytes_at(vmlinux(bzimage), addr, n)))


main()
