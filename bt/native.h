/*
 * Native translation of the common 32-bit instructions: bt/native.c and the
 * files it is cut into (bt/native_internal.h names what each owns).  The
 * block builder in bt.c asks native_emit for each instruction; what it
 * declines is threaded through the interpreter's semantics instead.
 */
#ifndef RV_BT_NATIVE_H
#define RV_BT_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt/emit.h"
#include "monitor/cpu.h"
#include "monitor/decode.h"

struct cpu;
struct block;

/* A block exit with a fixed target, once resolved: a direct jump. */
struct chain_slot {
    struct block *target;            /* NULL until bt_run resolves it */
    struct block *owner;
    uint32_t eip;                    /* the target EIP */
    /* Flat blocks: the exit is a patched `jmp rel32` (see stubs.c). */
    uint8_t *jump;                   /* its rel32 field, or NULL */
    uint8_t *unchained;              /* where it jumps while not chained */
    uint8_t *phys;                   /* exits to another page: the imm32 of the TLB
                                        check, patched with the target's physical page */
    struct chain_slot *next_in;      /* the target's other incoming slots */
};

#define BT_CHAIN_SLOTS 6

/* A block's `flat` key: CS, DS, ES and SS are flat (base 0, 4 GiB, SS
 * 32-bit); and with that, FS or GS is a writable 4 GiB data segment (with
 * any base), which its code may then address without a segment check. */
#define FLAT_BASE 1
#define FLAT_FS   2
#define FLAT_GS   4

struct block {
    uint32_t phys;                   /* guest-physical address of the first instruction */
    uint32_t eip;                    /* its EIP: native code has the EIPs built in */
    uint32_t last;                   /* EIP of the block's last byte (checked against CS limit) */
    bool code32;
    bool user;                       /* translated for CPL 3 (user TLB) */
    bool valid;                      /* false once invalidated: chained jumps stop */
    uint8_t flat;                    /* translated for flat CS/DS/ES/SS: FLAT_* bits (see native.c), or 0 */
    uint16_t ninsn;
    uint8_t uncached;                /* base registers whose pages it was translated not to cache */
    uint8_t ncovered;                /* the ranges its entry checks cover (`covered`) */
    uint8_t check_misses;            /* times an entry check failed where a quiet fill could not help */
    bool two_pages;                  /* see below; here, in the cache line every lookup reads */
    /* The jump cache's hits in translated code read the fields above and
     * these, from the block's first cache line (see the alignment below). */
    void (*code)(struct cpu *c);
    uint8_t *entry;                  /* code after the prologue (the jump cache's entry) */
    uint8_t *entry_chained;          /* flat blocks: where patched jumps land, registers loaded */
    const uint8_t *host_page;        /* where its page's bytes were (physmem rd) when translated */
    struct block *hash_next;
    struct block *page_next;         /* other blocks starting in the same physical page */
    struct insn *insns;
    struct chain_slot chain[BT_CHAIN_SLOTS];   /* fixed-target exits (side exits, taken/fall-through) */
    struct chain_slot *incoming;     /* patched jumps into this block */
    /* A flat block whose last instruction crosses into the next linear page
     * (see bt.c, translate): that page's physical page and bytes then, and
     * the link in its page list. */
    uint32_t phys2;
    const uint8_t *host_page2;
    struct block *page2_next;
    /* The [reg + lo, reg + hi] ranges its entry checks cover (see operands.c). */
    struct covered_range { int8_t reg; bool write; int32_t lo, hi; } covered[8];
    /* Its guest bytes (bt/codemap.h): granules of its first page and the
     * hull [lo, hi) of its offsets there; granules of the second page,
     * whose bytes are [0, hi2). */
    uint64_t gran, gran2;
    uint16_t lo, hi, hi2;
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct block, entry_chained) + sizeof(uint8_t *) <= 64,
               "a jump cache hit reads one cache line of the block");

