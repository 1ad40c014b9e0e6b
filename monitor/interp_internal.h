/*
 * What the interpreter's handler files share (monitor/interp.c and its
 * interp_*.c): operand access by size, ModRM operands, privilege checks,
 * and the handlers themselves, h_NAME for each name in the opcode table's
 * handler column (decode.h: INTERP_HANDLERS), which interp.c dispatches to.
 *   interp.c         exceptions, the dispatch, fetch/decode, the run loop
 *   interp_string.c  MOVS CMPS STOS LODS SCAS INS OUTS, REP and its fast runs
 *   interp_alu.c     ALU, BCD adjusts, shifts, MUL/DIV, moves, conversions,
 *                    CMOV/SETcc, BSF/BSR, CMPXCHG, XADD, bit tests
 *   interp_flow.c    stack (PUSH/POP, ENTER/LEAVE, PUSHA/POPA), flags,
 *                    jumps, calls, returns, loops, INT/INTO/IRET, BOUND
 *   interp_system.c  segment loads, descriptor tables, ARPL/LAR/LSL/VERR,
 *                    control/debug registers, MSRs, CPUID, HLT, I/O, x87
 */
#ifndef RV_INTERP_INTERNAL_H
#define RV_INTERP_INTERNAL_H

#include "monitor/interp.h"

/* ---- operands ---- */

static inline int wsize(const struct insn *in, int op)
{
    return (op & 1) ? (in->op32 ? 4 : 2) : 1;
}

static inline int vsize(const struct insn *in)
{
    return in->op32 ? 4 : 2;
}

static inline uint32_t sext(uint32_t v, int size)
{
    return size == 1 ? (uint32_t)(int32_t)(int8_t)v : size == 2 ? (uint32_t)(int32_t)(int16_t)v : v;
}


static inline uint32_t reg_read(const struct cpu *c, int reg, int size)
{
    if (size == 1)
        return cpu_get_r8(c, reg);
    return size == 2 ? (c->r[reg] & 0xffff) : c->r[reg];
}

static inline void reg_write(struct cpu *c, int reg, int size, uint32_t v)
{
    if (size == 1)
        cpu_set_r8(c, reg, v);
    else if (size == 2)
        cpu_set_r16(c, reg, v);
    else
        c->r[reg] = v;
}

/* A resolved r/m operand: a register, or a checked linear address. */
struct opnd {
    bool mem;
    uint8_t reg;
    int size;
    uint32_t lin;
};

static inline struct opnd rm_opnd(struct cpu *c, const struct insn *in, int size, bool write)
{
    struct opnd o = { .size = size };
    if (in->mod == 3) {
        o.reg = in->rm;
        return o;
    }
    o.mem = true;
    o.lin = seg_lin(c, in->ea_seg, insn_ea_offset(c, in), size, write);
    if (write)
        mem_probe_write(c, o.lin, size, mmu_user(c));
    return o;
}

static inline uint32_t opnd_read(struct cpu *c, const struct opnd *o)
{
    return o->mem ? mem_read(c, o->lin, o->size, mmu_user(c)) : reg_read(c, o->reg, o->size);
}

static inline void opnd_write(struct cpu *c, const struct opnd *o, uint32_t v)
{
    if (o->mem)
        mem_write(c, o->lin, v, o->size, mmu_user(c));
    else
        reg_write(c, o->reg, o->size, v);
}

static inline uint32_t rm_read(struct cpu *c, const struct insn *in, int size)
{
    struct opnd o = rm_opnd(c, in, size, false);
    return opnd_read(c, &o);
}

static inline void rm_write(struct cpu *c, const struct insn *in, int size, uint32_t v)
{
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, v);
}

/* Memory operand of a given size at ea (+extra bytes), for far pointers, LGDT, BOUND... */
static inline uint32_t mem_at(struct cpu *c, const struct insn *in, uint32_t extra, int size)
{
    uint32_t off = insn_ea_offset(c, in) + extra;
    if (!in->addr32)
        off &= 0xffff;
    return vm_read(c, in->ea_seg, off, size);
}

static inline void require_mem(struct cpu *c, const struct insn *in)
{
    if (in->mod == 3)
        cpu_raise_noerr(c, EXC_UD);
}

static inline void require_cpl0(struct cpu *c)
{
    if (cpu_protected(c) && c->cpl != 0)
        cpu_raise(c, EXC_GP, 0);
}

static inline int iopl(const struct cpu *c) { return (c->eflags >> 12) & 3; }

/* The count register of REP and LOOP: ECX, or CX with 16-bit addresses. */
static inline uint32_t count_reg(const struct cpu *c, const struct insn *in)
{
    return in->addr32 ? c->r[R_ECX] : (c->r[R_ECX] & 0xffff);
}

static inline void set_count(struct cpu *c, const struct insn *in, uint32_t v)
{
    if (in->addr32)
        c->r[R_ECX] = v;
    else
        cpu_set_r16(c, R_ECX, v);
}

/* The segment of a source operand: DS unless overridden. */
static inline int src_seg(const struct insn *in) { return in->seg >= 0 ? in->seg : SEG_DS; }

/* ---- the handlers ---- */

#define HANDLER(name) void h_##name(struct cpu *c, const struct insn *in)
#define HANDLER_DECL(name) HANDLER(name);
INTERP_HANDLERS(HANDLER_DECL)
#undef HANDLER_DECL

#endif
