/*
 * The reference interpreter: fetch, decode (monitor/decode.c), execute.
 * Arithmetic comes from monitor/alu.c, cross-segment transfers from
 * transfer.c, segmentation from segment.c, system registers from sysregs.c.
 */
#include "monitor/interp.h"
#include "monitor/alu.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

/* REP string instructions yield after this many iterations so interrupts
 * and timers are not starved by a long copy. */
#define REP_CHUNK 4096

/* ------------------------------------------------------------------ */
/* exceptions                                                          */

static bool contributory(int v)
{
    return v == EXC_DE || (v >= EXC_TS && v <= EXC_GP);
}

static _Noreturn void raise_common(struct cpu *c, int vec, bool has_err, uint32_t err)
{
    if (c->fault_depth > 0) {
        int prev = c->exc_vector;
        if (prev == EXC_DF) {
            c->fault_depth = 0;
            machine_triple_fault(c->m);
            longjmp(c->fault_jmp, 2);
        }
        if ((contributory(prev) && contributory(vec)) ||
            (prev == EXC_PF && (vec == EXC_PF || contributory(vec)))) {
            vec = EXC_DF;
            has_err = true;
            err = 0;
        }
    }
    c->fault_depth++;
    c->exc_vector = vec;
    c->exc_error = err;
    c->exc_has_error = has_err;
    longjmp(c->fault_jmp, 1);
}

_Noreturn void cpu_raise(struct cpu *c, int vector, uint32_t error_code)
{
    raise_common(c, vector, true, error_code);
}

_Noreturn void cpu_raise_noerr(struct cpu *c, int vector)
{
    raise_common(c, vector, false, 0);
}

_Noreturn void raise_ud_unimplemented(struct cpu *c, const struct insn *in, const char *what)
{
    trace_unimplemented(c, in, what);
    cpu_raise_noerr(c, EXC_UD);
}

/* ------------------------------------------------------------------ */
/* operands                                                            */

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

/* ------------------------------------------------------------------ */
/* string instructions                                                 */

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

static inline uint32_t idx_reg(const struct cpu *c, const struct insn *in, int r)
{
    return in->addr32 ? c->r[r] : (c->r[r] & 0xffff);
}

/* ESI or EDI forward by `bytes` (SI or DI with 16-bit addresses). */
static inline void advance_idx(struct cpu *c, const struct insn *in, int r, uint32_t bytes)
{
    if (in->addr32)
        c->r[r] += bytes;
    else
        cpu_set_r16(c, r, c->r[r] + bytes);
}

static inline void idx_step(struct cpu *c, const struct insn *in, int r, int size)
{
    advance_idx(c, in, r, (c->eflags & FL_DF) ? (uint32_t)-size : (uint32_t)size);
}

static inline int src_seg(const struct insn *in) { return in->seg >= 0 ? in->seg : SEG_DS; }

/* One iteration of a string op; returns false when a REPE/REPNE condition ends the loop. */
static bool string_step(struct cpu *c, const struct insn *in, int op, int size)
{
    uint32_t v, d;
    switch (op) {
    case 0xa4: case 0xa5: /* MOVS */
        v = vm_read(c, src_seg(in), idx_reg(c, in, R_ESI), size);
        vm_write(c, SEG_ES, idx_reg(c, in, R_EDI), size, v);
        idx_step(c, in, R_ESI, size);
        idx_step(c, in, R_EDI, size);
        return true;
    case 0xa6: case 0xa7: /* CMPS */
        v = vm_read(c, src_seg(in), idx_reg(c, in, R_ESI), size);
        d = vm_read(c, SEG_ES, idx_reg(c, in, R_EDI), size);
        alu_binop(&c->eflags, ALU_CMP, v, d, size);
        idx_step(c, in, R_ESI, size);
        idx_step(c, in, R_EDI, size);
        break;
    case 0xaa: case 0xab: /* STOS */
        vm_write(c, SEG_ES, idx_reg(c, in, R_EDI), size, reg_read(c, R_EAX, size));
        idx_step(c, in, R_EDI, size);
        return true;
    case 0xac: case 0xad: /* LODS */
        reg_write(c, R_EAX, size, vm_read(c, src_seg(in), idx_reg(c, in, R_ESI), size));
        idx_step(c, in, R_ESI, size);
        return true;
    case 0xae: case 0xaf: /* SCAS */
        d = vm_read(c, SEG_ES, idx_reg(c, in, R_EDI), size);
        alu_binop(&c->eflags, ALU_CMP, reg_read(c, R_EAX, size), d, size);
        idx_step(c, in, R_EDI, size);
        break;
    case 0x6c: case 0x6d: /* INS */
        io_check(c, c->r[R_EDX] & 0xffff, size);
        /* Probe the destination first: a fault must not lose the port read. */
        mem_probe_write(c, seg_lin(c, SEG_ES, idx_reg(c, in, R_EDI), size, true), size, mmu_user(c));
        v = machine_io_read(c->m, c->r[R_EDX] & 0xffff, size);
        vm_write(c, SEG_ES, idx_reg(c, in, R_EDI), size, v);
        idx_step(c, in, R_EDI, size);
        return true;
    case 0x6e: case 0x6f: /* OUTS */
        io_check(c, c->r[R_EDX] & 0xffff, size);
        v = vm_read(c, src_seg(in), idx_reg(c, in, R_ESI), size);
        machine_io_write(c->m, c->r[R_EDX] & 0xffff, v, size);
        idx_step(c, in, R_ESI, size);
        return true;
    }
    /* CMPS/SCAS: REPE continues while ZF=1, REPNE while ZF=0. */
    if (in->prefixes & PFX_REP)
        return c->eflags & FL_ZF;
    if (in->prefixes & PFX_REPNE)
        return !(c->eflags & FL_ZF);
    return true;
}

/* Host pointer for `bytes` at seg:off when that range is plain RAM in one
 * page that the TLB already maps for this access (within an expand-up
 * segment's limit, no wrap), else NULL: then the element-by-element path
 * decides. */
