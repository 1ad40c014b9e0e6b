/*
 * The interpreter's computing instructions: ALU operations, BCD adjusts,
 * shifts and rotates, MUL/IMUL/DIV/IDIV (group 3), INC/DEC, moves and
 * exchanges, conversions, CMOVcc/SETcc, BSF/BSR, CMPXCHG(8B), XADD, bit
 * tests.  The arithmetic itself is monitor/alu.c's.
 */
#include "monitor/interp_internal.h"
#include "monitor/alu.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

/* ---- ALU ---- */

/* 00-3F, op & 7 = 0/1: op r/m, reg (the ALU op in bits 3-5). */
HANDLER(alu_rm_r)
{
    int aop = in->op >> 3, size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, aop != ALU_CMP);
    uint32_t r = alu_binop(&c->eflags, aop, opnd_read(c, &o), reg_read(c, in->reg, size), size);
    if (aop != ALU_CMP)
        opnd_write(c, &o, r);
}

/* op & 7 = 2/3: op reg, r/m. */
HANDLER(alu_r_rm)
{
    int aop = in->op >> 3, size = wsize(in, in->op);
    uint32_t r = alu_binop(&c->eflags, aop, reg_read(c, in->reg, size), rm_read(c, in, size), size);
    if (aop != ALU_CMP)
        reg_write(c, in->reg, size, r);
}

/* op & 7 = 4/5: op AL/eAX, imm. */
HANDLER(alu_acc_imm)
{
    int aop = in->op >> 3, size = wsize(in, in->op);
    uint32_t r = alu_binop(&c->eflags, aop, reg_read(c, R_EAX, size), in->imm, size);
    if (aop != ALU_CMP)
        reg_write(c, R_EAX, size, r);
}

/* Group 1 (80-83): op r/m, imm, the ALU op in ModRM.reg. */
HANDLER(alu_rm_imm)
{
    int size = wsize(in, in->op);
    uint32_t imm = in->op == 0x83 ? sext(in->imm, 1) : in->imm;
    struct opnd o = rm_opnd(c, in, size, in->reg != ALU_CMP);
    uint32_t r = alu_binop(&c->eflags, in->reg, opnd_read(c, &o), imm, size);
    if (in->reg != ALU_CMP)
        opnd_write(c, &o, r);
}

HANDLER(test_rm_r)
{
    int size = wsize(in, in->op);
    alu_binop(&c->eflags, ALU_AND, rm_read(c, in, size), reg_read(c, in->reg, size), size);
}

HANDLER(test_acc_imm)
{
    int size = wsize(in, in->op);
    alu_binop(&c->eflags, ALU_AND, reg_read(c, R_EAX, size), in->imm, size);
}

HANDLER(inc_r)
{
    int size = vsize(in);
    reg_write(c, in->op & 7, size, alu_inc(&c->eflags, reg_read(c, in->op & 7, size), size));
}

HANDLER(dec_r)
{
    int size = vsize(in);
    reg_write(c, in->op & 7, size, alu_dec(&c->eflags, reg_read(c, in->op & 7, size), size));
}

HANDLER(daa) { uint8_t al = c->r[R_EAX]; alu_daa(&c->eflags, &al); cpu_set_r8(c, 0, al); }
HANDLER(das) { uint8_t al = c->r[R_EAX]; alu_das(&c->eflags, &al); cpu_set_r8(c, 0, al); }
HANDLER(aaa) { uint16_t ax = c->r[R_EAX]; alu_aaa(&c->eflags, &ax); cpu_set_r16(c, 0, ax); }
HANDLER(aas) { uint16_t ax = c->r[R_EAX]; alu_aas(&c->eflags, &ax); cpu_set_r16(c, 0, ax); }

HANDLER(aam)
{
    uint16_t ax = c->r[R_EAX];
    if (!alu_aam(&c->eflags, &ax, in->imm))
        cpu_raise_noerr(c, EXC_DE);
    cpu_set_r16(c, R_EAX, ax);
}

HANDLER(aad) { uint16_t ax = c->r[R_EAX]; alu_aad(&c->eflags, &ax, in->imm); cpu_set_r16(c, 0, ax); }
HANDLER(salc) { cpu_set_r8(c, 0, (c->eflags & FL_CF) ? 0xff : 0); }

