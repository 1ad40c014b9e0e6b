/*
 * Control transfers that cross segments: interrupts and exceptions, IRET,
 * far JMP/CALL/RET through code segments, call gates, task gates and TSSs,
 * and the hardware task switch.  Every path validates everything it needs
 * before committing any register, so a fault mid-way leaves the state of
 * the instruction's start (the run loop restores EIP/ESP).
 */
#include "monitor/interp.h"

#include <string.h>

/* A stack being built on a segment that is not loaded yet. */
struct nstack {
    uint32_t base, limit, esp;
    uint16_t attr;
    uint16_t sel;
    bool user;
};

static bool ns_big(const struct nstack *s) { return s->attr & SEG_ATTR_DB; }

static void ns_push(struct cpu *c, struct nstack *s, uint32_t v, int size)
{
    uint32_t esp = s->esp - size;
    uint32_t off = ns_big(s) ? esp : (esp & 0xffff);
    bool expand_down = (s->attr & 0x1c) == 0x14;
    uint32_t last = off + size - 1;
    bool bad = expand_down ? (off <= s->limit || last > (ns_big(s) ? 0xffffffffu : 0xffffu))
                           : (last > s->limit || last < off);
    if (bad)
        cpu_raise(c, EXC_SS, (s->sel & 0xfffc) | (c->exc_ext ? 1 : 0));
    mem_write(c, s->base + off, v, size, s->user);
    s->esp = ns_big(s) ? esp : ((s->esp & 0xffff0000u) | (esp & 0xffff));
}

static struct nstack current_stack(struct cpu *c)
{
    struct nstack s = { c->seg[SEG_SS].base, c->seg[SEG_SS].limit, c->r[R_ESP],
                        c->seg[SEG_SS].attr, c->seg[SEG_SS].sel, c->cpl == 3 };
    return s;
}

static void commit_stack(struct cpu *c, const struct nstack *s)
{
    if (ns_big(s))
        c->r[R_ESP] = s->esp;
    else
        c->r[R_ESP] = (c->r[R_ESP] & 0xffff0000u) | (s->esp & 0xffff);
}

void set_eflags(struct cpu *c, uint32_t v, uint32_t mask)
{
    c->eflags = (c->eflags & ~mask) | (v & mask);
    c->eflags |= 0x2;
    c->eflags &= ~(0x8u | 0x20u | 0x8000u);
    mmu_eflags_written(c);
}

uint32_t eflags_write_mask(struct cpu *c, bool op32)
{
    uint32_t m = FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_TF | FL_DF | FL_OF | FL_NT;
    int iopl = (c->eflags >> 12) & 3;
    if (!cpu_protected(c) || c->cpl == 0)
        m |= FL_IOPL;
    if (!cpu_protected(c) || c->cpl <= iopl)
        m |= FL_IF;
    if (op32)
        m |= FL_AC | FL_ID;
    else
        m &= 0xffff;
    return m;
}

void load_cs_real(struct cpu *c, uint16_t sel, uint32_t eip)
{
    seg_load_real(c, SEG_CS, sel);
    c->eip = eip;
}

void jump_near(struct cpu *c, uint32_t target, bool op32)
{
    if (!op32)
        target &= 0xffff;
    if (target > c->seg[SEG_CS].limit)
        cpu_raise(c, EXC_GP, 0);
    c->eip = target;
}

void cpu_update_mode(struct cpu *c)
{
    if (!cpu_protected(c))
        c->cpl = 0;
    else if (cpu_v86(c))
        c->cpl = 3;
    else
        c->cpl = c->seg[SEG_CS].sel & 3;
}

/* Load CS from a validated code descriptor at privilege `cpl`. */
static void commit_cs(struct cpu *c, uint16_t sel, struct desc d, int cpl, uint32_t eip)
{
    desc_set_accessed(c, sel, &d);
    seg_from_desc(&c->seg[SEG_CS], (sel & 0xfffc) | cpl, d);
    c->cpl = cpl;
    c->eip = eip;
}

/* ---------------- interrupts and exceptions ---------------- */