static uint8_t *string_run_ptr(struct cpu *c, int sr, uint32_t off, uint32_t bytes, bool write)
{
    const struct seg *s = &c->seg[sr];
    if ((s->attr & (write ? 0x9e : 0x9c)) != (write ? 0x92 : 0x90) || off + bytes - 1 < off ||
        off + bytes - 1 > s->limit)
        return NULL;
    uint32_t lin = s->base + off;
    if ((lin & 0xfff) + bytes > PAGE_SIZE)
        return NULL;
    struct tlb_entry *e = &c->tlb[mmu_user(c)][(lin >> 12) & (TLB_SIZE - 1)];
    if ((write ? e->tag_write : e->tag_read) != (lin & PAGE_MASK))
        return NULL;
    return (uint8_t *)(uintptr_t)(lin + e->addend);
}

/* Whole elements from off to the end of its page, and of a 16-bit offset's 64 KiB. */
static uint32_t run_room(const struct cpu *c, const struct insn *in, int sr, uint32_t off, int size)
{
    uint32_t room = PAGE_SIZE - ((c->seg[sr].base + off) & 0xfff);
    if (!in->addr32 && 0x10000 - off < room)
        room = 0x10000 - off;
    return room / size;
}

/*
 * REP MOVS/STOS/INS with DF=0, as many elements as stay in the current
 * source and destination pages (and, with 16-bit addresses, below 64 KiB):
 * the same result as one element at a time (overlapping MOVS copies element
 * by element, forward), without a TLB lookup per element.  INS still reads
 * the port once per element, in order, into memory that cannot fault by
 * then (a BIOS loading a kernel by PIO moves megabytes that way).  Pages
 * with translations are never direct-write in the TLB, so stores to code
 * still go the slow way.  Returns the number of elements done (0: none,
 * take the element path).
 */
static uint32_t string_run(struct cpu *c, const struct insn *in, int op, int size, uint32_t cnt)
{
    if (c->eflags & FL_DF)
        return 0;
    uint32_t di = idx_reg(c, in, R_EDI);
    uint32_t room = run_room(c, in, SEG_ES, di, size);
    uint32_t n = cnt < room ? cnt : room;
    bool movs = op == 0xa4 || op == 0xa5;
    if (movs) {
        uint32_t src_room = run_room(c, in, src_seg(in), idx_reg(c, in, R_ESI), size);
        n = n < src_room ? n : src_room;
    }
    if (n == 0)
        return 0;
    uint8_t *dst = string_run_ptr(c, SEG_ES, di, n * size, true);
    if (!dst)
        return 0;
    if (op == 0x6c || op == 0x6d) {
        uint16_t port = c->r[R_EDX] & 0xffff;
        io_check(c, port, size);
        for (uint32_t k = 0; k < n; k++) {
            uint32_t v = machine_io_read(c->m, port, size);
            memcpy(dst + k * size, &v, size);
        }
    } else if (movs) {
        const uint8_t *src = string_run_ptr(c, src_seg(in), idx_reg(c, in, R_ESI), n * size, false);
        if (!src)
            return 0;
        if (dst >= src + n * size || dst + n * size <= src) {
            memcpy(dst, src, n * size);
        } else {
            for (uint32_t k = 0; k < n; k++) {
                uint32_t v;
                memcpy(&v, src + k * size, size);
                memcpy(dst + k * size, &v, size);
            }
        }
        advance_idx(c, in, R_ESI, n * size);
    } else {
        uint32_t v = c->r[R_EAX];
        if (size == 1)
            memset(dst, v & 0xff, n);
        else
            for (uint32_t k = 0; k < n; k++)
                memcpy(dst + k * size, &v, size);
    }
    advance_idx(c, in, R_EDI, n * size);
    set_count(c, in, cnt - n);
    return n;
}

static void exec_string(struct cpu *c, const struct insn *in)
{
    int op = in->op;
    int size = (op & 1) ? vsize(in) : 1;
    if (!(in->prefixes & (PFX_REP | PFX_REPNE))) {
        string_step(c, in, op, size);
        return;
    }
    bool bulk = op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab || op == 0x6c || op == 0x6d;
    for (int n = 0; n < REP_CHUNK; n++) {
        uint32_t cnt = count_reg(c, in);
        if (cnt == 0)
            return;
        if (bulk && string_run(c, in, op, size, cnt))
            continue;
        bool go_on = string_step(c, in, op, size);
        set_count(c, in, cnt - 1);
        if (!go_on || cnt == 1)
            return;
    }
    /* Not finished: run this instruction again after giving interrupts a chance. */
    c->eip = c->eip_start;
}

/* ------------------------------------------------------------------ */
/* groups and system instructions                                      */

static void exec_group3(struct cpu *c, const struct insn *in)
{
    int size = wsize(in, in->op);
    uint32_t lo, hi, q, r;
    switch (in->reg) {
    case 0: case 1:
        alu_binop(&c->eflags, ALU_AND, rm_read(c, in, size), in->imm, size);
        return;
    case 2: {
        struct opnd o = rm_opnd(c, in, size, true);
        opnd_write(c, &o, ~opnd_read(c, &o));
        return;
    }
    case 3: {
        struct opnd o = rm_opnd(c, in, size, true);
        opnd_write(c, &o, alu_neg(&c->eflags, opnd_read(c, &o), size));
        return;
    }
    case 4: case 5: {
        uint32_t src = rm_read(c, in, size);
        if (in->reg == 4)
            alu_mul(&c->eflags, reg_read(c, R_EAX, size), src, size, &lo, &hi);
        else
            alu_imul(&c->eflags, reg_read(c, R_EAX, size), src, size, &lo, &hi);
        if (size == 1) {
            cpu_set_r16(c, R_EAX, (hi << 8) | lo);
        } else {
            reg_write(c, R_EAX, size, lo);
            reg_write(c, R_EDX, size, hi);
        }
        return;
    }
    default: {
        uint32_t divisor = rm_read(c, in, size);
        /* A byte divide takes AX: AL is the low half, AH the high one. */
        uint32_t dlo = size == 1 ? (c->r[R_EAX] & 0xff) : reg_read(c, R_EAX, size);
        uint32_t dhi = size == 1 ? (c->r[R_EAX] >> 8) & 0xff : reg_read(c, R_EDX, size);
        bool ok = in->reg == 6 ? alu_div(&c->eflags, dlo, dhi, divisor, size, &q, &r)
                               : alu_idiv(&c->eflags, dlo, dhi, divisor, size, &q, &r);
        if (!ok)
            cpu_raise_noerr(c, EXC_DE);
        if (size == 1) {
            cpu_set_r16(c, R_EAX, ((r & 0xff) << 8) | (q & 0xff));
        } else {
            reg_write(c, R_EAX, size, q);
            reg_write(c, R_EDX, size, r);
        }
        return;
    }
    }
}

