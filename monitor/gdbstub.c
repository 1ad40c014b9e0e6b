/*
 * The gdb stub (see gdbstub.h).  Two threads meet here:
 *  - the socket thread reads packets, answers acknowledgements and Ctrl-C,
 *    and hands every packet to the machine's thread with machine_call;
 *  - the machine's thread runs those handlers between slices, and, while
 *    gdb single-steps or has breakpoints or watchpoints, runs the slices
 *    itself (gdbstub_run_slice), checking each instruction's linear address
 *    against the breakpoint table before it executes.  Breakpoints are
 *    never written into guest memory; translated blocks end before them
 *    (bt_set_breakpoints).  Watchpoints are the CPU's data breakpoints
 *    (monitor/databp.h): the MMU notes the accesses that match them, and
 *    the interpreter runs while any is set, so that the stop comes right
 *    after the instruction that made the access.
 * A stop pauses the machine with reason "debug"; the run-state listener
 * turns it into a stop reply, which the socket thread sends.
 * Addresses in packets are linear (segment base + offset), as QEMU's are,
 * and are translated through the guest's page tables without setting
 * accessed/dirty bits or touching device memory.
 */
#include "monitor/gdbstub.h"
#include "monitor/gdbpacket.h"
#include "monitor/control.h"
#include "monitor/interp.h"
#include "monitor/databp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "bt/bt.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BREAKPOINTS 64
/* An 'm' reply is hex: two characters a byte in one packet. */
#define MAX_MEM_XFER (GDB_MAX_PACKET / 2)
#define GDB_SIGINT 2
#define GDB_SIGTRAP 5

struct gdbstub {
    struct machine *m;
    int listen_fd;
    int wake[2];                   /* machine thread / main -> socket thread: 'S' stop, 'Q' quit */
    pthread_t thread;
    atomic_bool quit;

    /* Machine thread only (packet handlers, the run slice, the listener). */
    uint32_t bp[MAX_BREAKPOINTS];
    int nbp;
    struct databp_set watch;       /* the CPU's data breakpoints (cpu.databp points here) */
    bool step_pending;             /* execute one instruction, then stop */
    bool waiting;                  /* gdb resumed the guest and waits for a stop reply */
    bool skip_valid;               /* the first instruction after a resume ignores a breakpoint at its own address */
    uint32_t skip_lin;
    int hit_sig;                   /* set by the run slice when it stops */
    int last_sig;                  /* the signal of the last stop ('?') */
    uint32_t hit_watch_type;       /* the last stop's watchpoint (GDB_POINT_WATCH_*), or 0 */
    uint32_t hit_watch_addr;

    /* Handed from the machine thread (or main) to the socket thread. */
    pthread_mutex_t mu;
    char stop_reply[64];
    bool stop_ready;

    /* Socket thread only. */
    struct gdb_rx rx;
    char last[2 * GDB_MAX_PACKET + 8];   /* the last framed reply, for a '-' */
    size_t last_len;
};

/* ---- registers ---- */

/* Register numbers of the target description below. */
enum {
    REG_EAX = 0, REG_EIP = 8, REG_EFLAGS = 9, REG_CS = 10, REG_GS = 15,
    REG_ST0 = 16, REG_FCTRL = 24, REG_FSTAT, REG_FTAG, REG_FISEG, REG_FIOFF, REG_FOSEG, REG_FOOFF, REG_FOP,
    REG_CR0 = 32, REG_CR2, REG_CR3, REG_CR4, REG_COUNT
};
/* gdb's order of the segment registers. */
static const int gdb_seg[6] = { SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS };

static const char target_xml[] =
    "<?xml version=\"1.0\"?>\n"
    "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
    "<target version=\"1.0\">\n"
    "<architecture>i386</architecture>\n"
    "<feature name=\"org.gnu.gdb.i386.core\">\n"
    "<flags id=\"i386_eflags\" size=\"4\">\n"
    "<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>\n"
    "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>\n"
    "<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>\n"
    "<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>\n"
    "<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>\n"
    "<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>\n"
    "<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>\n"
    "<field name=\"VIF\" start=\"19\" end=\"19\"/><field name=\"VIP\" start=\"20\" end=\"20\"/>\n"
    "<field name=\"ID\" start=\"21\" end=\"21\"/>\n"
    "</flags>\n"
    "<reg name=\"eax\" bitsize=\"32\" type=\"int32\" regnum=\"0\"/>\n"
    "<reg name=\"ecx\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"edx\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ebx\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"esp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
    "<reg name=\"ebp\" bitsize=\"32\" type=\"data_ptr\"/>\n"
    "<reg name=\"esi\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"edi\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"eip\" bitsize=\"32\" type=\"code_ptr\"/>\n"
    "<reg name=\"eflags\" bitsize=\"32\" type=\"i386_eflags\"/>\n"
    "<reg name=\"cs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ss\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"ds\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"es\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"fs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"gs\" bitsize=\"32\" type=\"int32\"/>\n"
    "<reg name=\"st0\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st1\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st2\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st3\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st4\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st5\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st6\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"st7\" bitsize=\"80\" type=\"i387_ext\"/>\n"
    "<reg name=\"fctrl\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fstat\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"ftag\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fiseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fioff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"foseg\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fooff\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "<reg name=\"fop\" bitsize=\"32\" type=\"int\" group=\"float\"/>\n"
    "</feature>\n"
    "<feature name=\"org.retrovisor.i386.system\">\n"
    "<reg name=\"cr0\" bitsize=\"32\" type=\"int32\" regnum=\"32\" group=\"system\"/>\n"
    "<reg name=\"cr2\" bitsize=\"32\" type=\"int32\" group=\"system\"/>\n"
    "<reg name=\"cr3\" bitsize=\"32\" type=\"int32\" group=\"system\"/>\n"
    "<reg name=\"cr4\" bitsize=\"32\" type=\"int32\" group=\"system\"/>\n"
    "</feature>\n"
    "</target>\n";