HANDLER(imul_imm)
{
    int size = vsize(in);
    uint32_t imm = in->op == 0x6b ? sext(in->imm, 1) : in->imm;
    reg_write(c, in->reg, size, alu_imul_trunc(&c->eflags, rm_read(c, in, size), imm, size));
}

HANDLER(imul_r_rm)
{
    int size = vsize(in);
    reg_write(c, in->reg, size, alu_imul_trunc(&c->eflags, reg_read(c, in->reg, size), rm_read(c, in, size), size));
}

/* Group 2 (C0 C1 D0-D3): the shift in ModRM.reg, by imm8, 1 or CL. */
HANDLER(shift)
{
    int op = in->op, size = wsize(in, op);
    uint32_t cnt = op >= 0xd2 ? (c->r[R_ECX] & 0xff) : op >= 0xd0 ? 1 : (in->imm & 0xff);
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, alu_shift(&c->eflags, in->reg, opnd_read(c, &o), cnt, size));
}

HANDLER(shld_shrd)
{
    int op = in->op, size = vsize(in);
    uint32_t cnt = (op & 1) ? (c->r[R_ECX] & 0xff) : (in->imm & 0xff);
    struct opnd o = rm_opnd(c, in, size, true);
    uint32_t v = opnd_read(c, &o), src = reg_read(c, in->reg, size);
    uint32_t r = op < 0x1a8 ? alu_shld(&c->eflags, v, src, cnt, size) : alu_shrd(&c->eflags, v, src, cnt, size);
    opnd_write(c, &o, r);
}

/* ---- group 3 (F6 F7) ---- */

HANDLER(test_rm_imm)
{
    int size = wsize(in, in->op);
    alu_binop(&c->eflags, ALU_AND, rm_read(c, in, size), in->imm, size);
}

HANDLER(not)
{
    int size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, ~opnd_read(c, &o));
}

HANDLER(neg)
{
    int size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, alu_neg(&c->eflags, opnd_read(c, &o), size));
}

/* MUL/IMUL r/m: AX = AL * r/m8, or (E)DX:(E)AX = (E)AX * r/m. */
static void mul_acc(struct cpu *c, const struct insn *in, bool is_signed)
{
    int size = wsize(in, in->op);
    uint32_t lo, hi;
    uint32_t src = rm_read(c, in, size);
    if (!is_signed)
        alu_mul(&c->eflags, reg_read(c, R_EAX, size), src, size, &lo, &hi);
    else
        alu_imul(&c->eflags, reg_read(c, R_EAX, size), src, size, &lo, &hi);
    if (size == 1) {
        cpu_set_r16(c, R_EAX, (hi << 8) | lo);
    } else {
        reg_write(c, R_EAX, size, lo);
        reg_write(c, R_EDX, size, hi);
    }
}

HANDLER(mul) { mul_acc(c, in, false); }
HANDLER(imul) { mul_acc(c, in, true); }

/* DIV/IDIV r/m: the dividend is twice the divisor's width: AH:AL for a
 * byte, DX:AX or EDX:EAX otherwise; #DE when the quotient does not fit. */
static void div_acc(struct cpu *c, const struct insn *in, bool is_signed)
{
    int size = wsize(in, in->op);
    uint32_t q, r;
    uint32_t divisor = rm_read(c, in, size);
    uint32_t dlo = reg_read(c, R_EAX, size);
    uint32_t dhi = size == 1 ? (c->r[R_EAX] >> 8) & 0xff : reg_read(c, R_EDX, size);
    bool ok = !is_signed ? alu_div(&c->eflags, dlo, dhi, divisor, size, &q, &r)
                         : alu_idiv(&c->eflags, dlo, dhi, divisor, size, &q, &r);
    if (!ok)
        cpu_raise_noerr(c, EXC_DE);
    if (size == 1) {
        cpu_set_r16(c, R_EAX, ((r & 0xff) << 8) | (q & 0xff));
    } else {
        reg_write(c, R_EAX, size, q);
        reg_write(c, R_EDX, size, r);
    }
}

HANDLER(div) { div_acc(c, in, false); }
HANDLER(idiv) { div_acc(c, in, true); }

/* ---- INC/DEC r/m (groups 4 and 5) ---- */

