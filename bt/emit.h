/*
 * A minimal x86-64 machine-code emitter for the translation cache.
 * Register numbers are the hardware encodings (RAX=0 ... R15=15).
 */
#ifndef RV_EMIT_H
#define RV_EMIT_H

#include <stdint.h>
#include <string.h>

enum { H_RAX, H_RCX, H_RDX, H_RBX, H_RSP, H_RBP, H_RSI, H_RDI,
       H_R8, H_R9, H_R10, H_R11, H_R12, H_R13, H_R14, H_R15 };

struct emitter {
    uint8_t *p;        /* next byte */
    uint8_t *end;      /* limit */
    int mem_index;     /* the memory operand MEM_COVERED (native.c): [rdx + mem_index + mem_disp] */
    int32_t mem_disp;
    uint8_t *epilogue; /* the shared way back to bt_run's caller (native.c), once emitted */
};

static inline int emit_room(const struct emitter *e, int n) { return e->end - e->p >= n; }
static inline void emit_u8(struct emitter *e, uint8_t b) { *e->p++ = b; }
static inline void emit_u32(struct emitter *e, uint32_t v) { memcpy(e->p, &v, 4); e->p += 4; }
static inline void emit_u64(struct emitter *e, uint64_t v) { memcpy(e->p, &v, 8); e->p += 8; }

static inline void emit_rex(struct emitter *e, int w, int reg, int base)
{
    uint8_t rex = 0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((base & 8) ? 1 : 0);
    if (rex != 0x40)
        emit_u8(e, rex);
}

static inline void emit_push(struct emitter *e, int r) { emit_rex(e, 0, 0, r); emit_u8(e, 0x50 | (r & 7)); }
static inline void emit_pop(struct emitter *e, int r) { emit_rex(e, 0, 0, r); emit_u8(e, 0x58 | (r & 7)); }
static inline void emit_ret(struct emitter *e) { emit_u8(e, 0xc3); }

/* mov r64, imm64 */
static inline void emit_mov_imm64(struct emitter *e, int r, uint64_t v)
{
    emit_rex(e, 1, 0, r);
    emit_u8(e, 0xb8 | (r & 7));
    emit_u64(e, v);
}

/* mov dst64, src64 */
static inline void emit_mov_rr64(struct emitter *e, int dst, int src)
{
    emit_rex(e, 1, src, dst);
    emit_u8(e, 0x89);
    emit_u8(e, 0xc0 | ((src & 7) << 3) | (dst & 7));
}

/* call r64 */
static inline void emit_call_r(struct emitter *e, int r)
{
    emit_rex(e, 0, 0, r);
    emit_u8(e, 0xff);
    emit_u8(e, 0xd0 | (r & 7));
}

/* bswap r32 */
static inline void emit_bswap_r32(struct emitter *e, int r)
{
    emit_rex(e, 0, 0, r);
    emit_u8(e, 0x0f);
    emit_u8(e, 0xc8 | (r & 7));
}

/* test al, al */
static inline void emit_test_al(struct emitter *e) { emit_u8(e, 0x84); emit_u8(e, 0xc0); }

/* jz rel32 to be patched: returns the address of the rel32 field */
static inline uint8_t *emit_jz_fwd(struct emitter *e)
{
    emit_u8(e, 0x0f);
    emit_u8(e, 0x84);
    uint8_t *at = e->p;
    emit_u32(e, 0);
    return at;
}

/* jmp rel32 to be patched: returns the address of the rel32 field */
/* call rel32: returns its rel32 field (patched like a jump's) */
static inline uint8_t *emit_call32(struct emitter *e)
{
    emit_u8(e, 0xe8);
    uint8_t *at = e->p;
    emit_u32(e, 0);
    return at;
}

static inline uint8_t *emit_jmp32(struct emitter *e)
{
    emit_u8(e, 0xe9);
    uint8_t *at = e->p;
    emit_u32(e, 0);
    return at;
}

static inline void emit_patch_rel32(uint8_t *field, const uint8_t *target)
{
    int32_t rel = (int32_t)(target - (field + 4));
    memcpy(field, &rel, 4);
}

#endif
