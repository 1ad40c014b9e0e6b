/*
 * The interpreter's system instructions: segment register loads, LES/LDS
 * and the other far-pointer loads, ARPL, LAR/LSL, groups 6 and 7 (LDTR,
 * TR, descriptor tables, MSW, INVLPG), control and debug registers, MSRs,
 * RDTSC, CPUID, SYSENTER/SYSEXIT, HLT, port I/O and the x87 entry points.
 */
#include "monitor/interp_internal.h"
#include "monitor/alu.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

/* ---- segments ---- */

HANDLER(push_sreg) { push(c, c->seg[in->op >> 3].sel, vsize(in)); }
HANDLER(push_fs) { push(c, c->seg[SEG_FS].sel, vsize(in)); }
HANDLER(push_gs) { push(c, c->seg[SEG_GS].sel, vsize(in)); }

/* POP Sreg: ESP advances by the size of the stack it was popped from, even when SS itself changes. */
static void pop_seg(struct cpu *c, int sr, int size)
{
    uint32_t mask = sp_mask(c);
    uint32_t sp = c->r[R_ESP];
    uint16_t sel = stack_peek(c, 0, size);
    seg_load(c, sr, sel);
    c->r[R_ESP] = (sp & ~mask) | ((sp + size) & mask);
    if (sr == SEG_SS)
        c->intr_shadow = true;
}

HANDLER(pop_sreg) { pop_seg(c, in->op >> 3, vsize(in)); }
HANDLER(pop_fs) { pop_seg(c, SEG_FS, vsize(in)); }
HANDLER(pop_gs) { pop_seg(c, SEG_GS, vsize(in)); }

HANDLER(mov_rm_sreg)
{
    if (in->reg >= SEG_COUNT)
        cpu_raise_noerr(c, EXC_UD);
    if (in->mod == 3)
        reg_write(c, in->rm, vsize(in), c->seg[in->reg].sel);
    else
        rm_write(c, in, 2, c->seg[in->reg].sel);
}

HANDLER(mov_sreg_rm)
{
    if (in->reg >= SEG_COUNT || in->reg == SEG_CS)
        cpu_raise_noerr(c, EXC_UD);
    seg_load(c, in->reg, rm_read(c, in, 2));
    if (in->reg == SEG_SS)
        c->intr_shadow = true;
}

static void load_far_pointer(struct cpu *c, const struct insn *in, int sr)
{
    require_mem(c, in);
    int size = vsize(in);
    uint32_t off = mem_at(c, in, 0, size);
    uint16_t sel = mem_at(c, in, size, 2);
    seg_load(c, sr, sel);
    reg_write(c, in->reg, size, off);
    if (sr == SEG_SS)
        c->intr_shadow = true;
}

HANDLER(les) { load_far_pointer(c, in, SEG_ES); }
HANDLER(lds) { load_far_pointer(c, in, SEG_DS); }
HANDLER(lss) { load_far_pointer(c, in, SEG_SS); }
HANDLER(lfs) { load_far_pointer(c, in, SEG_FS); }
HANDLER(lgs) { load_far_pointer(c, in, SEG_GS); }

HANDLER(arpl)
{
    if (!cpu_protected(c) || cpu_v86(c))
        cpu_raise_noerr(c, EXC_UD);
    /* Only an adjusting ARPL writes: a read-only destination is fine otherwise. */
    uint16_t dst = rm_read(c, in, 2);
    uint16_t src = reg_read(c, in->reg, 2);
    if ((dst & 3) < (src & 3)) {
        rm_write(c, in, 2, (dst & ~3) | (src & 3));
        c->eflags |= FL_ZF;
    } else {
        c->eflags &= ~FL_ZF;
    }
}

HANDLER(lar_lsl)
{
    if (!cpu_protected(c) || cpu_v86(c))
        cpu_raise_noerr(c, EXC_UD);
    uint16_t sel = rm_read(c, in, 2);
    struct desc d;
    bool ok = (sel & 0xfffc) && desc_read(c, sel, &d);
    if (ok) {
        int dpl = desc_dpl(d);
        bool conforming_code = desc_is_code(d) && (desc_type(d) & 4);
        if (desc_is_system(d)) {
            int t = desc_type(d);
            /* LSL accepts only descriptors with a limit; LAR gates too. */
            bool lar_ok = t == 1 || t == 2 || t == 3 || t == 4 || t == 5 || t == 9 || t == 11 || t == 12;
            bool lsl_ok = t == 1 || t == 2 || t == 3 || t == 9 || t == 11;
            ok = in->op == 0x102 ? lar_ok : lsl_ok;
        }
        if (ok && !conforming_code && (dpl < c->cpl || dpl < (sel & 3)))
            ok = false;
    }
    if (!ok) {
        c->eflags &= ~FL_ZF;
        return;
    }
    c->eflags |= FL_ZF;
    uint32_t v = in->op == 0x102 ? (d.hi & 0x00f0ff00u) : desc_limit(d);
    reg_write(c, in->reg, vsize(in), v);
}