HANDLER(inc_rm)
{
    int size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, alu_inc(&c->eflags, opnd_read(c, &o), size));
}

HANDLER(dec_rm)
{
    int size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, true);
    opnd_write(c, &o, alu_dec(&c->eflags, opnd_read(c, &o), size));
}

/* ---- moves, exchanges, conversions ---- */

HANDLER(mov_rm_r)
{
    int size = wsize(in, in->op);
    rm_write(c, in, size, reg_read(c, in->reg, size));
}

HANDLER(mov_r_rm)
{
    int size = wsize(in, in->op);
    reg_write(c, in->reg, size, rm_read(c, in, size));
}

HANDLER(mov_rm_imm) { rm_write(c, in, wsize(in, in->op), in->imm); }   /* group 11 /0 */
HANDLER(mov_r8_imm) { cpu_set_r8(c, in->op & 7, in->imm); }
HANDLER(mov_r_imm) { reg_write(c, in->op & 7, vsize(in), in->imm); }

HANDLER(mov_acc_moffs)
{
    int size = wsize(in, in->op);
    reg_write(c, R_EAX, size, vm_read(c, src_seg(in), in->imm, size));
}

HANDLER(mov_moffs_acc)
{
    int size = wsize(in, in->op);
    vm_write(c, src_seg(in), in->imm, size, reg_read(c, R_EAX, size));
}

HANDLER(xchg_rm_r)
{
    int size = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, size, true);
    uint32_t v = opnd_read(c, &o);
    opnd_write(c, &o, reg_read(c, in->reg, size));
    reg_write(c, in->reg, size, v);
}

HANDLER(xchg_acc_r)
{
    int size = vsize(in);
    uint32_t v = reg_read(c, in->op & 7, size);
    reg_write(c, in->op & 7, size, reg_read(c, R_EAX, size));
    reg_write(c, R_EAX, size, v);
}

HANDLER(lea)
{
    require_mem(c, in);
    reg_write(c, in->reg, vsize(in), insn_ea_offset(c, in));
}

HANDLER(nop) { }   /* NOP, and PAUSE with F3 */
HANDLER(hint_nop) { }   /* 0F 18-1F: the memory operand is not accessed */

HANDLER(cbw)
{
    if (in->op32)
        c->r[R_EAX] = sext(c->r[R_EAX], 2);
    else
        cpu_set_r16(c, R_EAX, sext(c->r[R_EAX], 1));
}

HANDLER(cwd)
{
    if (in->op32)
        c->r[R_EDX] = (c->r[R_EAX] & 0x80000000u) ? 0xffffffffu : 0;
    else
        cpu_set_r16(c, R_EDX, (c->r[R_EAX] & 0x8000) ? 0xffff : 0);
}

HANDLER(xlat)
{
    uint32_t off = (in->addr32 ? c->r[R_EBX] : (c->r[R_EBX] & 0xffff)) + (c->r[R_EAX] & 0xff);
    cpu_set_r8(c, 0, vm_read(c, src_seg(in), in->addr32 ? off : (off & 0xffff), 1));
}

HANDLER(movzx8) { reg_write(c, in->reg, vsize(in), rm_read(c, in, 1)); }
HANDLER(movzx16) { reg_write(c, in->reg, vsize(in), rm_read(c, in, 2)); }
HANDLER(movsx8) { reg_write(c, in->reg, vsize(in), sext(rm_read(c, in, 1), 1)); }
HANDLER(movsx16) { reg_write(c, in->reg, vsize(in), sext(rm_read(c, in, 2), 2)); }

HANDLER(bswap) { c->r[in->op & 7] = __builtin_bswap32(c->r[in->op & 7]); }

/* CMOVcc: the source is read even if not moved. */
HANDLER(cmovcc)
{
    int size = vsize(in);
    uint32_t v = rm_read(c, in, size);
    if (alu_cond(c->eflags, in->op & 15))
        reg_write(c, in->reg, size, v);
}

HANDLER(setcc) { rm_write(c, in, 1, alu_cond(c->eflags, in->op & 15)); }