static void real_mode_interrupt(struct cpu *c, int vec, uint32_t ret_eip)
{
    uint32_t off = vec * 4;
    if (off + 3 > c->idtr.limit)
        cpu_raise(c, EXC_GP, 0);
    uint32_t vecaddr = sys_read(c, c->idtr.base + off, 4);
    push(c, c->eflags & 0xffff, 2);
    push(c, c->seg[SEG_CS].sel, 2);
    push(c, ret_eip & 0xffff, 2);
    c->eflags &= ~(FL_IF | FL_TF | FL_AC | FL_RF);
    mmu_eflags_written(c);
    load_cs_real(c, vecaddr >> 16, vecaddr & 0xffff);
}

/* Read SS:ESP for privilege level `dpl` from the current TSS. */
static void tss_stack(struct cpu *c, int dpl, uint16_t *ss, uint32_t *esp)
{
    int type = SEG_ATTR_TYPE(c->tr.attr);
    bool tss32 = type & 8;
    uint32_t off = tss32 ? 4 + dpl * 8 : 2 + dpl * 4;
    uint32_t need = off + (tss32 ? 8 : 4) - 1;
    if (need > c->tr.limit)
        cpu_raise(c, EXC_TS, sel_error(c, c->tr.sel));
    if (tss32) {
        *esp = sys_read(c, c->tr.base + off, 4);
        *ss = sys_read(c, c->tr.base + off + 4, 2);
    } else {
        *esp = sys_read(c, c->tr.base + off, 2);
        *ss = sys_read(c, c->tr.base + off + 2, 2);
    }
}

/* Validate the SS for an inner-privilege stack at level dpl (#TS / #SS). */
static struct desc check_inner_ss(struct cpu *c, uint16_t ss, int dpl)
{
    struct desc d;
    if ((ss & 0xfffc) == 0)
        cpu_raise(c, EXC_TS, c->exc_ext ? 1 : 0);
    if (!desc_read(c, ss, &d))
        cpu_raise(c, EXC_TS, sel_error(c, ss));
    if ((ss & 3) != dpl || desc_dpl(d) != dpl || !desc_is_data(d) || !(desc_type(d) & 2))
        cpu_raise(c, EXC_TS, sel_error(c, ss));
    if (!desc_present(d))
        cpu_raise(c, EXC_SS, sel_error(c, ss));
    return d;
}

