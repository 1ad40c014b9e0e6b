/*
 * The x86-64 machine-code emitter of the translation cache: the byte level
 * (emit_u8/u32/u64, REX, ModRM/SIB/displacement of a struct mem operand),
 * one named emitter per host instruction form the translator uses, and
 * rel32 jumps to patch.  Register numbers are the hardware encodings
 * (RAX=0 ... R15=15).  Nothing here knows the guest: that is encode.c and
 * the files beside it (bt/native_internal.h).
 */
#ifndef RV_EMIT_H
#define RV_EMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { H_RAX, H_RCX, H_RDX, H_RBX, H_RSP, H_RBP, H_RSI, H_RDI,
       H_R8, H_R9, H_R10, H_R11, H_R12, H_R13, H_R14, H_R15 };

struct emitter {
    uint8_t *p;        /* next byte */
    uint8_t *end;      /* limit */
    int mem_index;     /* the memory operand MEM_COVERED (encode.c): [rdx + mem_index + mem_disp] */
    int32_t mem_disp;
    uint8_t *epilogue; /* the shared way back to bt_run's caller (encode.c), once emitted */
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

/*
 * Named one-instruction emitters.  Each emits exactly the bytes of the
 * instruction its name spells (tests/unit/test_bt_emit.c checks them
 * against capstone): operands in Intel order, r32/r64/r8 for host
 * registers (H_*), m for a memory operand (struct mem), imm8/imm32 for
 * immediates.  Byte registers 4-7 are AH..BH: no REX prefix is forced (one
 * that an R8-R15 operand needs makes them SPL..DIL).
 * `op` is an enum alu_op, `kind` an enum shift_op, `cc` a condition code
 * (the low nibble of Jcc/SETcc/CMOVcc).
 */

/* Host condition codes (the low nibble of Jcc, SETcc, CMOVcc). */
enum host_cc { CC_O, CC_NO, CC_B, CC_AE, CC_E, CC_NE, CC_BE, CC_A, CC_S, CC_NS, CC_P, CC_NP, CC_L, CC_GE, CC_LE, CC_G };

/* How the displacement of a memory operand is encoded. */
enum mem_form {
    MEM_AUTO,    /* disp8 when it fits, else disp32 (never the no-displacement form) */
    MEM_NODISP,  /* no displacement (disp8 0 for a base of RBP/R13) */
        MEM_DISP32,  /* always disp32 */
        MEM_DISP32_SIB, /* always disp32, and always a SIB byte */
};

/* [base + index << scale + disp]: base or index -1 for none. */
struct mem {
    int8_t base, index;
    uint8_t scale, form;
    int32_t disp;
};

static inline struct mem mem_at(int base, int32_t disp) { return (struct mem){ base, -1, 0, MEM_AUTO, disp }; }
static inline struct mem mem_ind(int base) { return (struct mem){ base, -1, 0, MEM_NODISP, 0 }; }
static inline struct mem mem_d32(int base, int32_t disp) { return (struct mem){ base, -1, 0, MEM_DISP32, disp }; }
static inline struct mem mem_sib(int base, int index, int scale, int32_t disp, enum mem_form form)
{
    return (struct mem){ base, index, scale, form, disp };
}

static inline void emit_u16(struct emitter *e, uint16_t v) { memcpy(e->p, &v, 2); e->p += 2; }

/* REX for reg and memory operand m (only when a bit is set). */
static inline void emit_rex_mem(struct emitter *e, int w, int reg, struct mem m)
{
    uint8_t rex = 0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | (m.index >= 0 && (m.index & 8) ? 2 : 0) |
                  (m.base >= 0 && (m.base & 8) ? 1 : 0);
    if (rex != 0x40)
        emit_u8(e, rex);
}

/* ModRM, SIB and displacement of m; reg is a register or an opcode extension. */
static inline void emit_modrm_mem(struct emitter *e, int reg, struct mem m)
{
        bool sib = m.index >= 0 || m.base < 0 || (m.base & 7) == 4 || m.form == MEM_DISP32_SIB;
    int mod;
    if (m.base < 0)
        mod = 0;                                       /* SIB base 101: disp32 alone */
    else if (m.form == MEM_NODISP)
        mod = (m.base & 7) == 5 ? 1 : 0;
    else if (m.form == MEM_AUTO && m.disp >= -128 && m.disp <= 127)
        mod = 1;
    else
        mod = 2;
    emit_u8(e, mod << 6 | (reg & 7) << 3 | (sib ? 4 : (m.base & 7)));
    if (sib)
        emit_u8(e, (m.index >= 0 ? (m.scale & 3) << 6 | (m.index & 7) << 3 : 4 << 3) | (m.base >= 0 ? (m.base & 7) : 5));
    if (mod == 1)
        emit_u8(e, m.form == MEM_NODISP ? 0 : (uint8_t)m.disp);
    else if (mod == 2 || m.base < 0)
        emit_u32(e, (uint32_t)m.disp);
}

static inline void emit_opcode(struct emitter *e, unsigned opcode)
{
    if (opcode > 0xff)
        emit_u8(e, opcode >> 8);
    emit_u8(e, opcode & 0xff);
}

/* [REX] opcode ModRM... with a memory operand; w: 64-bit operand size. */
static inline void emit_insn_m(struct emitter *e, int w, unsigned opcode, int reg, struct mem m)
{
    emit_rex_mem(e, w, reg, m);
    emit_opcode(e, opcode);
    emit_modrm_mem(e, reg, m);
}

/* [REX] opcode ModRM with two registers (reg field, r/m field). */
static inline void emit_insn_rr(struct emitter *e, int w, unsigned opcode, int reg, int rm)
{
    emit_rex(e, w, reg, rm);
    emit_opcode(e, opcode);
    emit_u8(e, 0xc0 | (reg & 7) << 3 | (rm & 7));
}

/* moves */
static inline void emit_mov_r32_m(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 0, 0x8b, r, m); }
static inline void emit_mov_m_r32(struct emitter *e, struct mem m, int r) { emit_insn_m(e, 0, 0x89, r, m); }
static inline void emit_mov_r64_m(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 1, 0x8b, r, m); }
static inline void emit_mov_m_r64(struct emitter *e, struct mem m, int r) { emit_insn_m(e, 1, 0x89, r, m); }
static inline void emit_mov_m32_imm32(struct emitter *e, struct mem m, uint32_t imm)
{
    emit_insn_m(e, 0, 0xc7, 0, m);
    emit_u32(e, imm);
}
static inline void emit_mov_r32_imm32(struct emitter *e, int r, uint32_t imm)
{
    emit_rex(e, 0, 0, r);
    emit_u8(e, 0xb8 | (r & 7));
    emit_u32(e, imm);
}
static inline void emit_mov_rr32(struct emitter *e, int dst, int src) { emit_insn_rr(e, 0, 0x89, src, dst); }
static inline void emit_movzx_r32_r8(struct emitter *e, int dst, int src) { emit_insn_rr(e, 0, 0x0fb6, dst, src); }
static inline void emit_movzx_r32_r16(struct emitter *e, int dst, int src) { emit_insn_rr(e, 0, 0x0fb7, dst, src); }
static inline void emit_movzx_r32_m8(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 0, 0x0fb6, r, m); }
static inline void emit_movzx_r32_m16(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 0, 0x0fb7, r, m); }
static inline void emit_movsxd_r64_r32(struct emitter *e, int dst, int src) { emit_insn_rr(e, 1, 0x63, dst, src); }
static inline void emit_lea_r32_m(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 0, 0x8d, r, m); }
static inline void emit_lea_r64_m(struct emitter *e, int r, struct mem m) { emit_insn_m(e, 1, 0x8d, r, m); }