HANDLER(bsf_bsr)
{
    int size = vsize(in);
    uint32_t src = rm_read(c, in, size);
    uint32_t dst = reg_read(c, in->reg, size);
    uint32_t r = in->op == 0x1bc ? alu_bsf(&c->eflags, dst, src, size) : alu_bsr(&c->eflags, dst, src, size);
    reg_write(c, in->reg, size, r);
}

HANDLER(cmpxchg)
{
    int sz = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, sz, true);
    uint32_t dst = opnd_read(c, &o);
    uint32_t acc = reg_read(c, R_EAX, sz);
    alu_binop(&c->eflags, ALU_CMP, acc, dst, sz);
    if (acc == dst) {
        opnd_write(c, &o, reg_read(c, in->reg, sz));
    } else {
        opnd_write(c, &o, dst);   /* the processor always writes the destination */
        reg_write(c, R_EAX, sz, dst);
    }
}

HANDLER(xadd)
{
    int sz = wsize(in, in->op);
    struct opnd o = rm_opnd(c, in, sz, true);
    uint32_t dst = opnd_read(c, &o), src = reg_read(c, in->reg, sz);
    uint32_t sum = alu_binop(&c->eflags, ALU_ADD, dst, src, sz);
    reg_write(c, in->reg, sz, dst);
    opnd_write(c, &o, sum);
}

HANDLER(cmpxchg8b)
{
    if (in->reg != 1 || in->mod == 3)
        cpu_raise_noerr(c, EXC_UD);
    uint32_t off = insn_ea_offset(c, in);
    uint32_t lin_lo = seg_lin(c, in->ea_seg, off, 8, true);
    bool user = mmu_user(c);
    mem_probe_write(c, lin_lo, 8, user);
    uint32_t lo = mem_read(c, lin_lo, 4, user), hi = mem_read(c, lin_lo + 4, 4, user);
    if (lo == c->r[R_EAX] && hi == c->r[R_EDX]) {
        mem_write(c, lin_lo, c->r[R_EBX], 4, user);
        mem_write(c, lin_lo + 4, c->r[R_ECX], 4, user);
        c->eflags |= FL_ZF;
    } else {
        /* The destination is written back even on failure (locked RMW). */
        mem_write(c, lin_lo, lo, 4, user);
        mem_write(c, lin_lo + 4, hi, 4, user);
        c->r[R_EAX] = lo;
        c->r[R_EDX] = hi;
        c->eflags &= ~FL_ZF;
    }
}

/* ---- bit tests ---- */

/* BT/BTS/BTR/BTC r/m, reg (the operation in opcode bits 3-4): a register
 * bit offset addresses memory beyond the operand. */
HANDLER(bt_reg)
{
    int op = (in->op >> 3) & 3;
    int size = vsize(in);
    uint32_t bit = reg_read(c, in->reg, size);
    if (in->mod == 3) {
        uint32_t v = reg_read(c, in->rm, size);
        uint32_t nv = alu_bit(&c->eflags, op, v, bit & (size * 8 - 1), size);
        if (op)
            reg_write(c, in->rm, size, nv);
        return;
    }
    int32_t sbit = size == 2 ? (int16_t)bit : (int32_t)bit;
    int32_t disp = (sbit >> (size == 2 ? 4 : 5)) * size;
    uint32_t off = insn_ea_offset(c, in) + disp;
    if (!in->addr32)
        off &= 0xffff;
    uint32_t lin = seg_lin(c, in->ea_seg, off, size, op != 0);
    if (op)
        mem_probe_write(c, lin, size, mmu_user(c));
    uint32_t v = mem_read(c, lin, size, mmu_user(c));
    uint32_t nv = alu_bit(&c->eflags, op, v, bit & (size * 8 - 1), size);
    if (op)
        mem_write(c, lin, nv, size, mmu_user(c));
}

/* Group 8 (0F BA): BT/BTS/BTR/BTC r/m, imm8 at /4-/7. */
HANDLER(bt_imm)
{
    if (in->reg < 4)
        cpu_raise_noerr(c, EXC_UD);
    int size = vsize(in);
    int bop = in->reg - 4;
    struct opnd o = rm_opnd(c, in, size, bop != 0);
    uint32_t v = opnd_read(c, &o);
    uint32_t nv = alu_bit(&c->eflags, bop, v, in->imm & (size * 8 - 1), size);
    if (bop)
        opnd_write(c, &o, nv);
}
