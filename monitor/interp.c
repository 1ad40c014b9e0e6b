/*
 * The reference interpreter: fetch, decode (monitor/decode.c), execute.
 * Execution is one small handler per instruction, h_NAME below, reached
 * through the opcode table's handler column (decode.h: INTERP_HANDLERS).
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
/* the handlers: one per instruction (or per family sharing one body), */
/* named by the opcode table's handler column (decode.h)               */

#define HANDLER(name) static void h_##name(struct cpu *c, const struct insn *in)

HANDLER(unimpl)
{
    raise_ud_unimplemented(c, in, in->op >= 0x100 ? "0F opcode" : "opcode");
}

/* A form the opcode defines as #UD (a group member, UD2): not logged. */
HANDLER(ud)
{
    cpu_raise_noerr(c, EXC_UD);
}

HANDLER(string)
{
    exec_string(c, in);
}

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

/* ---- groups 4 and 5 (FE FF) ---- */

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

/* ------------------------------------------------------------------ */
/* one instruction                                                      */

/* The opcode table's answer; kept as a name for bt/native.c's callers. */
bool insn_lock_allowed(const struct insn *in)
{
    return insn_lockable(in);
}

typedef void (*interp_handler_fn)(struct cpu *c, const struct insn *in);

#define HANDLER_ENTRY(name) [H_##name] = h_##name,
static const interp_handler_fn handlers[H_COUNT] = { INTERP_HANDLERS(HANDLER_ENTRY) };

/* The opcode table's row (its group member's) names the handler. */
void interp_exec(struct cpu *c, const struct insn *in)
{
    if (in->invalid)
        raise_ud_unimplemented(c, in, "undefined opcode");
    const struct opinfo *oi = opinfo(in);
    if ((in->prefixes & PFX_LOCK) && !(insn_is_mem(in) && (oi->attr & OPA_LOCK)))
        cpu_raise_noerr(c, EXC_UD);
    handlers[oi->handler](c, in);
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
            buf[avail + k] = mem_fetch_byte(c, lin + avail + k, mmu_user(c));
        n = decode(buf, avail + more, cpu_code32(c), in);
        if (n == DECODE_NEED_MORE)
            cpu_raise(c, EXC_GP, 0);
    }
    if (n == DECODE_TOO_LONG)
        cpu_raise(c, EXC_GP, 0);
}

/* The same exception at the same address this many times in a row, with
 * no interrupt taken, is a guest livelock (a fault handler that returns
 * to the fault without fixing its cause). */
#define LIVELOCK_REPEATS 1000000u

/* Reported once, like the halt detector's message; the run goes on. */
static void watch_for_livelock(struct cpu *c)
{
    uint32_t where = c->seg[SEG_CS].base + c->eip_start;
    if (c->exc_vector != c->repeat_vector || where != c->repeat_addr) {
        c->repeat_vector = c->exc_vector;
        c->repeat_addr = where;
        c->repeat_count = 1;
        return;
    }
    if (++c->repeat_count != LIVELOCK_REPEATS || c->livelock_reported)
        return;
    c->livelock_reported = true;
    fprintf(stderr, "retrovisor: guest livelock: exception %d at %04x:%08x (linear %08x) recurred %u times in a row "
            "with no interrupt taken; the run goes on\n", c->exc_vector, c->seg[SEG_CS].sel, c->eip_start, where,
            LIVELOCK_REPEATS);
}

void interp_deliver_pending(struct cpu *c)
{
    c->eip = c->eip_start;
    c->r[R_ESP] = c->esp_start;
    watch_for_livelock(c);
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
    c->repeat_count = 0;
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