/* arithmetic and logic (enum alu_op: ADD OR ADC SBB AND SUB XOR CMP) */
static inline void emit_alu_rr32(struct emitter *e, int op, int dst, int src) { emit_insn_rr(e, 0, op << 3 | 1, src, dst); }
static inline void emit_alu_rr64(struct emitter *e, int op, int dst, int src) { emit_insn_rr(e, 1, op << 3 | 1, src, dst); }
static inline void emit_alu_r32_m(struct emitter *e, int op, int r, struct mem m) { emit_insn_m(e, 0, op << 3 | 3, r, m); }
static inline void emit_alu_r64_m(struct emitter *e, int op, int r, struct mem m) { emit_insn_m(e, 1, op << 3 | 3, r, m); }
static inline void emit_alu_m_r32(struct emitter *e, int op, struct mem m, int r) { emit_insn_m(e, 0, op << 3 | 1, r, m); }
static inline void emit_alu_m_r8(struct emitter *e, int op, struct mem m, int r) { emit_insn_m(e, 0, op << 3, r, m); }
static inline void emit_alu_r32_imm32(struct emitter *e, int op, int r, uint32_t imm)
{
    emit_insn_rr(e, 0, 0x81, op, r);
    emit_u32(e, imm);
}
static inline void emit_alu_r32_imm8(struct emitter *e, int op, int r, int8_t imm)
{
    emit_insn_rr(e, 0, 0x83, op, r);
    emit_u8(e, (uint8_t)imm);
}
static inline void emit_alu_r64_imm8(struct emitter *e, int op, int r, int8_t imm)
{
    emit_insn_rr(e, 1, 0x83, op, r);
    emit_u8(e, (uint8_t)imm);
}
static inline void emit_alu_r8_imm8(struct emitter *e, int op, int r, uint8_t imm)
{
    emit_insn_rr(e, 0, 0x80, op, r);
    emit_u8(e, imm);
}
/* The short forms with EAX or AL. */
static inline void emit_alu_eax_imm32(struct emitter *e, int op, uint32_t imm)
{
    emit_u8(e, op << 3 | 5);
    emit_u32(e, imm);
}
static inline void emit_alu_al_imm8(struct emitter *e, int op, uint8_t imm)
{
    emit_u8(e, op << 3 | 4);
    emit_u8(e, imm);
}
static inline void emit_alu_m32_imm32(struct emitter *e, int op, struct mem m, uint32_t imm)
{
    emit_insn_m(e, 0, 0x81, op, m);
    emit_u32(e, imm);
}
static inline void emit_alu_m32_imm8(struct emitter *e, int op, struct mem m, int8_t imm)
{
    emit_insn_m(e, 0, 0x83, op, m);
    emit_u8(e, (uint8_t)imm);
}
static inline void emit_alu_m64_imm8(struct emitter *e, int op, struct mem m, int8_t imm)
{
    emit_insn_m(e, 1, 0x83, op, m);
    emit_u8(e, (uint8_t)imm);
}
static inline void emit_alu_m64_imm32(struct emitter *e, int op, struct mem m, uint32_t imm)
{
    emit_insn_m(e, 1, 0x81, op, m);
    emit_u32(e, imm);
}
static inline void emit_alu_m8_imm8(struct emitter *e, int op, struct mem m, uint8_t imm)
{
    emit_insn_m(e, 0, 0x80, op, m);
    emit_u8(e, imm);
}
static inline void emit_test_rr32(struct emitter *e, int a, int b) { emit_insn_rr(e, 0, 0x85, b, a); }
static inline void emit_test_rr64(struct emitter *e, int a, int b) { emit_insn_rr(e, 1, 0x85, b, a); }
static inline void emit_test_r32_imm32(struct emitter *e, int r, uint32_t imm)
{
    emit_insn_rr(e, 0, 0xf7, 0, r);
    emit_u32(e, imm);
}
static inline void emit_test_m32_imm32(struct emitter *e, struct mem m, uint32_t imm)
{
    emit_insn_m(e, 0, 0xf7, 0, m);
    emit_u32(e, imm);
}
static inline void emit_not_r32(struct emitter *e, int r) { emit_insn_rr(e, 0, 0xf7, 2, r); }
static inline void emit_neg_r32(struct emitter *e, int r) { emit_insn_rr(e, 0, 0xf7, 3, r); }
static inline void emit_imul_r32_r32_imm8(struct emitter *e, int dst, int src, int8_t imm)
{
    emit_insn_rr(e, 0, 0x6b, dst, src);
    emit_u8(e, (uint8_t)imm);
}

