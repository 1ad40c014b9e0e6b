#!/usr/bin/env python3
"""Make the LZ77 stream that tests/guest/bench_beside.asm (WORKLOAD=2) unpacks.

usage: lz.py OUT.lz SIZE

The text is SIZE bytes of words drawn by a fixed-seed generator, so the
same stream comes out every time.  The format (the decoder's comment says
it too): a token byte T; T < 0x80: T+1 literal bytes follow; T >= 0x80: copy
(T & 0x7f) + 3 bytes from a 16-bit little-endian distance back.  The script
decodes its own output and checks it against the text before writing it.
"""
import random
import sys

WORDS = ("the of and to in is was for on that with as by at from his her they "
         "disk page code data block cache write read guest host byte word loop "
         "table floppy sector track cylinder head boot kernel driver").split()
MIN_MATCH, MAX_MATCH, MAX_DIST, MAX_LIT = 3, 0x7f + 3, 0xffff, 0x80


def text(size):
    rng = random.Random(25)
    out = bytearray()
    while len(out) < size:
        w = rng.choice(WORDS)
        if rng.random() < 0.1:
            w = w.upper()
        out += w.encode() + (b"\n" if rng.random() < 0.08 else b" ")
        if rng.random() < 0.002:
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
    return bytes(out[:size])


def compress(data):
    heads = {}
    out = bytearray()
    lits = bytearray()

    def flush():
        for k in range(0, len(lits), MAX_LIT):
            chunk = lits[k:k + MAX_LIT]
            out.append(len(chunk) - 1)
            out.extend(chunk)
        lits.clear()

    i = 0
    while i < len(data):
        best_len, best_dist = 0, 0
        key = data[i:i + MIN_MATCH]
        for j in reversed(heads.get(key, [])[-16:]):
            if i - j > MAX_DIST:
                break
            n = 0
            while n < MAX_MATCH and i + n < len(data) and data[j + n] == data[i + n]:
                n += 1
            if n > best_len:
                best_len, best_dist = n, i - j
        step = best_len if best_len >= MIN_MATCH else 1
        for k in range(i, i + step):
            heads.setdefault(data[k:k + MIN_MATCH], []).append(k)
        if best_len >= MIN_MATCH:
            flush()
            out.append(0x80 | (best_len - MIN_MATCH))
            out += best_dist.to_bytes(2, "little")
        else:
            lits.append(data[i])
        i += step
    flush()
    return bytes(out)


def decompress(stream):
    out = bytearray()
    i = 0
    while i < len(stream):
        t = stream[i]
        i += 1
        if t < 0x80:
            out += stream[i:i + t + 1]
            i += t + 1
        else:
            dist = int.from_bytes(stream[i:i + 2], "little")
            i += 2
            for _ in range((t & 0x7f) + MIN_MATCH):
                out.append(out[-dist])
    return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data = text(int(sys.argv[2]))
    stream = compress(data)
    if decompress(stream) != data:
        sys.exit("lz.py: the stream does not decode to its text")
    with open(sys.argv[1], "wb") as f:
        f.write(stream)


if __name__ == "__main__":
    main()