static void exec_group5(struct cpu *c, const struct insn *in)
{
    int size = wsize(in, in->op);
    switch (in->reg) {
    case 0: case 1: {
        struct opnd o = rm_opnd(c, in, size, true);
        uint32_t v = opnd_read(c, &o);
        opnd_write(c, &o, in->reg == 0 ? alu_inc(&c->eflags, v, size) : alu_dec(&c->eflags, v, size));
        return;
    }
    }
    if (in->op == 0xfe)
        cpu_raise_noerr(c, EXC_UD);
    switch (in->reg) {
    case 2: {
        uint32_t t = rm_read(c, in, size);
        if (!in->op32)
            t &= 0xffff;
        if (t > c->seg[SEG_CS].limit)
            cpu_raise(c, EXC_GP, 0);
        push(c, c->eip, size);
        c->eip = t;
        return;
    }
    case 3: case 5: {
        require_mem(c, in);
        uint32_t off = mem_at(c, in, 0, size);
        uint16_t sel = mem_at(c, in, size, 2);
        if (in->reg == 3)
            do_far_call(c, sel, off, in->op32, c->eip);
        else
            do_far_jmp(c, sel, off, in->op32, c->eip);
        return;
    }
    case 4:
        jump_near(c, rm_read(c, in, size), in->op32);
        return;
    case 6:
        push(c, rm_read(c, in, size), size);
        return;
    default:
        cpu_raise_noerr(c, EXC_UD);
    }
}

static void exec_lar_lsl(struct cpu *c, const struct insn *in)
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

