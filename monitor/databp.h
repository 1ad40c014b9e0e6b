/*
 * Data breakpoints: linear address ranges whose reads, writes or both the
 * CPU notices, as x86 debug registers do (traps: the instruction completes,
 * then the stop).  The matching lives here, apart from any machine, so that
 * every source of data breakpoints shares it: today gdb's watchpoints
 * (Z2/Z3/Z4, monitor/gdbstub.c); the guest's own DR0-DR3/DR7 are stored by
 * MOV DRn but do not match yet.
 *
 * How the CPU notices: while cpu.databp holds breakpoints, the MMU gives no
 * TLB tags to a linear page one of them covers (so no inline fast path, the
 * interpreter's string runs included, reaches its bytes), and its slow
 * paths note every read and write there (monitor/mmu.c).  Translated code
 * would reach those paths too, but would run on to the end of its block
 * after a hit, so the gdb stub runs the interpreter while watchpoints are
 * set.
 */
#ifndef RV_DATABP_H
#define RV_DATABP_H

#include <stdbool.h>
#include <stdint.h>

/* Which accesses a breakpoint matches (bits), and which kind an access is. */
enum { DATABP_READ = 1, DATABP_WRITE = 2, DATABP_ACCESS = DATABP_READ | DATABP_WRITE };

#define DATABP_MAX 8        /* the stub's watchpoints; more are refused */
#define DATABP_MAX_LEN 64   /* bytes one breakpoint covers at most */

struct databp {
    uint32_t addr, len;
    uint8_t on;             /* DATABP_READ, DATABP_WRITE or DATABP_ACCESS */
};

struct databp_set {
    struct databp bp[DATABP_MAX];
    int n;
    /* The first breakpoint an access matched since databp_forget_hit, or
     * -1, and what that access was. */
    int hit;
    uint8_t hit_access;
};

/* Empties the set (also how a detaching debugger drops every watchpoint). */
void databp_init(struct databp_set *s);
/* False, with the set unchanged, when len is 0 or over DATABP_MAX_LEN, the
 * range wraps past 4 GiB, `on` names no access, or the set is full. */
bool databp_add(struct databp_set *s, uint32_t addr, uint32_t len, uint8_t on);
/* Removes one breakpoint equal to (addr, len, on); false if there is none. */
bool databp_remove(struct databp_set *s, uint32_t addr, uint32_t len, uint8_t on);

/* The first breakpoint that `size` bytes at lin, accessed as `access`
 * (DATABP_READ or DATABP_WRITE), overlap, or -1. */
int databp_match(const struct databp_set *s, uint32_t lin, uint32_t size, uint8_t access);
/* Whether any breakpoint covers a byte of the 4 KiB linear page at `page`. */
bool databp_covers_page(const struct databp_set *s, uint32_t page);
/* databp_match, remembering the first match as the hit. */
void databp_note(struct databp_set *s, uint32_t lin, uint32_t size, uint8_t access);

static inline bool databp_active(const struct databp_set *s)
{
    return s && s->n;
}

static inline bool databp_hit(const struct databp_set *s)
{
    return s && s->hit >= 0;
}

static inline void databp_forget_hit(struct databp_set *s)
{
    if (s)
        s->hit = -1;
}

#endif