#define NATIVE_MAX_FIXUPS 16   /* two probes of 4 checks, plus limit checks */
#define NATIVE_MAX_STUBS 64

/* A slow path: the fast path's checks failed, so the interpreter runs the
 * whole instruction (it has made no change yet), then the block resumes. */
struct native_stub {
    uint8_t *fixups[NATIVE_MAX_FIXUPS];   /* rel32 fields of the jumps to this stub */
    int nfixups;
    const struct insn *in;
    uint32_t eip;
    int pending;                          /* instructions retired natively before it */
    uint32_t pend_keep, pend_clear;       /* flags captured in R11, not yet in EFLAGS */
    uint32_t host_keep, host_clear;       /* flags still in the host's EFLAGS when it jumps here */
    int of_rm, of_kind, of_size;          /* OF to compute from a shift's result (of_rm >= 0; see bodies_alu.c) */
    int logic_reg, logic_size;            /* host flags to redo with TEST on this guest register (>= 0) */
    bool host_after;                      /* the code resumed at expects flags in the host's EFLAGS */
    uint8_t *resume;                      /* code of the next instruction */
    bool (*step)(struct cpu *, const struct insn *);   /* its own step, or NULL: the block's */
    unsigned regs;                        /* guest registers held in host registers there */
    unsigned dirty;                       /* the ones struct cpu has older values of */
};

#define BT_JUMP_CACHE_SIZE 65536    /* blocks by EIP: indirect exits and bt_run lookups (power of two) */

/* The jump cache slot of an EIP.  The high half is folded in so that kernel
 * and user code at the same low 16 bits (0xc1234567, 0x08054567) do not
 * evict each other: bodies_control.c's emit_jump_cache computes the same. */
static inline unsigned bt_jump_cache_index(uint32_t eip)
{
    return (eip ^ (eip >> 16)) & (BT_JUMP_CACHE_SIZE - 1);
}

