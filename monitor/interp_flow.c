/*
 * The interpreter's stack and control flow: PUSH/POP, ENTER/LEAVE,
 * PUSHA/POPA, the flags instructions, jumps, calls and returns (near here,
 * far through transfer.c), loops, INT/INTO/IRET, BOUND.
 */
#include "monitor/interp_internal.h"
#include "monitor/alu.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

/* ---- near and far calls and jumps through r/m (group 5) ---- */

/* A near call to t: checked against the CS limit before anything is pushed. */
static void call_near_to(struct cpu *c, const struct insn *in, uint32_t t)
{
    if (!in->op32)
        t &= 0xffff;
    if (t > c->seg[SEG_CS].limit)
        cpu_raise(c, EXC_GP, 0);
    push(c, c->eip, vsize(in));
    c->eip = t;
}

HANDLER(call_near_rm) { call_near_to(c, in, rm_read(c, in, vsize(in))); }
HANDLER(call_near) { call_near_to(c, in, c->eip + in->imm); }

/* CALL/JMP m16:16/32. */
static void far_indirect(struct cpu *c, const struct insn *in, bool call)
{
    int size = vsize(in);
    require_mem(c, in);
    uint32_t off = mem_at(c, in, 0, size);
    uint16_t sel = mem_at(c, in, size, 2);
    if (call)
        do_far_call(c, sel, off, in->op32, c->eip);
    else
        do_far_jmp(c, sel, off, in->op32, c->eip);
}

HANDLER(call_far_m) { far_indirect(c, in, true); }
HANDLER(jmp_far_m) { far_indirect(c, in, false); }
HANDLER(jmp_near_rm) { jump_near(c, rm_read(c, in, vsize(in)), in->op32); }
HANDLER(push_rm) { push(c, rm_read(c, in, vsize(in)), vsize(in)); }

/* ---- stack ---- */

HANDLER(push_r) { push(c, reg_read(c, in->op & 7, vsize(in)), vsize(in)); }

HANDLER(pop_r)
{
    int size = vsize(in);
    uint32_t v = pop(c, size);
    reg_write(c, in->op & 7, size, v);
}

HANDLER(push_imm) { push(c, in->imm, vsize(in)); }
HANDLER(push_imm8) { push(c, sext(in->imm, 1), vsize(in)); }

/* Group 1A (8F /0): the memory address is computed with ESP already incremented. */
HANDLER(pop_rm)
{
    int size = vsize(in);
    uint32_t v = stack_peek(c, 0, size);
    set_sp(c, c->r[R_ESP] + size);
    if (in->mod == 3) {
        reg_write(c, in->rm, size, v);
    } else {
        struct opnd o = rm_opnd(c, in, size, true);
        opnd_write(c, &o, v);
    }
}

/* Stack-pointer arithmetic that keeps ESP's upper half on a 16-bit stack. */
static inline uint32_t sp_add(uint32_t sp, uint32_t mask, int32_t n)
{
    return (sp & ~mask) | ((sp + n) & mask);
}

HANDLER(enter)
{
    int size = vsize(in);
    uint32_t alloc = in->imm & 0xffff;
    int level = in->imm2 & 31;
    uint32_t mask = sp_mask(c);
    uint32_t sp = c->r[R_ESP];
    uint32_t ebp = c->r[R_EBP];
    /* Build the frame on a scratch stack pointer; commit registers at the end. */
    sp = sp_add(sp, mask, -size);
    vm_write(c, SEG_SS, sp & mask, size, ebp);
    uint32_t frame = sp;
    if (level > 0) {
        uint32_t bp = ebp;
        for (int k = 1; k < level; k++) {
            bp = sp_add(bp, mask, -size);
            uint32_t v = vm_read(c, SEG_SS, bp & mask, size);
            sp = sp_add(sp, mask, -size);
            vm_write(c, SEG_SS, sp & mask, size, v);
        }
        sp = sp_add(sp, mask, -size);
        vm_write(c, SEG_SS, sp & mask, size, frame);
    }
    sp = sp_add(sp, mask, -(int32_t)alloc);
    /* A write at the final stack pointer must be possible (segment and paging), as on the CPU. */
    mem_probe_write(c, seg_lin(c, SEG_SS, sp & mask, 1, true), 1, mmu_user(c));
    reg_write(c, R_EBP, size, frame);
    c->r[R_ESP] = sp;
}

HANDLER(leave)
{
    int size = vsize(in);
    uint32_t mask = sp_mask(c);
    uint32_t bp = c->r[R_EBP] & mask;
    uint32_t v = vm_read(c, SEG_SS, bp, size);
    set_sp(c, bp + size);
    reg_write(c, R_EBP, size, v);
}

HANDLER(pusha)
{
    int size = vsize(in);
    uint32_t mask = sp_mask(c);
    uint32_t sp = c->r[R_ESP];
    uint32_t orig_sp = sp;
    for (int r = R_EAX; r <= R_EDI; r++) {
        sp -= size;
        vm_write(c, SEG_SS, sp & mask, size, r == R_ESP ? orig_sp : c->r[r]);
    }
    set_sp(c, sp);
}

