/*
 * Instruction helpers shared by the interpreter and the translator's
 * monitor calls: segmentation, stack, control transfers, interrupts, system
 * registers.  One semantic, two engines.
 */
#ifndef RV_INTERP_H
#define RV_INTERP_H

#include "monitor/cpu.h"
#include "monitor/decode.h"
#include "monitor/mmu.h"

/* ---- segmentation (segment.c) ---- */

/* Descriptor as read from a table: raw 8 bytes split in two words. */
struct desc {
    uint32_t lo, hi;
};
static inline uint32_t desc_base(struct desc d) { return (d.lo >> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000u); }
static inline uint32_t desc_limit(struct desc d)
{
    uint32_t l = (d.lo & 0xffff) | (d.hi & 0x000f0000u);
    return (d.hi & 0x00800000u) ? (l << 12) | 0xfff : l;
}
static inline uint16_t desc_attr(struct desc d) { return ((d.hi >> 8) & 0xff) | ((d.hi >> 12) & 0xf00); }
static inline int desc_dpl(struct desc d) { return (d.hi >> 13) & 3; }
static inline bool desc_present(struct desc d) { return d.hi & 0x8000; }
static inline bool desc_is_code(struct desc d) { return (d.hi & 0x1800) == 0x1800; }
static inline bool desc_is_data(struct desc d) { return (d.hi & 0x1800) == 0x1000; }
static inline bool desc_is_system(struct desc d) { return !(d.hi & 0x1000); }
static inline int desc_type(struct desc d) { return (d.hi >> 8) & 0xf; }

/* Selector error code (index|TI, EXT bit when delivering an external event). */
uint32_t sel_error(struct cpu *c, uint16_t sel);
/* Read the descriptor of sel from GDT/LDT; false if outside the table limit. */
bool desc_read(struct cpu *c, uint16_t sel, struct desc *d);
void desc_write_hi(struct cpu *c, uint16_t sel, uint32_t hi);
/* Set the accessed bit in memory, as loading a segment does. */
void desc_set_accessed(struct cpu *c, uint16_t sel, struct desc *d);
/* Fill a segment cache from a descriptor. */
void seg_from_desc(struct seg *s, uint16_t sel, struct desc d);
/* Real-mode / v86 style load: base = sel << 4. */
void seg_load_real(struct cpu *c, int sr, uint16_t sel);
/* MOV/POP/LxS semantics: protected-mode checks raise #GP/#SS/#NP. */
void seg_load(struct cpu *c, int sr, uint16_t sel);
/* After a privilege change: data segments more privileged than CPL become null. */
void seg_invalidate_for_cpl(struct cpu *c);

/* Linear address of seg:off for an access of `size` bytes, with limit and
 * type checks (#GP, or #SS for the stack segment). */
uint32_t seg_check_slow(struct cpu *c, int sr, uint32_t off, int size, bool write);
static inline uint32_t seg_lin(struct cpu *c, int sr, uint32_t off, int size, bool write)
{
    const struct seg *s = &c->seg[sr];
    /* Fast path: an expand-up segment valid for this access, offset in range. */
    if ((s->attr & 0x9c) == 0x90 && (!write || (s->attr & 2)) && off <= s->limit &&
        s->limit - off >= (uint32_t)(size - 1))
        return s->base + off;
    return seg_check_slow(c, sr, off, size, write);
}

static inline uint32_t vm_read(struct cpu *c, int sr, uint32_t off, int size)
{
    return mem_read(c, seg_lin(c, sr, off, size, false), size, mmu_user(c));
}
static inline void vm_write(struct cpu *c, int sr, uint32_t off, int size, uint32_t v)
{
    mem_write(c, seg_lin(c, sr, off, size, true), v, size, mmu_user(c));
}
/* Supervisor-privilege accesses (descriptor tables, TSS), regardless of CPL. */
static inline uint32_t sys_read(struct cpu *c, uint32_t lin, int size) { return mem_read_implicit(c, lin, size); }
static inline void sys_write(struct cpu *c, uint32_t lin, uint32_t v, int size) { mem_write_implicit(c, lin, v, size); }

/* Effective address (offset within the segment) of a memory operand. */
static inline uint32_t insn_ea_offset(const struct cpu *c, const struct insn *in)
{
    uint32_t a = (uint32_t)in->disp;
    if (in->ea_base >= 0)
        a += c->r[in->ea_base];
    if (in->ea_index >= 0)
        a += c->r[in->ea_index] << in->ea_scale;
    return in->addr32 ? a : (a & 0xffff);
}

/* ---- stack ---- */
static inline uint32_t sp_mask(const struct cpu *c) { return cpu_stack32(c) ? 0xffffffffu : 0xffffu; }
static inline void set_sp(struct cpu *c, uint32_t v)
{
    uint32_t m = sp_mask(c);
    c->r[R_ESP] = (c->r[R_ESP] & ~m) | (v & m);
}
void push(struct cpu *c, uint32_t v, int size);
uint32_t pop(struct cpu *c, int size);
/* Read the stack at ESP+offset without popping. */
uint32_t stack_peek(struct cpu *c, uint32_t offset, int size);

