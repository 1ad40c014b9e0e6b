/*
 * The string instructions (MOVS CMPS STOS LODS SCAS INS OUTS): one
 * iteration at a time, or with REP, runs of iterations straight through host
 * memory where the pages allow it (see string_run), yielding every
 * REP_CHUNK iterations so interrupts and timers are not starved.
 */
#include "monitor/interp_internal.h"
#include "monitor/alu.h"
#include "monitor/databp.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

/* REP string instructions yield after this many iterations so interrupts
 * and timers are not starved by a long copy. */
#define REP_CHUNK 4096

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
        /* A data breakpoint traps after the element that hit it, with EIP
         * still at the instruction when elements are left. */
        if (databp_hit(c->databp))
            break;
    }
    /* Not finished: run this instruction again after giving interrupts a chance. */
    c->eip = c->eip_start;
}

HANDLER(string)
{
    exec_string(c, in);
}