HANDLER(popa)
{
    int size = vsize(in);
    uint32_t vals[8];
    for (int k = 0; k < 8; k++)
        vals[7 - k] = stack_peek(c, k * size, size);
    for (int r = R_EAX; r <= R_EDI; r++)
        if (r != R_ESP)
            reg_write(c, r, size, vals[r]);
    set_sp(c, c->r[R_ESP] + 8 * size);
}

/* ---- flags ---- */

HANDLER(pushf)
{
    if (cpu_v86(c) && iopl(c) < 3)
        cpu_raise(c, EXC_GP, 0);
    uint32_t f = c->eflags & ~(FL_VM | FL_RF);
    push(c, in->op32 ? f : (f & 0xffff), vsize(in));
}

HANDLER(popf)
{
    if (cpu_v86(c) && iopl(c) < 3)
        cpu_raise(c, EXC_GP, 0);
    uint32_t mask = eflags_write_mask(c, in->op32);
    if (cpu_v86(c))
        mask &= ~FL_IOPL;
    uint32_t v = pop(c, vsize(in));
    set_eflags(c, v, mask);
}

HANDLER(sahf) { c->eflags = (c->eflags & ~0xd5u) | ((c->r[R_EAX] >> 8) & 0xd5) | 2; }
HANDLER(lahf) { cpu_set_r8(c, 4, (c->eflags & 0xd7) | 2); }
HANDLER(cmc) { c->eflags ^= FL_CF; }
HANDLER(clc) { c->eflags &= ~FL_CF; }
HANDLER(stc) { c->eflags |= FL_CF; }
HANDLER(cld) { c->eflags &= ~FL_DF; }
HANDLER(std) { c->eflags |= FL_DF; }

/* CLI/STI: #GP above IOPL (in v86 mode, below IOPL 3). */
static void check_if_privilege(struct cpu *c)
{
    if (cpu_protected(c) && (cpu_v86(c) ? iopl(c) < 3 : c->cpl > iopl(c)))
        cpu_raise(c, EXC_GP, 0);
}

HANDLER(cli)
{
    check_if_privilege(c);
    c->eflags &= ~FL_IF;
}

HANDLER(sti)
{
    check_if_privilege(c);
    if (!(c->eflags & FL_IF))
        c->intr_shadow = true;
    c->eflags |= FL_IF;
}

/* ---- branches ---- */

HANDLER(jcc_short)
{
    if (alu_cond(c->eflags, in->op & 15))
        jump_near(c, c->eip + sext(in->imm, 1), in->op32);
}

HANDLER(jcc_near)
{
    uint32_t t = c->eip + in->imm;
    if (alu_cond(c->eflags, in->op & 15))
        jump_near(c, t, in->op32);
}

HANDLER(jmp_short) { jump_near(c, c->eip + sext(in->imm, 1), in->op32); }
HANDLER(jmp_near) { jump_near(c, c->eip + in->imm, in->op32); }
HANDLER(jmp_far) { do_far_jmp(c, in->imm2, in->imm, in->op32, c->eip); }
HANDLER(call_far) { do_far_call(c, in->imm2, in->imm, in->op32, c->eip); }

HANDLER(ret_near)
{
    int size = vsize(in);
    uint32_t t = stack_peek(c, 0, size);
    jump_near(c, t, in->op32);
    set_sp(c, c->r[R_ESP] + size + (in->op == 0xc2 ? in->imm : 0));
}

HANDLER(ret_far) { do_far_ret(c, in->op32, in->op == 0xca ? in->imm : 0); }

/* LOOP/LOOPE/LOOPNE: (E)CX counts down first. */
HANDLER(loop)
{
    int op = in->op;
    uint32_t cnt = count_reg(c, in) - 1;
    set_count(c, in, cnt);
    bool zf = c->eflags & FL_ZF;
    bool take = cnt != 0 && (op == 0xe2 || (op == 0xe1 ? zf : !zf));
    if (take)
        jump_near(c, c->eip + sext(in->imm, 1), in->op32);
}

HANDLER(jcxz)
{
    if (count_reg(c, in) == 0)
        jump_near(c, c->eip + sext(in->imm, 1), in->op32);
}

/* ---- interrupts ---- */

HANDLER(int3) { do_interrupt(c, EXC_BP, INT_BP, false, 0, c->eip); }
HANDLER(int_imm) { do_interrupt(c, in->imm & 0xff, INT_SOFT, false, 0, c->eip); }
HANDLER(icebp) { do_interrupt(c, EXC_DB, INT_ICEBP, false, 0, c->eip); }

HANDLER(into)
{
    if (c->eflags & FL_OF)
        do_interrupt(c, EXC_OF, INT_INTO, false, 0, c->eip);
}

HANDLER(iret) { do_iret(c, in->op32); }

HANDLER(bound)
{
    require_mem(c, in);
    int size = vsize(in);
    int32_t idx = (int32_t)sext(reg_read(c, in->reg, size), size);
    int32_t lo = (int32_t)sext(mem_at(c, in, 0, size), size);
    int32_t hi = (int32_t)sext(mem_at(c, in, size, size), size);
    if (idx < lo || idx > hi)
        cpu_raise_noerr(c, EXC_BR);
}
