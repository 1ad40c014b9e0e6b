/*
 * struct cpu: the one guest CPU state, shared by every execution engine.
 *
 * The interpreter (monitor/interp.c) is the reference; the translator (bt/)
 * reads and writes the same fields.  Snapshots serialize this structure.
 */
#ifndef RV_CPU_H
#define RV_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <setjmp.h>

struct machine;
struct databp_set;

/* Segment register indexes: the x86 encoding order (ModRM reg field of MOV Sreg). */
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_COUNT };

/* General register indexes: the x86 encoding order. */
enum { R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI };

/* EFLAGS bits. */
#define FL_CF   0x00000001u
#define FL_PF   0x00000004u
#define FL_AF   0x00000010u
#define FL_ZF   0x00000040u
#define FL_SF   0x00000080u
#define FL_TF   0x00000100u
#define FL_IF   0x00000200u
#define FL_DF   0x00000400u
#define FL_OF   0x00000800u
#define FL_IOPL 0x00003000u
#define FL_NT   0x00004000u
#define FL_RF   0x00010000u
#define FL_VM   0x00020000u
#define FL_AC   0x00040000u
#define FL_VIF  0x00080000u
#define FL_VIP  0x00100000u
#define FL_ID   0x00200000u
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

/* CR0 / CR4 bits. */
#define CR0_PE 0x00000001u
#define CR0_MP 0x00000002u
#define CR0_EM 0x00000004u
#define CR0_TS 0x00000008u
#define CR0_ET 0x00000010u
#define CR0_NE 0x00000020u
#define CR0_WP 0x00010000u
#define CR0_AM 0x00040000u
#define CR0_NW 0x20000000u
#define CR0_CD 0x40000000u
#define CR0_PG 0x80000000u
#define CR4_VME 0x0001u
#define CR4_PVI 0x0002u
#define CR4_TSD 0x0004u
#define CR4_DE  0x0008u
#define CR4_PSE 0x0010u
#define CR4_PGE 0x0080u
#define CR4_OSFXSR 0x0200u
#define CR4_SMAP 0x200000u   /* supervisor-mode access prevention (SDM vol. 3, 4.6) */

/* Exception vectors. */
enum {
    EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5,
    EXC_UD = 6, EXC_NM = 7, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12,
    EXC_GP = 13, EXC_PF = 14, EXC_MF = 16, EXC_AC = 17, EXC_MC = 18, EXC_XM = 19,
};

/*
 * A segment register with its hidden descriptor cache.  `attr` holds the
 * descriptor's access byte in bits 0-7 (type, S, DPL, P) and the flags nibble
 * in bits 8-11 (AVL, L, D/B, G), i.e. descriptor bits 40-47 and 52-55.
 * `limit` is the byte-granular effective limit (G already applied).
 */
struct seg {
    uint16_t sel;
    uint16_t attr;
    uint32_t base;
    uint32_t limit;
};
#define SEG_ATTR_TYPE(a) ((a) & 0x0f)
#define SEG_ATTR_S       0x0010u   /* code/data (1) vs system (0) */
#define SEG_ATTR_DPL(a)  (((a) >> 5) & 3)
#define SEG_ATTR_P       0x0080u
#define SEG_ATTR_DB      0x0400u   /* default operand size 32 / big stack */
#define SEG_ATTR_G       0x0800u

struct dtr {
    uint32_t base;
    uint16_t limit;
};

/* One software-TLB entry: a 4 KiB linear page mapped to host memory.
 * tag_* hold the linear page address (low 12 bits clear) when that kind of
 * access may use `host` directly, or TLB_INVALID. */
#define TLB_BITS 12
#define TLB_SIZE (1u << TLB_BITS)
#define TLB_INVALID 0x1u
enum { TLB_LIST_LOCAL, TLB_LIST_GLOBAL, TLB_LISTS };
struct tlb_entry {
    uint32_t tag_read;
    uint32_t tag_write;
    uintptr_t addend;        /* host address = linear + addend */
    uint32_t phys;           /* guest-physical page address */
    bool global;
    uint8_t lists;           /* TLB_LIST_* bits: the tlb_used lists its index is in */
    bool user_page;          /* a page user code may access (U/S set at both levels) */
    uint64_t spare;          /* pads an entry to 32 bytes: translated code indexes with a shift */
};