struct block_emit {
    struct emitter *e;          /* where code goes now: `hot`, or `cold` for code off the fast path */
    struct emitter *hot, *cold; /* the block's body, and its stubs and ways out to bt_run */
    struct block *self;         /* the block being translated */
    struct block **jump_cache;  /* bt's cache for RET and indirect JMP/CALL */
    const bool *intr_line;      /* the interrupt controller's output (machine_intr_line), or NULL */
    bool (*interrupt_step)(struct cpu *, const struct insn *);   /* STI's stub: leaves when one is deliverable */
    struct chain_slot *chain;   /* the block's slots when its exits may chain, else NULL */
    int nchain;
    int8_t leave_below;         /* exits leave for bt_run once the budget is at most this (exact budgets) */
    bool user;                  /* block runs at CPL 3: user TLB */
    uint32_t block_eip;         /* EIP of the block's first instruction */
    int pending;                /* instructions retired natively since the last count flush */
    uint32_t limit_checked;     /* CS limit is known to cover EIPs up to here */
    bool flat;                  /* DS/ES/SS flat for this instruction: the short probe */
    uint8_t flat_key;           /* then the block's FLAT_* key bits, which still hold (else 0) */
    bool flags_dead;            /* this instruction's flags are overwritten before anyone reads them */
    uint32_t flags_live;        /* the flags read (or possibly left with) after it */
    int base_cached;            /* this instruction's [reg + disp] is in the page checked at entry: reg, or -1 */
    bool stack_cached;          /* its push, pop, call or ret slot is in ESP's page checked at entry */
    int probes_ahead;           /* probes from this instruction until all flags are written again */
    bool jump_followed;         /* this instruction is a JMP whose target the block goes on with */
    bool last;                  /* this instruction is the block's last (a Jcc before it is a side exit) */
    bool of_lazy;               /* a shift's OF here is observed by nothing but stubs (native_of_blocker) */
    int of_rm, of_kind, of_size;   /* the shift whose OF the stubs compute: its register (-1: none) */
    int logic_reg, logic_size;     /* the deferred host flags are TEST's of this guest register (-1: no) */
    unsigned logic_notes;          /* how many times it was set */
    bool logic_overwritten;        /* this instruction writes all flags right after its one probe */
    int rdx_addend;             /* RDX holds bt_base_addend[this register] now, or -1 */
    uint8_t *loop_top;          /* flat blocks: where a jump to the block's own start may go, or NULL */
    int loop_rdx;               /* the rdx_addend the code at loop_top expects */
    uint32_t live_in;           /* flags the block may observe before writing them */
    bool entry_flags_r11;       /* the entry checks' ways out find the arithmetic flags in R11 (see flags.c) */
    bool entry_flags_pending;   /* there, laid out as PUSHFQ leaves them; so at loop_top too */
    uint8_t *base_miss[16];     /* rel32 fields of the entry checks' jumps out: two per range */
    int base_miss_reg[16];      /* the base register each one checks */
    int nbase_miss;
    uint8_t *page2_miss[2];     /* rel32 fields of the second page's entry check (two-page blocks) */
    uint32_t pend_keep;         /* host flag bits in R11 that EFLAGS has not received yet */
    uint32_t pend_clear;        /* the EFLAGS bits they replace */
    uint32_t host_keep;         /* host flag bits, still in the host's own EFLAGS, not captured yet */
    uint32_t host_clear;        /* the guest bits they replace */
    unsigned regs_used;         /* guest registers the block's native code holds in host registers */
    unsigned regs_valid;        /* the ones whose host registers hold their values now */
    unsigned regs_dirty;        /* of those, written since loaded (struct cpu is stale) */
    unsigned hi_regs;           /* this instruction's AH..BH registers, rotated into the low byte */
    bool hi_rotated;            /* the rotation has been emitted */
    struct native_stub stubs[NATIVE_MAX_STUBS];
    int nstubs;
    uint8_t *plain_exits[NATIVE_MAX_STUBS + 2];   /* rel32 fields jumping to the epilogue */
    int nplain;
};

/* A conditional jump (Jcc rel8 or rel32). */
static inline bool insn_is_jcc(const struct insn *in)
{
    return (in->op >= 0x70 && in->op <= 0x7f) || (in->op >= 0x180 && in->op <= 0x18f);
}

/* Guest registers (bit i: r[i]) a native instruction reads or writes. */
unsigned native_regs_used(const struct insn *in);
/* Guest registers it may write (a superset). */
unsigned native_regs_written(const struct insn *in);
/* The frame every block sets up on entry (see encode.c). */
void native_emit_prologue(struct emitter *e);
/* The code every way out of translated code ends with, emitted once at e
 * (the start of the code buffer's cold half); returns its address, which
 * the emitters then jump to (struct emitter's epilogue). */
uint8_t *native_emit_epilogue_routine(struct emitter *e);
#define NATIVE_ALL_REGS 0xffu
/* A flat block's entry: all guest registers into host registers; the code
 * after it (entry_chained) takes them as loaded and possibly written. */
void native_emit_load_all(struct block_emit *be);
/* A flat block's arithmetic flags at entry (see flags.c), which patched
 * jumps bring in AX: into AX on the way in from bt_run, kept in R11 across
 * the entry checks, or merged into EFLAGS. */
enum entry_flags {
    ENTRY_FLAGS_FROM_EFLAGS,   /* AX from EFLAGS in memory (bt_run's way in) */
    ENTRY_FLAGS_KEEP,          /* AX into R11 across the entry checks */
    ENTRY_FLAGS_FROM_R11,      /* and back */
    ENTRY_FLAGS_TO_HOST,       /* AX into the host's EFLAGS (SAHF): the code starts with them deferred */
    ENTRY_FLAGS_R11_FROM_EFLAGS,   /* R11 = EFLAGS in memory (bt_run's way in) */
    ENTRY_FLAGS_R11_FROM_AX,   /* AX into R11, laid out as PUSHFQ leaves them */
    ENTRY_FLAGS_PENDING,       /* the code starts with them captured in R11, not yet merged */
};
void native_emit_entry_flags(struct block_emit *be, enum entry_flags how);
/* At a flat block's entry: [base + dmin, base + dmax] must lie in one page
 * the TLB maps (for writes too when `write`), else the block leaves for
 * bt_run to use a variant without (see operands.c). */
