/*
 * The reference interpreter: fetch, decode (monitor/decode.c), execute.
 * Execution is one small handler per instruction, h_NAME, reached through
 * the opcode table's handler column (decode.h: INTERP_HANDLERS); the
 * handlers live in interp_*.c by what they do (interp_internal.h lists them).
 * Arithmetic comes from monitor/alu.c, cross-segment transfers from
 * transfer.c, segmentation from segment.c, system registers from sysregs.c.
 */
#include "monitor/interp_internal.h"
#include "monitor/alu.h"
#include "monitor/databp.h"
#include "monitor/machine.h"
#include "monitor/trace.h"

#include <stdio.h>
#include <string.h>

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
/* the handlers: one per instruction (or per family sharing one body), */
/* named by the opcode table's handler column (decode.h)               */

HANDLER(unimpl)
{
    raise_ud_unimplemented(c, in, in->op >= 0x100 ? "0F opcode" : "opcode");
}

/* A form the opcode defines as #UD (a group member, UD2): not logged. */
HANDLER(ud)
{
    cpu_raise_noerr(c, EXC_UD);
}

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
    /* Data breakpoints are traps of completed instructions: what the
     * faulting one touched before its fault, and the frame pushed for it,
     * match nothing. */
    databp_forget_hit(c->databp);
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