/* ---- control transfers and interrupts (transfer.c) ---- */
enum int_kind { INT_EXT, INT_SOFT, INT_EXC, INT_ICEBP, INT_INTO, INT_BP };
void do_interrupt(struct cpu *c, int vector, enum int_kind kind, bool has_err, uint32_t err, uint32_t next_eip);
void do_iret(struct cpu *c, bool op32);
void do_far_jmp(struct cpu *c, uint16_t sel, uint32_t off, bool op32, uint32_t next_eip);
void do_far_call(struct cpu *c, uint16_t sel, uint32_t off, bool op32, uint32_t next_eip);
void do_far_ret(struct cpu *c, bool op32, uint16_t imm);
/* Near jump target check against CS limit (#GP(0)). */
void jump_near(struct cpu *c, uint32_t target, bool op32);
/* Load CS in real/v86 mode or with no checks (reset, SIPI). */
void load_cs_real(struct cpu *c, uint16_t sel, uint32_t eip);
/* Hardware task switch; source is JMP, CALL/INT (nested), or IRET. */
enum task_src { TASK_JMP, TASK_CALL, TASK_IRET, TASK_INT };
void task_switch(struct cpu *c, uint16_t sel, struct desc d, enum task_src src, uint32_t next_eip,
                 bool has_err, uint32_t err);
void set_eflags(struct cpu *c, uint32_t v, uint32_t mask);
/* The EFLAGS bits POPF/IRET may change at the current privilege. */
uint32_t eflags_write_mask(struct cpu *c, bool op32);

/* ---- system registers and privileged instructions (sysregs.c) ---- */
void cpu_write_cr0(struct cpu *c, uint32_t v);
void cpu_write_cr3(struct cpu *c, uint32_t v);
void cpu_write_cr4(struct cpu *c, uint32_t v);
void cpu_cpuid(struct cpu *c);
bool cpu_rdmsr(struct cpu *c, uint32_t msr, uint64_t *val);
bool cpu_wrmsr(struct cpu *c, uint32_t msr, uint64_t val);
uint64_t cpu_rdtsc(struct cpu *c);
/* I/O permission: #GP unless CPL <= IOPL or the TSS bitmap allows the ports. */
void io_check(struct cpu *c, uint16_t port, int size);
/* Reinterpret after CR0/EFLAGS.VM/CS changes: recompute CPL. */
void cpu_update_mode(struct cpu *c);

/* CPUID identity (family 6 = P6 class). */
#define CPU_FAMILY 6
#define CPU_MODEL 5
#define CPU_STEPPING 2
uint32_t cpu_feature_edx(void);

/* ---- x87 (fpu.c) ---- */
bool fpu_implemented(void);
void fpu_exec(struct cpu *c, const struct insn *in);   /* D8-DF, and 0F AE: FXSAVE/FXRSTOR */
void fpu_sse_move(struct cpu *c, const struct insn *in);   /* 0F 10/11/28/29/6F/7F: XMM data moves */
void fpu_wait(struct cpu *c);   /* WAIT/FWAIT: #NM or pending #MF */
void fpu_reset(struct cpu *c);       /* RESET state */
void fpu_reset_init(struct cpu *c);  /* FNINIT state */
/* The status word with TOP merged in, as FNSTSW stores it. */
uint16_t fpu_status_word(const struct cpu *c);

/* ---- the interpreter's pieces other engines reuse (interp.c) ---- */
/* LOCK is allowed on this instruction (a read-modify-write of memory); else
 * #UD.  The opcode table's insn_lockable (decode.h), under its older name. */
bool insn_lock_allowed(const struct insn *in);
/* Execute one decoded instruction; c->eip already points past it.  Calls the
 * handler the opcode table names for it (opinfo(in)->handler). */
void interp_exec(struct cpu *c, const struct insn *in);
/* Fetch, decode and execute one instruction, with single-step traps. */
void interp_step(struct cpu *c);
/* After a fault unwound to the engine's setjmp: restore and deliver it. */
void interp_deliver_pending(struct cpu *c);
/* The run loop of both engines: until the budget is spent, the CPU halts or
 * the machine stops, deliver ready interrupts, else call step(opaque) to run
 * an instruction or a block; exceptions raised inside unwind here. */
void cpu_run_loop(struct cpu *c, void (*step)(void *opaque), void *opaque);
/* IF set, no interrupt shadow, and the PIC asserts INTR. */
bool interp_interrupt_ready(struct cpu *c);

/* Log an unimplemented opcode once per address and raise #UD. */
_Noreturn void raise_ud_unimplemented(struct cpu *c, const struct insn *in, const char *what);

#endif
