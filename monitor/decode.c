/*
 * Table-driven x86 decoder.  One table row per opcode (one-byte map and the
 * 0F map) says whether a ModRM byte follows, what immediate follows, and
 * whether the emulated CPU (a P6-class processor without MMX/SSE) defines it
 * (the XMM data moves 0F 10/11/28/29/6F/7F excepted: see fpu_sse_move).
 * Lengths of SSE/MMX encodings are still decoded exactly so that a #UD is
 * raised for the right instruction and the capstone cross-check agrees.
 */
#include "monitor/decode.h"
#include "monitor/cpu.h"

#include <string.h>

enum {
    M = 0x01,           /* ModRM follows */
    X = 0x02,           /* undefined on the emulated CPU (#UD) */
    FORCE_REG = 0x04,   /* MOV CRn/DRn: ModRM mod is ignored and taken as 11 */
    /* immediate kinds, in bits 4-7 */
    I_B = 0x10, I_W = 0x20, I_Z = 0x30, I_A = 0x40, I_P = 0x50, I_WB = 0x60, I_G3 = 0x70,
};
#define IMM_KIND(f) ((f) & 0xf0)

static const uint8_t one_byte[256] = {
    /* 00 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 10 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 20 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 30 */ M, M, M, M, I_B, I_Z, 0, 0, M, M, M, M, I_B, I_Z, 0, 0,
    /* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ 0, 0, M, M, 0, 0, 0, 0, I_Z, M | I_Z, I_B, M | I_B, 0, 0, 0, 0,
    /* 70 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B,
    /* 80 */ M | I_B, M | I_Z, M | I_B, M | I_B, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, I_P, 0, 0, 0, 0, 0,
    /* A0 */ I_A, I_A, I_A, I_A, 0, 0, 0, 0, I_B, I_Z, 0, 0, 0, 0, 0, 0,
    /* B0 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z,
    /* C0 */ M | I_B, M | I_B, I_W, 0, M, M, M | I_B, M | I_Z, I_WB, 0, I_W, 0, 0, I_B, 0, 0,
    /* D0 */ M, M, M, M, I_B, I_B, 0, 0, M, M, M, M, M, M, M, M,
    /* E0 */ I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_B, I_Z, I_Z, I_P, I_B, 0, 0, 0, 0,
    /* F0 */ 0, 0, 0, 0, 0, 0, M | I_G3, M | I_G3, 0, 0, 0, 0, 0, 0, M, M,
};

/*
 * Opcodes the emulated CPU lacks still get the shape every CPU that defines
 * them gives them: 0F 0F is 3DNow! (ModRM, then the operation in an imm8
 * position), 0F 24/26 the 386/486 MOV to/from TRn (shaped like MOV CRn),
 * 0F 78/79 VMREAD/VMWRITE, 0F A6/A7 the 486 A-step CMPXCHG and VIA PadLock,
 * 0F B9/0F FF UD1/UD0 (Intel's form, with ModRM).
 */
#define MX (M | X)
static const uint8_t two_byte[256] = {
    /* 00 */ M, M, M, M, X, X, 0, X, 0, 0, X, 0, X, MX, X, MX | I_B,
    /* 10 */ M, M, MX, MX, MX, MX, MX, MX, M, M, M, M, M, M, M, M,
    /* 20 */ M | FORCE_REG, M | FORCE_REG, M | FORCE_REG, M | FORCE_REG,
             MX | FORCE_REG, X, MX | FORCE_REG, X, M, M, MX, MX, MX, MX, MX, MX,
    /* 30 */ 0, 0, 0, 0, 0, 0, X, X, X, X, X, X, X, X, X, X,
    /* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* 60 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, M,
    /* 70 */ MX | I_B, MX | I_B, MX | I_B, MX | I_B, MX, MX, MX, X, MX, MX, X, X, MX, MX, MX, M,
    /* 80 */ I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z, I_Z,
    /* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 */ 0, 0, 0, M, M | I_B, M, MX, MX, 0, 0, X, M, M | I_B, M, M, M,
    /* B0 */ M, M, M, M, M, M, M, M, MX, MX, M | I_B, M, M, M, M, M,
    /* C0 */ M, M, MX | I_B, MX, MX | I_B, MX | I_B, MX | I_B, M, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* E0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
    /* F0 */ MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX, MX,
};

/* 16-bit addressing: rm -> (base, index), mod 0 rm 6 is disp16 alone. */
static const int8_t ea16_base[8] = { R_EBX, R_EBX, R_EBP, R_EBP, R_ESI, R_EDI, R_EBP, R_EBX };
static const int8_t ea16_index[8] = { R_ESI, R_EDI, R_ESI, R_EDI, -1, -1, -1, -1 };

static int prefix_segment(uint8_t b)
{
    switch (b) {
    case 0x26: return SEG_ES;
    case 0x2e: return SEG_CS;
    case 0x36: return SEG_SS;
    case 0x3e: return SEG_DS;
    case 0x64: return SEG_FS;
    case 0x65: return SEG_GS;
    default: return -1;
    }
}

/*
 * The instruction needs bytes up to buf[need - 1] and they are not all there
 * (or not all allowed): past 15 bytes it is #GP whatever follows, so the
 * caller must not go fetching (and faulting on) a 16th byte.
 */
static int short_of(int need, int avail)
{
    if (need > INSN_MAX_LEN)
        return DECODE_TOO_LONG;
    return need > avail ? DECODE_NEED_MORE : 0;
}