/* shifts and rotates (enum shift_op), bit test */
static inline void emit_shift_r32_imm8(struct emitter *e, int kind, int r, uint8_t n)
{
    emit_insn_rr(e, 0, 0xc1, kind, r);
    emit_u8(e, n);
}
static inline void emit_shift_r16_imm8(struct emitter *e, int kind, int r, uint8_t n)
{
    emit_u8(e, 0x66);
    emit_shift_r32_imm8(e, kind, r, n);
}
static inline void emit_shift_r8_imm8(struct emitter *e, int kind, int r, uint8_t n)
{
    emit_insn_rr(e, 0, 0xc0, kind, r);
    emit_u8(e, n);
}
static inline void emit_bt_r32_imm8(struct emitter *e, int r, uint8_t bit)
{
    emit_insn_rr(e, 0, 0x0fba, 4, r);
    emit_u8(e, bit);
}
static inline void emit_bt_m32_imm8(struct emitter *e, struct mem m, uint8_t bit)
{
    emit_insn_m(e, 0, 0x0fba, 4, m);
    emit_u8(e, bit);
}

/* BMI2 (VEX): rorx dst, src, imm; shrx/shlx dst, src, count */
static inline void emit_vex3(struct emitter *e, int map, int w, int vvvv, int pp, int reg, int rm)
{
    emit_u8(e, 0xc4);
    emit_u8(e, ((reg & 8) ? 0 : 0x80) | 0x40 | ((rm & 8) ? 0 : 0x20) | map);
    emit_u8(e, (w ? 0x80 : 0) | (~vvvv & 0xf) << 3 | pp);
}
static inline void emit_rorx_r32(struct emitter *e, int dst, int src, uint8_t n)
{
    emit_vex3(e, 3, 0, 0, 3, dst, src);
    emit_u8(e, 0xf0);
    emit_u8(e, 0xc0 | (dst & 7) << 3 | (src & 7));
    emit_u8(e, n);
}
static inline void emit_shrx(struct emitter *e, int w, int dst, int src, int count)
{
    emit_vex3(e, 2, w, count, 3, dst, src);
    emit_u8(e, 0xf7);
    emit_u8(e, 0xc0 | (dst & 7) << 3 | (src & 7));
}
static inline void emit_shlx_r32(struct emitter *e, int dst, int src, int count)
{
    emit_vex3(e, 2, 0, count, 1, dst, src);
    emit_u8(e, 0xf7);
    emit_u8(e, 0xc0 | (dst & 7) << 3 | (src & 7));
}