static int reg_size(int n)
{
    return n >= REG_ST0 && n < REG_FCTRL ? 10 : 4;
}

static void put32(uint8_t *out, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        out[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t get32(const uint8_t *in)
{
    return in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

static long double *st_reg(struct cpu *c, int i)
{
    return &c->fpu.st[(c->fpu.top + i) & 7];
}

/* Register n's bytes as gdb expects them (little-endian); returns the size. */
static int read_reg(struct cpu *c, int n, uint8_t *out)
{
    uint32_t v;
    if (n < 8)
        v = c->r[n];
    else if (n == REG_EIP)
        v = c->eip;
    else if (n == REG_EFLAGS)
        v = c->eflags;
    else if (n <= REG_GS)
        v = c->seg[gdb_seg[n - REG_CS]].sel;
    else if (n < REG_FCTRL) {
        /* The host's long double is the x87's 80-bit format in its first ten bytes. */
        memcpy(out, st_reg(c, n - REG_ST0), 10);
        return 10;
    } else {
        switch (n) {
        case REG_FCTRL: v = c->fpu.cw; break;
        case REG_FSTAT: v = fpu_status_word(c); break;
        case REG_FTAG: v = c->fpu.tw; break;
        case REG_FISEG: v = c->fpu.fcs; break;
        case REG_FIOFF: v = c->fpu.fip; break;
        case REG_FOSEG: v = c->fpu.fds; break;
        case REG_FOOFF: v = c->fpu.fdp; break;
        case REG_FOP: v = c->fpu.fop; break;
        case REG_CR0: v = c->cr0; break;
        case REG_CR2: v = c->cr2; break;
        case REG_CR3: v = c->cr3; break;
        default: v = c->cr4; break;
        }
    }
    put32(out, v);
    return 4;
}

/* Write register n.  Segment and control registers change only where no
 * descriptor or mode check is involved: a segment register in real or
 * virtual-8086 mode, anything to the value it has already (so that a 'G'
 * of unchanged registers succeeds). */
static bool write_reg(struct cpu *c, int n, const uint8_t *in)
{
    uint8_t now[10];
    read_reg(c, n, now);
    if (!memcmp(now, in, reg_size(n)))
        return true;
    uint32_t v = get32(in);
    if (n < 8) {
        c->r[n] = v;
    } else if (n == REG_EIP) {
        c->eip = v;
    } else if (n == REG_EFLAGS) {
        /* VM changes the mode: only the guest's IRET or task switch may do it. */
        c->eflags = (v & ~FL_VM) | (c->eflags & FL_VM) | 0x2;
    } else if (n <= REG_GS) {
        if (cpu_protected(c) && !cpu_v86(c))
            return false;
        seg_load_real(c, gdb_seg[n - REG_CS], (uint16_t)v);
    } else if (n < REG_FCTRL) {
        long double x = 0;
        memcpy(&x, in, 10);
        *st_reg(c, n - REG_ST0) = x;
    } else if (n == REG_FCTRL) {
        c->fpu.cw = (uint16_t)v;
    } else if (n == REG_FSTAT) {
        c->fpu.sw = (uint16_t)(v & ~0x3800u);
        c->fpu.top = (v >> 11) & 7;
    } else if (n == REG_FTAG) {
        c->fpu.tw = (uint16_t)v;
    } else if (n == REG_FISEG) {
        c->fpu.fcs = (uint16_t)v;
    } else if (n == REG_FIOFF) {
        c->fpu.fip = v;
    } else if (n == REG_FOSEG) {
        c->fpu.fds = (uint16_t)v;
    } else if (n == REG_FOOFF) {
        c->fpu.fdp = v;
    } else if (n == REG_FOP) {
        c->fpu.fop = (uint16_t)v;
    } else {
        return false;           /* control registers are read-only from gdb */
    }
    return true;
}

/* ---- guest memory by linear address, without side effects ---- */

static bool phys_read32(struct physmem *pm, uint32_t pa, uint32_t *v)
{
    const uint8_t *page = pm->rd[pa >> 12];
    if (!page || (pa & 0xfff) > PAGE_SIZE - 4)
        return false;
    *v = get32(page + (pa & 0xfff));
    return true;
}

/* The page walk of monitor/mmu.c, reading the tables only: no accessed or
 * dirty bit is set and no fault is raised.  False when lin is not mapped. */
static bool linear_to_phys(struct machine *m, uint32_t lin, uint32_t *pa)
{
    struct cpu *c = &m->cpu;
    uint32_t p = lin;
    if (c->cr0 & CR0_PG) {
        uint32_t pde, pte;
        if (!phys_read32(m->pm, (c->cr3 & PAGE_MASK) + (lin >> 22) * 4, &pde) || !(pde & 1))
            return false;
        if ((pde & 0x80) && (c->cr4 & CR4_PSE)) {
            p = (pde & 0xffc00000u) | (lin & 0x3fffff);
        } else {
            if (!phys_read32(m->pm, (pde & PAGE_MASK) + ((lin >> 12) & 0x3ff) * 4, &pte) || !(pte & 1))
                return false;
            p = (pte & PAGE_MASK) | (lin & 0xfff);
        }
    }
    if (!c->a20)
        p &= ~(1u << 20);
    *pa = p;
    return true;
}

/* Host pointer to the byte at lin (RAM, ROM, a mapped framebuffer), for
 * reading or writing; NULL for unmapped pages and device registers. */
static uint8_t *linear_host(struct machine *m, uint32_t lin, bool write, uint32_t *pa)
{
    if (!linear_to_phys(m, lin, pa))
        return NULL;
    uint8_t *page = (write ? m->pm->wr : m->pm->rd)[*pa >> 12];
    return page ? page + (*pa & 0xfff) : NULL;
}

/* Reads up to len bytes at lin; returns how many could be read (stops at
 * the first unmapped byte or the end of the 4 GiB linear space). */
static size_t read_linear(struct machine *m, uint32_t lin, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len && (uint64_t)lin + done <= 0xffffffffu) {
        uint32_t a = lin + (uint32_t)done, pa;
        const uint8_t *p = linear_host(m, a, false, &pa);
        if (!p)
            break;
        size_t chunk = PAGE_SIZE - (a & 0xfff);
        if (chunk > len - done)
            chunk = len - done;
        memcpy(buf + done, p, chunk);
        done += chunk;
    }
    return done;
}

/* All or nothing: every page is checked before a byte is written.  The
 * write goes through physmem_note_write, so translations of the bytes go. */
static bool write_linear(struct machine *m, uint32_t lin, const uint8_t *buf, size_t len)
{
    if (len && (uint64_t)lin + len - 1 > 0xffffffffu)
        return false;
    for (size_t done = 0; done < len;) {
        uint32_t a = lin + (uint32_t)done, pa;
        if (!linear_host(m, a, true, &pa))
            return false;
        done += PAGE_SIZE - (a & 0xfff);
    }
    for (size_t done = 0; done < len;) {
        uint32_t a = lin + (uint32_t)done, pa;
        uint8_t *p = linear_host(m, a, true, &pa);
        size_t chunk = PAGE_SIZE - (a & 0xfff);
        if (chunk > len - done)
            chunk = len - done;
        physmem_note_write(m->pm, pa, chunk);
        memcpy(p, buf + done, chunk);
        done += chunk;
    }
    return true;
}

/* ---- breakpoints and watchpoints (machine thread) ---- */

static bool breakpoint_at(const struct gdbstub *g, uint32_t lin)
{
    for (int k = 0; k < g->nbp; k++)
        if (g->bp[k] == lin)
            return true;
    return false;
}

static bool is_breakpoint(void *opaque, uint32_t lin)
{
    return breakpoint_at(opaque, lin);
}

static bool add_breakpoint(struct gdbstub *g, uint32_t lin)
{
    if (breakpoint_at(g, lin))
        return true;
    if (g->nbp == MAX_BREAKPOINTS)
        return false;
    g->bp[g->nbp++] = lin;
    /* Translations made before may run across it: bt drops them all. */
    if (g->m->bt)
        bt_set_breakpoints(g->m->bt, is_breakpoint, g);
    return true;
}

static void remove_breakpoint(struct gdbstub *g, uint32_t lin)
{
    for (int k = 0; k < g->nbp; k++)
        if (g->bp[k] == lin) {
            g->bp[k] = g->bp[--g->nbp];
            return;
        }
}

/* gdb's watchpoint types and the accesses they stop at, one to one; the
 * last row is also what an unknown type or access set falls back to. */
static const struct {
    uint32_t type;
    uint8_t accesses;
} watch_kinds[] = {
    { GDB_POINT_WATCH_WRITE, DATABP_WRITE },
    { GDB_POINT_WATCH_READ, DATABP_READ },
    { GDB_POINT_WATCH_ACCESS, DATABP_ACCESS },
};
#define WATCH_KINDS (sizeof(watch_kinds) / sizeof(watch_kinds[0]))

static uint8_t watch_accesses(uint32_t type)
{
    size_t k = 0;
    while (k < WATCH_KINDS - 1 && watch_kinds[k].type != type)
        k++;
    return watch_kinds[k].accesses;
}

static uint32_t watch_type(uint8_t accesses)
{
    size_t k = 0;
    while (k < WATCH_KINDS - 1 && watch_kinds[k].accesses != accesses)
        k++;
    return watch_kinds[k].type;
}

static bool add_watchpoint(struct gdbstub *g, uint32_t type, uint32_t addr, uint32_t len)
{
    if (!databp_add(&g->watch, addr, len, watch_accesses(type)))
        return false;
    /* Entries filled before would let accesses to the range skip the MMU's
     * slow paths, where they are noted; refills leave those pages untagged. */
    tlb_flush_page(&g->m->cpu, addr);
    tlb_flush_page(&g->m->cpu, addr + len - 1);
    return true;
}

static void remove_watchpoint(struct gdbstub *g, uint32_t type, uint32_t addr, uint32_t len)
{
    databp_remove(&g->watch, addr, len, watch_accesses(type));
}

/* The instruction just run made an access a watchpoint matches: the stop
 * reply names that watchpoint. */
static bool take_watch_hit(struct gdbstub *g)
{
    if (!databp_hit(&g->watch))
        return false;
    const struct databp *b = &g->watch.bp[g->watch.hit];
    g->hit_watch_type = watch_type(b->on);
    g->hit_watch_addr = b->addr;
    databp_forget_hit(&g->watch);
    return true;
}

static void clear_debug_state(struct gdbstub *g)
{
    g->nbp = 0;
    databp_init(&g->watch);
    g->step_pending = false;
    g->waiting = false;
}

/* ---- stops ---- */

static void wake_socket_thread(struct gdbstub *g, char what)
{
    ssize_t r;
    do
        r = write(g->wake[1], &what, 1);
    while (r < 0 && errno == EINTR);
}

/* gdb waits: its stop reply is ready for the socket thread. */
static void post_stop(struct gdbstub *g)
{
    pthread_mutex_lock(&g->mu);
    gdb_format_stop(g->stop_reply, sizeof(g->stop_reply), g->last_sig, g->hit_watch_type, g->hit_watch_addr);
    g->stop_ready = true;
    pthread_mutex_unlock(&g->mu);
    g->waiting = false;
    wake_socket_thread(g, 'S');
}

static void run_state_changed(void *opaque, bool paused, const char *reason)
{
    struct gdbstub *g = opaque;
    if (paused && g->waiting)
        post_stop(g);
}

static void stop_with(struct gdbstub *g, int sig)
{
    g->last_sig = sig;
    machine_pause(g->m, "debug");
}

/* ---- the run slice (machine thread) ---- */

/* What an interrupt taken before the step pushed is not the step's access. */
static void step_plain(void *opaque)
{
    struct gdbstub *g = opaque;
    databp_forget_hit(&g->watch);
    interp_step(&g->m->cpu);
}

/* A breakpoint at the next instruction's linear address (unless the run
 * was resumed from it) ends the slice before it runs. */
static bool stop_at_breakpoint(struct gdbstub *g)
{
    struct cpu *c = &g->m->cpu;
    uint32_t lin = c->seg[SEG_CS].base + c->eip;
    bool resumed_here = g->skip_valid && lin == g->skip_lin;
    g->skip_valid = false;
    if (resumed_here || !breakpoint_at(g, lin))
        return false;
    g->hit_sig = GDB_SIGTRAP;
    cpu_set_budget(c, 0);
    return true;
}

/* Before each instruction the breakpoint check; after it, an access a
 * watchpoint matches stops the run too (an instruction that faults never
 * gets here: its accesses match nothing, interp_deliver_pending). */
static void step_checked(void *opaque)
{
    struct gdbstub *g = opaque;
    if (stop_at_breakpoint(g))
        return;
    step_plain(g);
    if (take_watch_hit(g)) {
        g->hit_sig = GDB_SIGTRAP;
        cpu_set_budget(&g->m->cpu, 0);
    }
}

/* The same check, then a translated block (which ends before any
 * breakpoint: bt_set_breakpoints), or an instruction bt interprets. */
static void step_checked_bt(void *opaque)
{
    struct gdbstub *g = opaque;
    if (stop_at_breakpoint(g))
        return;
    bt_run_one(g->m->bt);
}

/* Exactly one instruction: no interrupt is taken before it (an interrupt
 * shadow is cheaper than a flag of our own and means the same here), an
 * exception it raises is delivered, so the stop is at the handler.  A
 * halted CPU waits for its interrupt, then the handler's first instruction
 * is the step. */
static void single_step(struct gdbstub *g)
{
    struct cpu *c = &g->m->cpu;
    bool was_halted = c->halted;
    if (!was_halted)
        c->intr_shadow = true;
    uint64_t before = cpu_icount(c);
    cpu_set_budget(c, 1);
    cpu_run_loop(c, step_plain, g);
    if (was_halted && c->halted && cpu_icount(c) == before)
        return;
    g->step_pending = false;
    take_watch_hit(g);
    stop_with(g, GDB_SIGTRAP);
}

bool gdbstub_run_slice(struct gdbstub *g)
{
    if (!g->step_pending && !g->nbp && !g->watch.n)
        return false;
    if (g->step_pending) {
        single_step(g);
        return true;
    }
    g->hit_sig = 0;
    /* A translated block would run on past the access a watchpoint matched (databp.h). */
    bool translated = g->m->bt && !g->watch.n;
    cpu_run_loop(&g->m->cpu, translated ? step_checked_bt : step_checked, g);
    if (g->hit_sig)
        stop_with(g, g->hit_sig);
    return true;
}

/* ---- packets (machine thread) ---- */

struct packet {
    struct gdbstub *g;
    const char *in;
    size_t len;
    char *out;                    /* GDB_MAX_PACKET + 1 bytes */
    size_t out_len;
    bool no_reply;                /* c, s, k: the answer is a stop reply later, or none */
    bool close;                   /* D, k: the connection ends after the reply */
};

static void reply(struct packet *p, const char *text)
{
    snprintf(p->out, GDB_MAX_PACKET + 1, "%s", text);
    p->out_len = strlen(p->out);
}

/* "ADDR,LEN" at *s; *s moves past it. */
static void resume(struct packet *p, bool step)
{
    struct gdbstub *g = p->g;
    struct cpu *c = &g->m->cpu;
    g->step_pending = step;
    g->waiting = true;
    g->hit_watch_type = 0;
    g->last_sig = GDB_SIGINT;           /* a pause for any other reason reads as an interrupt */
    g->skip_valid = true;
    g->skip_lin = c->seg[SEG_CS].base + c->eip;
    p->no_reply = true;
    if (machine_paused(g->m))
        machine_resume(g->m);
}

/* c [ADDR], s [ADDR], C SIG[;ADDR], S SIG[;ADDR]: the signal is not given to the guest. */
static void handle_resume(struct packet *p, bool step, bool with_signal)
{
    const char *s = p->in + 1;
    uint32_t addr;
    if (with_signal) {
        uint32_t sig;
        if (!gdb_parse_hex32(&s, &sig))
            return reply(p, "E01");
        if (*s == ';')
            s++;
    }
    if (*s) {
        if (!gdb_parse_hex32(&s, &addr) || *s)
            return reply(p, "E01");
        p->g->m->cpu.eip = addr;
    }
    resume(p, step);
}

/* vCont;ACTION[:THREAD]...: there is one thread, so the first action that
 * applies to it (all apply: it is thread 1 or every thread) decides. */
static void handle_vcont(struct packet *p)
{
    const char *s = p->in + 5;
    if (*s == '?')
        return reply(p, "vCont;c;C;s;S");
    if (*s != ';')
        return reply(p, "E01");
    char action = s[1];
    if (action == 'c' || action == 'C')
        return resume(p, false);
    if (action == 's' || action == 'S')
        return resume(p, true);
    reply(p, "E01");
}

static void handle_read_registers(struct packet *p)
{
    struct cpu *c = &p->g->m->cpu;
    size_t n = 0;
    for (int r = 0; r < REG_COUNT; r++) {
        uint8_t b[10];
        int size = read_reg(c, r, b);
        gdb_to_hex(b, size, p->out + n);
        n += 2 * size;
    }
    p->out_len = n;
}

/* What write_reg may change, to put back when a later register of a 'G' is refused. */
struct saved_regs {
    uint32_t r[8], eip, eflags;
    struct seg seg[SEG_COUNT];
    int cpl;
    struct fpu fpu;
};

static void save_regs(const struct cpu *c, struct saved_regs *s)
{
    memcpy(s->r, c->r, sizeof(s->r));
    s->eip = c->eip;
    s->eflags = c->eflags;
    memcpy(s->seg, c->seg, sizeof(s->seg));
    s->cpl = c->cpl;
    s->fpu = c->fpu;
}

static void restore_regs(struct cpu *c, const struct saved_regs *s)
{
    memcpy(c->r, s->r, sizeof(s->r));
    c->eip = s->eip;
    c->eflags = s->eflags;
    memcpy(c->seg, s->seg, sizeof(s->seg));
    c->cpl = s->cpl;
    c->fpu = s->fpu;
}

static void handle_write_registers(struct packet *p)
{
    struct cpu *c = &p->g->m->cpu;
    const char *s = p->in + 1;
    size_t avail = p->len - 1, off = 0;
    struct saved_regs saved;
    save_regs(c, &saved);
    for (int r = 0; r < REG_COUNT && off < avail; r++) {
        uint8_t b[10];
        int size = reg_size(r);
        if (off + 2 * size > avail || !gdb_from_hex(s + off, 2 * size, b) || !write_reg(c, r, b)) {
            restore_regs(c, &saved);        /* all or nothing */
            return reply(p, "E01");
        }
        off += 2 * size;
    }
    if (off != avail) {
        restore_regs(c, &saved);
        return reply(p, "E01");
    }
    reply(p, "OK");
}

static void handle_register(struct packet *p, bool write)
{
    const char *s = p->in + 1;
    uint32_t n;
    if (!gdb_parse_hex32(&s, &n) || n >= REG_COUNT)
        return reply(p, "E01");
    struct cpu *c = &p->g->m->cpu;
    if (!write) {
        uint8_t b[10];
        int size = read_reg(c, (int)n, b);
        gdb_to_hex(b, size, p->out);
        p->out_len = 2 * size;
        return;
    }
    uint8_t b[10];
    if (*s++ != '=' || strlen(s) != 2u * reg_size(n) || !gdb_from_hex(s, strlen(s), b))
        return reply(p, "E01");
    reply(p, write_reg(c, (int)n, b) ? "OK" : "E01");
}

static void handle_read_memory(struct packet *p)
{
    const char *s = p->in + 1;
    uint32_t addr, len;
    if (!gdb_parse_addr_len(&s, &addr, &len) || *s)
        return reply(p, "E01");
    if (len > MAX_MEM_XFER)
        len = MAX_MEM_XFER;       /* a shorter answer is allowed; gdb asks for the rest */
    uint8_t buf[MAX_MEM_XFER];
    size_t got = read_linear(p->g->m, addr, buf, len);
    if (len && !got)
        return reply(p, "E14");
    gdb_to_hex(buf, got, p->out);
    p->out_len = 2 * got;
}

/* M ADDR,LEN:HEX and X ADDR,LEN:BINARY (the packet layer has unescaped it). */
static void handle_write_memory(struct packet *p, bool binary)
{
    const char *s = p->in + 1;
    uint32_t addr, len;
    if (!gdb_parse_addr_len(&s, &addr, &len) || *s++ != ':')
        return reply(p, "E01");
    size_t data_len = p->len - (size_t)(s - p->in);
    if (data_len != (binary ? len : 2ull * len))
        return reply(p, "E01");
    uint8_t buf[GDB_MAX_PACKET];
    if (binary)
        memcpy(buf, s, len);
    else if (!gdb_from_hex(s, data_len, buf))
        return reply(p, "E01");
    reply(p, write_linear(p->g->m, addr, buf, len) ? "OK" : "E14");
}

/* Z/z TYPE,ADDR,KIND: 0 and 1 are breakpoints of the same table; 2, 3 and
 * 4 are write, read and access watchpoints of KIND bytes (1 to
 * DATABP_MAX_LEN, DATABP_MAX of them). */
static void handle_point(struct packet *p, bool insert)
{
    struct gdb_point pt;
    if (!gdb_parse_point(p->in + 1, &pt))
        return reply(p, "E01");
    struct gdbstub *g = p->g;
    switch (pt.type) {
    case GDB_POINT_SW_BREAK:
    case GDB_POINT_HW_BREAK:
        if (!insert) {
            remove_breakpoint(g, pt.addr);
            return reply(p, "OK");
        }
        return reply(p, add_breakpoint(g, pt.addr) ? "OK" : "E28");
    case GDB_POINT_WATCH_WRITE:
    case GDB_POINT_WATCH_READ:
    case GDB_POINT_WATCH_ACCESS:
        if (!insert) {
            remove_watchpoint(g, pt.type, pt.addr, pt.kind);
            return reply(p, "OK");
        }
        if (add_watchpoint(g, pt.type, pt.addr, pt.kind))
            return reply(p, "OK");
        return reply(p, g->watch.n == DATABP_MAX ? "E28" : "E22");
    default:
        return reply(p, "");
    }
}

/* qXfer:features:read:target.xml:OFFSET,LENGTH */
static void handle_xfer_features(struct packet *p, const char *args)
{
    const char *annex_end = strchr(args, ':');
    if (!annex_end || (size_t)(annex_end - args) != strlen("target.xml") || strncmp(args, "target.xml", 10))
        return reply(p, "E00");
    const char *s = annex_end + 1;
    uint32_t off, len;
    if (!gdb_parse_addr_len(&s, &off, &len) || *s)
        return reply(p, "E01");
    size_t total = sizeof(target_xml) - 1;
    if (off > total)
        return reply(p, "E01");
    if (len > GDB_MAX_PACKET - 1)
        len = GDB_MAX_PACKET - 1;
    size_t n = total - off < len ? total - off : len;
    p->out[0] = off + n < total ? 'm' : 'l';
    memcpy(p->out + 1, target_xml + off, n);
    p->out_len = n + 1;
}

static void handle_query(struct packet *p)
{
    const char *q = p->in;
    if (!strncmp(q, "qSupported", 10)) {
        char text[96];
        snprintf(text, sizeof(text), "PacketSize=%x;qXfer:features:read+;vContSupported+", GDB_MAX_PACKET);
        return reply(p, text);
    }
    if (!strncmp(q, "qXfer:features:read:", 20))
        return handle_xfer_features(p, q + 20);
    if (!strncmp(q, "qAttached", 9))
        return reply(p, "1");
    if (!strcmp(q, "qC"))
        return reply(p, "QC01");
    if (!strcmp(q, "qfThreadInfo"))
        return reply(p, "m01");
    if (!strcmp(q, "qsThreadInfo"))
        return reply(p, "l");
    if (!strcmp(q, "qOffsets"))
        return reply(p, "Text=0;Data=0;Bss=0");
    reply(p, "");
}

static void stop_reply_now(struct packet *p)
{
    struct gdbstub *g = p->g;
    gdb_format_stop(p->out, GDB_MAX_PACKET, g->last_sig, g->hit_watch_type, g->hit_watch_addr);
    p->out_len = strlen(p->out);
}

/* D: gdb's detach: breakpoints go and the guest runs on. */
static void detach(struct gdbstub *g)
{
    clear_debug_state(g);
    if (machine_paused(g->m) && !strcmp(machine_pause_reason(g->m), "debug"))
        machine_resume(g->m);
}

static void handle_packet(struct machine *m, void *arg)
{
    struct packet *p = arg;
    const char *in = p->in;
    p->out_len = 0;
    switch (in[0]) {
    case '?': return stop_reply_now(p);
    case 'g': return handle_read_registers(p);
    case 'G': return handle_write_registers(p);
    case 'p': return handle_register(p, false);
    case 'P': return handle_register(p, true);
    case 'm': return handle_read_memory(p);
    case 'M': return handle_write_memory(p, false);
    case 'X': return handle_write_memory(p, true);
    case 'c': return handle_resume(p, false, false);
    case 's': return handle_resume(p, true, false);
    case 'C': return handle_resume(p, false, true);
    case 'S': return handle_resume(p, true, true);
    case 'Z': return handle_point(p, true);
    case 'z': return handle_point(p, false);
    case 'q': return handle_query(p);
    case 'H': case 'T': return reply(p, "OK");
    case 'D':
        detach(p->g);
        p->close = true;
        return reply(p, "OK");
    case 'k':
        clear_debug_state(p->g);
        m->stop = true;
        p->no_reply = p->close = true;
        return;
    case 'v':
        if (!strncmp(in, "vCont", 5))
            return handle_vcont(p);
        return reply(p, "");
    default:
        return reply(p, "");
    }
}

/* A client connected: the guest stops, as gdb expects of a target it attaches to. */
static void attach(struct machine *m, void *arg)
{
    struct gdbstub *g = arg;
    clear_debug_state(g);
    g->hit_watch_type = 0;
    g->last_sig = GDB_SIGTRAP;
    pthread_mutex_lock(&g->mu);
    g->stop_ready = false;          /* a stop the last client did not read is not this one's */
    pthread_mutex_unlock(&g->mu);
    if (!machine_paused(m))
        machine_pause(m, "debug");
}

static void detach_on_machine(struct machine *m, void *arg)
{
    detach(arg);
}

/* Ctrl-C: stop the guest; gdb gets a SIGINT stop reply. */
static void interrupt_guest(struct machine *m, void *arg)
{
    struct gdbstub *g = arg;
    g->step_pending = false;
    g->hit_watch_type = 0;
    g->last_sig = GDB_SIGINT;
    if (!machine_paused(m))
        machine_pause(m, "debug");
    if (g->waiting)
        post_stop(g);
}

/* ---- the socket thread ---- */

static bool send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static bool send_packet(struct gdbstub *g, int fd, const char *payload, size_t len)
{
    g->last_len = gdb_frame(payload, len, g->last, sizeof(g->last));
    return g->last_len && send_all(fd, g->last, g->last_len);
}

/* One packet: run on the machine's thread; false when the connection ends. */
static bool serve_packet(struct gdbstub *g, int fd)
{
    static char out[GDB_MAX_PACKET + 1];
    struct packet p = { .g = g, .in = g->rx.buf, .len = g->rx.len, .out = out };
    if (!send_all(fd, "+", 1))
        return false;
    if (!machine_call(g->m, handle_packet, &p)) {
        send_packet(g, fd, "W00", 3);         /* the machine has stopped running */
        return false;
    }
    if (!p.no_reply && !send_packet(g, fd, out, p.out_len))
        return false;
    return !p.close;
}

static bool serve_bytes(struct gdbstub *g, int fd, const uint8_t *buf, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        switch (gdb_rx_byte(&g->rx, buf[k])) {
        case GDB_RX_PACKET:
            if (!serve_packet(g, fd))
                return false;
            break;
        case GDB_RX_BAD_CHECKSUM:
            if (!send_all(fd, "-", 1))
                return false;
            break;
        case GDB_RX_OVERLONG:
            if (!send_all(fd, "+", 1) || !send_packet(g, fd, "E22", 3))
                return false;
            break;
        case GDB_RX_INTERRUPT:
            machine_call(g->m, interrupt_guest, g);
            break;
        case GDB_RX_NAK:
            if (g->last_len && !send_all(fd, g->last, g->last_len))
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

/* The machine's stop reply, or its end. False when the connection ends. */
static bool serve_wake(struct gdbstub *g, int fd)
{
    char what[16];
    ssize_t n = read(g->wake[0], what, sizeof(what));
    (void)n;
    pthread_mutex_lock(&g->mu);
    char text[64];
    bool ready = g->stop_ready;
    g->stop_ready = false;
    snprintf(text, sizeof(text), "%s", g->stop_reply);
    pthread_mutex_unlock(&g->mu);
    if (ready && !send_packet(g, fd, text, strlen(text)))
        return false;
    return !atomic_load(&g->quit);
}

static void serve_client(struct gdbstub *g, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    gdb_rx_init(&g->rx);
    g->last_len = 0;
    if (!machine_call(g->m, attach, g))
        return;
    for (;;) {
        struct pollfd pf[2] = { { .fd = fd, .events = POLLIN }, { .fd = g->wake[0], .events = POLLIN } };
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents && !serve_wake(g, fd))
            return;
        if (pf[0].revents) {
            uint8_t buf[4096];
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            if (!serve_bytes(g, fd, buf, (size_t)n))
                return;
        }
    }
    /* The client went away without D: leave the guest as a detach would. */
    machine_call(g->m, detach_on_machine, g);
}

static void *stub_thread(void *arg)
{
    struct gdbstub *g = arg;
    while (!atomic_load(&g->quit)) {
        struct pollfd pf[2] = { { .fd = g->listen_fd, .events = POLLIN }, { .fd = g->wake[0], .events = POLLIN } };
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents) {
            char what[16];
            ssize_t n = read(g->wake[0], what, sizeof(what));
            (void)n;
            continue;
        }
        if (pf[0].revents & POLLIN) {
            int fd = accept(g->listen_fd, NULL, NULL);
            if (fd < 0)
                continue;
            serve_client(g, fd);
            close(fd);
        }
    }
    return NULL;
}

/* ---- setup ---- */

static int listen_on(const char *spec, char *err, size_t errlen)
{
    if (strncmp(spec, "tcp:", 4)) {
        snprintf(err, errlen, "-gdb %s: expected tcp:[HOST]:PORT", spec);
        return -1;
    }
    const char *hostport = spec + 4, *colon = strrchr(hostport, ':');
    if (!colon) {
        snprintf(err, errlen, "-gdb %s: expected tcp:[HOST]:PORT", spec);
        return -1;
    }
    char host[256];
    size_t hlen = (size_t)(colon - hostport);
    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "-gdb %s: host name too long", spec);
        return -1;
    }
    memcpy(host, hostport, hlen);
    host[hlen] = 0;
    const char *port = colon + 1;
    char *end;
    long pn = strtol(port, &end, 10);
    if (!*port || *end || pn < 1 || pn > 65535) {
        snprintf(err, errlen, "-gdb %s: the port must be a number from 1 to 65535", spec);
        return -1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
    int rc = getaddrinfo(hlen ? host : "127.0.0.1", port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "-gdb %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "-gdb %s: cannot listen: %s", spec, strerror(saved));
    return fd;
}

struct gdbstub *gdbstub_new(struct machine *m, const char *spec, char *err, size_t errlen)
{
    int fd = listen_on(spec, err, errlen);
    if (fd < 0)
        return NULL;
    struct gdbstub *g = xcalloc(1, sizeof(*g));
    g->m = m;
    g->listen_fd = fd;
    if (pipe(g->wake) < 0) {
        snprintf(err, errlen, "-gdb %s: pipe: %s", spec, strerror(errno));
        close(fd);
        free(g);
        return NULL;
    }
    for (int k = 0; k < 2; k++) {
        fcntl(g->wake[k], F_SETFD, FD_CLOEXEC);
        fcntl(g->wake[k], F_SETFL, O_NONBLOCK);
    }
    pthread_mutex_init(&g->mu, NULL);
    g->last_sig = GDB_SIGTRAP;
    databp_init(&g->watch);
    m->cpu.databp = &g->watch;
    machine_add_run_state_listener(m, run_state_changed, g);
    m->gdb = g;
    if (pthread_create(&g->thread, NULL, stub_thread, g)) {
        snprintf(err, errlen, "-gdb %s: cannot start its thread", spec);
        m->gdb = NULL;
        m->cpu.databp = NULL;
        close(fd);
        close(g->wake[0]);
        close(g->wake[1]);
        free(g);
        return NULL;
    }
    return g;
}

void gdbstub_free(struct gdbstub *g)
{
    if (!g)
        return;
    /* The run loop has ended: a client waiting for a stop hears the exit status. */
    pthread_mutex_lock(&g->mu);
    if (g->waiting) {
        snprintf(g->stop_reply, sizeof(g->stop_reply), "W%02x", g->m->exit_status & 0xff);
        g->stop_ready = true;
    }
    pthread_mutex_unlock(&g->mu);
    atomic_store(&g->quit, true);
    control_shutdown(g->m);          /* (already, after machine_run) a packet in flight is refused */
    wake_socket_thread(g, 'Q');
    pthread_join(g->thread, NULL);
    g->m->gdb = NULL;
    g->m->cpu.databp = NULL;
    close(g->listen_fd);
    close(g->wake[0]);
    close(g->wake[1]);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