/* Little-endian fetch of n bytes; the caller has checked they are there. */
static uint32_t take(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int k = n - 1; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static int32_t sign_extend(uint32_t v, int bytes)
{
    if (bytes == 1)
        return (int8_t)v;
    if (bytes == 2)
        return (int16_t)v;
    return (int32_t)v;
}

/* Parse ModRM/SIB/displacement starting at buf[pos]; returns the new pos or < 0. */
static int decode_modrm(const uint8_t *buf, int pos, int avail, struct insn *in, bool force_reg)
{
    int err;
    if ((err = short_of(pos + 1, avail)))
        return err;
    uint8_t m = buf[pos++];
    in->has_modrm = true;
    in->modrm = m;
    in->mod = force_reg ? 3 : m >> 6;
    in->reg = (m >> 3) & 7;
    in->rm = m & 7;
    in->ea_base = in->ea_index = -1;
    in->ea_scale = 0;
    in->disp = 0;
    if (in->mod == 3)
        return pos;

    int disp_bytes = 0;
    int8_t def_seg = SEG_DS;
    if (!in->addr32) {
        if (in->mod == 0 && in->rm == 6) {
            disp_bytes = 2;
        } else {
            in->ea_base = ea16_base[in->rm];
            in->ea_index = ea16_index[in->rm];
            if (in->ea_base == R_EBP)
                def_seg = SEG_SS;
            disp_bytes = in->mod == 1 ? 1 : in->mod == 2 ? 2 : 0;
        }
    } else {
        int base = in->rm;
        if (in->rm == 4) {
            if ((err = short_of(pos + 1, avail)))
                return err;
            uint8_t sib = buf[pos++];
            int idx = (sib >> 3) & 7;
            in->ea_scale = sib >> 6;
            in->ea_index = idx == 4 ? -1 : idx;
            base = sib & 7;
        }
        if (in->mod == 0 && base == 5) {
            disp_bytes = 4;
        } else {
            in->ea_base = base;
            if (base == R_ESP || base == R_EBP)
                def_seg = SEG_SS;
            disp_bytes = in->mod == 1 ? 1 : in->mod == 2 ? 4 : 0;
        }
    }
    if ((err = short_of(pos + disp_bytes, avail)))
        return err;
    in->disp = sign_extend(take(buf + pos, disp_bytes), disp_bytes);
    pos += disp_bytes;
    in->ea_seg = in->seg >= 0 ? in->seg : def_seg;
    return pos;
}

static int immediate_bytes(uint8_t flags, const struct insn *in, int *second)
{
    int z = in->op32 ? 4 : 2;
    *second = 0;
    switch (IMM_KIND(flags)) {
    case I_B: return 1;
    case I_W: return 2;
    case I_Z: return z;
    case I_A: return in->addr32 ? 4 : 2;
    case I_P: *second = 2; return z;
    case I_WB: *second = 1; return 2;
    case I_G3: return in->reg <= 1 ? (in->op == 0xf6 ? 1 : z) : 0;
    default: return 0;
    }
}

int decode(const uint8_t *buf, int avail, bool code32, struct insn *in)
{
    memset(in, 0, sizeof(*in));
    in->seg = -1;
    in->ea_seg = SEG_DS;
    in->ea_base = in->ea_index = -1;
    int pos = 0;
    bool opsize = false, adsize = false;

    int err;
    for (;;) {
        if ((err = short_of(pos + 1, avail)))
            return err;
        uint8_t b = buf[pos];
        int s = prefix_segment(b);
        if (s >= 0)
            in->seg = s;
        else if (b == 0x66)
            opsize = true;
        else if (b == 0x67)
            adsize = true;
        else if (b == 0xf0)
            in->prefixes |= PFX_LOCK;
        else if (b == 0xf2)
            in->prefixes = (in->prefixes & ~PFX_REP) | PFX_REPNE;
        else if (b == 0xf3)
            in->prefixes = (in->prefixes & ~PFX_REPNE) | PFX_REP;
        else
            break;
        pos++;
    }
    if (opsize)
        in->prefixes |= PFX_OPSIZE;
    if (adsize)
        in->prefixes |= PFX_ADSIZE;
    in->op32 = code32 ^ opsize;
    in->addr32 = code32 ^ adsize;

    uint8_t flags;
    uint8_t b = buf[pos++];
    if (b == 0x0f) {
        if ((err = short_of(pos + 1, avail)))
            return err;
        b = buf[pos++];
        in->op = 0x100 | b;
        flags = two_byte[b];
        /* Three-byte maps (SSSE3 and later): decode the length, never execute. */
        if (b == 0x38 || b == 0x3a) {
            if ((err = short_of(pos + 1, avail)))
                return err;
            pos++;
            flags = M | X | (b == 0x3a ? I_B : 0);
        }
    } else {
        in->op = b;
        flags = one_byte[b];
    }
    in->invalid = flags & X;

    if (flags & M) {
        pos = decode_modrm(buf, pos, avail, in, flags & FORCE_REG);
        if (pos < 0)
            return pos;
    }
    int second;
    int n = immediate_bytes(flags, in, &second);
    if ((err = short_of(pos + n + second, avail)))
        return err;
    in->imm = take(buf + pos, n);
    in->imm_size = n;
    pos += n;
    in->imm2 = take(buf + pos, second);
    pos += second;
    in->len = pos;
    return pos;
}