void native_emit_base_check(struct block_emit *be, int base, int32_t dmin, int32_t dmax, bool write);
/* Which base register's cached page a native instruction's memory operand
 * may use (or -1): its displacement and whether it writes. */
int native_base_operand(const struct insn *in, int32_t *disp, bool *write);
/* What a native instruction does to ESP and the stack: the dword it pushes
 * or pops (`access`: at ESP + off, written or read) and the change to ESP.
 * False when it writes ESP otherwise (a load, LEAVE, POP ESP). */
struct stack_effect {
    bool access, write;
    int32_t off, delta;
};
bool native_stack_effect(const struct insn *in, struct stack_effect *fx);
/* Which of an instruction's memory operands lie in a page its block's
 * entry checks cover: */
#define CACHED_RM 1                /* its [reg + disp] operand */
#define CACHED_STACK 2             /* its push, pop, call or ret slot */
/* TLB probes a native instruction makes, its cached operands left out. */
int native_probes(const struct insn *in, unsigned cached);
/* A threaded instruction after which the block may still chain (see select.c). */
bool native_threaded_is_plain(const struct insn *in);
enum native_guard {
    GUARD_NONE,
    GUARD_INTERRUPT,       /* it may have made an interrupt deliverable */
    GUARD_FLAT,            /* it loaded DS or ES: code after it may assume flat segments */
    GUARD_FS_GS,           /* it loaded FS or GS: code after it may assume a 4 GiB one */
};
enum native_guard native_threaded_guard(const struct insn *in);
void native_emit_page2_check(struct block_emit *be, uint32_t lin2, uint32_t phys2);
/* Flag liveness inside a block (masks of OF SF ZF AF PF CF). */
uint32_t native_flags_written(const struct insn *in);
uint32_t native_flags_needed(const struct insn *in, unsigned cached);
/* The flags it reads (a conditional jump, which may leave: all of them). */
uint32_t native_flags_read(const struct insn *in);
/* For a shift of guest register `reg` whose OF the stubs are to compute:
 * 1 when this later instruction overwrites OF (the stubs up to it do), -1
 * when it may observe OF otherwise or change the register first, else 0. */
int native_of_blocker(const struct insn *in, int reg);
/* True when native_emit can translate this instruction. */
bool native_supported(const struct insn *in);
/* Where a direct JMP (EB, E9) or Jcc at `eip` goes. */
uint32_t native_branch_target(const struct insn *in, uint32_t eip);
/* Emit host code for the instruction at eip (in is supported).  Returns true
 * when it ended the block (a control transfer emitted its own exits). */
bool native_emit(struct block_emit *be, const struct insn *in, uint32_t eip);
/* Retire the pending instructions and leave the block at eip. */
void native_emit_exit(struct block_emit *be, uint32_t eip);
/* Emit the slow-path stubs and resolve their jumps (after the block body). */
void native_emit_stubs(struct block_emit *be, bool (*step)(struct cpu *, const struct insn *));
/* Run the instruction at eip through step() (the interpreter's semantics);
 * leave the block when it returns false, or after it when `last`. */
void native_emit_threaded(struct block_emit *be, const struct insn *in, uint32_t eip, bool last,
                          bool (*step)(struct cpu *, const struct insn *));
/* Count flush before a threaded instruction: pending instructions are retired. */
void native_flush_count(struct block_emit *be);

#endif