static void protected_interrupt(struct cpu *c, int vec, enum int_kind kind, bool has_err, uint32_t err,
                                uint32_t ret_eip)
{
    uint32_t ext = c->exc_ext ? 1 : 0;
    uint32_t idt_err = vec * 8 + 2 + ext;
    if ((uint32_t)vec * 8 + 7 > c->idtr.limit)
        cpu_raise(c, EXC_GP, idt_err);
    struct desc g = { sys_read(c, c->idtr.base + vec * 8, 4), sys_read(c, c->idtr.base + vec * 8 + 4, 4) };
    int gtype = (g.hi >> 8) & 0x1f;
    if (gtype != 5 && gtype != 6 && gtype != 7 && gtype != 14 && gtype != 15)
        cpu_raise(c, EXC_GP, idt_err);
    bool software = kind == INT_SOFT || kind == INT_BP || kind == INT_INTO;
    if (software && desc_dpl(g) < c->cpl)
        cpu_raise(c, EXC_GP, idt_err);
    if (!desc_present(g))
        cpu_raise(c, EXC_NP, idt_err);

    if (gtype == 5) {
        uint16_t tsel = g.lo >> 16;
        struct desc td;
        if ((tsel & 4) || !desc_read(c, tsel, &td))
            cpu_raise(c, EXC_TS, sel_error(c, tsel));
        task_switch(c, tsel, td, TASK_INT, ret_eip, has_err, err);
        return;
    }

    bool gate32 = gtype & 8;
    int size = gate32 ? 4 : 2;
    uint16_t sel = g.lo >> 16;
    uint32_t off = gate32 ? ((g.lo & 0xffff) | (g.hi & 0xffff0000u)) : (g.lo & 0xffff);
    struct desc d;
    if ((sel & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, ext);
    if (!desc_read(c, sel, &d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_is_code(d) || desc_dpl(d) > c->cpl)
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    int dpl = desc_dpl(d);
    bool conforming = desc_type(d) & 4;
    bool v86 = cpu_v86(c);
    bool inner = !conforming && dpl < c->cpl;
    if (v86 && (!inner || dpl != 0))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    int new_cpl = inner ? dpl : c->cpl;
    if (off > desc_limit(d))
        cpu_raise(c, EXC_GP, ext);

    struct nstack s;
    struct desc ssd;
    uint16_t new_ss = 0;
    if (inner) {
        uint32_t esp;
        tss_stack(c, dpl, &new_ss, &esp);
        ssd = check_inner_ss(c, new_ss, dpl);
        s.base = desc_base(ssd);
        s.limit = desc_limit(ssd);
        s.attr = desc_attr(ssd);
        s.sel = new_ss;
        s.esp = esp;
        s.user = dpl == 3;
        if (v86) {
            ns_push(c, &s, c->seg[SEG_GS].sel, size);
            ns_push(c, &s, c->seg[SEG_FS].sel, size);
            ns_push(c, &s, c->seg[SEG_DS].sel, size);
            ns_push(c, &s, c->seg[SEG_ES].sel, size);
        }
        ns_push(c, &s, c->seg[SEG_SS].sel, size);
        ns_push(c, &s, c->r[R_ESP], size);
    } else {
        s = current_stack(c);
    }
    ns_push(c, &s, c->eflags, size);
    ns_push(c, &s, c->seg[SEG_CS].sel, size);
    ns_push(c, &s, ret_eip, size);
    if (has_err)
        ns_push(c, &s, err, size);

    /* Commit. */
    if (inner) {
        desc_set_accessed(c, new_ss, &ssd);
        seg_from_desc(&c->seg[SEG_SS], new_ss, ssd);
        if (v86) {
            static const int data_segs[] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
            for (int k = 0; k < 4; k++)
                memset(&c->seg[data_segs[k]], 0, sizeof(struct seg));
        }
    }
    if (inner)
        c->r[R_ESP] = s.esp;
    else
        commit_stack(c, &s);
    commit_cs(c, sel, d, new_cpl, off);
    c->eflags &= ~(FL_TF | FL_NT | FL_VM | FL_RF);
    if (!(gtype & 1))
        c->eflags &= ~FL_IF;
}

void do_interrupt(struct cpu *c, int vec, enum int_kind kind, bool has_err, uint32_t err, uint32_t next_eip)
{
    bool trap_like = kind != INT_EXC;
    uint32_t ret_eip = trap_like ? next_eip : c->eip;
    c->exc_ext = kind == INT_EXT || kind == INT_EXC || kind == INT_ICEBP;
    if (!cpu_protected(c)) {
        real_mode_interrupt(c, vec, ret_eip);
    } else if (cpu_v86(c) && kind == INT_SOFT && ((c->eflags >> 12) & 3) < 3) {
        /* INT n in v86 mode with IOPL < 3 is a #GP to the monitor. */
        cpu_raise(c, EXC_GP, 0);
    } else {
        protected_interrupt(c, vec, kind, has_err, err, ret_eip);
    }
    c->exc_ext = false;
    c->halted = false;
}

/* ---------------- far JMP / CALL / RET ---------------- */

static struct desc read_code_target(struct cpu *c, uint16_t sel)
{
    struct desc d;
    if ((sel & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, 0);
    if (!desc_read(c, sel, &d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    return d;
}

/* Direct transfer to a code segment (no gate) at the current privilege. */
static void check_direct_code(struct cpu *c, uint16_t sel, struct desc d)
{
    int dpl = desc_dpl(d), rpl = sel & 3;
    if (!desc_is_code(d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (desc_type(d) & 4) {
        if (dpl > c->cpl)
            cpu_raise(c, EXC_GP, sel_error(c, sel));
    } else if (rpl > c->cpl || dpl != c->cpl) {
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    }
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
}

static void enter_task(struct cpu *c, uint16_t sel, struct desc d, enum task_src src, uint32_t next_eip)
{
    int type = desc_type(d);
    if (desc_dpl(d) < c->cpl || desc_dpl(d) < (sel & 3))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (type == 5) {
        if (!desc_present(d))
            cpu_raise(c, EXC_NP, sel_error(c, sel));
        uint16_t tsel = d.lo >> 16;
        struct desc td;
        if ((tsel & 4) || !desc_read(c, tsel, &td))
            cpu_raise(c, EXC_GP, sel_error(c, tsel));
        task_switch(c, tsel, td, src, next_eip, false, 0);
        return;
    }
    task_switch(c, sel, d, src, next_eip, false, 0);
}

void do_far_jmp(struct cpu *c, uint16_t sel, uint32_t off, bool op32, uint32_t next_eip)
{
    if (!op32)
        off &= 0xffff;
    if (!cpu_protected(c) || cpu_v86(c)) {
        if (off > c->seg[SEG_CS].limit && !cpu_v86(c) && cpu_protected(c))
            cpu_raise(c, EXC_GP, 0);
        load_cs_real(c, sel, off);
        return;
    }
    struct desc d = read_code_target(c, sel);
    if (!desc_is_system(d)) {
        check_direct_code(c, sel, d);
        if (off > desc_limit(d))
            cpu_raise(c, EXC_GP, 0);
        commit_cs(c, sel, d, c->cpl, off);
        return;
    }
    int type = desc_type(d);
    if (type == 1 || type == 9 || type == 5) {
        enter_task(c, sel, d, TASK_JMP, next_eip);
        return;
    }
    if (type != 4 && type != 12)
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    /* Call gate used by JMP: no privilege change allowed. */
    if (desc_dpl(d) < c->cpl || desc_dpl(d) < (sel & 3))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    uint16_t tsel = d.lo >> 16;
    uint32_t toff = type == 12 ? ((d.lo & 0xffff) | (d.hi & 0xffff0000u)) : (d.lo & 0xffff);
    struct desc td = read_code_target(c, tsel);
    if (!desc_is_code(td))
        cpu_raise(c, EXC_GP, sel_error(c, tsel));
    bool conforming = desc_type(td) & 4;
    if (conforming ? desc_dpl(td) > c->cpl : desc_dpl(td) != c->cpl)
        cpu_raise(c, EXC_GP, sel_error(c, tsel));
    if (!desc_present(td))
        cpu_raise(c, EXC_NP, sel_error(c, tsel));
    if (toff > desc_limit(td))
        cpu_raise(c, EXC_GP, 0);
    commit_cs(c, tsel, td, c->cpl, toff);
}

void do_far_call(struct cpu *c, uint16_t sel, uint32_t off, bool op32, uint32_t next_eip)
{
    int size = op32 ? 4 : 2;
    if (!op32)
        off &= 0xffff;
    if (!cpu_protected(c) || cpu_v86(c)) {
        struct nstack s = current_stack(c);
        ns_push(c, &s, c->seg[SEG_CS].sel, size);
        ns_push(c, &s, next_eip, size);
        commit_stack(c, &s);
        load_cs_real(c, sel, off);
        return;
    }
    struct desc d = read_code_target(c, sel);
    if (!desc_is_system(d)) {
        check_direct_code(c, sel, d);
        if (off > desc_limit(d))
            cpu_raise(c, EXC_GP, 0);
        struct nstack s = current_stack(c);
        ns_push(c, &s, c->seg[SEG_CS].sel, size);
        ns_push(c, &s, next_eip, size);
        commit_stack(c, &s);
        commit_cs(c, sel, d, c->cpl, off);
        return;
    }
    int type = desc_type(d);
    if (type == 1 || type == 9 || type == 5) {
        enter_task(c, sel, d, TASK_CALL, next_eip);
        return;
    }
    if (type != 4 && type != 12)
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (desc_dpl(d) < c->cpl || desc_dpl(d) < (sel & 3))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));

    bool gate32 = type == 12;
    int gsize = gate32 ? 4 : 2;
    int nparams = d.hi & 0x1f;
    uint16_t tsel = d.lo >> 16;
    uint32_t toff = gate32 ? ((d.lo & 0xffff) | (d.hi & 0xffff0000u)) : (d.lo & 0xffff);
    struct desc td = read_code_target(c, tsel);
    if (!desc_is_code(td) || desc_dpl(td) > c->cpl)
        cpu_raise(c, EXC_GP, sel_error(c, tsel));
    if (!desc_present(td))
        cpu_raise(c, EXC_NP, sel_error(c, tsel));
    int dpl = desc_dpl(td);
    bool inner = !(desc_type(td) & 4) && dpl < c->cpl;
    if (toff > desc_limit(td))
        cpu_raise(c, EXC_GP, 0);

    if (!inner) {
        struct nstack s = current_stack(c);
        ns_push(c, &s, c->seg[SEG_CS].sel, gsize);
        ns_push(c, &s, next_eip, gsize);
        commit_stack(c, &s);
        commit_cs(c, tsel, td, c->cpl, toff);
        return;
    }
    uint16_t new_ss;
    uint32_t new_esp;
    tss_stack(c, dpl, &new_ss, &new_esp);
    struct desc ssd = check_inner_ss(c, new_ss, dpl);
    struct nstack s = { desc_base(ssd), desc_limit(ssd), new_esp, desc_attr(ssd), new_ss, dpl == 3 };
    ns_push(c, &s, c->seg[SEG_SS].sel, gsize);
    ns_push(c, &s, c->r[R_ESP], gsize);
    /* Copy the parameters from the caller's stack, deepest first. */
    for (int k = nparams - 1; k >= 0; k--)
        ns_push(c, &s, stack_peek(c, k * gsize, gsize), gsize);
    ns_push(c, &s, c->seg[SEG_CS].sel, gsize);
    ns_push(c, &s, next_eip, gsize);

    desc_set_accessed(c, new_ss, &ssd);
    seg_from_desc(&c->seg[SEG_SS], new_ss, ssd);
    c->r[R_ESP] = ns_big(&s) ? s.esp : (s.esp & 0xffff);
    commit_cs(c, tsel, td, dpl, toff);
}

/* Checks shared by RETF and IRET for the code segment being returned to. */
static struct desc check_return_cs(struct cpu *c, uint16_t sel)
{
    struct desc d = read_code_target(c, sel);
    int rpl = sel & 3;
    if (rpl < c->cpl || !desc_is_code(d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if ((desc_type(d) & 4) ? desc_dpl(d) > rpl : desc_dpl(d) != rpl)
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    return d;
}

/* Checks for the outer-level SS popped by RETF/IRET. */
static struct desc check_return_ss(struct cpu *c, uint16_t ss, int rpl)
{
    struct desc d;
    if ((ss & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, 0);
    if (!desc_read(c, ss, &d))
        cpu_raise(c, EXC_GP, sel_error(c, ss));
    if ((ss & 3) != rpl || desc_dpl(d) != rpl || !desc_is_data(d) || !(desc_type(d) & 2))
        cpu_raise(c, EXC_GP, sel_error(c, ss));
    if (!desc_present(d))
        cpu_raise(c, EXC_SS, sel_error(c, ss));
    return d;
}

static void return_to_outer(struct cpu *c, uint16_t cs, struct desc csd, uint32_t eip, uint32_t frame_top,
                            int size)
{
    int rpl = cs & 3;
    uint32_t new_esp = stack_peek(c, frame_top, size);
    uint16_t new_ss = stack_peek(c, frame_top + size, size);
    struct desc ssd = check_return_ss(c, new_ss, rpl);
    if (eip > desc_limit(csd))
        cpu_raise(c, EXC_GP, 0);
    commit_cs(c, cs, csd, rpl, eip);
    desc_set_accessed(c, new_ss, &ssd);
    seg_from_desc(&c->seg[SEG_SS], new_ss, ssd);
    if (ssd.hi & 0x00400000u)
        c->r[R_ESP] = new_esp;
    else
        c->r[R_ESP] = (c->r[R_ESP] & 0xffff0000u) | (new_esp & 0xffff);
    seg_invalidate_for_cpl(c);
}

void do_far_ret(struct cpu *c, bool op32, uint16_t imm)
{
    int size = op32 ? 4 : 2;
    uint32_t eip = stack_peek(c, 0, size);
    uint16_t cs = stack_peek(c, size, size);
    if (!cpu_protected(c) || cpu_v86(c)) {
        set_sp(c, c->r[R_ESP] + 2 * size + imm);
        load_cs_real(c, cs, eip);
        return;
    }
    struct desc d = check_return_cs(c, cs);
    if ((cs & 3) == c->cpl) {
        if (eip > desc_limit(d))
            cpu_raise(c, EXC_GP, 0);
        set_sp(c, c->r[R_ESP] + 2 * size + imm);
        commit_cs(c, cs, d, c->cpl, eip);
        return;
    }
    return_to_outer(c, cs, d, eip, 2 * size + imm, size);
    set_sp(c, c->r[R_ESP] + imm);
}

/* ---------------- IRET ---------------- */

static void iret_to_v86(struct cpu *c)
{
    uint32_t eip = stack_peek(c, 0, 4);
    uint16_t cs = stack_peek(c, 4, 4);
    uint32_t fl = stack_peek(c, 8, 4);
    uint32_t esp = stack_peek(c, 12, 4);
    uint16_t ss = stack_peek(c, 16, 4);
    uint16_t es = stack_peek(c, 20, 4);
    uint16_t ds = stack_peek(c, 24, 4);
    uint16_t fs = stack_peek(c, 28, 4);
    uint16_t gs = stack_peek(c, 32, 4);
    set_eflags(c, fl, 0x3f7fd5u);
    c->eflags |= FL_VM;
    c->cpl = 3;
    seg_load_real(c, SEG_CS, cs);
    seg_load_real(c, SEG_SS, ss);
    seg_load_real(c, SEG_ES, es);
    seg_load_real(c, SEG_DS, ds);
    seg_load_real(c, SEG_FS, fs);
    seg_load_real(c, SEG_GS, gs);
    c->r[R_ESP] = esp;
    c->eip = eip & 0xffff;
}

void do_iret(struct cpu *c, bool op32)
{
    int size = op32 ? 4 : 2;
    /* IRET ends NMI blocking even when it faults (SDM vol. 3, 6.7.1). */
    c->nmi_blocked = false;
    if (!cpu_protected(c)) {
        uint32_t eip = stack_peek(c, 0, size);
        uint16_t cs = stack_peek(c, size, size);
        uint32_t fl = stack_peek(c, 2 * size, size);
        set_sp(c, c->r[R_ESP] + 3 * size);
        load_cs_real(c, cs, eip);
        set_eflags(c, fl, op32 ? 0x257fd5u : 0x7fd5u);
        return;
    }
    if (cpu_v86(c)) {
        if (((c->eflags >> 12) & 3) < 3)
            cpu_raise(c, EXC_GP, 0);
        uint32_t eip = stack_peek(c, 0, size);
        uint16_t cs = stack_peek(c, size, size);
        uint32_t fl = stack_peek(c, 2 * size, size);
        set_sp(c, c->r[R_ESP] + 3 * size);
        load_cs_real(c, cs, eip & (op32 ? 0xffffffffu : 0xffff));
        /* IOPL and VM are not changed from v86 mode. */
        set_eflags(c, fl, (op32 ? 0x254dd5u : 0x4dd5u) | FL_IF);
        return;
    }
    if (c->eflags & FL_NT) {
        uint16_t link = sys_read(c, c->tr.base, 2);
        struct desc td;
        if ((link & 4) || !desc_read(c, link, &td))
            cpu_raise(c, EXC_TS, sel_error(c, link));
        task_switch(c, link, td, TASK_IRET, c->eip, false, 0);
        return;
    }
    uint32_t eip = stack_peek(c, 0, size);
    uint16_t cs = stack_peek(c, size, size);
    uint32_t fl = stack_peek(c, 2 * size, size);
    if (op32 && (fl & FL_VM) && c->cpl == 0) {
        iret_to_v86(c);
        return;
    }
    struct desc d = check_return_cs(c, cs);
    int old_cpl = c->cpl;
    uint32_t mask = eflags_write_mask(c, op32);
    if (op32 && old_cpl == 0)
        mask |= FL_RF | FL_VIF | FL_VIP;
    if ((cs & 3) == old_cpl) {
        if (eip > desc_limit(d))
            cpu_raise(c, EXC_GP, 0);
        set_sp(c, c->r[R_ESP] + 3 * size);
        commit_cs(c, cs, d, old_cpl, eip);
    } else {
        return_to_outer(c, cs, d, eip, 3 * size, size);
    }
    set_eflags(c, fl, mask);
}

/* ---------------- hardware task switch ---------------- */

struct tss_state {
    uint32_t cr3, eip, eflags, r[8];
    uint16_t seg[SEG_COUNT], ldt;
    bool trap;
};

static void tss_read_state(struct cpu *c, uint32_t base, bool t32, struct tss_state *t)
{
    if (t32) {
        t->cr3 = sys_read(c, base + 0x1c, 4);
        t->eip = sys_read(c, base + 0x20, 4);
        t->eflags = sys_read(c, base + 0x24, 4);
        for (int k = 0; k < 8; k++)
            t->r[k] = sys_read(c, base + 0x28 + 4 * k, 4);
        for (int k = 0; k < SEG_COUNT; k++)
            t->seg[k] = sys_read(c, base + 0x48 + 4 * k, 2);
        t->ldt = sys_read(c, base + 0x60, 2);
        t->trap = sys_read(c, base + 0x64, 2) & 1;
    } else {
        t->cr3 = c->cr3;
        t->eip = sys_read(c, base + 0x0e, 2);
        t->eflags = sys_read(c, base + 0x10, 2);
        /* A 286 TSS has no upper register halves; they read back as all ones (the
         * behaviour test386 checks for 16-bit task switches). */
        for (int k = 0; k < 8; k++)
            t->r[k] = 0xffff0000u | sys_read(c, base + 0x12 + 2 * k, 2);
        for (int k = 0; k < 4; k++)
            t->seg[k] = sys_read(c, base + 0x22 + 2 * k, 2);
        t->seg[SEG_FS] = t->seg[SEG_GS] = 0;
        t->ldt = sys_read(c, base + 0x2a, 2);
        t->trap = false;
    }
}

static void tss_save_state(struct cpu *c, uint32_t base, bool t32, uint32_t eip, uint32_t eflags)
{
    if (t32) {
        sys_write(c, base + 0x20, eip, 4);
        sys_write(c, base + 0x24, eflags, 4);
        for (int k = 0; k < 8; k++)
            sys_write(c, base + 0x28 + 4 * k, c->r[k], 4);
        for (int k = 0; k < SEG_COUNT; k++)
            sys_write(c, base + 0x48 + 4 * k, c->seg[k].sel, 2);
    } else {
        sys_write(c, base + 0x0e, eip, 2);
        sys_write(c, base + 0x10, eflags, 2);
        for (int k = 0; k < 8; k++)
            sys_write(c, base + 0x12 + 2 * k, c->r[k], 2);
        for (int k = 0; k < 4; k++)
            sys_write(c, base + 0x22 + 2 * k, c->seg[k].sel, 2);
    }
}

/* Segment loads of the incoming task: faults are #TS with the selector. */
static void task_load_seg(struct cpu *c, int sr, uint16_t sel)
{
    struct desc d;
    if (cpu_v86(c)) {
        seg_load_real(c, sr, sel);
        return;
    }
    if ((sel & 0xfffc) == 0) {
        if (sr == SEG_SS || sr == SEG_CS)
            cpu_raise(c, EXC_TS, sel_error(c, sel));
        memset(&c->seg[sr], 0, sizeof(struct seg));
        c->seg[sr].sel = sel;
        return;
    }
    if (!desc_read(c, sel, &d))
        cpu_raise(c, EXC_TS, sel_error(c, sel));
    int dpl = desc_dpl(d), rpl = sel & 3;
    if (sr == SEG_CS) {
        if (!desc_is_code(d) || ((desc_type(d) & 4) ? dpl > rpl : dpl != rpl))
            cpu_raise(c, EXC_TS, sel_error(c, sel));
        if (!desc_present(d))
            cpu_raise(c, EXC_NP, sel_error(c, sel));
    } else if (sr == SEG_SS) {
        if (!desc_is_data(d) || !(desc_type(d) & 2) || dpl != c->cpl || rpl != c->cpl)
            cpu_raise(c, EXC_TS, sel_error(c, sel));
        if (!desc_present(d))
            cpu_raise(c, EXC_SS, sel_error(c, sel));
    } else {
        bool readable = desc_is_data(d) || (desc_is_code(d) && (desc_type(d) & 2));
        bool conforming = desc_is_code(d) && (desc_type(d) & 4);
        if (!readable || (!conforming && (rpl > dpl || c->cpl > dpl)))
            cpu_raise(c, EXC_TS, sel_error(c, sel));
        if (!desc_present(d))
            cpu_raise(c, EXC_NP, sel_error(c, sel));
    }
    desc_set_accessed(c, sel, &d);
    seg_from_desc(&c->seg[sr], sel, d);
}

void task_switch(struct cpu *c, uint16_t sel, struct desc d, enum task_src src, uint32_t next_eip,
                 bool has_err, uint32_t err)
{
    int type = desc_type(d);
    bool t32 = type & 8;
    bool busy = type & 2;
    if (desc_is_system(d) == false || (type & 5) != 1)
        cpu_raise(c, src == TASK_IRET ? EXC_TS : EXC_GP, sel_error(c, sel));
    if (src == TASK_IRET ? !busy : busy)
        cpu_raise(c, src == TASK_IRET ? EXC_TS : EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    if (desc_limit(d) < (t32 ? 0x67u : 0x2bu))
        cpu_raise(c, EXC_TS, sel_error(c, sel));

    uint32_t new_base = desc_base(d);
    struct tss_state t;
    tss_read_state(c, new_base, t32, &t);

    /* Save the outgoing task. */
    bool old32 = SEG_ATTR_TYPE(c->tr.attr) & 8;
    uint32_t old_flags = c->eflags;
    if (src == TASK_IRET)
        old_flags &= ~FL_NT;
    tss_save_state(c, c->tr.base, old32, next_eip, old_flags);
    if (src == TASK_JMP || src == TASK_IRET) {
        struct desc od;
        if (desc_read(c, c->tr.sel, &od))
            desc_write_hi(c, c->tr.sel, od.hi & ~0x200u);
    }
    if (src == TASK_CALL || src == TASK_INT) {
        sys_write(c, new_base, c->tr.sel, 2);
        t.eflags |= FL_NT;
    }
    if (src != TASK_IRET)
        desc_write_hi(c, sel, d.hi | 0x200u);

    /* Load the incoming task. */
    d.hi |= 0x200u;
    seg_from_desc(&c->tr, sel, d);
    c->cr0 |= CR0_TS;
    if (t32 && (c->cr0 & CR0_PG) && t.cr3 != c->cr3)
        cpu_write_cr3(c, t.cr3);
    c->eip = t.eip;
    c->eflags = (t.eflags | 2) & (t32 ? 0x3f7fd7u : 0xffd7u);
    mmu_eflags_written(c);
    for (int k = 0; k < 8; k++)
        c->r[k] = t.r[k];
    /* Selectors first (so a later #TS reports the new task's state), then descriptors. */
    for (int k = 0; k < SEG_COUNT; k++) {
        c->seg[k].sel = t.seg[k];
        c->seg[k].attr = 0;
    }
    c->ldtr.sel = t.ldt;
    c->ldtr.attr = 0;
    c->cpl = cpu_v86(c) ? 3 : (t.seg[SEG_CS] & 3);
    /* From here on faults belong to the new task: they restart at its EIP/ESP. */
    c->eip_start = c->eip;
    c->esp_start = c->r[R_ESP];

    if ((t.ldt & 0xfffc) != 0) {
        struct desc ld;
        if ((t.ldt & 4) || !desc_read(c, t.ldt, &ld) || desc_type(ld) != 2 || !desc_is_system(ld))
            cpu_raise(c, EXC_TS, sel_error(c, t.ldt));
        if (!desc_present(ld))
            cpu_raise(c, EXC_TS, sel_error(c, t.ldt));
        seg_from_desc(&c->ldtr, t.ldt, ld);
    }
    task_load_seg(c, SEG_CS, t.seg[SEG_CS]);
    task_load_seg(c, SEG_SS, t.seg[SEG_SS]);
    task_load_seg(c, SEG_ES, t.seg[SEG_ES]);
    task_load_seg(c, SEG_DS, t.seg[SEG_DS]);
    task_load_seg(c, SEG_FS, t.seg[SEG_FS]);
    task_load_seg(c, SEG_GS, t.seg[SEG_GS]);
    if (has_err)
        push(c, err, t32 ? 4 : 2);
    if (c->eip > c->seg[SEG_CS].limit)
        cpu_raise(c, EXC_GP, 0);
}