/* x87 state (register file in architectural order, ST(i) = st[(top+i)&7]). */
struct fpu {
    long double st[8];
    uint16_t cw, sw, tw;     /* tw: full 16-bit tag word, 2 bits per register */
    uint16_t fop;
    uint32_t fip, fdp;
    uint16_t fcs, fds;
    int top;
};

/* SSE state kept only so FXSAVE/FXRSTOR round-trip it. */
struct sse {
    uint8_t xmm[8][16];
    uint32_t mxcsr;
};

#define CPU_RAS_ENTRIES 16    /* translated code's return stack (see struct cpu) */

struct cpu {
    /* Architectural registers. */
    uint32_t r[8];               /* EAX..EDI, indexed by R_* */
    uint32_t eip;                /* offset within CS of the next instruction to execute */
    uint32_t eflags;             /* all flags, always up to date (no lazy flags) */
    struct seg seg[SEG_COUNT];
    struct seg ldtr, tr;
    struct dtr gdtr, idtr;
    uint32_t cr0, cr2, cr3, cr4;
    uint32_t dr[8];
    int cpl;                     /* current privilege level (CS.RPL in protected mode; 3 in v86) */

    /* Model-specific registers the machine implements. */
    uint64_t tsc_offset;         /* guest TSC = vclock-based cycles + tsc_offset */
    uint32_t sysenter_cs, sysenter_esp, sysenter_eip;
    uint64_t apic_base;
    uint64_t mtrr_def_type, mtrr_fixed[11], mtrr_var[16], pat;
    uint64_t misc_enable;
    uint32_t tsc_aux;            /* IA32_TSC_AUX: what RDTSCP and RDPID return */
    uint64_t tsc_adjust;         /* IA32_TSC_ADJUST: follows every change made to the TSC */
    uint64_t efer;               /* IA32_EFER: only SCE is writable (SYSCALL itself is #UD) */

    struct fpu fpu;
    struct sse sse;

    /* Execution state. */
    bool halted;                 /* HLT: wait for an interrupt */
    bool intr_shadow;            /* interrupts inhibited for one instruction (STI, MOV SS, POP SS) */
    bool nmi_blocked;            /* an NMI handler runs: the next NMI waits for IRET */
    bool a20;                    /* A20 gate enabled (mirrors the machine's gate) */
    uint32_t eip_start;          /* EIP of the instruction being executed (fault restart point) */
    uint32_t esp_start;          /* ESP at its start: a fault rolls ESP back to this */
    int fault_depth;             /* 0: none; 1: delivering an exception; 2: double fault */
    /* Instructions retired since power-on are icount_end - budget: both
     * engines count down the budget only (cpu_icount, cpu_set_budget). */
    uint64_t icount_end;         /* the count when the budget reaches 0 */
    int64_t budget;              /* instructions left before the run loop regains control */
    unsigned trace;              /* TRACE_* flags of the machine (0: no tracing) */
    bool bt_exit;                /* leave the current translated block after this instruction */
    /* Translated code: host - linear of the page a guest register points
     * into at a block's entry, when the block uses it as a base (bt/native.c). */
    uintptr_t bt_base_addend[8];
    void *bt_nocache;            /* a block whose base pages did not qualify: bt_run replaces it */
    uint32_t bt_nocache_reg;     /* the base register whose entry check failed there */
    void *bt_chain_slot;         /* the chainable exit a translated block left by (bt/native.h) */
    /* Translated code's return stack (bt/native.c): the EIP each recent
     * CALL returns to and its return site's chain slot, newest at byte
     * offset bt_ras_top.  It holds what held when the CALL ran, so every
     * flush of the TLB empties it (cpu_forget_returns). */
    struct { uint32_t eip; uint32_t unused; void *slot; } bt_ras[CPU_RAS_ENTRIES];
    uint32_t bt_ras_top;
    void *bt_ras_none;           /* the slot of an empty entry: no block behind it */
    /* Translated code's host stack (bt/native.c): RSP when bt_run entered
     * it, and how deep CALLs may take it with host frames. */
    uintptr_t bt_host_rsp, bt_host_rsp_floor;
    jmp_buf fault_jmp;           /* where an exception raised mid-instruction unwinds to */

