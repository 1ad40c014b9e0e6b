/*
 * The one x86 instruction decoder (table driven), shared by the interpreter
 * and the translator.  It knows lengths and operand shapes, not semantics.
 */
#ifndef RV_DECODE_H
#define RV_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#define INSN_MAX_LEN 15

/* Prefix bits in insn.prefixes. */
#define PFX_LOCK   0x01
#define PFX_REP    0x02   /* F3: REP / REPE */
#define PFX_REPNE  0x04   /* F2: REPNE */
#define PFX_OPSIZE 0x08   /* 66 */
#define PFX_ADSIZE 0x10   /* 67 */

/* Decoder return values other than a length. */
#define DECODE_NEED_MORE (-1)   /* the instruction continues past the bytes given */
#define DECODE_TOO_LONG  (-2)   /* more than 15 bytes: #GP(0) */

struct insn {
    uint16_t op;          /* 0x000-0x0ff one-byte map, 0x100-0x1ff the 0F map */
    uint8_t len;
    uint8_t prefixes;
    int8_t seg;           /* segment override (SEG_*) or -1 */
    bool op32;            /* effective operand size is 32 */
    bool addr32;          /* effective address size is 32 */
    bool has_modrm;
    bool invalid;         /* opcode is undefined on the emulated CPU: #UD */
    uint8_t modrm, mod, reg, rm;
    /* Memory operand, pre-digested so executing it is a sum:
     * ea = base + index << scale + disp (truncated to the address size). */
    int8_t ea_base;       /* register index or -1 */
    int8_t ea_index;      /* register index or -1 */
    uint8_t ea_scale;
    int8_t ea_seg;        /* segment used: override, or DS/SS by the base register */
    int32_t disp;
    uint32_t imm;         /* first immediate (zero-extended as encoded; sign-extension is semantic) */
    uint32_t imm2;        /* second immediate: ENTER's level, far pointer's selector */
    uint8_t imm_size;     /* bytes of the first immediate (0 if none) */
};

static inline bool insn_is_mem(const struct insn *i) { return i->has_modrm && i->mod != 3; }

/*
 * Decode the instruction at buf[0..avail).  code32 is the CS default size.
 * Returns the length, DECODE_NEED_MORE if avail bytes were not enough
 * (the caller fetches more, e.g. across a page boundary), or DECODE_TOO_LONG.
 */
int decode(const uint8_t *buf, int avail, bool code32, struct insn *out);

#endif