static void exec_verr_verw(struct cpu *c, const struct insn *in, bool write)
{
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

static void exec_group6(struct cpu *c, const struct insn *in)
{
    if (!cpu_protected(c) || cpu_v86(c))
        cpu_raise_noerr(c, EXC_UD);
    switch (in->reg) {
    case 0: /* SLDT */
    case 1: /* STR */ {
        uint16_t v = in->reg == 0 ? c->ldtr.sel : c->tr.sel;
        if (in->mod == 3)
            reg_write(c, in->rm, vsize(in), v);
        else
            rm_write(c, in, 2, v);
        return;
    }
    case 2:
        require_cpl0(c);
        load_ldtr(c, rm_read(c, in, 2));
        return;
    case 3:
        require_cpl0(c);
        load_tr(c, rm_read(c, in, 2));
        return;
    case 4: case 5:
        exec_verr_verw(c, in, in->reg == 5);
        return;
    default:
        cpu_raise_noerr(c, EXC_UD);
    }
}

static void exec_group7(struct cpu *c, const struct insn *in)
{
    switch (in->reg) {
    case 0: case 1: { /* SGDT / SIDT */
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
        return;
    }
    case 2: case 3: { /* LGDT / LIDT */
        require_mem(c, in);
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        uint16_t limit = mem_at(c, in, 0, 2);
        uint32_t base = mem_at(c, in, 2, 4);
        if (!in->op32)
            base &= 0xffffff;
        struct dtr *t = in->reg == 2 ? &c->gdtr : &c->idtr;
        t->limit = limit;
        t->base = base;
        return;
    }
    case 4: /* SMSW */
        if (in->mod == 3)
            reg_write(c, in->rm, vsize(in), c->cr0);
        else
            rm_write(c, in, 2, c->cr0 & 0xffff);
        return;
    case 6: { /* LMSW: can set PE but never clear it */
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        uint16_t v = rm_read(c, in, 2);
        uint32_t cr0 = (c->cr0 & ~0xeu) | (v & 0xf) | (c->cr0 & CR0_PE);
        cpu_write_cr0(c, cr0);
        return;
    }
    case 7: /* INVLPG */
        require_mem(c, in);
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        tlb_flush_page(c, c->seg[in->ea_seg].base + insn_ea_offset(c, in));
        machine_invlpg(c->m, c->seg[in->ea_seg].base + insn_ea_offset(c, in));
        return;
    default:
        cpu_raise_noerr(c, EXC_UD);
    }
}

static void exec_mov_cr_dr(struct cpu *c, const struct insn *in)
{
    if (cpu_v86(c))
        cpu_raise(c, EXC_GP, 0);
    require_cpl0(c);
    int n = in->reg;
    switch (in->op) {
    case 0x120:
        if (n == 0) c->r[in->rm] = c->cr0;
        else if (n == 2) c->r[in->rm] = c->cr2;
        else if (n == 3) c->r[in->rm] = c->cr3;
        else if (n == 4) c->r[in->rm] = c->cr4;
        else cpu_raise_noerr(c, EXC_UD);
        return;
    case 0x122: {
        uint32_t v = c->r[in->rm];
        if (n == 0) cpu_write_cr0(c, v);
        else if (n == 2) c->cr2 = v;
        else if (n == 3) cpu_write_cr3(c, v);
        else if (n == 4) cpu_write_cr4(c, v);
        else cpu_raise_noerr(c, EXC_UD);
        return;
    }
    case 0x121:
        if ((n == 4 || n == 5) && (c->cr4 & CR4_DE))
            cpu_raise_noerr(c, EXC_UD);
        c->r[in->rm] = n == 4 ? c->dr[6] : n == 5 ? c->dr[7] : c->dr[n];
        return;
    default: /* 0x123 */
        if ((n == 4 || n == 5) && (c->cr4 & CR4_DE))
            cpu_raise_noerr(c, EXC_UD);
        c->dr[n == 4 ? 6 : n == 5 ? 7 : n] = c->r[in->rm];
        return;
    }
}

static void exec_sysenter(struct cpu *c)
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

static void exec_sysexit(struct cpu *c)
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

bool insn_lock_allowed(const struct insn *in)
{
    if (!insn_is_mem(in))
        return false;
    int op = in->op;
    if ((op < 0x38 && (op & 7) < 2 && (op & 0x38) != 0x38) || op == 0x86 || op == 0x87)
        return true;
    if ((op >= 0x80 && op <= 0x83) && in->reg != 7)
        return true;
    if ((op == 0xf6 || op == 0xf7) && (in->reg == 2 || in->reg == 3))
        return true;
    if ((op == 0xfe || op == 0xff) && in->reg < 2)
        return true;
    if (op == 0x1ab || op == 0x1b3 || op == 0x1bb || op == 0x1b0 || op == 0x1b1 || op == 0x1c0 || op == 0x1c1)
        return true;
    if (op == 0x1ba && in->reg >= 5)
        return true;
    if (op == 0x1c7 && in->reg == 1)
        return true;
    return false;
}

static void exec_cmpxchg8b(struct cpu *c, const struct insn *in)
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

/* Bit-test instructions with a register bit offset address memory beyond the operand. */
static void exec_bt_reg(struct cpu *c, const struct insn *in, int op)
{
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

/* Stack-pointer arithmetic that keeps ESP's upper half on a 16-bit stack. */
static inline uint32_t sp_add(uint32_t sp, uint32_t mask, int32_t n)
{
    return (sp & ~mask) | ((sp + n) & mask);
}

static void exec_enter(struct cpu *c, const struct insn *in)
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

static void exec_leave(struct cpu *c, const struct insn *in)
{
    int size = vsize(in);
    uint32_t mask = sp_mask(c);
    uint32_t bp = c->r[R_EBP] & mask;
    uint32_t v = vm_read(c, SEG_SS, bp, size);
    set_sp(c, bp + size);
    reg_write(c, R_EBP, size, v);
}

static void exec_pusha(struct cpu *c, const struct insn *in)
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

static void exec_popa(struct cpu *c, const struct insn *in)
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

static void exec_pushf(struct cpu *c, const struct insn *in)
{
    if (cpu_v86(c) && iopl(c) < 3)
        cpu_raise(c, EXC_GP, 0);
    uint32_t f = c->eflags & ~(FL_VM | FL_RF);
    push(c, in->op32 ? f : (f & 0xffff), vsize(in));
}

static void exec_popf(struct cpu *c, const struct insn *in)
{
    if (cpu_v86(c) && iopl(c) < 3)
        cpu_raise(c, EXC_GP, 0);
    uint32_t mask = eflags_write_mask(c, in->op32);
    if (cpu_v86(c))
        mask &= ~FL_IOPL;
    uint32_t v = pop(c, vsize(in));
    set_eflags(c, v, mask);
}

static void exec_cli_sti(struct cpu *c, bool set)
{
    if (cpu_protected(c) && (cpu_v86(c) ? iopl(c) < 3 : c->cpl > iopl(c)))
        cpu_raise(c, EXC_GP, 0);
    if (set) {
        if (!(c->eflags & FL_IF))
            c->intr_shadow = true;
        c->eflags |= FL_IF;
    } else {
        c->eflags &= ~FL_IF;
    }
}

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

static void exec_bound(struct cpu *c, const struct insn *in)
{
    require_mem(c, in);
    int size = vsize(in);
    int32_t idx = (int32_t)sext(reg_read(c, in->reg, size), size);
    int32_t lo = (int32_t)sext(mem_at(c, in, 0, size), size);
    int32_t hi = (int32_t)sext(mem_at(c, in, size, size), size);
    if (idx < lo || idx > hi)
        cpu_raise_noerr(c, EXC_BR);
}

static void exec_arpl(struct cpu *c, const struct insn *in)
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

static void exec_in_out(struct cpu *c, const struct insn *in)
{
    int op = in->op;
    int size = (op & 1) ? vsize(in) : 1;
    uint16_t port = (op & 8) ? (c->r[R_EDX] & 0xffff) : (in->imm & 0xff);
    io_check(c, port, size);
    if (op & 2)
        machine_io_write(c->m, port, reg_read(c, R_EAX, size), size);
    else
        reg_write(c, R_EAX, size, machine_io_read(c->m, port, size));
}

static void exec_0f(struct cpu *c, const struct insn *in)
{
    int op = in->op;
    int size = vsize(in);
    switch (op) {
    case 0x100: exec_group6(c, in); return;
    case 0x101: exec_group7(c, in); return;
    case 0x102: case 0x103: exec_lar_lsl(c, in); return;
    case 0x106: /* CLTS */
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        c->cr0 &= ~CR0_TS;
        return;
    case 0x108: case 0x109: /* INVD / WBINVD: no caches to manage */
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        return;
    case 0x10b: cpu_raise_noerr(c, EXC_UD);
    case 0x118: case 0x119: case 0x11a: case 0x11b: case 0x11c: case 0x11d: case 0x11e: case 0x11f:
        return; /* hint NOPs; the memory operand is not accessed */
    case 0x120: case 0x121: case 0x122: case 0x123: exec_mov_cr_dr(c, in); return;
    case 0x130: { /* WRMSR */
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        uint64_t v = ((uint64_t)c->r[R_EDX] << 32) | c->r[R_EAX];
        if (!cpu_wrmsr(c, c->r[R_ECX], v))
            cpu_raise(c, EXC_GP, 0);
        return;
    }
    case 0x131: { /* RDTSC */
        if ((c->cr4 & CR4_TSD) && c->cpl != 0 && cpu_protected(c))
            cpu_raise(c, EXC_GP, 0);
        uint64_t t = cpu_rdtsc(c);
        c->r[R_EAX] = (uint32_t)t;
        c->r[R_EDX] = t >> 32;
        return;
    }
    case 0x132: { /* RDMSR */
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        uint64_t v;
        if (!cpu_rdmsr(c, c->r[R_ECX], &v))
            cpu_raise(c, EXC_GP, 0);
        c->r[R_EAX] = (uint32_t)v;
        c->r[R_EDX] = v >> 32;
        return;
    }
    case 0x134: exec_sysenter(c); return;
    case 0x135: exec_sysexit(c); return;
    case 0x110: case 0x111: case 0x128: case 0x129: case 0x16f: case 0x17f: fpu_sse_move(c, in); return;
    case 0x1a2: cpu_cpuid(c); return;
    case 0x1ae: fpu_exec(c, in); return;   /* FXSAVE/FXRSTOR; the SSE members are #UD there */
    }
    if (op >= 0x140 && op <= 0x14f) { /* CMOVcc: the source is read even if not moved */
        uint32_t v = rm_read(c, in, size);
        if (alu_cond(c->eflags, op & 15))
            reg_write(c, in->reg, size, v);
        return;
    }
    if (op >= 0x180 && op <= 0x18f) {
        uint32_t t = c->eip + in->imm;
        if (alu_cond(c->eflags, op & 15))
            jump_near(c, t, in->op32);
        return;
    }
    if (op >= 0x190 && op <= 0x19f) {
        rm_write(c, in, 1, alu_cond(c->eflags, op & 15));
        return;
    }
    if (op >= 0x1c8 && op <= 0x1cf) {
        uint32_t v = c->r[op & 7];
        c->r[op & 7] = __builtin_bswap32(v);
        return;
    }
    switch (op) {
    case 0x1a0: push(c, c->seg[SEG_FS].sel, size); return;
    case 0x1a8: push(c, c->seg[SEG_GS].sel, size); return;
    case 0x1a1: pop_seg(c, SEG_FS, size); return;
    case 0x1a9: pop_seg(c, SEG_GS, size); return;
    case 0x1a3: exec_bt_reg(c, in, 0); return;
    case 0x1ab: exec_bt_reg(c, in, 1); return;
    case 0x1b3: exec_bt_reg(c, in, 2); return;
    case 0x1bb: exec_bt_reg(c, in, 3); return;
    case 0x1ba: {
        if (in->reg < 4)
            cpu_raise_noerr(c, EXC_UD);
        int bop = in->reg - 4;
        struct opnd o = rm_opnd(c, in, size, bop != 0);
        uint32_t v = opnd_read(c, &o);
        uint32_t nv = alu_bit(&c->eflags, bop, v, in->imm & (size * 8 - 1), size);
        if (bop)
            opnd_write(c, &o, nv);
        return;
    }
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad: {
        uint32_t cnt = (op & 1) ? (c->r[R_ECX] & 0xff) : (in->imm & 0xff);
        struct opnd o = rm_opnd(c, in, size, true);
        uint32_t v = opnd_read(c, &o), src = reg_read(c, in->reg, size);
        uint32_t r = op < 0x1a8 ? alu_shld(&c->eflags, v, src, cnt, size) : alu_shrd(&c->eflags, v, src, cnt, size);
        opnd_write(c, &o, r);
        return;
    }
    case 0x1af:
        reg_write(c, in->reg, size, alu_imul_trunc(&c->eflags, reg_read(c, in->reg, size), rm_read(c, in, size), size));
        return;
    case 0x1b0: case 0x1b1: {
        int sz = wsize(in, op);
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
        return;
    }
    case 0x1b2: load_far_pointer(c, in, SEG_SS); return;
    case 0x1b4: load_far_pointer(c, in, SEG_FS); return;
    case 0x1b5: load_far_pointer(c, in, SEG_GS); return;
    case 0x1b6: reg_write(c, in->reg, size, rm_read(c, in, 1)); return;
    case 0x1b7: reg_write(c, in->reg, size, rm_read(c, in, 2)); return;
    case 0x1be: reg_write(c, in->reg, size, sext(rm_read(c, in, 1), 1)); return;
    case 0x1bf: reg_write(c, in->reg, size, sext(rm_read(c, in, 2), 2)); return;
    case 0x1bc: case 0x1bd: {
        uint32_t src = rm_read(c, in, size);
        uint32_t dst = reg_read(c, in->reg, size);
        uint32_t r = op == 0x1bc ? alu_bsf(&c->eflags, dst, src, size) : alu_bsr(&c->eflags, dst, src, size);
        reg_write(c, in->reg, size, r);
        return;
    }
    case 0x1c0: case 0x1c1: {
        int sz = wsize(in, op);
        struct opnd o = rm_opnd(c, in, sz, true);
        uint32_t dst = opnd_read(c, &o), src = reg_read(c, in->reg, sz);
        uint32_t sum = alu_binop(&c->eflags, ALU_ADD, dst, src, sz);
        reg_write(c, in->reg, sz, dst);
        opnd_write(c, &o, sum);
        return;
    }
    case 0x1c7: exec_cmpxchg8b(c, in); return;
    }
    raise_ud_unimplemented(c, in, "0F opcode");
}

/* ------------------------------------------------------------------ */
/* one instruction                                                      */

void interp_exec(struct cpu *c, const struct insn *in)
{
    int op = in->op;
    int size;
    uint32_t v;

    if (in->invalid)
        raise_ud_unimplemented(c, in, "undefined opcode");
    if ((in->prefixes & PFX_LOCK) && !insn_lock_allowed(in))
        cpu_raise_noerr(c, EXC_UD);
    if (op >= 0x100) {
        exec_0f(c, in);
        return;
    }

    /* ALU ops 00-3F in the regular pattern. */
    if (op < 0x40 && (op & 7) < 6) {
        int aop = op >> 3;
        size = wsize(in, op);
        switch (op & 7) {
        case 0: case 1: {
            struct opnd o = rm_opnd(c, in, size, aop != ALU_CMP);
            uint32_t r = alu_binop(&c->eflags, aop, opnd_read(c, &o), reg_read(c, in->reg, size), size);
            if (aop != ALU_CMP)
                opnd_write(c, &o, r);
            return;
        }
        case 2: case 3: {
            uint32_t r = alu_binop(&c->eflags, aop, reg_read(c, in->reg, size), rm_read(c, in, size), size);
            if (aop != ALU_CMP)
                reg_write(c, in->reg, size, r);
            return;
        }
        default: {
            uint32_t r = alu_binop(&c->eflags, aop, reg_read(c, R_EAX, size), in->imm, size);
            if (aop != ALU_CMP)
                reg_write(c, R_EAX, size, r);
            return;
        }
        }
    }
    if (op >= 0x40 && op < 0x50) {
        size = vsize(in);
        v = reg_read(c, op & 7, size);
        reg_write(c, op & 7, size, op < 0x48 ? alu_inc(&c->eflags, v, size) : alu_dec(&c->eflags, v, size));
        return;
    }
    if (op >= 0x50 && op < 0x58) {
        push(c, reg_read(c, op & 7, vsize(in)), vsize(in));
        return;
    }
    if (op >= 0x58 && op < 0x60) {
        size = vsize(in);
        v = pop(c, size);
        reg_write(c, op & 7, size, v);
        return;
    }
    if (op >= 0x70 && op < 0x80) {
        if (alu_cond(c->eflags, op & 15))
            jump_near(c, c->eip + sext(in->imm, 1), in->op32);
        return;
    }
    if (op >= 0x91 && op < 0x98) {
        size = vsize(in);
        v = reg_read(c, op & 7, size);
        reg_write(c, op & 7, size, reg_read(c, R_EAX, size));
        reg_write(c, R_EAX, size, v);
        return;
    }
    if (op >= 0xb0 && op < 0xb8) {
        cpu_set_r8(c, op & 7, in->imm);
        return;
    }
    if (op >= 0xb8 && op < 0xc0) {
        reg_write(c, op & 7, vsize(in), in->imm);
        return;
    }
    if (op >= 0xd8 && op <= 0xdf) {
        fpu_exec(c, in);
        return;
    }

    switch (op) {
    case 0x06: case 0x0e: case 0x16: case 0x1e:
        push(c, c->seg[op >> 3].sel, vsize(in));
        return;
    case 0x07: case 0x17: case 0x1f:
        pop_seg(c, op >> 3, vsize(in));
        return;
    case 0x27: { uint8_t al = c->r[R_EAX]; alu_daa(&c->eflags, &al); cpu_set_r8(c, 0, al); return; }
    case 0x2f: { uint8_t al = c->r[R_EAX]; alu_das(&c->eflags, &al); cpu_set_r8(c, 0, al); return; }
    case 0x37: { uint16_t ax = c->r[R_EAX]; alu_aaa(&c->eflags, &ax); cpu_set_r16(c, 0, ax); return; }
    case 0x3f: { uint16_t ax = c->r[R_EAX]; alu_aas(&c->eflags, &ax); cpu_set_r16(c, 0, ax); return; }
    case 0x60: exec_pusha(c, in); return;
    case 0x61: exec_popa(c, in); return;
    case 0x62: exec_bound(c, in); return;
    case 0x63: exec_arpl(c, in); return;
    case 0x68: push(c, in->imm, vsize(in)); return;
    case 0x6a: push(c, sext(in->imm, 1), vsize(in)); return;
    case 0x69: case 0x6b: {
        size = vsize(in);
        uint32_t imm = op == 0x6b ? sext(in->imm, 1) : in->imm;
        reg_write(c, in->reg, size, alu_imul_trunc(&c->eflags, rm_read(c, in, size), imm, size));
        return;
    }
    case 0x6c: case 0x6d: case 0x6e: case 0x6f:
    case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
        exec_string(c, in);
        return;
    case 0x80: case 0x81: case 0x82: case 0x83: {
        size = wsize(in, op);
        uint32_t imm = op == 0x83 ? sext(in->imm, 1) : in->imm;
        struct opnd o = rm_opnd(c, in, size, in->reg != ALU_CMP);
        uint32_t r = alu_binop(&c->eflags, in->reg, opnd_read(c, &o), imm, size);
        if (in->reg != ALU_CMP)
            opnd_write(c, &o, r);
        return;
    }
    case 0x84: case 0x85:
        size = wsize(in, op);
        alu_binop(&c->eflags, ALU_AND, rm_read(c, in, size), reg_read(c, in->reg, size), size);
        return;
    case 0x86: case 0x87: {
        size = wsize(in, op);
        struct opnd o = rm_opnd(c, in, size, true);
        v = opnd_read(c, &o);
        opnd_write(c, &o, reg_read(c, in->reg, size));
        reg_write(c, in->reg, size, v);
        return;
    }
    case 0x88: case 0x89:
        size = wsize(in, op);
        rm_write(c, in, size, reg_read(c, in->reg, size));
        return;
    case 0x8a: case 0x8b:
        size = wsize(in, op);
        reg_write(c, in->reg, size, rm_read(c, in, size));
        return;
    case 0x8c:
        if (in->reg >= SEG_COUNT)
            cpu_raise_noerr(c, EXC_UD);
        if (in->mod == 3)
            reg_write(c, in->rm, vsize(in), c->seg[in->reg].sel);
        else
            rm_write(c, in, 2, c->seg[in->reg].sel);
        return;
    case 0x8d:
        require_mem(c, in);
        reg_write(c, in->reg, vsize(in), insn_ea_offset(c, in));
        return;
    case 0x8e:
        if (in->reg >= SEG_COUNT || in->reg == SEG_CS)
            cpu_raise_noerr(c, EXC_UD);
        seg_load(c, in->reg, rm_read(c, in, 2));
        if (in->reg == SEG_SS)
            c->intr_shadow = true;
        return;
    case 0x8f: {
        /* The memory address is computed with ESP already incremented. */
        size = vsize(in);
        if (in->reg != 0)
            cpu_raise_noerr(c, EXC_UD);
        v = stack_peek(c, 0, size);
        set_sp(c, c->r[R_ESP] + size);
        if (in->mod == 3) {
            reg_write(c, in->rm, size, v);
        } else {
            struct opnd o = rm_opnd(c, in, size, true);
            opnd_write(c, &o, v);
        }
        return;
    }
    case 0x90: /* NOP, and PAUSE with F3 */
        return;
    case 0x98:
        if (in->op32)
            c->r[R_EAX] = sext(c->r[R_EAX], 2);
        else
            cpu_set_r16(c, R_EAX, sext(c->r[R_EAX], 1));
        return;
    case 0x99:
        if (in->op32)
            c->r[R_EDX] = (c->r[R_EAX] & 0x80000000u) ? 0xffffffffu : 0;
        else
            cpu_set_r16(c, R_EDX, (c->r[R_EAX] & 0x8000) ? 0xffff : 0);
        return;
    case 0x9a: do_far_call(c, in->imm2, in->imm, in->op32, c->eip); return;
    case 0x9b: fpu_wait(c); return;
    case 0x9c: exec_pushf(c, in); return;
    case 0x9d: exec_popf(c, in); return;
    case 0x9e:
        c->eflags = (c->eflags & ~0xd5u) | ((c->r[R_EAX] >> 8) & 0xd5) | 2;
        return;
    case 0x9f:
        cpu_set_r8(c, 4, (c->eflags & 0xd7) | 2);
        return;
    case 0xa0: case 0xa1: {
        size = wsize(in, op);
        reg_write(c, R_EAX, size, vm_read(c, src_seg(in), in->imm, size));
        return;
    }
    case 0xa2: case 0xa3:
        size = wsize(in, op);
        vm_write(c, src_seg(in), in->imm, size, reg_read(c, R_EAX, size));
        return;
    case 0xa8: case 0xa9:
        size = wsize(in, op);
        alu_binop(&c->eflags, ALU_AND, reg_read(c, R_EAX, size), in->imm, size);
        return;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        size = wsize(in, op);
        uint32_t cnt = op >= 0xd2 ? (c->r[R_ECX] & 0xff) : op >= 0xd0 ? 1 : (in->imm & 0xff);
        struct opnd o = rm_opnd(c, in, size, true);
        opnd_write(c, &o, alu_shift(&c->eflags, in->reg, opnd_read(c, &o), cnt, size));
        return;
    }
    case 0xc2: case 0xc3: {
        size = vsize(in);
        uint32_t t = stack_peek(c, 0, size);
        jump_near(c, t, in->op32);
        set_sp(c, c->r[R_ESP] + size + (op == 0xc2 ? in->imm : 0));
        return;
    }
    case 0xc4: load_far_pointer(c, in, SEG_ES); return;
    case 0xc5: load_far_pointer(c, in, SEG_DS); return;
    case 0xc6: case 0xc7:
        if (in->reg != 0)
            cpu_raise_noerr(c, EXC_UD);
        rm_write(c, in, wsize(in, op), in->imm);
        return;
    case 0xc8: exec_enter(c, in); return;
    case 0xc9: exec_leave(c, in); return;
    case 0xca: do_far_ret(c, in->op32, in->imm); return;
    case 0xcb: do_far_ret(c, in->op32, 0); return;
    case 0xcc: do_interrupt(c, EXC_BP, INT_BP, false, 0, c->eip); return;
    case 0xcd: do_interrupt(c, in->imm & 0xff, INT_SOFT, false, 0, c->eip); return;
    case 0xce:
        if (c->eflags & FL_OF)
            do_interrupt(c, EXC_OF, INT_INTO, false, 0, c->eip);
        return;
    case 0xcf: do_iret(c, in->op32); return;
    case 0xd4: {
        uint16_t ax = c->r[R_EAX];
        if (!alu_aam(&c->eflags, &ax, in->imm))
            cpu_raise_noerr(c, EXC_DE);
        cpu_set_r16(c, R_EAX, ax);
        return;
    }
    case 0xd5: { uint16_t ax = c->r[R_EAX]; alu_aad(&c->eflags, &ax, in->imm); cpu_set_r16(c, 0, ax); return; }
    case 0xd6: cpu_set_r8(c, 0, (c->eflags & FL_CF) ? 0xff : 0); return;
    case 0xd7: {
        uint32_t off = (in->addr32 ? c->r[R_EBX] : (c->r[R_EBX] & 0xffff)) + (c->r[R_EAX] & 0xff);
        cpu_set_r8(c, 0, vm_read(c, src_seg(in), in->addr32 ? off : (off & 0xffff), 1));
        return;
    }
    case 0xe0: case 0xe1: case 0xe2: {
        uint32_t cnt = count_reg(c, in) - 1;
        set_count(c, in, cnt);
        bool zf = c->eflags & FL_ZF;
        bool take = cnt != 0 && (op == 0xe2 || (op == 0xe1 ? zf : !zf));
        if (take)
            jump_near(c, c->eip + sext(in->imm, 1), in->op32);
        return;
    }
    case 0xe3:
        if (count_reg(c, in) == 0)
            jump_near(c, c->eip + sext(in->imm, 1), in->op32);
        return;
    case 0xe4: case 0xe5: case 0xe6: case 0xe7: case 0xec: case 0xed: case 0xee: case 0xef:
        exec_in_out(c, in);
        return;
    case 0xe8: {
        size = vsize(in);
        uint32_t t = c->eip + in->imm;
        if (!in->op32)
            t &= 0xffff;
        if (t > c->seg[SEG_CS].limit)
            cpu_raise(c, EXC_GP, 0);
        push(c, c->eip, size);
        c->eip = t;
        return;
    }
    case 0xe9: jump_near(c, c->eip + in->imm, in->op32); return;
    case 0xea: do_far_jmp(c, in->imm2, in->imm, in->op32, c->eip); return;
    case 0xeb: jump_near(c, c->eip + sext(in->imm, 1), in->op32); return;
    case 0xf1: do_interrupt(c, EXC_DB, INT_ICEBP, false, 0, c->eip); return;
    case 0xf4:
        require_cpl0(c);
        if (cpu_v86(c))
            cpu_raise(c, EXC_GP, 0);
        c->halted = true;
        return;
    case 0xf5: c->eflags ^= FL_CF; return;
    case 0xf6: case 0xf7: exec_group3(c, in); return;
    case 0xf8: c->eflags &= ~FL_CF; return;
    case 0xf9: c->eflags |= FL_CF; return;
    case 0xfa: exec_cli_sti(c, false); return;
    case 0xfb: exec_cli_sti(c, true); return;
    case 0xfc: c->eflags &= ~FL_DF; return;
    case 0xfd: c->eflags |= FL_DF; return;
    case 0xfe: case 0xff: exec_group5(c, in); return;
    }
    raise_ud_unimplemented(c, in, "opcode");
}

/* ------------------------------------------------------------------ */
/* fetch and the run loop                                              */

/* Fetch and decode at CS:EIP. Raises #GP (CS limit), #PF, or #GP for > 15 bytes. */
static void fetch_decode(struct cpu *c, struct insn *in)
{
    const struct seg *cs = &c->seg[SEG_CS];
    uint32_t eip = c->eip;
    uint32_t lin = cs->base + eip;
    uint32_t phys;
    const uint8_t *p = mem_code_ptr(c, lin, &phys);
    int in_page = PAGE_SIZE - (lin & 0xfff);
    /* (64 bits: a 4 GiB segment has 2^32 bytes of room at EIP 0) */
    uint64_t seg_room = eip <= cs->limit ? (uint64_t)cs->limit - eip + 1 : 0;
    if (seg_room == 0)
        cpu_raise(c, EXC_GP, 0);
    uint8_t buf[INSN_MAX_LEN];
    int avail = in_page < INSN_MAX_LEN ? in_page : INSN_MAX_LEN;
    if (seg_room < (uint64_t)avail)
        avail = seg_room;
    if (!p) {
        /* Code in MMIO/ROM-less space: fetch byte by byte through the bus. */
        for (int k = 0; k < avail; k++)
            buf[k] = physmem_read(c->m->pm, phys + k, 1);
        p = buf;
    }
    int n = decode(p, avail, cpu_code32(c), in);
    if (n == DECODE_NEED_MORE) {
        if (avail == (int)seg_room && seg_room < INSN_MAX_LEN)
            cpu_raise(c, EXC_GP, 0);
        if (avail >= INSN_MAX_LEN)
            cpu_raise(c, EXC_GP, 0);
        /* Crosses into the next page: translate it (may #PF) and retry. */
        if (p != buf)
            memcpy(buf, p, avail);
        int more = INSN_MAX_LEN - avail;
        if ((uint32_t)(avail + more) > seg_room)
            more = seg_room - avail;
        for (int k = 0; k < more; k++)
            buf[avail + k] = mem_read(c, lin + avail + k, 1, mmu_user(c));
        n = decode(buf, avail + more, cpu_code32(c), in);
        if (n == DECODE_NEED_MORE)
            cpu_raise(c, EXC_GP, 0);
    }
    if (n == DECODE_TOO_LONG)
        cpu_raise(c, EXC_GP, 0);
}

void interp_deliver_pending(struct cpu *c)
{
    c->eip = c->eip_start;
    c->r[R_ESP] = c->esp_start;
    trace_exception(c, c->exc_vector, c->exc_error);
    do_interrupt(c, c->exc_vector, INT_EXC, c->exc_has_error, c->exc_error, c->eip);
    c->fault_depth = 0;
}

/* An NMI waits for the IRET that ends the handler of the one before. */
static bool nmi_ready(struct cpu *c)
{
    return *c->m->nmi_line && !c->nmi_blocked && !c->intr_shadow;
}

/* Asked at every block boundary: two flags, no call. */
bool interp_interrupt_ready(struct cpu *c)
{
    return ((c->eflags & FL_IF) && !c->intr_shadow && *c->m->intr_line) || nmi_ready(c);
}

/* Delivers the NMI or external interrupt interp_interrupt_ready saw, NMI first. */
static void take_interrupt(struct cpu *c)
{
    c->halted = false;
    if (nmi_ready(c)) {
        machine_nmi_ack(c->m);
        c->nmi_blocked = true;
        cpu_deliver_interrupt(c, EXC_NMI);
        return;
    }
    cpu_deliver_interrupt(c, machine_intr_ack(c->m));
}

void cpu_deliver_interrupt(struct cpu *c, int vector)
{
    c->eip_start = c->eip;
    c->esp_start = c->r[R_ESP];
    trace_interrupt(c, vector);
    do_interrupt(c, vector, INT_EXT, false, 0, c->eip);
}

void interp_step(struct cpu *c)
{
    struct insn in;
    c->eip_start = c->eip;
    c->esp_start = c->r[R_ESP];
    bool tf = c->eflags & FL_TF;
    c->intr_shadow = false;
    fetch_decode(c, &in);
    if (c->trace)
        trace_insn(c, &in);
    uint32_t next = c->eip + in.len;
    c->eip = cpu_code32(c) ? next : (next & 0xffff);
    interp_exec(c, &in);
    c->budget--;
    if (tf && !c->halted) {
        c->dr[6] |= 0x4000;
        c->eip_start = c->eip;
        c->esp_start = c->r[R_ESP];
        do_interrupt(c, EXC_DB, INT_EXC, false, 0, c->eip);
    }
}

void cpu_run_loop(struct cpu *c, void (*step)(void *opaque), void *opaque)
{
    volatile int unwound = setjmp(c->fault_jmp);
    if (unwound == 2)
        return;                 /* triple fault: the machine has been reset */
    if (unwound == 1) {
        c->budget--;
        interp_deliver_pending(c);
    }
    while (c->budget > 0) {
        if (interp_interrupt_ready(c)) {
            take_interrupt(c);
            continue;
        }
        if (c->halted || c->m->stop)
            return;
        step(opaque);
    }
}

static void interp_step_opaque(void *c)
{
    interp_step(c);
}

void interp_run(struct cpu *c)
{
    cpu_run_loop(c, interp_step_opaque, c);
}