    /* Exception being delivered (valid while fault_depth > 0). */
    int exc_vector;
    uint32_t exc_error;
    bool exc_has_error;
    bool exc_ext;                /* delivering an external event: selector error codes get EXT=1 */
    /* The livelock guard (interp_deliver_pending): the last exception's
     * vector and linear address, how often in a row it recurred with no
     * interrupt taken in between, and whether a livelock was reported. */
    int repeat_vector;
    uint32_t repeat_addr;
    uint32_t repeat_count;
    bool livelock_reported;

    /* Software TLB: [0] supervisor accesses, [1] user (CPL 3) accesses. */
    struct tlb_entry tlb[2][TLB_SIZE];
    /* Indices of the entries filled since they were last flushed: flushes
     * and scans visit only those (a guest touches few of 4096 pages between
     * CR3 writes).  Entries filled with global pages have a list of their
     * own, which a CR3 write (it keeps them) need not walk. */
    uint16_t tlb_used[2][TLB_LISTS][TLB_SIZE];
    unsigned tlb_nused[2][TLB_LISTS];
    uint64_t tlb_generation;     /* physmem generation the TLB was filled under */
    /* Supervisor entries for user pages filled while CR4.SMAP and EFLAGS.AC
     * were set (the only time they may hold data tags): clearing AC takes
     * their tags away again (mmu_eflags_written). */
    uint16_t tlb_smap[TLB_SIZE];
    unsigned tlb_smap_n;

    struct machine *m;
    /* Data breakpoints the MMU's slow paths check (monitor/databp.h), or
     * NULL; owned by their source (the gdb stub), kept across resets. */
    struct databp_set *databp;
};

/* Instructions retired since power-on. */
/* Empty translated code's return stack: the mappings it assumed may be gone. */
static inline void cpu_forget_returns(struct cpu *c)
{
    for (int k = 0; k < CPU_RAS_ENTRIES; k++)
        c->bt_ras[k].slot = c->bt_ras_none;
}

static inline uint64_t cpu_icount(const struct cpu *c)
{
    return c->icount_end - (uint64_t)c->budget;
}

/* A new budget (the count stays). */
static inline void cpu_set_budget(struct cpu *c, int64_t n)
{
    c->icount_end = cpu_icount(c) + (uint64_t)n;
    c->budget = n;
}

/* Register accessors for 8/16/32-bit operands (reg is the ModRM encoding). */
static inline uint8_t cpu_get_r8(const struct cpu *c, int reg)
{
    return reg < 4 ? (uint8_t)c->r[reg] : (uint8_t)(c->r[reg - 4] >> 8);
}
static inline void cpu_set_r8(struct cpu *c, int reg, uint8_t v)
{
    if (reg < 4)
        c->r[reg] = (c->r[reg] & ~0xffu) | v;
    else
        c->r[reg - 4] = (c->r[reg - 4] & ~0xff00u) | ((uint32_t)v << 8);
}
static inline void cpu_set_r16(struct cpu *c, int reg, uint16_t v)
{
    c->r[reg] = (c->r[reg] & ~0xffffu) | v;
}

static inline bool cpu_protected(const struct cpu *c) { return c->cr0 & CR0_PE; }
static inline bool cpu_v86(const struct cpu *c) { return c->eflags & FL_VM; }
static inline bool cpu_code32(const struct cpu *c) { return c->seg[SEG_CS].attr & SEG_ATTR_DB; }
static inline bool cpu_stack32(const struct cpu *c) { return c->seg[SEG_SS].attr & SEG_ATTR_DB; }

/* Power-on / RESET# state (Intel SDM vol. 3, table 9-1). */
void cpu_reset(struct cpu *c);
/* The fields a snapshot keeps (devices/state.h). */
extern const struct state_table cpu_state_table;

/* Raise an exception from inside an instruction: unwinds to the run loop,
 * which restores EIP/ESP to the faulting instruction and delivers it. */
_Noreturn void cpu_raise(struct cpu *c, int vector, uint32_t error_code);
/* Same, for exceptions that carry no error code. */
_Noreturn void cpu_raise_noerr(struct cpu *c, int vector);

/* Run the interpreter until the budget is spent or the CPU halts. */
void interp_run(struct cpu *c);

/* Deliver an external interrupt (vector from the PIC) at an instruction boundary. */
void cpu_deliver_interrupt(struct cpu *c, int vector);

#endif