/* ---- group 6 (0F 00): #UD outside protected mode, and in v86 mode ---- */

static void require_protected_not_v86(struct cpu *c)
{
    if (!cpu_protected(c) || cpu_v86(c))
        cpu_raise_noerr(c, EXC_UD);
}

HANDLER(sldt_str)
{
    require_protected_not_v86(c);
    uint16_t v = in->reg == 0 ? c->ldtr.sel : c->tr.sel;
    if (in->mod == 3)
        reg_write(c, in->rm, vsize(in), v);
    else
        rm_write(c, in, 2, v);
}

static void load_ldtr(struct cpu *c, uint16_t sel)
{
    if ((sel & 0xfffc) == 0) {
        memset(&c->ldtr, 0, sizeof(c->ldtr));
        c->ldtr.sel = sel;
        return;
    }
    struct desc d;
    if ((sel & 4) || !desc_read(c, sel, &d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_is_system(d) || desc_type(d) != 2)
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    seg_from_desc(&c->ldtr, sel, d);
}

static void load_tr(struct cpu *c, uint16_t sel)
{
    struct desc d;
    if ((sel & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, 0);
    if ((sel & 4) || !desc_read(c, sel, &d))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    int t = desc_type(d);
    if (!desc_is_system(d) || (t != 1 && t != 9))
        cpu_raise(c, EXC_GP, sel_error(c, sel));
    if (!desc_present(d))
        cpu_raise(c, EXC_NP, sel_error(c, sel));
    d.hi |= 0x200;
    desc_write_hi(c, sel, d.hi);
    seg_from_desc(&c->tr, sel, d);
}

HANDLER(lldt)
{
    require_protected_not_v86(c);
    require_cpl0(c);
    load_ldtr(c, rm_read(c, in, 2));
}

HANDLER(ltr)
{
    require_protected_not_v86(c);
    require_cpl0(c);
    load_tr(c, rm_read(c, in, 2));
}

HANDLER(verr_verw)
{
    require_protected_not_v86(c);
    bool write = in->reg == 5;
    uint16_t sel = rm_read(c, in, 2);
    struct desc d;
    bool ok = (sel & 0xfffc) && desc_read(c, sel, &d) && !desc_is_system(d);
    if (ok) {
        bool conforming_code = desc_is_code(d) && (desc_type(d) & 4);
        if (!conforming_code && (desc_dpl(d) < c->cpl || desc_dpl(d) < (sel & 3)))
            ok = false;
        else if (write)
            ok = desc_is_data(d) && (desc_type(d) & 2);
        else
            ok = desc_is_data(d) || (desc_type(d) & 2);
    }
    if (ok)
        c->eflags |= FL_ZF;
    else
        c->eflags &= ~FL_ZF;
}

/* ---- group 7 (0F 01) and the other privileged instructions ---- */

/* CPL 0 outside v86 mode (#GP(0) otherwise). */
static void require_cpl0_not_v86(struct cpu *c)
{
    require_cpl0(c);
    if (cpu_v86(c))
        cpu_raise(c, EXC_GP, 0);
}

/* STAC/CLAC: CPL 0 (real mode included), never in v86 mode (#UD). */
static void set_ac(struct cpu *c, bool on)
{
    if (cpu_v86(c) || (cpu_protected(c) && c->cpl != 0))
        cpu_raise_noerr(c, EXC_UD);
    if (on)
        c->eflags |= FL_AC;
    else
        c->eflags &= ~FL_AC;
    mmu_eflags_written(c);
}

/* RDTSCP: RDTSC's #GP under CR4.TSD, and IA32_TSC_AUX in ECX. */
static void rdtscp(struct cpu *c)
{
    if ((c->cr4 & CR4_TSD) && c->cpl != 0 && cpu_protected(c))
        cpu_raise(c, EXC_GP, 0);
    uint64_t t = cpu_rdtsc(c);
    c->r[R_EAX] = (uint32_t)t;
    c->r[R_EDX] = t >> 32;
    c->r[R_ECX] = c->tsc_aux;
}

/* Group 7's register forms (mod 3), named by the whole ModRM byte: STAC
 * and CLAC (/1), RDTSCP (/7).  VMX's VMCALL/VMLAUNCH/VMRESUME/VMXOFF (/0),
 * MONITOR/MWAIT, SWAPGS and the rest are #UD on this CPU. */
static void grp7_register_form(struct cpu *c, const struct insn *in)
{
    switch (in->modrm) {
    case 0xca: set_ac(c, false); return;
    case 0xcb: set_ac(c, true); return;
    case 0xf9: rdtscp(c); return;
    }
    cpu_raise_noerr(c, EXC_UD);
}

HANDLER(sgdt_sidt)
{
    if (in->mod == 3) {
        grp7_register_form(c, in);
        return;
    }
    require_mem(c, in);
    struct dtr *t = in->reg == 0 ? &c->gdtr : &c->idtr;
    uint32_t off = insn_ea_offset(c, in);
    uint32_t lin0 = seg_lin(c, in->ea_seg, off, 2, true);
    uint32_t lin1 = seg_lin(c, in->ea_seg, in->addr32 ? off + 2 : ((off + 2) & 0xffff), 4, true);
    mem_probe_write(c, lin0, 2, mmu_user(c));
    mem_probe_write(c, lin1, 4, mmu_user(c));
    mem_write(c, lin0, t->limit, 2, mmu_user(c));
    /* A 16-bit SGDT stores the 24-bit base with the top byte as 0 (386+). */
    mem_write(c, lin1, in->op32 ? t->base : (t->base & 0xffffff), 4, mmu_user(c));
}

HANDLER(lgdt_lidt)
{
    require_mem(c, in);
    require_cpl0_not_v86(c);
    uint16_t limit = mem_at(c, in, 0, 2);
    uint32_t base = mem_at(c, in, 2, 4);
    if (!in->op32)
        base &= 0xffffff;
    struct dtr *t = in->reg == 2 ? &c->gdtr : &c->idtr;
    t->limit = limit;
    t->base = base;
}

HANDLER(smsw)
{
    if (in->mod == 3)
        reg_write(c, in->rm, vsize(in), c->cr0);
    else
        rm_write(c, in, 2, c->cr0 & 0xffff);
}

/* LMSW: can set PE but never clear it. */
HANDLER(lmsw)
{
    require_cpl0_not_v86(c);
    uint16_t v = rm_read(c, in, 2);
    uint32_t cr0 = (c->cr0 & ~0xeu) | (v & 0xf) | (c->cr0 & CR0_PE);
    cpu_write_cr0(c, cr0);
}

HANDLER(invlpg)
{
    if (in->mod == 3) {
        grp7_register_form(c, in);
        return;
    }
    require_mem(c, in);
    require_cpl0_not_v86(c);
    tlb_flush_page(c, c->seg[in->ea_seg].base + insn_ea_offset(c, in));
    machine_invlpg(c->m, c->seg[in->ea_seg].base + insn_ea_offset(c, in));
}

HANDLER(clts)
{
    require_cpl0_not_v86(c);
    c->cr0 &= ~CR0_TS;
}

HANDLER(invd) { require_cpl0_not_v86(c); }   /* INVD / WBINVD: no caches to manage */

HANDLER(hlt)
{
    require_cpl0_not_v86(c);
    c->halted = true;
}

/* MOV to or from CRn/DRn: #GP(0) in v86 mode, then above CPL 0. */
static void require_cr_access(struct cpu *c)
{
    if (cpu_v86(c))
        cpu_raise(c, EXC_GP, 0);
    require_cpl0(c);
}

HANDLER(mov_from_cr)
{
    require_cr_access(c);
    int n = in->reg;
    if (n == 0) c->r[in->rm] = c->cr0;
    else if (n == 2) c->r[in->rm] = c->cr2;
    else if (n == 3) c->r[in->rm] = c->cr3;
    else if (n == 4) c->r[in->rm] = c->cr4;
    else cpu_raise_noerr(c, EXC_UD);
}

HANDLER(mov_to_cr)
{
    require_cr_access(c);
    int n = in->reg;
    uint32_t v = c->r[in->rm];
    if (n == 0) cpu_write_cr0(c, v);
    else if (n == 2) c->cr2 = v;
    else if (n == 3) cpu_write_cr3(c, v);
    else if (n == 4) cpu_write_cr4(c, v);
    else cpu_raise_noerr(c, EXC_UD);
}

/* DR4/DR5 alias DR6/DR7 unless CR4.DE makes them #UD. */
static int debug_reg_index(struct cpu *c, int n)
{
    if ((n == 4 || n == 5) && (c->cr4 & CR4_DE))
        cpu_raise_noerr(c, EXC_UD);
    return n == 4 ? 6 : n == 5 ? 7 : n;
}

HANDLER(mov_from_dr)
{
    require_cr_access(c);
    c->r[in->rm] = c->dr[debug_reg_index(c, in->reg)];
}

HANDLER(mov_to_dr)
{
    require_cr_access(c);
    c->dr[debug_reg_index(c, in->reg)] = c->r[in->rm];
}

HANDLER(wrmsr)
{
    require_cpl0_not_v86(c);
    uint64_t v = ((uint64_t)c->r[R_EDX] << 32) | c->r[R_EAX];
    if (!cpu_wrmsr(c, c->r[R_ECX], v))
        cpu_raise(c, EXC_GP, 0);
}

HANDLER(rdmsr)
{
    require_cpl0_not_v86(c);
    uint64_t v;
    if (!cpu_rdmsr(c, c->r[R_ECX], &v))
        cpu_raise(c, EXC_GP, 0);
    c->r[R_EAX] = (uint32_t)v;
    c->r[R_EDX] = v >> 32;
}

HANDLER(rdtsc)
{
    if ((c->cr4 & CR4_TSD) && c->cpl != 0 && cpu_protected(c))
        cpu_raise(c, EXC_GP, 0);
    uint64_t t = cpu_rdtsc(c);
    c->r[R_EAX] = (uint32_t)t;
    c->r[R_EDX] = t >> 32;
}

HANDLER(cpuid) { cpu_cpuid(c); }

/* RDPID (F3 0F C7 /7, register form): IA32_TSC_AUX.  Without F3 it is
 * RDSEED, which this CPU lacks. */
HANDLER(rdpid)
{
    if (in->mod != 3 || !(in->prefixes & PFX_REP))
        cpu_raise_noerr(c, EXC_UD);
    c->r[in->rm] = c->tsc_aux;
}

HANDLER(sysenter)
{
    if (!cpu_protected(c) || (c->sysenter_cs & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, 0);
    c->eflags &= ~(FL_VM | FL_IF | FL_RF);
    uint16_t cs = c->sysenter_cs & 0xfffc;
    c->seg[SEG_CS] = (struct seg){ cs, SEG_ATTR_P | SEG_ATTR_S | 0xb | SEG_ATTR_DB | SEG_ATTR_G, 0, 0xffffffffu };
    c->seg[SEG_SS] = (struct seg){ cs + 8, SEG_ATTR_P | SEG_ATTR_S | 0x3 | SEG_ATTR_DB | SEG_ATTR_G, 0, 0xffffffffu };
    c->cpl = 0;
    c->r[R_ESP] = c->sysenter_esp;
    c->eip = c->sysenter_eip;
}

HANDLER(sysexit)
{
    if (!cpu_protected(c) || cpu_v86(c) || c->cpl != 0 || (c->sysenter_cs & 0xfffc) == 0)
        cpu_raise(c, EXC_GP, 0);
    uint16_t cs = (c->sysenter_cs & 0xfffc) + 16;
    uint16_t attr3 = SEG_ATTR_P | SEG_ATTR_S | (3 << 5) | SEG_ATTR_DB | SEG_ATTR_G;
    c->seg[SEG_CS] = (struct seg){ cs | 3, attr3 | 0xb, 0, 0xffffffffu };
    c->seg[SEG_SS] = (struct seg){ (cs + 8) | 3, attr3 | 0x3, 0, 0xffffffffu };
    c->cpl = 3;
    c->r[R_ESP] = c->r[R_ECX];
    c->eip = c->r[R_EDX];
}

/* ---- I/O ---- */

/* IN/OUT with an imm8 port (E4-E7) or DX (EC-EF). */
static uint16_t io_port(const struct cpu *c, const struct insn *in)
{
    return (in->op & 8) ? (c->r[R_EDX] & 0xffff) : (in->imm & 0xff);
}

HANDLER(in)
{
    int size = (in->op & 1) ? vsize(in) : 1;
    uint16_t port = io_port(c, in);
    io_check(c, port, size);
    reg_write(c, R_EAX, size, machine_io_read(c->m, port, size));
}

HANDLER(out)
{
    int size = (in->op & 1) ? vsize(in) : 1;
    uint16_t port = io_port(c, in);
    io_check(c, port, size);
    machine_io_write(c->m, port, reg_read(c, R_EAX, size), size);
}

/* ---- x87 ---- */

HANDLER(fpu) { fpu_exec(c, in); }   /* D8-DF, and 0F AE: FXSAVE/FXRSTOR (the SSE members are #UD there) */
HANDLER(fwait) { fpu_wait(c); }
HANDLER(sse_move) { fpu_sse_move(c, in); }