/* flags */
static inline void emit_pushfq(struct emitter *e) { emit_u8(e, 0x9c); }
static inline void emit_popfq(struct emitter *e) { emit_u8(e, 0x9d); }
static inline void emit_sahf(struct emitter *e) { emit_u8(e, 0x9e); }
static inline void emit_lahf(struct emitter *e) { emit_u8(e, 0x9f); }
static inline void emit_setcc_r8(struct emitter *e, int cc, int r) { emit_insn_rr(e, 0, 0x0f90 | cc, 0, r); }
static inline void emit_cmovcc_rr32(struct emitter *e, int cc, int dst, int src) { emit_insn_rr(e, 0, 0x0f40 | cc, dst, src); }

/* control, stack and the rest */
static inline void emit_cdq(struct emitter *e) { emit_u8(e, 0x99); }
static inline void emit_push_imm32(struct emitter *e, uint32_t imm)
{
    emit_u8(e, 0x68);
    emit_u32(e, imm);
}
static inline void emit_jmp_m64(struct emitter *e, struct mem m) { emit_insn_m(e, 0, 0xff, 4, m); }
static inline void emit_ret_imm16(struct emitter *e, uint16_t n)
{
    emit_u8(e, 0xc2);
    emit_u16(e, n);
}
static inline void emit_jrcxz(struct emitter *e, int8_t rel)
{
    emit_u8(e, 0xe3);
    emit_u8(e, (uint8_t)rel);
}
static inline void emit_cmpxchg8b_m(struct emitter *e, struct mem m) { emit_insn_m(e, 0, 0x0fc7, 1, m); }
/* rep movs/stos/lods of `size` (1, 2, 4): opcode its byte form's or the next */
static inline void emit_rep_string_op(struct emitter *e, int size, uint8_t opcode)
{
    emit_u8(e, 0xf3);
    if (size == 2)
        emit_u8(e, 0x66);
    emit_u8(e, opcode);
}

/* jcc rel32 to be patched: returns the address of the rel32 field */
static inline uint8_t *emit_jcc_rel32(struct emitter *e, int cc)
{
    emit_u8(e, 0x0f);
    emit_u8(e, 0x80 | cc);
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
