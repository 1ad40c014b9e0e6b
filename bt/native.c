/*
 * Native translation: the common 32-bit integer instructions become the same
 * host instruction on the same operands ("identical" translation).
 *
 * Conventions inside a block: RBX holds the struct cpu pointer; RAX, RCX,
 * RDX, RSI and RDI are scratch; R11 holds captured flags.  Guest registers
 * live in host registers while native code runs (EAX..EDI in R8, R9, R10,
 * R12, R13, R14, R15, RBP): the block loads the ones it uses before its
 * first native instruction and stores them back before anything else may
 * look at struct cpu — a threaded instruction, a stub, an exit to bt_run.
 * Between blocks struct cpu is whole, except across the chained jumps of
 * flat blocks, which keep all eight in their host registers and carry the
 * arithmetic flags in AX (see emit_patched_exit).  Guest AH..BH have no
 * host encoding next to a REX prefix: instructions naming them rotate the
 * host register around themselves (see emit_high_byte_rotate).
 *
 * Arithmetic flags come from the host's own flags after the host
 * instruction (pushfq), merged into the guest EFLAGS under the mask of flags
 * that instruction defines; logic ops clear AF as the shared ALU semantics do.
 *
 * Memory operands take an inline fast path: an expand-up segment with a 4 GiB
 * limit, then the software TLB entry of the page (read or write tag), giving
 * a host pointer.  Anything else — a short segment, a TLB miss, MMIO, a page
 * with translations, a page-crossing access — jumps to the instruction's
 * stub, which runs the whole instruction through the interpreter's semantics
 * (bt_step): every check happens before the instruction changes any state,
 * so faults stay precise and nothing is done twice.
 *
 * Retired-instruction counts are kept static while native code runs and
 * taken from the budget at exits and before any call out.
 */
#include "bt/bt.h"
#include "bt/native.h"
#include "monitor/cpu.h"
#include "monitor/physmem.h"
#include "monitor/interp.h"

#include <cpuid.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define OFF_R(i)       ((int32_t)(offsetof(struct cpu, r) + 4 * (i)))
#define OFF_EIP        ((int32_t)offsetof(struct cpu, eip))
#define OFF_FLAGS      ((int32_t)offsetof(struct cpu, eflags))
#define OFF_BUDGET     ((int32_t)offsetof(struct cpu, budget))
#define OFF_RAS_TOP    ((int32_t)offsetof(struct cpu, bt_ras_top))
#define OFF_RAS_EIP    ((int32_t)offsetof(struct cpu, bt_ras[0].eip))
#define OFF_RAS_SLOT   ((int32_t)offsetof(struct cpu, bt_ras[0].slot))
_Static_assert(sizeof(((struct cpu *)0)->bt_ras) == 256, "the return stack's byte offset wraps in a byte register");
#define OFF_SEG(s, f)  ((int32_t)(offsetof(struct cpu, seg) + (s) * sizeof(struct seg) + offsetof(struct seg, f)))
#define OFF_TLB(u, f)  ((int32_t)(offsetof(struct cpu, tlb) + (u) * TLB_SIZE * sizeof(struct tlb_entry) + \
                                  offsetof(struct tlb_entry, f)))

#define FLAGS_ARITH 0x8d5u     /* OF SF ZF AF PF CF */
#define FLAGS_INCDEC 0x8d4u    /* CF preserved */
#define FLAGS_LOGIC 0x8c5u     /* AF is cleared, as the shared ALU semantics do */

/* ---- encoding helpers (host registers: RAX=0 RCX=1 RDX=2 RBX=3 RSI=6) ---- */

static void modrm_rbx(struct emitter *e, int reg, int32_t disp)
{
    if (disp >= -128 && disp <= 127) {
        emit_u8(e, 0x40 | (reg & 7) << 3 | 3); /* [rbx + disp8]: the registers, EIP and EFLAGS */
        emit_u8(e, (uint8_t)disp);
        return;
    }
    emit_u8(e, 0x80 | (reg & 7) << 3 | 3);     /* [rbx + disp32] */
    emit_u32(e, (uint32_t)disp);
}

static void modrm_rdx(struct emitter *e, int reg)
{
    emit_u8(e, (reg & 7) << 3 | 2);            /* [rdx] */
}

/* Opcode of the 8-bit form, or of the 16/32-bit form one above it. */
static uint8_t sized_op(uint8_t op8, int size)
{
    return size == 1 ? op8 : op8 + 1;
}

static void emit_imm(struct emitter *e, uint32_t v, int size)
{
    if (size == 1)
        emit_u8(e, v);
    else if (size == 2) {
        emit_u8(e, v);
        emit_u8(e, v >> 8);
    } else
        emit_u32(e, v);
}

/* The host register holding guest register `guest` (0-7) inside a block. */
static int hreg(int guest)
{
    static const int8_t map[8] = { H_R8, H_R9, H_R10, H_R12, H_R13, H_R14, H_R15, H_RBP };
    return map[guest & 7];
}

/* The host register of a guest register operand of `size`: AH..BH
 * (byte registers 4-7) are the rotated EAX..EBX (see high_byte_regs). */
static int byte_or_hreg(int guest, int size)
{
    return hreg(size == 1 ? guest & 3 : guest);
}

#define MEM_RDX (-1)               /* an r/m operand that is the memory at [rdx] */
#define MEM_COVERED (-2)           /* the memory at [rdx + e->mem_index + e->mem_disp] (64-bit) */
#define EXT(n) (0x100 | (n))       /* a ModRM reg field that is an opcode extension */

/* ModRM, SIB and displacement of [rdx + e->mem_index + e->mem_disp] (the
 * index register's REX.X bit is the caller's). */
static void modrm_covered(struct emitter *e, int reg)
{
    bool d8 = e->mem_disp >= -128 && e->mem_disp <= 127;
    emit_u8(e, (d8 ? 0x40 : 0x80) | (reg & 7) << 3 | 4);
    emit_u8(e, (e->mem_index & 7) << 3 | H_RDX);
    if (d8)
        emit_u8(e, (uint8_t)e->mem_disp);
    else
        emit_u32(e, (uint32_t)e->mem_disp);
}

/*
 * Prefixes, opcode (one byte, or 0x0fXX) and ModRM of `op reg, rm` at
 * `size`: reg is a host register or EXT(n); rm is a host register, MEM_RDX
 * or MEM_COVERED.  A byte operand in SPL..DIL needs a REX prefix to not
 * mean AH..BH.
 */
static void emit_op(struct emitter *e, int size, unsigned opcode, int reg, int rm)
{
    bool reg_is_reg = !(reg & 0x100);
    int r = reg & 0xf;
    if (size == 2)
        emit_u8(e, 0x66);
    uint8_t rex = 0x40;
    if (reg_is_reg && (r & 8))
        rex |= 4;
    if (rm >= 0 && (rm & 8))
        rex |= 1;
    if (rm == MEM_COVERED && (e->mem_index & 8))
        rex |= 2;
    bool low_byte = size == 1 && ((reg_is_reg && r >= 4 && r < 8) || (rm >= 4 && rm < 8));
    if (rex != 0x40 || low_byte)
        emit_u8(e, rex);
    if (opcode > 0xff)
        emit_u8(e, opcode >> 8);
    emit_u8(e, opcode & 0xff);
    if (rm == MEM_RDX) {
        emit_u8(e, (r & 7) << 3 | 2);
    } else if (rm == MEM_COVERED) {
        modrm_covered(e, r);
    } else {
        emit_u8(e, 0xc0 | (r & 7) << 3 | (rm & 7));
    }
}

/* mov dst32, src32 (host registers) */
static void emit_mov_rr32(struct emitter *e, int dst, int src)
{
    emit_op(e, 4, 0x89, src, dst);
}

/* mov host, [rbx + disp] / mov [rbx + disp], host (32-bit) */
static void emit_load_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_rex(e, 0, host, 0);
    emit_u8(e, 0x8b);
    modrm_rbx(e, host, disp);
}

static void emit_store_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_rex(e, 0, host, 0);
    emit_u8(e, 0x89);
    modrm_rbx(e, host, disp);
}

/* The guest registers in `mask` from struct cpu into their host registers, and back. */
static void emit_regs_load(struct emitter *e, unsigned mask)
{
    for (int r = 0; r < 8; r++)
        if (mask & 1u << r)
            emit_load_rbx(e, hreg(r), OFF_R(r));
}

static void emit_regs_store(struct emitter *e, unsigned mask)
{
    for (int r = 0; r < 8; r++)
        if (mask & 1u << r)
            emit_store_rbx(e, hreg(r), OFF_R(r));
}

/* Before a path out of the block or into C: struct cpu gets the registers
 * written since they were loaded. */
static void emit_spill(struct block_emit *be)
{
    emit_regs_store(be->e, be->regs_dirty);
}

/*
 * Every block has the same frame, so chained blocks jump into each other's
 * bodies: the callee-saved registers the guest registers live in, RBX = the
 * cpu, and an RSP aligned for calls into C.
 */
static const int saved_regs[6] = { H_RBX, H_RBP, H_R12, H_R13, H_R14, H_R15 };

#define OFF_HOST_RSP        ((int32_t)offsetof(struct cpu, bt_host_rsp))
#define OFF_HOST_RSP_FLOOR  ((int32_t)offsetof(struct cpu, bt_host_rsp_floor))
#define HOST_FRAMES_MAX     4096       /* host CALL frames (16 bytes each) below bt_run's */

void native_emit_prologue(struct emitter *e)
{
    for (int k = 0; k < 6; k++)
        emit_push(e, saved_regs[k]);
    emit_push(e, H_RAX);                       /* alignment */
    emit_mov_rr64(e, H_RBX, H_RDI);
    emit_u8(e, 0x48); emit_u8(e, 0x89);        /* mov [rbx+host_rsp], rsp */
    modrm_rbx(e, 4, OFF_HOST_RSP);
    emit_u8(e, 0x48); emit_u8(e, 0x8d); emit_u8(e, 0x84); emit_u8(e, 0x24);   /* lea rax, [rsp - frames] */
    emit_u32(e, (uint32_t)-(HOST_FRAMES_MAX * 16));
    emit_u8(e, 0x48); emit_u8(e, 0x89);        /* mov [rbx+host_rsp_floor], rax */
    modrm_rbx(e, H_RAX, OFF_HOST_RSP_FLOOR);
}

void native_emit_load_all(struct block_emit *be)
{
    emit_regs_load(be->e, NATIVE_ALL_REGS);
    be->regs_used = be->regs_valid = be->regs_dirty = NATIVE_ALL_REGS;
}

/* Back to bt_run, dropping the host CALL frames translated code left. */
/* The way back to bt_run: one copy per code buffer (native_emit_epilogue_routine), jumped to. */
static void emit_epilogue(struct emitter *e)
{
    if (e->epilogue) {
        emit_patch_rel32(emit_jmp32(e), e->epilogue);
        return;
    }
    emit_u8(e, 0x48); emit_u8(e, 0x8b);        /* mov rsp, [rbx+host_rsp] */
    modrm_rbx(e, 4, OFF_HOST_RSP);
    emit_pop(e, H_RCX);
    for (int k = 5; k >= 0; k--)
        emit_pop(e, saved_regs[k]);
    emit_ret(e);
}

uint8_t *native_emit_epilogue_routine(struct emitter *e)
{
    uint8_t *start = e->p;
    e->epilogue = NULL;
    emit_epilogue(e);
    return start;
}

static uint8_t *emit_jcc32(struct emitter *e, uint8_t cc)
{
    emit_u8(e, 0x0f);
    emit_u8(e, 0x80 | cc);
    uint8_t *field = e->p;
    emit_u32(e, 0);
    return field;
}

enum { CC_G = 0xf, CC_A = 0x7, CC_NE = 0x5, CC_E = 0x4, CC_AE = 0x3, CC_B = 0x2 };

/* add/sub qword [rbx + disp], imm32 */
static void emit_add_q(struct emitter *e, int32_t disp, int32_t v)
{
    emit_u8(e, 0x48);
    emit_u8(e, 0x81);
    modrm_rbx(e, 0, disp);
    emit_u32(e, (uint32_t)v);
}

/* Retire n instructions: the budget alone counts them (cpu_icount).  The
 * host flags then say whether it is spent (jle). */
static void emit_count(struct emitter *e, int n)
{
    if (n)
        emit_add_q(e, OFF_BUDGET, -n);
}

static void emit_store_eip(struct emitter *e, uint32_t eip)
{
    emit_u8(e, 0xc7);
    modrm_rbx(e, 0, OFF_EIP);
    emit_u32(e, eip);
}

/*
 * Flags are deferred, then captured, then merged.  After a flag-setting
 * host instruction the guest's new flags are in the host's own EFLAGS
 * (host_keep: the host bits to take, host_clear: the guest bits they
 * replace; logic ops clear AF).  They stay there while the code that follows
 * leaves the host flags alone: register ALU ops (whose own flags then join
 * them), moves, and memory operands through the flag-keeping flat probe.
 * Anything else first captures them: `pushfq; pop r11` keeps the host's
 * flags in R11 and the block remembers which guest flags they stand for
 * (pend_keep, pend_clear); a capture that does not replace all of them is
 * combined into R11 in registers.  A conditional jump whose flags are all
 * still in the host tests them directly.  The merge into EFLAGS in struct
 * cpu happens only where someone may look: before a threaded instruction or
 * a shift by CL (whose zero count keeps every flag), when a condition needs
 * flags from both places, in the stubs (out of line), and at every exit.
 * Nothing else in translated code touches R11.
 */

/* The flags as emit_lahf_ax takes them (AH, AL = OF) into host register
 * dst as EFLAGS and PUSHFQ lay them out: OF to bit 11, SF ZF AF PF CF where
 * LAHF has them (and its bit 1, which is set).  Clobbers eax. */
static void emit_flags_layout_from_ax(struct emitter *e, int dst)
{
    emit_u8(e, 0xc0); emit_u8(e, 0xe0); emit_u8(e, 3);         /* shl al, 3 */
    emit_u8(e, 0x66); emit_u8(e, 0xc1); emit_u8(e, 0xc0); emit_u8(e, 8);   /* rol ax, 8 */
    if (dst & 8)
        emit_u8(e, 0x44);
    emit_u8(e, 0x0f); emit_u8(e, 0xb7); emit_u8(e, 0xc0 | (dst & 7) << 3);   /* movzx dst, ax */
}

/* The flags in eax (host layout, only bits of `keep` set) are the new
 * values of the guest flags `clear`: fold them into R11. */
static void emit_combine_eax(struct block_emit *be, uint32_t keep, uint32_t clear)
{
    struct emitter *e = be->e;
    if (be->pend_clear & ~clear) {
        emit_u8(e, 0x41); emit_u8(e, 0x81); emit_u8(e, 0xe3);  /* and r11d, ~clear */
        emit_u32(e, ~clear);
        emit_u8(e, 0x41); emit_u8(e, 0x09); emit_u8(e, 0xc3);  /* or r11d, eax */
        be->pend_keep = (be->pend_keep & ~clear) | keep;
        be->pend_clear |= clear;
    } else {
        emit_mov_rr32(e, H_R11, H_RAX);
        be->pend_keep = keep;
        be->pend_clear = clear;
    }
}

/* The deferred host flags `hkeep`/`hclear` into R11 over what R11 holds,
 * `*keep`/`*clear` (the block's state, or a copy of it on a path that leaves
 * the static state alone: an exit, a stub).  Clobbers eax; first, before
 * anything changes the host flags. */
static void emit_host_into_r11(struct emitter *e, uint32_t hkeep, uint32_t hclear, uint32_t *keep, uint32_t *clear)
{
    if (!hclear)
        return;
    if (!(*clear & ~hclear)) {
        emit_u8(e, 0x9c);                                      /* pushfq; pop r11: they replace all of R11 */
        emit_u8(e, 0x41); emit_u8(e, 0x5b);
        *keep = hkeep;
        *clear = hclear;
        return;
    }
    emit_u8(e, 0x9c); emit_u8(e, 0x58);                        /* pushfq; pop rax */
    emit_u8(e, 0x25); emit_u32(e, hkeep);                      /* and eax, hkeep */
    emit_u8(e, 0x41); emit_u8(e, 0x81); emit_u8(e, 0xe3);      /* and r11d, ~hclear */
    emit_u32(e, ~hclear);
    emit_u8(e, 0x41); emit_u8(e, 0x09); emit_u8(e, 0xc3);      /* or r11d, eax */
    *keep = (*keep & ~hclear) | hkeep;
    *clear |= hclear;
}

/* The deferred flags from the host's EFLAGS into R11. */
static void emit_capture(struct block_emit *be)
{
    emit_host_into_r11(be->e, be->host_keep, be->host_clear, &be->pend_keep, &be->pend_clear);
    be->host_keep = be->host_clear = 0;
    be->logic_reg = -1;
}

/* A host instruction whose guest flags are dead changed the host flags
 * `mask`: the deferred ones among them are gone (dead as well). */
static void host_flags_clobbered(struct block_emit *be, uint32_t mask)
{
    be->host_keep &= ~mask;
    if (!be->host_keep)
        be->host_clear = 0;
    be->logic_reg = -1;
}

/* The host instruction just emitted set the guest flags `mask` (for the
 * whitelisted ones, exactly the host flags it writes): they join the
 * deferred ones.  Dead flags need not be kept, but the host has lost the
 * deferred values it overwrote. */
static void emit_flags_kc(struct block_emit *be, uint32_t keep, uint32_t clear)
{
    be->logic_reg = -1;
    if (be->flags_dead) {
        host_flags_clobbered(be, clear);
        return;
    }
    be->host_keep = (be->host_keep & ~clear) | keep;
    be->host_clear |= clear;
}

static void emit_flags(struct block_emit *be, uint32_t mask)
{
    emit_flags_kc(be, mask, mask == FLAGS_LOGIC ? FLAGS_ARITH : mask);
}

/*
 * Flags that can be made again.  After AND, OR or XOR into a register, the
 * deferred host flags are exactly what TEST of that register gives (CF and
 * OF clear, SF ZF PF of the result, AF cleared by FLAGS_LOGIC).  Until the
 * register or the flags change, a probe may use the short TLB lookup, which
 * clobbers the host flags, and redo them with one TEST after it; its stub
 * redoes them before it captures them.
 */
static void note_logic_result(struct block_emit *be, int guest, int size)
{
    if (be->host_keep == FLAGS_LOGIC && be->host_clear == FLAGS_ARITH && !(size == 1 && guest >= 4))
        be->logic_reg = guest, be->logic_size = size, be->logic_notes++;
}

static void emit_redo_logic_flags(struct emitter *e, int guest, int size)
{
    emit_op(e, size, size == 1 ? 0x84 : 0x85, hreg(guest), hreg(guest));   /* test r, r */
}

/* EFLAGS = (EFLAGS & ~clear) | (r11 & keep). */
static void emit_merge_r11(struct emitter *e, uint32_t keep, uint32_t clear)
{
    emit_u8(e, 0x41); emit_u8(e, 0x81); emit_u8(e, 0xe3);      /* and r11d, keep */
    emit_u32(e, keep);
    emit_u8(e, 0x81);                                          /* and dword [rbx+eflags], ~clear */
    modrm_rbx(e, 4, OFF_FLAGS);
    emit_u32(e, ~clear);
    emit_u8(e, 0x44); emit_u8(e, 0x09);                        /* or [rbx+eflags], r11d */
    modrm_rbx(e, 3, OFF_FLAGS);
}

/* Merge captured flags now (the code that follows sees EFLAGS in memory). */
static void emit_materialize(struct block_emit *be)
{
    emit_capture(be);
    if (!be->pend_keep)
        return;
    emit_merge_r11(be->e, be->pend_keep, be->pend_clear);
    be->pend_keep = be->pend_clear = 0;
}

/* LAHF in 64-bit mode (CPUID 80000001h ECX bit 0): every x86-64 CPU but
 * the first few. */
static bool host_has_lahf(void)
{
    static int has = -1;
    if (has < 0) {
        unsigned a, b, c, d;
        has = __get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & 1);
    }
    return has;
}

/* All six guest flags are deferred in the host's EFLAGS (AF possibly
 * cleared by a logic op): LAHF/SETO can take them. */
static bool host_flags_whole(const struct block_emit *be)
{
    return be->host_clear == FLAGS_ARITH && (be->host_keep | 0x10) == FLAGS_ARITH && host_has_lahf();
}

/* ah = SF ZF AF PF CF (LAHF), al = OF: two cheap instructions, no pushfq. */
static void emit_lahf_ax(struct emitter *e)
{
    emit_u8(e, 0x9f);                                          /* lahf */
    emit_u8(e, 0x0f); emit_u8(e, 0x90); emit_u8(e, 0xc0);      /* seto al */
}

/* The guest's flags, all deferred in the host's EFLAGS, into AX as
 * emit_lahf_ax takes them, with AF cleared where a logic op cleared it. */
static void emit_flags_to_ax(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_lahf_ax(e);
    if (!(be->host_keep & 0x10)) {
        emit_u8(e, 0x80); emit_u8(e, 0xe4); emit_u8(e, 0xef);   /* and ah, ~AF */
    }
}

/* The flags emit_lahf_ax took (`keep`: AF or not) into EFLAGS in memory.
 * LAHF's byte has CF PF AF ZF SF where EFLAGS has them.  EFLAGS is written
 * as a dword: byte stores would stall the dword loads that follow (store
 * forwarding).  Clobbers eax, edx. */
static void emit_merge_ax(struct emitter *e, uint32_t keep)
{
    emit_flags_layout_from_ax(e, H_RDX);
    emit_u8(e, 0x81); emit_u8(e, 0xe2);                        /* and edx, arith (LAHF's bit 1 is set) */
    emit_u32(e, keep | 0x800);
    emit_u8(e, 0x81); modrm_rbx(e, 4, OFF_FLAGS);              /* and dword [rbx+eflags], ~arith */
    emit_u32(e, ~FLAGS_ARITH);
    emit_u8(e, 0x09); modrm_rbx(e, H_RDX, OFF_FLAGS);          /* or [rbx+eflags], edx */
}

/* AX as emit_lahf_ax leaves it, from the (whole) EFLAGS in memory. */
static void emit_ax_from_eflags(struct emitter *e)
{
    emit_u8(e, 0x0f); emit_u8(e, 0xb6);                        /* movzx eax, byte [rbx+eflags] */
    modrm_rbx(e, H_RAX, OFF_FLAGS);
    emit_u8(e, 0xc1); emit_u8(e, 0xe0); emit_u8(e, 8);         /* shl eax, 8 */
    emit_u8(e, 0x0f); emit_u8(e, 0xba);                        /* bt dword [rbx+eflags], 11 */
    modrm_rbx(e, 4, OFF_FLAGS);
    emit_u8(e, 11);
    emit_u8(e, 0x0f); emit_u8(e, 0x92); emit_u8(e, 0xc0);      /* setc al */
}

void native_emit_entry_flags(struct block_emit *be, enum entry_flags how)
{
    struct emitter *e = be->e;
    switch (how) {
    case ENTRY_FLAGS_FROM_EFLAGS:
        emit_ax_from_eflags(e);
        break;
    case ENTRY_FLAGS_KEEP:
        emit_mov_rr32(e, H_R11, H_RAX);        /* the entry checks use RAX */
        break;
    case ENTRY_FLAGS_FROM_R11:
        emit_mov_rr32(e, H_RAX, H_R11);
        break;
    case ENTRY_FLAGS_TO_HOST:
        emit_u8(e, 0x04); emit_u8(e, 0x7f);                    /* add al, 0x7f: OF = (al == 1) */
        emit_u8(e, 0x9e);                                      /* sahf */
        be->host_keep = be->host_clear = FLAGS_ARITH;
        break;
    case ENTRY_FLAGS_R11_FROM_EFLAGS:
        emit_u8(e, 0x44); emit_u8(e, 0x8b);                    /* mov r11d, [rbx+eflags] */
        modrm_rbx(e, 3, OFF_FLAGS);
        be->entry_flags_pending = true;
        break;
    case ENTRY_FLAGS_R11_FROM_AX:
        emit_flags_layout_from_ax(e, H_R11);
        be->entry_flags_pending = true;
        break;
    case ENTRY_FLAGS_PENDING:
        be->pend_keep = be->pend_clear = FLAGS_ARITH;
        break;
    }
}

/* An entry check's way out: the flags ENTRY_FLAGS_KEEP put in R11 into EFLAGS. */
static void emit_entry_flags_out(struct block_emit *be)
{
    if (be->entry_flags_pending) {
        emit_merge_r11(be->e, FLAGS_ARITH, FLAGS_ARITH);
        return;
    }
    if (!be->entry_flags_r11)
        return;
    emit_mov_rr32(be->e, H_RAX, H_R11);
    emit_merge_ax(be->e, FLAGS_ARITH);
}

/* The same merge on one path out of the block, leaving the static state alone. */
static void emit_materialize_on_exit(struct block_emit *be)
{
    struct emitter *e = be->e;
    if (host_flags_whole(be)) {
        emit_lahf_ax(e);
        emit_merge_ax(e, be->host_keep);
        return;
    }
    uint32_t keep = be->pend_keep, clear = be->pend_clear;
    emit_host_into_r11(e, be->host_keep, be->host_clear, &keep, &clear);
    if (keep)
        emit_merge_r11(e, keep, clear);
}

/* A flat block's way out to a jump cache lookup: the flags as a chained
 * entry takes them (AX), kept in R11 across the lookup, when they are all
 * in the host's EFLAGS (returns true); else merged into EFLAGS. */
static bool emit_flags_for_handover(struct block_emit *be)
{
    struct emitter *e = be->e;
    if (!host_flags_whole(be)) {
        emit_materialize_on_exit(be);
        return false;
    }
    emit_flags_to_ax(be);
    emit_mov_rr32(e, H_R11, H_RAX);
    return true;
}

/* Where the guest flags in `need` are: in R11 (true) or in EFLAGS in
 * memory; native_emit has captured deferred flags and merged R11 first where
 * they were in more than one place. */
static bool flags_in_r11(const struct block_emit *be, uint32_t need)
{
    return (be->pend_keep & need) != 0;
}

/* The guest CF into the host CF (ADC/SBB): already there when deferred, else
 * bt r11d, 0 or bt dword [rbx+eflags], 0. */
static void emit_load_cf(struct block_emit *be)
{
    struct emitter *e = be->e;
    if (be->host_keep & 0x1)
        return;
    if (flags_in_r11(be, 0x1)) {
        emit_u8(e, 0x41); emit_u8(e, 0x0f); emit_u8(e, 0xba); emit_u8(e, 0xe3);
    } else {
        emit_u8(e, 0x0f); emit_u8(e, 0xba);
        modrm_rbx(e, 4, OFF_FLAGS);
    }
    emit_u8(e, 0);
}

/* The block's CS covers every EIP (a flat block: 4 GiB by its key). */
static bool cs_covers_all(const struct block_emit *be)
{
    return be->limit_checked == 0xffffffffu;
}

/* ---- stubs and exits ---- */

static struct native_stub *cur_stub(struct block_emit *be)
{
    return &be->stubs[be->nstubs];
}

/* The rel32 field of a jump to this instruction's stub. */
static void add_stub_fixup(struct block_emit *be, uint8_t *field)
{
    struct native_stub *s = cur_stub(be);
    if (s->nfixups == NATIVE_MAX_FIXUPS) {
        fprintf(stderr, "retrovisor: bt: too many slow-path jumps in one instruction\n");
        abort();
    }
    s->fixups[s->nfixups++] = field;
}

static void jump_to_stub(struct block_emit *be, uint8_t cc)
{
    add_stub_fixup(be, emit_jcc32(be->e, cc));
}

static void emit_jump_cache(struct block_emit *be, bool counted, bool flags_in_r11, bool ret);
static void emit_shift_of(struct emitter *e, int kind, int size, int rm);
static void emit_put_flags_eax(struct emitter *e, uint32_t clear);

/*
 * Leave for a fixed EIP.  A chainable exit records its slot, then jumps
 * straight into the target block when bt_run has resolved it, the budget
 * is not spent, no write has asked to leave, the target is still valid,
 * CS base is page-aligned (same page by EIP = same linear page) and the
 * target lies within the CS limit.
 */
/*
 * What every chained way out checks first: the budget is spent (interrupts
 * and timers wait for that).  `counted`: the host flags are still those of
 * emit_count's subtraction.  Returns the rel32 field of the jump taken then.
 * (A write that asks to leave, bt_exit, happens inside a call into C, and
 * every call's caller leaves when it returns false.)
 */
static uint8_t *emit_leave_check(struct emitter *e, bool counted)
{
    if (!counted) {
        emit_u8(e, 0x48); emit_u8(e, 0x83);                    /* cmp qword [rbx+budget], 0 */
        modrm_rbx(e, 7, OFF_BUDGET);
        emit_u8(e, 0);
    }
    return emit_jcc32(e, 0xe);                                 /* jle */
}

/* Code that runs only on the way out to bt_run (a chained exit not yet
 * patched, a jump cache miss) goes with the stubs, out of the body's cache
 * lines; the body goes on where it was. */
static struct emitter *cold_code(struct block_emit *be)
{
    be->e = be->cold;
    return be->e;
}

static struct emitter *hot_code(struct block_emit *be)
{
    be->e = be->hot;
    return be->e;
}

/* The next of the block's fixed-target exit slots, for `eip`. */
static struct chain_slot *new_chain_slot(struct block_emit *be, uint32_t eip)
{
    struct chain_slot *slot = &be->chain[be->nchain++];
    slot->eip = eip;
    slot->owner = (struct block *)((uint8_t *)be->chain - offsetof(struct block, chain));
    return slot;
}

/* EIP, and the slot bt_run may resolve, on the way out to bt_run. */
static void emit_unchained_exit(struct emitter *e, uint32_t eip, struct chain_slot *slot)
{
    emit_store_eip(e, eip);
    emit_mov_imm64(e, H_RAX, (uintptr_t)slot);
    emit_u8(e, 0x48); emit_u8(e, 0x89);                        /* mov [rbx+bt_chain_slot], rax */
    modrm_rbx(e, H_RAX, (int32_t)offsetof(struct cpu, bt_chain_slot));
}

/* Jumps out (the rel32 fields go to miss[0] and miss[1]) unless the TLB
 * maps the linear page `lin`, a constant, to the physical page `phys`.
 * Returns where `phys` sits in the code, for a caller that patches it. */
static uint8_t *emit_tlb_maps_check(struct block_emit *be, uint32_t lin, uint32_t phys, uint8_t **miss)
{
    struct emitter *e = be->e;
    int32_t entry = (int32_t)(((lin >> 12) & (TLB_SIZE - 1)) * sizeof(struct tlb_entry));
    emit_u8(e, 0x81); modrm_rbx(e, 7, OFF_TLB(be->user, tag_read) + entry);   /* cmp dword [tag_read], lin */
    emit_u32(e, lin);
    miss[0] = emit_jcc32(e, CC_NE);
    emit_u8(e, 0x81); modrm_rbx(e, 7, OFF_TLB(be->user, phys) + entry);       /* cmp dword [phys], phys */
    uint8_t *field = e->p;
    emit_u32(e, phys);
    miss[1] = emit_jcc32(e, CC_NE);
    return field;
}

/* To another page than the block's: the TLB check a patched jump to
 * `eip` sits behind (its jumps out added to out[*n]), for bt_run to patch
 * the target's physical page into. */
static void emit_other_page_check(struct block_emit *be, struct chain_slot *slot, uint8_t **out, int *n)
{
    if (!((slot->eip ^ be->block_eip) & PAGE_MASK))
        return;
    /* The physical page 1 matches no TLB entry until bt_run patches the target's in. */
    slot->phys = emit_tlb_maps_check(be, slot->eip & PAGE_MASK, 1, &out[*n]);
    *n += 2;
}

/*
 * Where a host RET comes back to after a CALL's host call (see
 * emit_host_call): registers in their host registers, flags in AX, as at a
 * chained entry.  A patched jump goes on to the return site's block;
 * unchained, every register is stored (the callee may have written any).
 */
static void emit_return_site(struct block_emit *be, uint32_t ret_eip)
{
    struct emitter *e = be->e;
    struct chain_slot *slot = new_chain_slot(be, ret_eip);
    uint8_t *out[2];
    int n = 0;
    emit_other_page_check(be, slot, out, &n);
    slot->jump = emit_jmp32(e);
    e = cold_code(be);
    slot->unchained = e->p;
    emit_patch_rel32(slot->jump, slot->unchained);
    for (int k = 0; k < n; k++)
        emit_patch_rel32(out[k], e->p);
    emit_merge_ax(e, FLAGS_ARITH);
    emit_regs_store(e, NATIVE_ALL_REGS);
    emit_unchained_exit(e, ret_eip, slot);
    emit_epilogue(e);
    hot_code(be);
}

/*
 * A CALL's way into its target as a host call, so that the callee's RET
 * is a host RET the host predicts: push the EIP it must return to (a RET
 * to another leaves the frame; see emit_host_return), then call.  Frames
 * stop at HOST_FRAMES_MAX below bt_run's RSP (out[*n], to bt_run); bt_run's
 * way in and every way out to it reset RSP.  Returns the call's rel32.
 */
static uint8_t *emit_host_call(struct block_emit *be, uint32_t ret_eip, uint8_t **out, int *n)
{
    struct emitter *e = be->e;
    emit_u8(e, 0x48); emit_u8(e, 0x3b);        /* cmp rsp, [rbx+host_rsp_floor] */
    modrm_rbx(e, 4, OFF_HOST_RSP_FLOOR);
    out[(*n)++] = emit_jcc32(e, 0x6);          /* jbe */
    emit_u8(e, 0x68); emit_u32(e, ret_eip);    /* push ret_eip (sign-extended) */
    uint8_t *call = emit_call32(e);
    emit_return_site(be, ret_eip);
    return call;
}

/*
 * A fixed-target exit of a flat block: a jump bt_run patches to the
 * target's entry_chained (and back when the target is invalidated).  With a
 * flat CS (part of the block's key) every EIP is within the limit, and CS
 * cannot change inside a chained run (the instructions that load it are
 * threaded and end chaining), so only interrupts, the budget and writes that
 * ask to leave are checked.  In the same page, the same page by EIP is the
 * same linear page.  To another page, the jump sits behind a check that the
 * TLB still maps the target's linear page (the EIP's: CS base is 0) to the
 * physical page bt_run found the target in, which it patches in with the
 * jump; a missing TLB entry goes out to bt_run, whose lookup fills it.  The
 * guest registers go across in their host registers: the target's chained
 * entry takes all eight as loaded and possibly written.  The arithmetic
 * flags go across in AX (LAHF, SETO AL), taken from EFLAGS when they are
 * not all in the host's; the target's entry drops them, merges them or
 * puts them back into the host's EFLAGS (see emit_flat_entry in bt.c).
 * Only the way out to bt_run stores the registers and merges the flags.
 * `ret_eip`: the exit is a CALL's to its target (see emit_host_call), which
 * takes two slots; else 0.
 */
static void emit_patched_exit(struct block_emit *be, uint32_t eip, int count, uint32_t ret_eip)
{
    struct emitter *e = be->e;
    bool whole = host_flags_whole(be);
    if (whole) {
        emit_flags_to_ax(be);
    } else {
        emit_materialize_on_exit(be);
        emit_ax_from_eflags(e);
    }
    emit_count(e, count);
    emit_regs_load(e, NATIVE_ALL_REGS & ~be->regs_valid);
    struct chain_slot *slot = new_chain_slot(be, eip);
    uint8_t *out[4];
    int n = 0;
    out[n++] = emit_leave_check(e, count != 0);
    emit_other_page_check(be, slot, out, &n);
    slot->jump = ret_eip ? emit_host_call(be, ret_eip, out, &n) : emit_jmp32(e);
    e = cold_code(be);
    slot->unchained = e->p;
    emit_patch_rel32(slot->jump, slot->unchained);
    for (int k = 0; k < n; k++)
        emit_patch_rel32(out[k], e->p);
    if (whole)
        emit_merge_ax(e, FLAGS_ARITH);
    emit_spill(be);
    emit_unchained_exit(e, eip, slot);
    emit_epilogue(e);
    hot_code(be);
}

/* rdx = the page addend of base register `base`, which its entry check saved. */
static void emit_load_addend(struct emitter *e, int base)
{
    emit_u8(e, 0x48); emit_u8(e, 0x8b);                        /* mov rdx, [rbx+bt_base_addend[base]] */
    modrm_rbx(e, H_RDX, (int32_t)(offsetof(struct cpu, bt_base_addend) + 8 * base));
}

/*
 * A flat block that jumps to its own start: the flags go back in AX (see
 * emit_flat_entry in bt.c), and the jump needs no patching.  It skips the
 * entry checks whose registers the block does not write (loop_top), with
 * RDX holding the page addend the code there expects; a block without a
 * loop_top jumps to its own entry_chained.  Only the budget is checked:
 * the jump back is a jg on its subtraction.
 */
static void emit_self_jump(struct block_emit *be, uint32_t eip, int count)
{
    struct emitter *e = be->e;
    bool r11 = be->loop_top && be->entry_flags_pending;   /* the code at loop_top takes them in R11 */
    emit_flags_to_ax(be);
    if (r11)
        emit_flags_layout_from_ax(e, H_R11);
    emit_count(e, count);
    emit_regs_load(e, NATIVE_ALL_REGS & ~be->regs_valid);
    if (be->loop_top && be->loop_rdx >= 0 && be->rdx_addend != be->loop_rdx) {
        emit_load_addend(e, be->loop_rdx);
    }
    emit_patch_rel32(emit_jcc32(e, CC_G), be->loop_top ? be->loop_top : be->self->entry_chained);
    if (r11)                                                   /* the budget is spent: out to bt_run */
        emit_merge_r11(e, FLAGS_ARITH, FLAGS_ARITH);
    else
        emit_merge_ax(e, FLAGS_ARITH);
    emit_spill(be);
    emit_store_eip(e, eip);
    emit_epilogue(e);
}

static void emit_exit_n(struct block_emit *be, uint32_t eip, int count)
{
    struct emitter *e = be->e;
    if (be->chain && be->flat && eip == be->block_eip && count && host_flags_whole(be)) {
        emit_self_jump(be, eip, count);
        return;
    }
    if (be->chain && be->flat && be->nchain < BT_CHAIN_SLOTS) {
        emit_patched_exit(be, eip, count, 0);
        return;
    }
    bool cross_page = be->chain && ((eip ^ be->block_eip) & PAGE_MASK);
    bool handover = cross_page && be->flat;
    if (!handover)
        emit_spill(be);
    bool flags_in_r11 = handover ? emit_flags_for_handover(be) : (emit_materialize_on_exit(be), false);
    emit_count(e, count);
    if (cross_page) {
        /* Another page: whether it maps where it did is the TLB's to say. */
        emit_store_eip(e, eip);
        emit_u8(e, 0xbf); emit_u32(e, eip);                    /* mov edi, eip */
        emit_jump_cache(be, count != 0, flags_in_r11, false);
        if (be->flat)
            emit_spill(be);                    /* not found: out to bt_run */
    } else if (be->chain && be->nchain < BT_CHAIN_SLOTS) {
        /* EIP and the slot matter only to bt_run: stored on the way out. */
        struct chain_slot *slot = new_chain_slot(be, eip);
        uint8_t *out[5];
        out[0] = emit_leave_check(e, count != 0);
        emit_u8(e, 0xf7);                                      /* test dword [rbx+cs.base], 0xfff */
        modrm_rbx(e, 0, OFF_SEG(SEG_CS, base));
        emit_u32(e, 0xfff);
        out[1] = emit_jcc32(e, CC_NE);
        emit_mov_imm64(e, H_RAX, (uintptr_t)slot);
        emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x00);  /* mov rax, [rax] */
        emit_u8(e, 0x48); emit_u8(e, 0x85); emit_u8(e, 0xc0);  /* test rax, rax */
        out[2] = emit_jcc32(e, CC_E);
        emit_u8(e, 0x80); emit_u8(e, 0xb8);                    /* cmp byte [rax+valid], 0 */
        emit_u32(e, offsetof(struct block, valid));
        emit_u8(e, 0);
        out[3] = emit_jcc32(e, CC_E);
        emit_u8(e, 0x8b); emit_u8(e, 0x88);                    /* mov ecx, [rax+last] */
        emit_u32(e, offsetof(struct block, last));
        emit_u8(e, 0x3b);                                      /* cmp ecx, [rbx+cs.limit] */
        modrm_rbx(e, H_RCX, OFF_SEG(SEG_CS, limit));
        out[4] = emit_jcc32(e, CC_A);
        emit_u8(e, 0xff); emit_u8(e, 0xa0);                    /* jmp [rax+entry] */
        emit_u32(e, offsetof(struct block, entry));
        for (int k = 0; k < 5; k++)
            emit_patch_rel32(out[k], e->p);
        emit_unchained_exit(e, eip, slot);
    } else {
        emit_store_eip(e, eip);
    }
    emit_epilogue(be->e);
    hot_code(be);
}

void native_emit_exit(struct block_emit *be, uint32_t eip)
{
    emit_exit_n(be, eip, be->pending);
}

void native_flush_count(struct block_emit *be)
{
    emit_count(be->e, be->pending);
    be->pending = 0;
}

/* EIP = eip, then al = step(cpu, in): the interpreter runs the instruction. */
static void emit_call_step(struct emitter *e, uint32_t eip, const struct insn *in,
                           bool (*step)(struct cpu *, const struct insn *))
{
    emit_store_eip(e, eip);
    emit_mov_rr64(e, H_RDI, H_RBX);
    emit_mov_imm64(e, H_RSI, (uintptr_t)in);
    emit_mov_imm64(e, H_RAX, (uintptr_t)step);
    emit_call_r(e, H_RAX);
}

void native_emit_stubs(struct block_emit *be, bool (*step)(struct cpu *, const struct insn *))
{
    struct emitter *e = be->e;
    if (be->nbase_miss) {
        /* An entry check failed: nothing has run; the registers came loaded.
         * Which register's, bt_run learns from bt_nocache_reg. */
        uint8_t *to_common[8];
        int n = 0;
        for (int r = 0; r < 8; r++) {
            bool any = false;
            for (int k = 0; k < be->nbase_miss; k++)
                if (be->base_miss_reg[k] == r) {
                    emit_patch_rel32(be->base_miss[k], e->p);
                    any = true;
                }
            if (!any)
                continue;
            emit_u8(e, 0xc7);                                  /* mov dword [rbx+bt_nocache_reg], r */
            modrm_rbx(e, 0, (int32_t)offsetof(struct cpu, bt_nocache_reg));
            emit_u32(e, (uint32_t)r);
            to_common[n++] = emit_jmp32(e);
        }
        for (int k = 0; k < n; k++)
            emit_patch_rel32(to_common[k], e->p);
        emit_entry_flags_out(be);
        emit_regs_store(e, NATIVE_ALL_REGS);
        emit_store_eip(e, be->block_eip);
        emit_mov_imm64(e, H_RAX, (uintptr_t)be->self);
        emit_u8(e, 0x48); emit_u8(e, 0x89);                    /* mov [rbx+bt_nocache], rax */
        modrm_rbx(e, H_RAX, (int32_t)offsetof(struct cpu, bt_nocache));
        emit_epilogue(e);
    }
    if (be->page2_miss[0]) {
        /* The second page is not in the TLB, or maps elsewhere: nothing has
         * run; bt_run's lookup walks the page tables and decides. */
        emit_patch_rel32(be->page2_miss[0], e->p);
        emit_patch_rel32(be->page2_miss[1], e->p);
        emit_entry_flags_out(be);
        emit_regs_store(e, NATIVE_ALL_REGS);
        emit_store_eip(e, be->block_eip);
        emit_epilogue(e);
    }
    uint8_t *plain_exit = e->p;
    emit_epilogue(e);
    for (int k = 0; k < be->nplain; k++)
        emit_patch_rel32(be->plain_exits[k], plain_exit);
    for (int k = 0; k < be->nstubs; k++) {
        struct native_stub *s = &be->stubs[k];
        for (int f = 0; f < s->nfixups; f++)
            emit_patch_rel32(s->fixups[f], e->p);
        uint32_t keep = s->pend_keep, clear = s->pend_clear;
        if (s->logic_reg >= 0)
            emit_redo_logic_flags(e, s->logic_reg, s->logic_size);   /* the probe's lookup clobbered them */
        emit_host_into_r11(e, s->host_keep, s->host_clear, &keep, &clear);
        emit_regs_store(e, s->dirty);
        if (keep)
            emit_merge_r11(e, keep, clear);
        if (s->of_rm >= 0) {
            if (s->of_kind != 5) {
                emit_u8(e, 0x8b);                              /* mov esi, [rbx+eflags]: CF for SHL/SAL's OF */
                modrm_rbx(e, H_RSI, OFF_FLAGS);
            }
            emit_shift_of(e, s->of_kind, s->of_size, s->of_rm);
            emit_put_flags_eax(e, 0x800);
        }
        emit_count(e, s->pending);
        emit_call_step(e, s->eip, s->in, s->step ? s->step : step);
        if (!s->resume) {
            /* A control transfer: the interpreter has set EIP and counted it. */
            emit_patch_rel32(emit_jmp32(e), plain_exit);
            continue;
        }
        emit_test_al(e);
        emit_patch_rel32(emit_jcc32(e, CC_E), plain_exit);
        emit_regs_load(e, s->regs);
        /* EFLAGS is whole in memory now: later merges of R11 must change nothing. */
        emit_u8(e, 0x44); emit_u8(e, 0x8b);                    /* mov r11d, [rbx+eflags] */
        modrm_rbx(e, 3, OFF_FLAGS);
        /* The resumed code retires this instruction and the earlier ones again. */
        emit_count(e, -(s->pending + 1));
        if (s->host_after) {
            /* It expects the flags in the host's EFLAGS too: the arithmetic
             * ones only (TF, DF and the rest stay the host's). */
            emit_mov_rr32(e, H_RAX, H_R11);
            emit_u8(e, 0x25); emit_u32(e, FLAGS_ARITH);            /* and eax, arith */
            emit_push(e, H_RAX);
            emit_u8(e, 0x9d);                                      /* popfq */
        }
        emit_patch_rel32(emit_jmp32(e), s->resume);
    }
}

/* ---- operands ---- */

/* lea eax, [guest register's host register + d] (flags kept); `wide`:
 * lea rax, the sum without wrapping at 4 GiB. */
static void emit_lea_eax(struct emitter *e, int guest, int32_t d, bool wide)
{
    int r = hreg(guest);
    bool d8 = d >= -128 && d <= 127;
    if ((r & 8) || wide)
        emit_u8(e, 0x40 | (wide ? 8 : 0) | (r & 8 ? 1 : 0));
    emit_u8(e, 0x8d);
    emit_u8(e, (d8 ? 0x40 : 0x80) | ((r & 7) == 4 ? 4 : (r & 7)));
    if ((r & 7) == 4)
        emit_u8(e, 0x24);                      /* r12 needs a SIB byte */
    if (d8)
        emit_u8(e, (uint8_t)d);
    else
        emit_u32(e, (uint32_t)d);
}

/* dst (a host register, 32 bits) = effective offset of the memory operand
 * (32-bit addressing): lea dst, [base + index << scale + disp32], always
 * with a SIB byte. */
static void emit_ea_to(struct emitter *e, const struct insn *in, int dst)
{
    if (in->ea_base < 0 && in->ea_index < 0) {
        emit_rex(e, 0, 0, dst);
        emit_u8(e, 0xb8 | (dst & 7));          /* mov dst, disp32 */
        emit_u32(e, (uint32_t)in->disp);
        return;
    }
    int base = in->ea_base >= 0 ? hreg(in->ea_base) : -1;
    int index = in->ea_index >= 0 ? hreg(in->ea_index) : -1;
    uint8_t rex = 0x40 | (dst & 8 ? 4 : 0) | (index >= 0 && (index & 8) ? 2 : 0) | (base >= 0 && (base & 8) ? 1 : 0);
    if (rex != 0x40)
        emit_u8(e, rex);
    emit_u8(e, 0x8d);
    emit_u8(e, (base >= 0 ? 0x80 : 0x00) | (dst & 7) << 3 | 4);   /* disp32 with a base; none: SIB base 101 */
    int sib_index = index >= 0 ? (index & 7) : 4;             /* 100 without REX.X: no index */
    int sib_base = base >= 0 ? (base & 7) : 5;
    emit_u8(e, (index >= 0 ? (in->ea_scale & 3) << 6 : 0) | sib_index << 3 | sib_base);
    emit_u32(e, (uint32_t)in->disp);
}

static void emit_ea(struct emitter *e, const struct insn *in)
{
    emit_ea_to(e, in, H_RAX);
}

_Static_assert(sizeof(struct tlb_entry) == 32, "translated code indexes the TLB by shifting");

/* edx = byte offset of the TLB entry for the linear address already in edx. */
static void emit_tlb_index_edx(struct emitter *e)
{
    emit_u8(e, 0xc1); emit_u8(e, 0xea); emit_u8(e, 12 - 5);    /* shr edx, 7 */
    emit_u8(e, 0x81); emit_u8(e, 0xe2); emit_u32(e, (TLB_SIZE - 1) << 5);   /* and edx, mask */
}

/*
 * The TLB half of a probe: rdx = host address of `size` bytes at the linear
 * address in `lin` (RAX or RCX, kept), or a jump to the stub.  A hit needs
 * the tag of lin's entry to be the page of its last byte: the access does
 * not cross a page.  Clobbers esi.
 */
static void emit_tlb_lookup(struct block_emit *be, int lin, int size, bool write)
{
    struct emitter *e = be->e;
    emit_u8(e, 0x89); emit_u8(e, 0xc0 | lin << 3 | H_RDX);     /* mov edx, lin */
    emit_tlb_index_edx(e);
    emit_u8(e, 0x8d); emit_u8(e, 0x70 | lin); emit_u8(e, size - 1);   /* lea esi, [lin + size-1] */
    emit_u8(e, 0x81); emit_u8(e, 0xe6); emit_u32(e, PAGE_MASK); /* and esi, PAGE_MASK */
    emit_u8(e, 0x3b); emit_u8(e, 0xb4); emit_u8(e, 0x13);      /* cmp esi, [rbx + rdx + tag] */
    emit_u32(e, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)));
    jump_to_stub(be, CC_NE);
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x94); emit_u8(e, 0x13);  /* mov rdx, [rbx+rdx+addend] */
    emit_u32(e, (uint32_t)OFF_TLB(be->user, addend));
    emit_u8(e, 0x48); emit_u8(e, 0x01); emit_u8(e, 0xc0 | lin << 3 | H_RDX);   /* add rdx, lin */
}

/* BMI2's shifts leave the flags alone: the flag-keeping probe needs them.
 * Without it (or when a test says so) deferred flags are captured before
 * every memory operand.  Each block is translated under one choice and
 * keeps it: deferred flags never cross a block boundary. */
static int flag_keeping_probe = -1;

void bt_set_flag_keeping_probe(bool want)
{
    flag_keeping_probe = want && __builtin_cpu_supports("bmi2");
}

static bool flag_keeping_probe_on(void)
{
    if (flag_keeping_probe < 0)
        bt_set_flag_keeping_probe(true);
    return flag_keeping_probe;
}

/*
 * emit_tlb_lookup for the linear address in `lin` (RAX or RDI, kept),
 * without changing the host flags (deferred guest flags live there): shifts
 * from BMI2, a subtraction by NOT and LEA, and JRCXZ for the test.
 * Clobbers ecx, esi.
 */
static void emit_tlb_lookup_keeping_flags(struct block_emit *be, int lin, int size, bool write)
{
    struct emitter *e = be->e;
    emit_u8(e, 0xc4); emit_u8(e, 0xe3); emit_u8(e, 0x7b);      /* rorx edx, lin, n: index bits on top */
    emit_u8(e, 0xf0); emit_u8(e, 0xd0 | lin); emit_u8(e, (TLB_BITS + 12) & 31);
    emit_u8(e, 0xb9); emit_u32(e, 32 - TLB_BITS);              /* mov ecx, 32 - TLB_BITS */
    emit_u8(e, 0xc4); emit_u8(e, 0xe2); emit_u8(e, 0x73);      /* shrx edx, edx, ecx: the TLB index */
    emit_u8(e, 0xf7); emit_u8(e, 0xd2);
    emit_u8(e, 0x8d); emit_u8(e, 0x14); emit_u8(e, 0x95);      /* lea edx, [rdx*4]: (index * 32) / 8 */
    emit_u32(e, 0);
    emit_u8(e, 0x8d); emit_u8(e, 0x70 | lin); emit_u8(e, size - 1);   /* lea esi, [lin + size-1] */
    emit_u8(e, 0xb9); emit_u32(e, 12);                         /* mov ecx, 12 */
    emit_u8(e, 0xc4); emit_u8(e, 0xe2); emit_u8(e, 0x73);      /* shrx esi, esi, ecx */
    emit_u8(e, 0xf7); emit_u8(e, 0xf6);
    emit_u8(e, 0xc4); emit_u8(e, 0xe2); emit_u8(e, 0x71);      /* shlx esi, esi, ecx: page of the last byte */
    emit_u8(e, 0xf7); emit_u8(e, 0xf6);
    emit_u8(e, 0xf7); emit_u8(e, 0xd6);                        /* not esi */
    emit_u8(e, 0x8b); emit_u8(e, 0x8c); emit_u8(e, 0xd3);      /* mov ecx, [rbx + rdx*8 + tag] */
    emit_u32(e, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)));
    emit_u8(e, 0x8d); emit_u8(e, 0x4c); emit_u8(e, 0x31); emit_u8(e, 1);   /* lea ecx, [rcx + rsi + 1]: tag - page */
    emit_u8(e, 0xe3); emit_u8(e, 5);                           /* jrcxz over the jump to the stub */
    add_stub_fixup(be, emit_jmp32(e));
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x94); emit_u8(e, 0xd3);  /* mov rdx, [rbx + rdx*8 + addend] */
    emit_u32(e, (uint32_t)OFF_TLB(be->user, addend));
    emit_u8(e, 0x48); emit_u8(e, 0x8d); emit_u8(e, 0x14); emit_u8(e, lin << 3 | H_RDX);   /* lea rdx, [rdx + lin] */
}

/* The instruction's operands that lie in pages checked at the block's entry. */
static unsigned cached_operands(const struct block_emit *be)
{
    return (be->base_cached >= 0 ? CACHED_RM : 0) | (be->stack_cached ? CACHED_STACK : 0);
}

/* To the stub (which raises the #GP) when `size` bytes at offset eax
 * would wrap past 4 GiB.  Changes the host flags. */
static void emit_offset_wrap_check(struct block_emit *be, int size)
{
    if (size == 1)
        return;
    emit_u8(be->e, 0x3d);                      /* cmp eax, 2^32 - size */
    emit_u32(be->e, (uint32_t)-size);
    jump_to_stub(be, CC_A);
}

/* FS or GS, 4 GiB by the block's key: its base is added, no other check. */
static bool based_4g(const struct block_emit *be, int sreg)
{
    return (sreg == SEG_FS && (be->flat_key & FLAT_FS)) || (sreg == SEG_GS && (be->flat_key & FLAT_GS));
}

/* Flat DS/ES/SS operands of a flat block, and 4 GiB FS/GS ones: the probe
 * can keep deferred flags. */
static bool probe_keeps_flags(const struct block_emit *be, int sreg)
{
    return ((be->flat && (sreg == SEG_DS || sreg == SEG_ES || sreg == SEG_SS)) || based_4g(be, sreg)) &&
           flag_keeping_probe_on();
}

/*
 * edi = the linear address of `size` bytes at sreg:eax, FS or GS being a
 * 4 GiB segment, or a jump to the stub when the offset wraps past 4 GiB
 * (the interpreter raises the #GP).  `keep_flags`: without touching the
 * host's flags (BMI2's SHRX and JRCXZ test the carry out of bit 31).
 * Clobbers ecx, esi.
 */
static int emit_based_linear(struct block_emit *be, int sreg, int size, bool keep_flags)
{
    struct emitter *e = be->e;
    if (size > 1 && keep_flags) {
        emit_u8(e, 0x48); emit_u8(e, 0x8d); emit_u8(e, 0x48); emit_u8(e, size - 1);   /* lea rcx, [rax + size-1] */
        emit_u8(e, 0xbe); emit_u32(e, 32);                     /* mov esi, 32 */
        emit_u8(e, 0xc4); emit_u8(e, 0xe2); emit_u8(e, 0xcb);  /* shrx rcx, rcx, rsi */
        emit_u8(e, 0xf7); emit_u8(e, 0xc9);
        emit_u8(e, 0xe3); emit_u8(e, 5);                       /* jrcxz over the jump to the stub */
        add_stub_fixup(be, emit_jmp32(e));
    } else {
        emit_offset_wrap_check(be, size);
    }
    emit_u8(e, 0x8b);                          /* mov edi, [rbx+base] */
    modrm_rbx(e, H_RDI, OFF_SEG(sreg, base));
    emit_u8(e, 0x8d); emit_u8(e, 0x3c); emit_u8(e, 0x07);     /* lea edi, [rdi + rax] */
    return H_RDI;
}

/*
 * rdx = host address of `size` bytes at sreg:eax, or a jump to the stub.
 * Preserves eax; clobbers ecx, esi.  stack32 also requires a 32-bit SS.
 *
 * DS/ES/SS in a block translated for flat segments (base 0, 4 GiB limit,
 * writable, 32-bit stack: checked at lookup and kept by every instruction
 * until the first threaded one) need no segment check: offset = linear, and
 * a wrapping access crosses into a page the tag cannot match.
 */
static void emit_probe(struct block_emit *be, int sreg, int size, bool write, bool stack32)
{
    be->rdx_addend = -1;
    struct emitter *e = be->e;
    bool based = based_4g(be, sreg);
    if (be->host_clear) {
        if (!probe_keeps_flags(be, sreg)) {
            fprintf(stderr, "retrovisor: bt: a probe would lose deferred flags\n");
            abort();
        }
        if (be->logic_reg >= 0) {
            emit_tlb_lookup(be, based ? emit_based_linear(be, sreg, size, false) : H_RAX, size, write);
            if (!be->logic_overwritten)
                emit_redo_logic_flags(e, be->logic_reg, be->logic_size);
            return;
        }
        emit_tlb_lookup_keeping_flags(be, based ? emit_based_linear(be, sreg, size, true) : H_RAX, size, write);
        return;
    }
    if (based) {
        emit_tlb_lookup(be, emit_based_linear(be, sreg, size, false), size, write);
        return;
    }
    if (be->flat && (sreg == SEG_DS || sreg == SEG_ES || sreg == SEG_SS)) {
        emit_tlb_lookup(be, H_RAX, size, write);
        return;
    }
    uint32_t mask = 0x9c | (write ? 2 : 0) | (stack32 ? SEG_ATTR_DB : 0);
    uint32_t want = 0x90 | (write ? 2 : 0) | (stack32 ? SEG_ATTR_DB : 0);
    emit_u8(e, 0x83);                          /* cmp dword [rbx+limit], -1 */
    modrm_rbx(e, 7, OFF_SEG(sreg, limit));
    emit_u8(e, 0xff);
    jump_to_stub(be, CC_NE);
    emit_u8(e, 0x0f); emit_u8(e, 0xb7);        /* movzx ecx, word [rbx+attr] */
    modrm_rbx(e, H_RCX, OFF_SEG(sreg, attr));
    emit_u8(e, 0x81); emit_u8(e, 0xe1);        /* and ecx, mask */
    emit_u32(e, mask);
    emit_u8(e, 0x81); emit_u8(e, 0xf9);        /* cmp ecx, want */
    emit_u32(e, want);
    jump_to_stub(be, CC_NE);
    emit_offset_wrap_check(be, size);
    emit_u8(e, 0x89); emit_u8(e, 0xc1);        /* mov ecx, eax */
    emit_u8(e, 0x03);                          /* add ecx, [rbx+base]: linear address */
    modrm_rbx(e, H_RCX, OFF_SEG(sreg, base));
    emit_tlb_lookup(be, H_RCX, size, write);
}

static void emit_high_bytes_in(struct block_emit *be);

/* The r/m operand: its guest register's host register, MEM_RDX after a
 * probe leaves the host address of the memory operand in rdx, or
 * MEM_COVERED. */
static int emit_rm(struct block_emit *be, const struct insn *in, int size, bool write)
{
    struct emitter *e = be->e;
    if (in->mod != 3 && be->base_cached >= 0) {
        /* [reg + disp] in the page checked at the block's entry: no probe,
         * just the page's addend in rdx (which may still hold it) and
         * [rdx + reg + disp].  The host register's upper half is zero
         * (guest registers are only ever written as 32 bits or less), and
         * the entry check saw that reg + disp does not wrap, so the 64-bit
         * sum is the offset. */
        if (be->rdx_addend != be->base_cached) {
            emit_load_addend(e, be->base_cached);
            be->rdx_addend = be->base_cached;
        }
        e->mem_index = hreg(in->ea_base);
        e->mem_disp = in->disp;
        if (!(be->hi_regs & 1u << in->ea_base)) {
            emit_high_bytes_in(be);
            return MEM_COVERED;
        }
        /* The base is about to be rotated (mov bh, [ebx]): the address first. */
        emit_u8(e, 0x48 | (e->mem_index & 8 ? 2 : 0)); emit_u8(e, 0x8d);   /* lea rdx, [rdx + reg + disp] */
        modrm_covered(e, H_RDX);
        be->rdx_addend = -1;
        emit_high_bytes_in(be);
        return MEM_RDX;
    }
    if (in->mod != 3) {
        emit_ea(e, in);
        emit_probe(be, in->ea_seg, size, write, false);
    }
    emit_high_bytes_in(be);
    return in->mod == 3 ? byte_or_hreg(in->rm, size) : MEM_RDX;
}

/* ---- condition codes ---- */

/* The guest flags condition code cc tests. */
static uint32_t cond_flags(int cc)
{
    static const uint32_t need[8] = { 0x800, 0x1, 0x40, 0x41, 0x80, 0x4, 0x880, 0x8c0 };   /* O B Z BE S P L LE */
    return need[(cc & 0xe) >> 1];
}

/* Host ZF clear <=> guest condition (cc & ~1) holds, tested on R11 or on
 * EFLAGS in memory (flags_in_r11).  Clobbers eax, ecx. */
static void emit_cond_base(struct block_emit *be, int cc)
{
    struct emitter *e = be->e;
    int base = (cc & 0xe) >> 1;
    bool r11 = flags_in_r11(be, cond_flags(cc));
    if (base < 6) {
        if (r11) {
            emit_u8(e, 0x41); emit_u8(e, 0xf7); emit_u8(e, 0xc3);   /* test r11d, imm32 */
        } else {
            emit_u8(e, 0xf7);                  /* test dword [rbx+eflags], imm32 */
            modrm_rbx(e, 0, OFF_FLAGS);
        }
        emit_u32(e, cond_flags(cc));
        return;
    }
    if (r11) {
        emit_mov_rr32(e, H_RAX, H_R11);
    } else {
        emit_u8(e, 0x8b);                      /* mov eax, [rbx+eflags] */
        modrm_rbx(e, H_RAX, OFF_FLAGS);
    }
    emit_u8(e, 0x89); emit_u8(e, 0xc1);        /* mov ecx, eax */
    emit_u8(e, 0xc1); emit_u8(e, 0xe9); emit_u8(e, 4);   /* shr ecx, 4: OF onto SF's bit */
    emit_u8(e, 0x31); emit_u8(e, 0xc1);        /* xor ecx, eax */
    emit_u8(e, 0x81); emit_u8(e, 0xe1); emit_u32(e, 0x80);   /* and ecx, 0x80: SF != OF */
    if (base == 7) {
        emit_u8(e, 0x83); emit_u8(e, 0xe0); emit_u8(e, 0x40);   /* and eax, 0x40 (ZF) */
        emit_u8(e, 0x09); emit_u8(e, 0xc1);    /* or ecx, eax */
    }
}

/* The host condition code (jnz/jz family) that means "guest cc holds". */
static uint8_t host_cc(int cc)
{
    return (cc & 1) ? CC_E : CC_NE;
}

/* ---- which instructions ---- */

static bool alu_family(int op) { return op < 0x40 && (op & 7) < 6; }

/*
 * AH, CH, DH and BH have no encoding next to a REX prefix, so an
 * instruction naming one rotates the host register by 8 around itself: its
 * low byte is then the guest's high byte.  The mask of such registers, or
 * -1 when the instruction also names the same register otherwise (AL with
 * AH, CL as a shift count of CH): those are threaded.
 */
static int high_byte_regs(const struct insn *in)
{
    int op = in->op;
    bool byte_reg = false, byte_rm = false;
    if (alu_family(op))
        byte_reg = byte_rm = !(op & 1) && (op & 7) < 4;
    switch (op) {
    case 0x84: case 0x86: case 0x88: case 0x8a: case 0x1b0: case 0x1c0:
        byte_reg = byte_rm = true;
        break;
    case 0x80: case 0xc0: case 0xc6: case 0xd0: case 0xd2: case 0xf6: case 0xfe: case 0x1b6: case 0x1be:
        byte_rm = true;
        break;
    }
    if (op >= 0x190 && op <= 0x19f)
        byte_rm = true;
    if (op >= 0xb4 && op <= 0xb7)
        return 1 << (op & 3);
    bool rm_reg = in->has_modrm && in->mod == 3;
    int mask = 0;
    if (byte_reg && in->reg >= 4)
        mask |= 1 << (in->reg & 3);
    if (byte_rm && rm_reg && in->rm >= 4)
        mask |= 1 << (in->rm & 3);
    if (!mask)
        return 0;
    if (byte_reg && rm_reg && in->reg != in->rm && (in->reg & 3) == (in->rm & 3))
        return -1;
    if ((op == 0x1b6 || op == 0x1be) && in->reg == (in->rm & 3) && !in->op32)
        return -1;                             /* movzx ax, ah: the write lands in the rotated register */
    if (op == 0xd2 && (mask & 1 << R_ECX))
        return -1;
    return mask;
}

/* ror/rol of the registers in be->hi_regs by 8: into and out of their low byte. */
static void emit_high_byte_rotate(struct block_emit *be, unsigned mask, bool back)
{
    for (int g = 0; g < 4; g++)
        if (mask & 1u << g) {
            emit_op(be->e, 4, 0xc1, EXT(back ? 0 : 1), hreg(g));
            emit_u8(be->e, 8);
        }
}

/* The rotation happens once the operands' probes are done (a stub still
 * sees the registers as they are) and before anything reads CF. */
static void emit_high_bytes_in(struct block_emit *be)
{
    if (be->hi_regs && !be->hi_rotated) {
        emit_high_byte_rotate(be, be->hi_regs, false);
        be->hi_rotated = true;
    }
}

/* The ModRM reg field names a register (not an opcode extension). */
static bool reg_field_is_operand(const struct insn *in)
{
    int op = in->op;
    switch (op) {
    case 0x80: case 0x81: case 0x83: case 0xc0: case 0xc1: case 0xc6: case 0xc7:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0xf6: case 0xf7: case 0xfe: case 0xff: case 0x1ba:
    case 0x1c7:
        return false;
    }
    return !(op >= 0x190 && op <= 0x19f);
}

/* A register r/m operand is written (native instructions only). */
static bool writes_rm(const struct insn *in)
{
    int op = in->op;
    if (alu_family(op))
        return (op & 7) <= 1 && (op >> 3) != 7;
    switch (op) {
    case 0x80: case 0x81: case 0x83:
        return in->reg != 7;
    case 0x86: case 0x87: case 0x88: case 0x89: case 0xc0: case 0xc1: case 0xc6: case 0xc7:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0x1b0: case 0x1b1: case 0x1c0: case 0x1c1:
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad: case 0x1ab: case 0x1b3: case 0x1bb:
        return true;
    case 0xf6: case 0xf7:
        return in->reg == 2 || in->reg == 3;
    case 0xfe: case 0xff:
        return in->reg <= 1;
    case 0x1ba:
        return in->reg >= 5;
    }
    return op >= 0x190 && op <= 0x19f;
}

/* The reg-field register is written (native instructions only). */
static bool writes_reg(const struct insn *in)
{
    int op = in->op;
    if (alu_family(op))
        return (op & 7) >= 2 && (op & 7) <= 3 && (op >> 3) != 7;
    switch (op) {
    case 0x86: case 0x87: case 0x8a: case 0x8b: case 0x8d: case 0x69: case 0x6b:
    case 0x1af: case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: case 0x1c0: case 0x1c1:
        return true;
    }
    return op >= 0x140 && op <= 0x14f;
}

/* Registers a native instruction uses without naming them in ModRM. */
static unsigned implicit_regs(const struct insn *in, bool written)
{
    int op = in->op;
    const unsigned A = 1u << R_EAX, C = 1u << R_ECX, D = 1u << R_EDX, SP = 1u << R_ESP,
                   BP = 1u << R_EBP, SI = 1u << R_ESI, DI = 1u << R_EDI;
    if ((op >= 0x40 && op <= 0x4f) || (op >= 0xb0 && op <= 0xbf) || (op >= 0x1c8 && op <= 0x1cf))
        return 1u << (op & 7) | 1u << (op & 3);
    if (op >= 0x50 && op <= 0x57)
        return SP | (written ? 0 : 1u << (op & 7));
    if (op >= 0x58 && op <= 0x5f)
        return SP | 1u << (op & 7);
    if (alu_family(op) && (op & 7) >= 4)
        return written && (op >> 3) == 7 ? 0 : A;
    switch (op) {
    case 0x98: return A;
    case 0x99: return written ? D : A | D;
    case 0x1b0: case 0x1b1: return A;
    case 0xa8: case 0xa9: return written ? 0 : A;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: return written && op >= 0xa2 ? 0 : A;
    case 0xaa: case 0xab: return DI | (written ? 0 : A) | (in->prefixes & (PFX_REP | PFX_REPNE) ? C : 0);
    case 0xac: case 0xad: return SI | A;
    case 0xa4: case 0xa5: return SI | DI | C;
    case 0xd2: case 0xd3: case 0x1a5: case 0x1ad: return written ? 0 : C;
    case 0x1c7: return A | D | (written ? 0 : C | 1u << R_EBX);
    case 0xc9: return SP | BP;
    case 0x68: case 0x6a: case 0xe8: case 0xc2: case 0xc3: case 0x9c: return SP;
    case 0xff: return in->reg >= 2 ? SP : 0;
    case 0xf7:
        /* MUL: EDX:EAX = EAX * r/m; DIV: EDX:EAX / r/m.  EDX counts as
         * used by MUL too: a stub's resume reloads the registers used. */
        return in->reg == 4 || in->reg == 6 ? A | D : 0;
    }
    return 0;
}

/* Register operand r of `in`, with EAX..EBX for r 4-7 when the
 * instruction names AH..BH (a byte operand), not ESP..EDI. */
static unsigned reg_bits(const struct insn *in, int r)
{
    int high = high_byte_regs(in);
    if (high < 0)
        high = 0xf;                            /* not native: assume the worst */
    return 1u << r | (r >= 4 ? (unsigned)high & 1u << (r & 3) : 0);
}

unsigned native_regs_used(const struct insn *in)
{
    unsigned m = implicit_regs(in, false);
    if (in->has_modrm) {
        if (reg_field_is_operand(in))
            m |= reg_bits(in, in->reg);
        if (in->mod == 3)
            m |= reg_bits(in, in->rm);
        else
            m |= (in->ea_base >= 0 ? 1u << in->ea_base : 0) | (in->ea_index >= 0 ? 1u << in->ea_index : 0);
    }
    return m;
}

unsigned native_regs_written(const struct insn *in)
{
    unsigned m = implicit_regs(in, true);
    if (in->has_modrm) {
        if (writes_reg(in))
            m |= reg_bits(in, in->reg);
        if (in->mod == 3 && writes_rm(in))
            m |= reg_bits(in, in->rm);
    }
    return m;
}

bool native_supported(const struct insn *in)
{
    int op = in->op;
    if (in->invalid || high_byte_regs(in) < 0)
        return false;
    /* With one virtual CPU a locked read-modify-write is the plain one; where
     * LOCK is not allowed the interpreter raises the #UD. */
    if ((in->prefixes & PFX_LOCK) && !insn_lock_allowed(in))
        return false;
    if (in->has_modrm && in->mod != 3 && !in->addr32)
        return false;                          /* 16-bit addressing: threaded */
    if (alu_family(op))
        return true;
    switch (op) {
    case 0x80: case 0x81: case 0x83:
    case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b:
    case 0xa8: case 0xa9:
    case 0x90: case 0xeb: case 0xe9:
        return true;
    case 0xc6: case 0xc7:
        return in->reg == 0;                   /* C6/C7 /1-/7 are #UD (the interpreter raises it) */
    case 0x8d:
        return in->mod != 3 && in->addr32;
    case 0x98: case 0x99:
        return in->op32;
    case 0xf6: case 0xf7:
        if (op == 0xf7 && (in->reg == 4 || in->reg == 6))
            return in->op32;                   /* mul, div r/m32 */
        return in->reg == 0 || in->reg == 2 || in->reg == 3;
    case 0xfe:
        return in->reg <= 1;
    case 0xff:
        if (in->reg <= 1)
            return true;                       /* inc/dec r/m */
        break;
    case 0x68: case 0x6a: case 0xe8: case 0xc3: case 0xc2:
        return in->op32;
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf:
    case 0x1af: case 0x69: case 0x6b:
    case 0x1c0: case 0x1c1:                    /* XADD */
        return true;
    case 0x1b0: case 0x1b1:
        /* CMPXCHG goes through the host's EAX: not with EAX as its register
         * r/m, nor naming AH..BH next to the AL it compares. */
        return !(in->mod == 3 && in->rm == R_EAX) && (op == 0x1b1 || !high_byte_regs(in));
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return in->reg != 2 && in->reg != 3;   /* RCL/RCR stay threaded */
    case 0x1ba:
        return in->reg >= 4;                   /* BT/BTS/BTR/BTC r/m, imm8 */
    case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:
        return in->mod == 3 || in->op32;       /* BT/BTS/BTR/BTC r/m, reg */
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad:
        return in->op32;                       /* SHLD, SHRD: 16-bit counts above 16 are undefined on the host */
    case 0x1c7:
        return in->reg == 1 && in->mod != 3;   /* CMPXCHG8B */
    case 0xa0: case 0xa1: case 0xa2: case 0xa3:
        return in->addr32;                     /* MOV with a direct offset */
    case 0xaa: case 0xab:
        return in->addr32;                     /* STOS, REP STOS (F2 repeats it too) */
    case 0xac: case 0xad:
        return in->addr32 && !(in->prefixes & (PFX_REP | PFX_REPNE));   /* one LODS */
    case 0xa4: case 0xa5:
        return in->addr32 && (in->prefixes & (PFX_REP | PFX_REPNE));    /* REP MOVS */
    case 0xc9: case 0x9c:
        return in->op32;                       /* LEAVE, PUSHF */
    case 0xfa: case 0xfc: case 0xfd:           /* CLI (at CPL 0; else the stub), CLD, STD */
        return true;
    case 0xfb:                                 /* STI (at CPL 0, nothing pending; else the stub) */
        return true;
    }
    if (op == 0xff && (in->reg == 2 || in->reg == 4 || in->reg == 6))
        return in->op32;
    if (op >= 0x1c8 && op <= 0x1cf)
        return in->op32;
    if (op >= 0x40 && op <= 0x4f)
        return true;
    if (op >= 0x50 && op <= 0x5f)
        return in->op32;
    if (op >= 0xb0 && op <= 0xbf)
        return true;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f) || (op >= 0x190 && op <= 0x19f))
        return true;
    if (op >= 0x140 && op <= 0x14f)
        return in->op32;
    return false;
}

/* ---- threaded instructions that keep a block chainable ---- */

/*
 * A threaded instruction that only computes on registers, flags and memory,
 * or changes state that chained code does not assume: it cannot change the
 * mode, CPL, CS, SS, mappings or port I/O state, so the block around it may
 * still chain and keep its flat probes.  Two kinds need bt's step to stop
 * the chain at run time (native_threaded_guard): STI and POPF, when an
 * interrupt has become deliverable, and DS or ES loads, when the segments
 * stopped being flat.  (A CPU write that reaches a device, or FERR#, sets
 * bt_exit, which stops chaining: see machine_phys_write and machine_fpu_ferr.)
 */
bool native_threaded_is_plain(const struct insn *in)
{
    int op = in->op;
    if (in->invalid)
        return false;
    if (op >= 0xd8 && op <= 0xdf)
        return true;                           /* x87 */
    if (op == 0x8e)
        return in->reg != SEG_SS;              /* MOV Sreg (SS shadows interrupts; CS is #UD) */
    if (alu_family(op) || (op >= 0x40 && op <= 0x61) || (op >= 0x68 && op <= 0x6b) ||
        (op >= 0x80 && op <= 0x99) || (op >= 0x9b && op <= 0xbf) || (op >= 0xc0 && op <= 0xc1) ||
        (op >= 0xc6 && op <= 0xc9) || (op >= 0xd0 && op <= 0xd7) || (op >= 0xf5 && op <= 0xf7) ||
        (op >= 0xf8 && op <= 0xfe))
        return true;
    if (op == 0xff)
        return in->reg <= 1 || in->reg == 6;
    if (op == 0x100)
        return in->reg <= 1 || in->reg == 4 || in->reg == 5;   /* SLDT, STR, VERR, VERW */
    if ((op >= 0x140 && op <= 0x14f) || (op >= 0x190 && op <= 0x19f) || (op >= 0x1a3 && op <= 0x1a5) ||
        (op >= 0x1ab && op <= 0x1ad) || (op >= 0x1af && op <= 0x1b1) || (op >= 0x1b3 && op <= 0x1b7) ||
        (op >= 0x1ba && op <= 0x1c1) || (op >= 0x1c8 && op <= 0x1cf))
        return op != 0x1b2 && op != 0x1b4 && op != 0x1b5;   /* LSS/LFS/LGS */
    switch (op) {
    case 0x06: case 0x0e: case 0x16: case 0x1e: case 0x1a0: case 0x1a8:    /* PUSH Sreg */
    case 0x07: case 0x1f: case 0x1a1: case 0x1a9:                          /* POP ES/DS/FS/GS */
    case 0x120: case 0x121:                                                /* MOV r32, CRn/DRn */
    case 0x1a2: case 0x131: case 0x1c7:                                    /* CPUID, RDTSC, CMPXCHG8B */
        return true;
    }
    return false;
}

/* What bt's step must check after a plain threaded instruction before the
 * block goes on (see native_threaded_is_plain). */
enum native_guard native_threaded_guard(const struct insn *in)
{
    switch (in->op) {
    case 0xfb: case 0x9d:
        return GUARD_INTERRUPT;
    case 0x07: case 0x1f:
        return GUARD_FLAT;
    case 0x8e:
        return in->reg == SEG_ES || in->reg == SEG_DS ? GUARD_FLAT :
               in->reg == SEG_FS || in->reg == SEG_GS ? GUARD_FS_GS : GUARD_NONE;
    case 0x1a1: case 0x1a9:
        return GUARD_FS_GS;
    }
    return GUARD_NONE;
}

/* ---- flag liveness ---- */

/* Shifts, rotates and double shifts by CL, whose zero count changes nothing. */
static bool shifts_by_cl(const struct insn *in)
{
    return in->op == 0xd2 || in->op == 0xd3 || in->op == 0x1a5 || in->op == 0x1ad;
}

#define FLAGS_ALL 0x8d5u

/* Arithmetic flags a native instruction always writes (0: none, or not always). */
uint32_t native_flags_written(const struct insn *in)
{
    int op = in->op;
    if (alu_family(op))
        return FLAGS_ALL;
    switch (op) {
    case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0xa8: case 0xa9:
    case 0x1af: case 0x69: case 0x6b: case 0x1b0: case 0x1b1: case 0x1c0: case 0x1c1:
        return FLAGS_ALL;
    case 0xf6: case 0xf7:
        return in->reg == 0 || in->reg == 3 || in->reg == 4 ? FLAGS_ALL : 0;
    case 0xfe: case 0xff:
        return in->reg <= 1 ? FLAGS_INCDEC : 0;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1:
        if (op <= 0xc1 && !(in->imm & 31))
            return 0;
        return in->reg <= 1 ? 0x801 : FLAGS_ALL;
    case 0x1ba: case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:
        return 0x1;
    case 0x1a4: case 0x1ac:
        return in->imm & 31 ? FLAGS_ARITH : 0;
    case 0x1c7:
        return 0x40;
    }
    if (op >= 0x40 && op <= 0x4f)
        return FLAGS_INCDEC;
    return 0;
}

/* A PUSH or POP that cannot leave when its slot is cached. */
static bool plain_push_pop(const struct insn *in)
{
    int op = in->op;
    return (op >= 0x50 && op <= 0x5f) || op == 0x68 || op == 0x6a || (op == 0xff && in->reg == 6);
}

/* Flags the instruction may need from EFLAGS before it runs: what it reads,
 * and everything when it may leave for the interpreter or a fault (whose
 * state must be exact).  `cached` (CACHED_*): its operands that lie in pages
 * checked at the block's entry, which cannot fault. */
uint32_t native_flags_needed(const struct insn *in, unsigned cached)
{
    int op = in->op;
    if (!native_supported(in) || (in->has_modrm && in->mod != 3 && op != 0x8d && !(cached & CACHED_RM)))
        return FLAGS_ALL;
    if (plain_push_pop(in) && (cached & CACHED_STACK))
        return 0;
    if ((op >= 0x50 && op <= 0x5f) || op == 0x68 || op == 0x6a || op == 0xc9 || op == 0xe8 || op == 0x9c ||
        op == 0xc2 || op == 0xc3 || op == 0xe9 || op == 0xeb || (op == 0xff && in->reg >= 2))
        return FLAGS_ALL;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x19f) || (op >= 0x140 && op <= 0x14f))
        return FLAGS_ALL;
    if (shifts_by_cl(in))
        return FLAGS_ALL;          /* a zero count keeps every flag */
    if ((op >= 0xa0 && op <= 0xa5) || (op >= 0xaa && op <= 0xad))
        return FLAGS_ALL;          /* memory: may leave for the interpreter */
    if (op == 0xfa || op == 0xfb)
        return FLAGS_ALL;          /* CLI/STI above CPL 0 (#GP), STI with an interrupt to take: the interpreter's */
    if (op == 0xf7 && in->reg == 6)
        return FLAGS_ALL;          /* DIV whose quotient overflows leaves for the interpreter (#DE) */
    if (op == 0x10 || op == 0x11 || op == 0x12 || op == 0x13 || op == 0x14 || op == 0x15 ||
        op == 0x18 || op == 0x19 || op == 0x1a || op == 0x1b || op == 0x1c || op == 0x1d ||
        ((op == 0x80 || op == 0x81 || op == 0x83) && (in->reg == 2 || in->reg == 3)))
        return 0x1;                /* ADC/SBB read CF */
    return 0;
}

/* ---- instruction bodies ---- */

static int opsize(const struct insn *in) { return in->op32 ? 4 : 2; }

static void emit_alu(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op, kind = op >> 3, form = op & 7;
    int size = (op & 1) ? opsize(in) : 1;
    if (form <= 3) {                           /* op r/m, reg / op reg, r/m */
        int rm = emit_rm(be, in, size, form <= 1 && kind != 7);
        if (kind == 2 || kind == 3)
            emit_load_cf(be);
        emit_op(e, size, op, byte_or_hreg(in->reg, size), rm);
    } else {                                   /* op al/eax, imm */
        if (kind == 2 || kind == 3)
            emit_load_cf(be);
        emit_op(e, size, size == 1 ? 0x80 : 0x81, EXT(kind), hreg(R_EAX));
        emit_imm(e, in->imm, size);
    }
    emit_flags(be, (kind == 1 || kind == 4 || kind == 6) ? FLAGS_LOGIC : FLAGS_ARITH);
    if (kind == 1 || kind == 4 || kind == 6) {
        if (form >= 4)
            note_logic_result(be, R_EAX, size);
        else if (form >= 2)
            note_logic_result(be, in->reg, size);
        else if (in->mod == 3)
            note_logic_result(be, in->rm, size);
    }
}

static void emit_group1(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int kind = in->reg;
    int size = in->op == 0x80 ? 1 : opsize(in);
    int rm = emit_rm(be, in, size, kind != 7);
    if (kind == 2 || kind == 3)
        emit_load_cf(be);
    emit_op(e, size, in->op, EXT(kind), rm);   /* 80/81/83 /kind r/m, imm */
    emit_imm(e, in->imm, in->op == 0x81 ? size : 1);
    emit_flags(be, (kind == 1 || kind == 4 || kind == 6) ? FLAGS_LOGIC : FLAGS_ARITH);
    if ((kind == 1 || kind == 4 || kind == 6) && in->mod == 3)
        note_logic_result(be, in->rm, size);
}

static void emit_mov(struct block_emit *be, const struct insn *in)
{
    int size = (in->op & 1) ? opsize(in) : 1;
    int rm = emit_rm(be, in, size, in->op <= 0x89);
    emit_op(be->e, size, in->op, byte_or_hreg(in->reg, size), rm);
}

#define PUSH_EDI (-2)

/*
 * The stack slot at the linear address in eax: MEM_COVERED ([rdx + rax])
 * when it lies in ESP's page checked at entry (the check saw that every
 * slot and ESP value of the block up to there is in one page, so rax is the
 * linear address), else a probe's MEM_RDX.
 */
static int emit_stack_slot(struct block_emit *be, bool write)
{
    struct emitter *e = be->e;
    if (!be->stack_cached) {
        emit_probe(be, SEG_SS, 4, write, true);
        return MEM_RDX;
    }
    if (be->rdx_addend != R_ESP) {
        emit_load_addend(e, R_ESP);
        be->rdx_addend = R_ESP;
    }
    e->mem_index = H_RAX;
    e->mem_disp = 0;
    return MEM_COVERED;
}

static void emit_push_value(struct block_emit *be, const struct insn *in, int src_reg, uint32_t imm)
{
    struct emitter *e = be->e;
    (void)in;
    emit_lea_eax(e, R_ESP, -4, false);         /* eax = esp - 4 (flags kept) */
    int slot = emit_stack_slot(be, true);
    if (src_reg == PUSH_EDI) {
        emit_op(e, 4, 0x89, H_RDI, slot);
    } else if (src_reg >= 0) {
        emit_op(e, 4, 0x89, hreg(src_reg), slot);   /* (old ESP for push esp) */
    } else {
        emit_op(e, 4, 0xc7, EXT(0), slot);     /* mov dword [slot], imm32 */
        emit_u32(e, imm);
    }
    emit_mov_rr32(e, hreg(R_ESP), H_RAX);
}

/* ecx = popped dword, ESP += 4 + extra.  `check_eip` also requires ecx <= CS limit. */
static void emit_pop_ecx(struct block_emit *be, uint32_t extra, bool check_eip)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RAX, hreg(R_ESP));
    emit_op(e, 4, 0x8b, H_RCX, emit_stack_slot(be, false));   /* mov ecx, [slot] */
    if (check_eip && !cs_covers_all(be)) {
        emit_u8(e, 0x3b);                      /* cmp ecx, [rbx + cs.limit] */
        modrm_rbx(e, H_RCX, OFF_SEG(SEG_CS, limit));
        jump_to_stub(be, CC_A);
    }
    emit_u8(e, 0x8d); emit_u8(e, 0x80);        /* lea eax, [rax + 4 + extra] (flags kept) */
    emit_u32(e, 4 + extra);
    emit_mov_rr32(e, hreg(R_ESP), H_RAX);
}

/* A direct jump target beyond what the lookup verified needs the CS limit check. */
static void check_target(struct block_emit *be, uint32_t target)
{
    if (target <= be->limit_checked)
        return;
    struct emitter *e = be->e;
    emit_u8(e, 0x81);                          /* cmp dword [rbx + cs.limit], target */
    modrm_rbx(e, 7, OFF_SEG(SEG_CS, limit));
    emit_u32(e, target);
    jump_to_stub(be, CC_B);
}

/* All the flags condition cc tests are deferred in the host's EFLAGS. */
static bool cond_in_host(const struct block_emit *be, int cc)
{
    return (be->host_keep & cond_flags(cc)) == cond_flags(cc);
}

/* A conditional jump tests deferred flags where they are, in the host's
 * EFLAGS, when all it needs is there and no limit check (a CMP) comes
 * between. */
static bool jcc_on_host_flags(const struct block_emit *be, int cc, uint32_t target)
{
    return cond_in_host(be, cc) && target <= be->limit_checked;
}

/* Returns true when the jump ends the block; a flat block goes on past one
 * that is not its last instruction (a side exit: taken leaves, not taken
 * goes on inline). */
static bool emit_jcc(struct block_emit *be, int cc, uint32_t next, uint32_t target)
{
    struct emitter *e = be->e;
    uint8_t host;
    if (jcc_on_host_flags(be, cc, target)) {
        host = (uint8_t)cc;                    /* the guest's condition on the host's flags */
    } else {
        emit_cond_base(be, cc);
        host = host_cc(cc);
    }
    if (!be->last) {
        uint8_t *not_taken = emit_jcc32(e, host ^ 1);
        emit_exit_n(be, target, be->pending + 1);
        emit_patch_rel32(not_taken, e->p);
        return false;
    }
    if (target == be->block_eip) {
        /* A loop: its back edge comes first, so that a turn takes one branch, not two. */
        uint8_t *not_taken = emit_jcc32(e, host ^ 1);
        check_target(be, target);
        emit_exit_n(be, target, be->pending + 1);
        emit_patch_rel32(not_taken, e->p);
        emit_exit_n(be, next, be->pending + 1);
        return true;
    }
    uint8_t *taken = emit_jcc32(e, host);
    emit_exit_n(be, next, be->pending + 1);
    emit_patch_rel32(taken, e->p);
    check_target(be, target);
    emit_exit_n(be, target, be->pending + 1);
    return true;
}

static void emit_unary(struct block_emit *be, const struct insn *in, int host_op, int ext, uint32_t mask)
{
    int size = (in->op & 1) ? opsize(in) : 1;
    int rm = emit_rm(be, in, size, true);
    emit_op(be->e, size, sized_op(host_op, size), EXT(ext), rm);
    if (mask)
        emit_flags(be, mask);
}


/* OF of a shift/rotate result in r/m operand `rm` as the shared ALU
 * semantics define it (also for counts above 1), into eax bit 11; esi holds
 * the host flags. */
static void emit_shift_of(struct emitter *e, int kind, int size, int rm)
{
    int w = size * 8;
    if (size == 4)
        emit_op(e, 4, 0x8b, H_RAX, rm);                        /* mov eax, rm */
    else
        emit_op(e, 4, size == 1 ? 0x0fb6 : 0x0fb7, H_RAX, rm); /* movzx eax, rm */
    if (kind == 7) {                                           /* SAR: 0 */
        emit_u8(e, 0x31); emit_u8(e, 0xc0);
        return;
    }
    if (kind == 1 || kind == 5) {                              /* ROR, SHR: msb(r ^ r << 1) */
        emit_u8(e, 0x8d); emit_u8(e, 0x0c); emit_u8(e, 0x00); /* lea ecx, [rax + rax] */
        emit_u8(e, 0x31); emit_u8(e, 0xc8);                    /* xor eax, ecx */
        emit_u8(e, 0xc1); emit_u8(e, 0xe8); emit_u8(e, w - 1); /* shr eax, w-1 */
        emit_u8(e, 0x83); emit_u8(e, 0xe0); emit_u8(e, 1);     /* and eax, 1 */
    } else {                                                   /* ROL, SHL: CF ^ msb(r) */
        emit_u8(e, 0xc1); emit_u8(e, 0xe8); emit_u8(e, w - 1); /* shr eax, w-1 */
        emit_u8(e, 0x89); emit_u8(e, 0xf1);                    /* mov ecx, esi */
        emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 1);     /* and ecx, 1 */
        emit_u8(e, 0x31); emit_u8(e, 0xc8);                    /* xor eax, ecx */
    }
    emit_u8(e, 0xc1); emit_u8(e, 0xe0); emit_u8(e, 11);        /* shl eax, 11 */
}

/* guest EFLAGS = (EFLAGS & ~clear) | eax, with eax already masked. */
static void emit_put_flags_eax(struct emitter *e, uint32_t clear)
{
    emit_u8(e, 0x81);
    modrm_rbx(e, 4, OFF_FLAGS);
    emit_u32(e, ~clear);
    emit_u8(e, 0x09);
    modrm_rbx(e, H_RAX, OFF_FLAGS);
}

/* A shift or rotate by an immediate count whose flags the host gets right
 * as the guest defines them: all of them for a count of 1 (OF included),
 * all but OF when OF is dead after it (a count above 1 leaves the host's OF
 * undefined; the shared semantics define it). */
static bool shift_flags_from_host(const struct block_emit *be, const struct insn *in)
{
    unsigned n = in->op <= 0xc1 ? (in->imm & 31) : 1;
    return n == 1 || !(be->flags_live & 0x800);
}

/* ecx = CL & 31 for a shift by CL; returns the rel32 of the jump taken on
 * a zero count, which changes nothing at all (not even the flags). */
static uint8_t *emit_cl_count(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RCX, hreg(R_ECX));
    emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 31);        /* and ecx, 31 */
    return emit_jcc32(e, CC_E);
}

/*
 * After a shift, rotate or double shift whose flags live: the host's CF
 * (and PF ZF SF for shifts) with OF as the shared semantics define it
 * (emit_shift_of's `kind`), AF clear for shifts.  A shift by CL merges them
 * into EFLAGS itself (native_flags_needed had R11 merged before), and its
 * zero-count jump `zero_count` lands after them.
 */
static void emit_shift_flags(struct block_emit *be, int kind, int size, int rm, bool rotate, uint8_t *zero_count)
{
    struct emitter *e = be->e;
    if (be->flags_dead) {
        host_flags_clobbered(be, rotate ? 0x801 : FLAGS_ARITH);
    } else {
        emit_u8(e, 0x9c);                                      /* pushfq; pop rsi */
        emit_u8(e, 0x5e);
        emit_shift_of(e, kind, size, rm);
        uint32_t host_mask = rotate ? 0x1 : 0xc5;              /* CF (+ PF ZF SF for shifts) */
        emit_u8(e, 0x81); emit_u8(e, 0xe6); emit_u32(e, host_mask);   /* and esi, mask */
        emit_u8(e, 0x09); emit_u8(e, 0xf0);                    /* or eax, esi */
        if (zero_count)
            emit_put_flags_eax(e, rotate ? 0x801 : FLAGS_ARITH);
        else
            emit_combine_eax(be, rotate ? 0x801 : FLAGS_LOGIC, rotate ? 0x801 : FLAGS_ARITH);
    }
    if (zero_count)
        emit_patch_rel32(zero_count, e->p);
}

static void emit_shift(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op, kind = in->reg;
    int size = (op & 1) ? opsize(in) : 1;
    bool rotate = kind <= 1;
    int rm = emit_rm(be, in, size, true);
    uint8_t *zero_count = NULL;
    if (op >= 0xd2) {
        zero_count = emit_cl_count(be);
        emit_op(e, size, op, EXT(kind), rm);                   /* shift rm, cl */
    } else {
        unsigned n = op <= 0xc1 ? (in->imm & 31) : 1;
        if (!n)
            return;
        emit_op(e, size, sized_op(0xc0, size), EXT(kind), rm); /* shift rm, imm8 */
        emit_u8(e, n);
        if (!be->flags_dead && shift_flags_from_host(be, in)) {
            /* The host's flags are the guest's (OF too for a count of 1;
             * otherwise OF is dead): deferred like an ALU op's. */
            uint32_t of = n == 1 ? 0x800 : 0;
            emit_flags_kc(be, rotate ? 0x1 | of : 0xc5 | of, rotate ? 0x801 : FLAGS_ARITH);
            return;
        }
        if (!be->flags_dead && be->of_lazy && !rotate && in->mod == 3 && !high_byte_regs(in)) {
            /* Only a stub could observe OF before it is overwritten: the
             * host's other flags are deferred, OF left out (merged as 0),
             * and the stubs compute it from the result (SAR's is 0). */
            emit_flags_kc(be, 0xc5, FLAGS_ARITH);
            if (kind != 7) {
                be->of_rm = rm;
                be->of_kind = kind;
                be->of_size = size;
            }
            return;
        }
    }
    emit_shift_flags(be, kind, size, rm, rotate, zero_count);
}

/* The flags of a product in host register `dst` (IMUL, MUL), just after
 * the host's multiply: CF/OF from the host, SF/ZF/PF from the truncated
 * product and AF clear, as the shared semantics define the undefined ones. */
static void emit_product_flags(struct block_emit *be, int size, int dst)
{
    struct emitter *e = be->e;
    if (be->flags_dead) {
        host_flags_clobbered(be, FLAGS_ARITH);
        return;
    }
    emit_u8(e, 0x9c); emit_u8(e, 0x5e);                        /* pushfq; pop rsi */
    emit_u8(e, 0x81); emit_u8(e, 0xe6); emit_u32(e, 0x801);    /* and esi, CF|OF */
    emit_op(e, size, 0x85, dst, dst);                          /* test dst, dst */
    emit_u8(e, 0x9c); emit_u8(e, 0x58);                        /* pushfq; pop rax */
    emit_u8(e, 0x25); emit_u32(e, 0xc4);                       /* and eax, SF|ZF|PF */
    emit_u8(e, 0x09); emit_u8(e, 0xf0);                        /* or eax, esi */
    emit_combine_eax(be, FLAGS_LOGIC, FLAGS_ARITH);           /* OF SF ZF PF CF; AF clear */
}

/* Two/three-operand IMUL. */
static void emit_imul(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = opsize(in);
    int rm = emit_rm(be, in, size, false);
    int dst = hreg(in->reg);
    emit_op(e, size, in->op == 0x1af ? 0x0faf : in->op, dst, rm);   /* imul dst, rm [, imm] */
    if (in->op != 0x1af)
        emit_imm(e, in->imm, in->op == 0x6b ? 1 : size);
    emit_product_flags(be, size, dst);
}

/* MUL r/m32: the host's MUL on a copy of EAX, into the host's EDX:EAX
 * (the r/m operand, possibly [rdx + ...], is read first). */
static void emit_mul(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int rm = emit_rm(be, in, 4, false);
    emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    emit_op(e, 4, 0xf7, EXT(4), rm);                           /* mul rm */
    emit_mov_rr32(e, hreg(R_EAX), H_RAX);
    emit_mov_rr32(e, hreg(R_EDX), H_RDX);
    emit_product_flags(be, 4, hreg(R_EAX));
}

/* DIV r/m32: a quotient that would not fit (a divisor of 0 included: EDX
 * >= divisor, unsigned) goes to the stub, where the interpreter raises #DE;
 * else the host's DIV on copies of EDX:EAX.  Its flags stay as they were
 * (captured before: the check compares). */
static void emit_div(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int rm = emit_rm(be, in, 4, false);
    emit_op(e, 4, 0x8b, H_RCX, rm);                            /* mov ecx, rm */
    emit_op(e, 4, 0x39, H_RCX, hreg(R_EDX));                   /* cmp edx', ecx */
    jump_to_stub(be, CC_AE);
    emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    emit_mov_rr32(e, H_RDX, hreg(R_EDX));
    emit_op(e, 4, 0xf7, EXT(6), H_RCX);                        /* div ecx */
    emit_mov_rr32(e, hreg(R_EAX), H_RAX);
    emit_mov_rr32(e, hreg(R_EDX), H_RDX);
}

/* edi = dword r/m operand that is a branch target, checked against the CS limit. */
static void emit_load_target_edi(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    emit_op(e, 4, 0x8b, H_RDI, emit_rm(be, in, 4, false));    /* mov edi, rm */
    if (cs_covers_all(be))
        return;
    emit_u8(e, 0x3b);                                          /* cmp edi, [rbx + cs.limit] */
    modrm_rbx(e, H_RDI, OFF_SEG(SEG_CS, limit));
    jump_to_stub(be, CC_A);
}

/* The dword at [rax+code32] a target block must have: code32, user, valid
 * and flat in one compare. */
static void emit_cmp_block_kind(struct block_emit *be)
{
    struct emitter *e = be->e;
    _Static_assert(offsetof(struct block, user) == offsetof(struct block, code32) + 1 &&
                   offsetof(struct block, valid) == offsetof(struct block, code32) + 2 &&
                   offsetof(struct block, flat) == offsetof(struct block, code32) + 3, "block flags are adjacent");
    emit_u8(e, 0x81); emit_u8(e, 0xb8);                        /* cmp dword [rax+code32], want */
    emit_u32(e, offsetof(struct block, code32));
    emit_u32(e, 1u | (uint32_t)be->user << 8 | 1u << 16 | (uint32_t)be->flat_key << 24);
}

/* AX = the flags as a chained entry takes them: from R11 (`flags_in_r11`,
 * EFLAGS stale) or from EFLAGS. */
static void emit_chained_flags_ax(struct block_emit *be, bool flags_in_r11)
{
    if (flags_in_r11)
        emit_mov_rr32(be->e, H_RAX, H_R11);
    else
        emit_ax_from_eflags(be->e);
}

/* Into the flat block at rax, its flags as a chained entry takes them (AX). */
static void emit_enter_chained(struct block_emit *be, bool flags_in_r11)
{
    struct emitter *e = be->e;
    emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xc6);      /* mov rsi, rax */
    emit_chained_flags_ax(be, flags_in_r11);
    emit_u8(e, 0xff); emit_u8(e, 0xa6);                        /* jmp [rsi+entry_chained] */
    emit_u32(e, offsetof(struct block, entry_chained));
}

/*
 * The return stack (struct cpu's bt_ras): a CALL of a chaining flat block
 * whose return site lies in the block's first page pushes that EIP and a
 * chain slot for it.  The return site's block then has the CALL's page,
 * mapped as when the CALL ran: every TLB flush empties the stack, so no
 * TLB check is needed when a RET pops the same EIP.  bt_run resolves the
 * slot the first time (see emit_return_pop).
 */
static void emit_return_push(struct block_emit *be, uint32_t ret_eip)
{
    struct emitter *e = be->e;
    if (!be->chain || !be->flat || ((ret_eip ^ be->block_eip) & PAGE_MASK) || be->nchain >= BT_CHAIN_SLOTS - 1)
        return;
    struct chain_slot *slot = new_chain_slot(be, ret_eip);
    emit_u8(e, 0x8b); modrm_rbx(e, H_RCX, OFF_RAS_TOP);       /* mov ecx, [rbx+top] */
    emit_u8(e, 0x8d); emit_u8(e, 0x49); emit_u8(e, 16);        /* lea ecx, [rcx+16] */
    emit_u8(e, 0x0f); emit_u8(e, 0xb6); emit_u8(e, 0xc9);      /* movzx ecx, cl: 16 entries of 16 bytes */
    emit_u8(e, 0x89); modrm_rbx(e, H_RCX, OFF_RAS_TOP);       /* mov [rbx+top], ecx */
    emit_u8(e, 0xc7); emit_u8(e, 0x84); emit_u8(e, 0x0b);      /* mov dword [rbx+rcx+eip], ret_eip */
    emit_u32(e, (uint32_t)OFF_RAS_EIP);
    emit_u32(e, ret_eip);
    emit_mov_imm64(e, H_RAX, (uintptr_t)slot);
    emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0x84); emit_u8(e, 0x0b);   /* mov [rbx+rcx+slot], rax */
    emit_u32(e, (uint32_t)OFF_RAS_SLOT);
}

/*
 * A RET pops the return stack: the EIP it returns to (edi) is the newest
 * entry's, and the block its slot names is still valid and of this kind:
 * straight in.  A slot not resolved yet leaves for bt_run through `*fill`
 * (the caller's way out) with the slot named, as a fixed exit would.
 * Anything else goes on to the jump cache.
 */
static void emit_return_pop(struct block_emit *be, bool flags_in_r11, uint8_t **fill)
{
    struct emitter *e = be->e;
    emit_u8(e, 0x8b); modrm_rbx(e, H_RCX, OFF_RAS_TOP);       /* mov ecx, [rbx+top] */
    emit_u8(e, 0x8d); emit_u8(e, 0x51); emit_u8(e, 0xf0);      /* lea edx, [rcx-16] */
    emit_u8(e, 0x0f); emit_u8(e, 0xb6); emit_u8(e, 0xd2);      /* movzx edx, dl */
    emit_u8(e, 0x89); modrm_rbx(e, H_RDX, OFF_RAS_TOP);       /* mov [rbx+top], edx */
    emit_u8(e, 0x3b); emit_u8(e, 0xbc); emit_u8(e, 0x0b);      /* cmp edi, [rbx+rcx+eip] */
    emit_u32(e, (uint32_t)OFF_RAS_EIP);
    uint8_t *other = emit_jcc32(e, CC_NE);
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0xb4); emit_u8(e, 0x0b);   /* mov rsi, [rbx+rcx+slot] */
    emit_u32(e, (uint32_t)OFF_RAS_SLOT);
    _Static_assert(offsetof(struct chain_slot, target) == 0, "slot target at offset 0");
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x06);      /* mov rax, [rsi+target] */
    emit_u8(e, 0x48); emit_u8(e, 0x85); emit_u8(e, 0xc0);      /* test rax, rax */
    uint8_t *unresolved = emit_jcc32(e, CC_E);
    emit_cmp_block_kind(be);
    uint8_t *stale = emit_jcc32(e, CC_NE);
    emit_enter_chained(be, flags_in_r11);
    emit_patch_rel32(unresolved, e->p);
    emit_u8(e, 0x48); emit_u8(e, 0x89);                        /* mov [rbx+bt_chain_slot], rsi */
    modrm_rbx(e, H_RSI, (int32_t)offsetof(struct cpu, bt_chain_slot));
    *fill = emit_jmp32(e);
    emit_patch_rel32(other, e->p);
    emit_patch_rel32(stale, e->p);
}

/*
 * A RET of a flat block: when the newest host frame below bt_run's is a
 * CALL's (emit_host_call) for the EIP it returns to (edi), a host RET goes
 * back there, the frame dropped.  A frame for another EIP (a RET that
 * skips a CALL, or returns elsewhere) is dropped, and the caller goes on
 * without it.
 */
static void emit_host_return(struct block_emit *be, bool flags_in_r11)
{
    struct emitter *e = be->e;
    emit_u8(e, 0x48); emit_u8(e, 0x3b);        /* cmp rsp, [rbx+host_rsp] */
    modrm_rbx(e, 4, OFF_HOST_RSP);
    uint8_t *none = emit_jcc32(e, CC_AE);
    emit_u8(e, 0x48); emit_u8(e, 0x63); emit_u8(e, 0xcf);      /* movsxd rcx, edi (as PUSH imm32 left it) */
    emit_u8(e, 0x48); emit_u8(e, 0x3b); emit_u8(e, 0x4c); emit_u8(e, 0x24); emit_u8(e, 8);   /* cmp rcx, [rsp+8] */
    uint8_t *other = emit_jcc32(e, CC_NE);
    emit_chained_flags_ax(be, flags_in_r11);
    emit_u8(e, 0xc2); emit_u8(e, 8); emit_u8(e, 0);            /* ret 8 */
    emit_patch_rel32(other, e->p);
    emit_u8(e, 0x48); emit_u8(e, 0x83); emit_u8(e, 0xc4); emit_u8(e, 16);   /* add rsp, 16 */
    emit_patch_rel32(none, e->p);
}

/*
 * An indirect exit (RET, JMP/CALL r/m) of a chaining block: look the target
 * EIP up in bt's jump cache and enter that block directly when it is still
 * valid, translated for this CPL, within the CS limit, and its page is what
 * the TLB maps the target's linear address to now.  Otherwise fall through
 * to the return into bt_run, with EFLAGS whole.  A flat target's chained
 * entry takes the flags in AX: from R11 (`flags_in_r11`, EFLAGS stale) or
 * from EFLAGS.  A RET tries a host frame and the return stack first.
 */
static void emit_jump_cache(struct block_emit *be, bool counted, bool flags_in_r11, bool ret)
{
    struct emitter *e = be->e;
    uint8_t *out[12];
    if (be->flat)
        emit_regs_load(e, NATIVE_ALL_REGS & ~be->regs_valid);   /* a flat target's entry_chained takes all */
    out[0] = emit_leave_check(e, counted);
    int n = 1;
    if (ret && be->flat) {
        emit_host_return(be, flags_in_r11);
        emit_return_pop(be, flags_in_r11, &out[n++]);
    }
    emit_u8(e, 0x89); emit_u8(e, 0xf8);                        /* mov eax, edi */
    emit_u8(e, 0xc1); emit_u8(e, 0xe8); emit_u8(e, 16);        /* shr eax, 16 */
    emit_u8(e, 0x31); emit_u8(e, 0xf8);                        /* xor eax, edi */
    emit_u8(e, 0x25); emit_u32(e, BT_JUMP_CACHE_SIZE - 1);     /* and eax, size-1 (bt_jump_cache_index) */
    emit_mov_imm64(e, H_RSI, (uintptr_t)be->jump_cache);
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x04); emit_u8(e, 0xc6);   /* mov rax, [rsi+rax*8] */
    emit_u8(e, 0x48); emit_u8(e, 0x85); emit_u8(e, 0xc0);      /* test rax, rax */
    out[n++] = emit_jcc32(e, CC_E);
    emit_u8(e, 0x3b); emit_u8(e, 0xb8);                        /* cmp edi, [rax+eip] */
    emit_u32(e, offsetof(struct block, eip));
    out[n++] = emit_jcc32(e, CC_NE);
    emit_cmp_block_kind(be);
    out[n++] = emit_jcc32(e, CC_NE);
    if (!be->flat) {
        /* (A flat CS has base 0 and covers every EIP.) */
        emit_u8(e, 0x8b); emit_u8(e, 0x88);                    /* mov ecx, [rax+last] */
        emit_u32(e, offsetof(struct block, last));
        emit_u8(e, 0x3b);                                      /* cmp ecx, [rbx+cs.limit] */
        modrm_rbx(e, H_RCX, OFF_SEG(SEG_CS, limit));
        out[n++] = emit_jcc32(e, CC_A);
    }
    /* The target's linear page must be in the TLB, mapped to the block's page. */
    emit_u8(e, 0x89); emit_u8(e, 0xf9);                        /* mov ecx, edi */
    if (!be->flat) {
        emit_u8(e, 0x03);                                      /* add ecx, [rbx+cs.base] */
        modrm_rbx(e, H_RCX, OFF_SEG(SEG_CS, base));
    }
    emit_u8(e, 0x89); emit_u8(e, 0xca);                        /* mov edx, ecx */
    emit_tlb_index_edx(e);
    emit_u8(e, 0x81); emit_u8(e, 0xe1); emit_u32(e, PAGE_MASK); /* and ecx, PAGE_MASK */
    emit_u8(e, 0x3b); emit_u8(e, 0x8c); emit_u8(e, 0x13);      /* cmp ecx, [rbx+rdx+tag_read] */
    emit_u32(e, (uint32_t)OFF_TLB(be->user, tag_read));
    out[n++] = emit_jcc32(e, CC_NE);
    emit_u8(e, 0x8b); emit_u8(e, 0x8c); emit_u8(e, 0x13);      /* mov ecx, [rbx+rdx+phys] */
    emit_u32(e, (uint32_t)OFF_TLB(be->user, phys));
    emit_u8(e, 0x33); emit_u8(e, 0x88);                        /* xor ecx, [rax+phys] */
    emit_u32(e, offsetof(struct block, phys));
    emit_u8(e, 0x81); emit_u8(e, 0xe1); emit_u32(e, PAGE_MASK); /* and ecx, PAGE_MASK */
    out[n++] = emit_jcc32(e, CC_NE);
    if (be->flat) {
        emit_enter_chained(be, flags_in_r11);
    } else {
        emit_u8(e, 0xff); emit_u8(e, 0xa0);                    /* jmp [rax+entry] */
        emit_u32(e, offsetof(struct block, entry));
    }
    if (be->flat)
        e = cold_code(be);                     /* the caller's way out follows there */
    for (int k = 0; k < n; k++)
        emit_patch_rel32(out[k], e->p);
    if (flags_in_r11) {
        emit_mov_rr32(e, H_RAX, H_R11);
        emit_merge_ax(e, FLAGS_ARITH);
    }
}

/* Leave the block for an EIP computed at run time (in edi): `ret` for a RET. */
static void emit_exit_edi(struct block_emit *be, bool ret)
{
    struct emitter *e = be->e;
    bool handover = be->chain && be->flat;     /* registers go to the target in host registers */
    if (!handover)
        emit_spill(be);
    bool flags_in_r11 = handover ? emit_flags_for_handover(be) : (emit_materialize_on_exit(be), false);
    emit_u8(e, 0x89);                                          /* mov [rbx+eip], edi */
    modrm_rbx(e, H_RDI, OFF_EIP);
    emit_count(e, be->pending + 1);
    if (be->chain)
        emit_jump_cache(be, true, flags_in_r11, ret);
    if (handover)
        emit_spill(be);                        /* not found: out to bt_run */
    emit_epilogue(be->e);
    hot_code(be);
}

/* ecx = +size, or -size when EFLAGS.DF is set (string index step). */
static void emit_string_delta_ecx(struct emitter *e, int size)
{
    emit_u8(e, 0x8b);                                          /* mov ecx, [rbx+eflags] */
    modrm_rbx(e, H_RCX, OFF_FLAGS);
    emit_u8(e, 0xc1); emit_u8(e, 0xe9); emit_u8(e, 10);        /* shr ecx, 10 */
    emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 1);         /* and ecx, 1 */
    emit_u8(e, 0x6b); emit_u8(e, 0xc9); emit_u8(e, (uint8_t)(-2 * size));   /* imul ecx, ecx, -2*size */
    emit_u8(e, 0x83); emit_u8(e, 0xc1); emit_u8(e, size);      /* add ecx, size */
}

/* One STOS or LODS (no REP): ES:EDI or seg:ESI, then the index steps by DF. */
static void emit_stos_lods(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    int size = (op & 1) ? opsize(in) : 1;
    bool stos = op <= 0xab;
    int idx = hreg(stos ? R_EDI : R_ESI);
    emit_mov_rr32(e, H_RAX, idx);
    emit_probe(be, stos ? SEG_ES : (in->seg >= 0 ? in->seg : SEG_DS), size, stos, false);
    emit_op(e, size, sized_op(stos ? 0x88 : 0x8a, size), hreg(R_EAX), MEM_RDX);
    emit_string_delta_ecx(e, size);
    emit_op(e, 4, 0x01, H_RCX, idx);                           /* add idx, ecx */
}

/* ecx = min(ecx, the whole elements of 1 << shift bytes from the flat
 * offset in `idx` to the end of its page). */
static void emit_min_page_room(struct emitter *e, int idx, int shift)
{
    emit_mov_rr32(e, H_RAX, idx);
    emit_u8(e, 0x25); emit_u32(e, PAGE_SIZE - 1);              /* and eax, 0xfff */
    emit_u8(e, 0x2d); emit_u32(e, PAGE_SIZE);                  /* sub eax, 4096 */
    emit_u8(e, 0xf7); emit_u8(e, 0xd8);                        /* neg eax: bytes left in the page */
    if (shift) {
        emit_u8(e, 0xc1); emit_u8(e, 0xe8); emit_u8(e, (uint8_t)shift);   /* shr eax, shift */
    }
    emit_u8(e, 0x39); emit_u8(e, 0xc1);                        /* cmp ecx, eax */
    emit_u8(e, 0x0f); emit_u8(e, 0x47); emit_u8(e, 0xc8);      /* cmova ecx, eax */
}

/* At most this many bytes go through the native REP MOVS/STOS, a page at a
 * time; longer ones are the interpreter's, which lets interrupts in. */
#define REP_NATIVE_BYTES 0x10000u

/*
 * REP MOVS/STOS with DF=0: the host's own REP MOVS/STOS, as far as the
 * source and the destination stay in their pages, then again from the
 * next ones.  It gives the element-by-element result, overlap included.
 * After each round ECX, ESI and EDI are in struct cpu too, so a round that
 * cannot run (a TLB miss, a code page, MMIO, an element across pages) goes
 * to the stub, where the interpreter finishes the instruction.  DF=1, more
 * than REP_NATIVE_BYTES and segments that are not flat go there at once.
 */
static void emit_rep_string(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    int size = (op & 1) ? opsize(in) : 1;
    int shift = size == 4 ? 2 : size == 2 ? 1 : 0;
    bool movs = op <= 0xa5;
    int src = in->seg >= 0 ? in->seg : SEG_DS;
    be->rdx_addend = -1;
    if (!be->flat || (movs && src != SEG_DS && src != SEG_ES && src != SEG_SS)) {
        add_stub_fixup(be, emit_jmp32(e));
        return;
    }
    int ecx = hreg(R_ECX), esi = hreg(R_ESI), edi = hreg(R_EDI);
    emit_op(e, 4, 0x85, ecx, ecx);                             /* test ecx, ecx */
    uint8_t *none = emit_jcc32(e, CC_E);
    emit_u8(e, 0xf7); modrm_rbx(e, 0, OFF_FLAGS); emit_u32(e, FL_DF);   /* test dword [rbx+eflags], DF */
    jump_to_stub(be, CC_NE);
    emit_op(e, 4, 0x81, EXT(7), ecx);                          /* cmp ecx, the most elements */
    emit_u32(e, REP_NATIVE_BYTES >> shift);
    jump_to_stub(be, CC_A);
    uint8_t *round = e->p;
    emit_mov_rr32(e, H_RCX, ecx);
    emit_min_page_room(e, edi, shift);
    if (movs)
        emit_min_page_room(e, esi, shift);
    emit_u8(e, 0x85); emit_u8(e, 0xc9);                        /* test ecx, ecx: an element across pages */
    jump_to_stub(be, CC_E);
    emit_mov_rr32(e, H_RAX, edi);
    emit_tlb_lookup(be, H_RAX, 1, true);
    emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xd7);      /* mov rdi, rdx */
    if (movs) {
        emit_mov_rr32(e, H_RAX, esi);
        emit_tlb_lookup(be, H_RAX, 1, false);
        emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xd6);  /* mov rsi, rdx */
    } else {
        emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    }
    emit_mov_rr32(e, H_RDX, H_RCX);
    if (shift) {
        emit_u8(e, 0xc1); emit_u8(e, 0xe2); emit_u8(e, (uint8_t)shift);   /* shl edx, shift: the bytes */
    }
    emit_op(e, 4, 0x29, H_RCX, ecx);                           /* sub ecx, the round's elements */
    emit_u8(e, 0xf3);                                          /* rep movs/stos */
    if (size == 2)
        emit_u8(e, 0x66);
    emit_u8(e, (uint8_t)op);
    if (movs)
        emit_op(e, 4, 0x01, H_RDX, esi);                       /* add esi, edx */
    emit_op(e, 4, 0x01, H_RDX, edi);                           /* add edi, edx */
    emit_regs_store(e, 1u << R_ECX | 1u << R_EDI | (movs ? 1u << R_ESI : 0));
    emit_op(e, 4, 0x85, ecx, ecx);                             /* test ecx, ecx */
    emit_patch_rel32(emit_jcc32(e, CC_NE), round);
    emit_patch_rel32(none, e->p);
}

/*
 * STI at CPL 0 with no interrupt waiting: IF set, and the one-instruction
 * shadow when IF was clear, as the interpreter does.  Above CPL 0 (IOPL
 * decides), and when the interrupt controller's output is up, the stub:
 * the interpreter runs it and its step leaves the block when an interrupt
 * has become deliverable, for bt_run to take it.  Without a controller
 * flag to poll it stays threaded.
 */
static void emit_sti(struct block_emit *be)
{
    struct emitter *e = be->e;
    cur_stub(be)->step = be->interrupt_step;
    if (!be->intr_line) {
        add_stub_fixup(be, emit_jmp32(e));
        return;
    }
    emit_u8(e, 0x83);                          /* cmp dword [rbx+cpl], 0 */
    modrm_rbx(e, 7, (int32_t)offsetof(struct cpu, cpl));
    emit_u8(e, 0);
    jump_to_stub(be, CC_NE);
    emit_mov_imm64(e, H_RAX, (uintptr_t)be->intr_line);
    emit_u8(e, 0x80); emit_u8(e, 0x38); emit_u8(e, 0);         /* cmp byte [rax], 0 */
    jump_to_stub(be, CC_NE);
    emit_load_rbx(e, H_RCX, OFF_FLAGS);
    emit_u8(e, 0xf7); emit_u8(e, 0xd1);                        /* not ecx */
    emit_u8(e, 0xc1); emit_u8(e, 0xe9); emit_u8(e, 9);         /* shr ecx, 9: IF clear before */
    emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 1);         /* and ecx, 1 */
    emit_u8(e, 0x08);                                          /* or [rbx+intr_shadow], cl */
    modrm_rbx(e, H_RCX, (int32_t)offsetof(struct cpu, intr_shadow));
    emit_u8(e, 0x81);                                          /* or dword [rbx+eflags], IF */
    modrm_rbx(e, 1, OFF_FLAGS);
    emit_u32(e, FL_IF);
}

/* MOV AL/EAX <-> [seg:offset] with the offset in the instruction. */
static void emit_mov_moffs(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = (in->op & 1) ? opsize(in) : 1;
    bool store = in->op >= 0xa2;
    emit_u8(e, 0xb8); emit_u32(e, in->imm);                    /* mov eax, offset */
    emit_probe(be, in->seg >= 0 ? in->seg : SEG_DS, size, store, false);
    emit_op(e, size, sized_op(store ? 0x88 : 0x8a, size), hreg(R_EAX), MEM_RDX);
}

/* BT/BTS/BTR/BTC r/m, reg: only CF is set (alu_bit).  A memory operand
 * is the dword that holds the bit: the signed offset's upper bits move the
 * address (32-bit operands only). */
static void emit_bit_reg(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = opsize(in);
    bool write = in->op != 0x1a3;
    int rm;
    if (in->mod == 3) {
        rm = emit_rm(be, in, size, write);
        emit_op(e, size, 0x0f00 | (in->op & 0xff), hreg(in->reg), rm);
    } else {
        emit_ea(e, in);
        emit_mov_rr32(e, H_RCX, hreg(in->reg));
        emit_u8(e, 0xc1); emit_u8(e, 0xf9); emit_u8(e, 5);     /* sar ecx, 5 */
        emit_u8(e, 0x8d); emit_u8(e, 0x04); emit_u8(e, 0x88);  /* lea eax, [rax + rcx*4] */
        emit_probe(be, in->ea_seg, 4, write, false);
        emit_mov_rr32(e, H_RCX, hreg(in->reg));
        emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 31);    /* and ecx, 31 */
        emit_op(e, 4, 0x0f00 | (in->op & 0xff), H_RCX, MEM_RDX);   /* bt* [rdx], ecx */
    }
    emit_flags(be, 0x1);
}

/* SHLD/SHRD r/m32, reg, imm8/CL: the host's, with OF as the shared
 * semantics define it for counts above 1 (SHLD's like SHL's, SHRD's like
 * SHR's) and AF cleared; a zero count changes nothing. */
static void emit_double_shift(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    bool left = op <= 0x1a5;
    int rm = emit_rm(be, in, 4, true);
    uint8_t *zero_count = NULL;
    if (op & 1) {
        zero_count = emit_cl_count(be);
        emit_op(e, 4, 0x0f00 | (op & 0xff), hreg(in->reg), rm);   /* shld/shrd rm, reg, cl */
    } else {
        if (!(in->imm & 31))
            return;
        emit_op(e, 4, 0x0f00 | (op & 0xff), hreg(in->reg), rm);   /* shld/shrd rm, reg, imm8 */
        emit_u8(e, in->imm & 31);
    }
    emit_shift_flags(be, left ? 4 : 5, 4, rm, false, zero_count);   /* OF as SHL's or SHR's */
}

/* CMPXCHG8B m64: the host's, on EDX:EAX and ECX:EBX in the host's own
 * registers (RBX, the CPU pointer, saved around it); only ZF changes. */
static void emit_cmpxchg8b(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    emit_ea(e, in);
    emit_probe(be, in->ea_seg, 8, true, false);
    emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xd6);      /* mov rsi, rdx */
    emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    emit_mov_rr32(e, H_RDX, hreg(R_EDX));
    emit_mov_rr32(e, H_RCX, hreg(R_ECX));
    emit_u8(e, 0x53);                                          /* push rbx */
    emit_mov_rr32(e, H_RBX, hreg(R_EBX));
    emit_u8(e, 0x0f); emit_u8(e, 0xc7); emit_u8(e, 0x0e);      /* cmpxchg8b [rsi] */
    emit_u8(e, 0x5b);                                          /* pop rbx */
    emit_mov_rr32(e, hreg(R_EAX), H_RAX);
    emit_mov_rr32(e, hreg(R_EDX), H_RDX);
    emit_flags(be, 0x40);
}

/* BT/BTS/BTR/BTC r/m, imm8: only CF is defined and set (alu_bit). */
static void emit_bit_imm(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = opsize(in);
    int rm = emit_rm(be, in, size, in->reg != 4);
    emit_op(e, size, 0x0fba, EXT(in->reg), rm);               /* bt* rm, imm8 */
    emit_u8(e, in->imm & (size * 8 - 1));
    emit_flags(be, 0x1);
}

/* The arithmetic flags a native instruction reads. */
static uint32_t flags_read(const struct insn *in)
{
    int op = in->op;
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x19f) || (op >= 0x140 && op <= 0x14f))
        return cond_flags(op & 0xf);
    if (alu_family(op))
        return (op >> 3) == 2 || (op >> 3) == 3 ? 0x1 : 0;   /* ADC, SBB */
    if (op == 0x9c)
        return FLAGS_ALL;                                      /* PUSHF */
    return (op == 0x80 || op == 0x81 || op == 0x83) && (in->reg == 2 || in->reg == 3) ? 0x1 : 0;
}

uint32_t native_flags_read(const struct insn *in)
{
    if (!native_supported(in) || shifts_by_cl(in) || insn_is_jcc(in))
        return FLAGS_ALL;          /* threaded; a zero count keeps them; a side exit takes them */
    return flags_read(in);
}

int native_of_blocker(const struct insn *in, int reg)
{
    if (!native_supported(in) || high_byte_regs(in) || (native_flags_read(in) & 0x800))
        return -1;
    if (native_flags_written(in) & 0x800)
        return 1;                  /* its stub runs before it writes the register */
    if (native_flags_written(in) & 0x1)
        return -1;                 /* BT: a later stub would take SHL's OF from another CF */
    return (native_regs_written(in) & (1u << reg)) ? -1 : 0;
}

/* A shift by CL merges its flags into EFLAGS in memory itself: a zero count
 * leaves every flag as it was, so R11 cannot stand for them afterwards.
 * PUSHF reads EFLAGS whole from memory. */
static bool flags_merged_by_hand(const struct insn *in)
{
    return shifts_by_cl(in) || in->op == 0x9c;
}

/* The number of TLB probes a native instruction makes (0, 1 or 2), its
 * cached operands left out. */
int native_probes(const struct insn *in, unsigned cached)
{
    int op = in->op, n = 0;
    if (in->has_modrm && in->mod != 3 && op != 0x8d && !(cached & CACHED_RM))
        n++;
    struct stack_effect fx;
    if (op == 0xc9 || (op >= 0xa0 && op <= 0xa5) || (op >= 0xaa && op <= 0xad) ||
        (native_stack_effect(in, &fx) && fx.access && !(cached & CACHED_STACK)))
        n++;
    return n;
}

bool native_stack_effect(const struct insn *in, struct stack_effect *fx)
{
    int op = in->op;
    *fx = (struct stack_effect){ 0 };
    bool push = (op >= 0x50 && op <= 0x57) || op == 0x68 || op == 0x6a || op == 0xe8 ||
                (op == 0xff && (in->reg == 2 || in->reg == 6));
    bool pop = (op >= 0x58 && op <= 0x5f && op != 0x5c) || op == 0xc2 || op == 0xc3;
    if ((push || pop) && in->op32) {
        fx->access = true;
        fx->write = push;
        fx->off = push ? -4 : 0;
        fx->delta = push ? -4 : 4 + (op == 0xc2 ? (int32_t)(in->imm & 0xffff) : 0);
        return true;
    }
    if (!(native_regs_written(in) & (1u << R_ESP)))
        return true;
    /* add/sub esp, imm */
    if ((op == 0x81 || op == 0x83) && in->mod == 3 && in->rm == R_ESP && in->op32 && (in->reg == 0 || in->reg == 5)) {
        int32_t imm = op == 0x83 ? (int32_t)(int8_t)in->imm : (int32_t)in->imm;
        fx->delta = in->reg == 0 ? imm : -imm;
        return true;
    }
    return false;
}

/*
 * Base-register page caching.  Compiled code addresses locals, arguments
 * and fields as [ESP + disp], [EBP + disp] or [reg + disp] again and again
 * in a block.  At the entry of a flat block, one check per such register
 * covers the range of its operands met before it is first written (and
 * before any threaded instruction): the range lies in one page the TLB maps
 * (for writes too if any of them writes), and that page's host - linear goes to
 * cpu.bt_base_addend.  Each covered operand is then 2 instructions
 * instead of a probe (see emit_rm).  The mapping cannot change meanwhile: only threaded
 * non-plain instructions (CR3, INVLPG, a map change) could, and coverage
 * ends before any threaded instruction.  A check that fails leaves at once
 * (nothing has run yet) with cpu.bt_nocache naming the block and
 * cpu.bt_nocache_reg the register: when that keeps happening, bt_run drops
 * the block and translates a variant that does not cache that register's
 * page, for good (the others' still are).
 */

int native_base_operand(const struct insn *in, int32_t *disp, bool *write)
{
    if (!in->has_modrm || in->mod == 3 || in->ea_index >= 0 || !native_supported(in) || high_byte_regs(in))
        return -1;
    if (in->ea_base < 0)
        return -1;
    if (in->ea_seg != SEG_DS && in->ea_seg != SEG_SS && in->ea_seg != SEG_ES)
        return -1;
    if (in->op == 0x8d)
        return -1;                             /* LEA does not access memory */
    if (in->op == 0x1c7 || in->op == 0x1a3 || in->op == 0x1ab || in->op == 0x1b3 || in->op == 0x1bb)
        return -1;                             /* 8 bytes, or an address the bit offset moves */
    *disp = in->disp;
    *write = writes_rm(in);
    return in->ea_base;
}

void native_emit_base_check(struct block_emit *be, int base, int32_t dmin, int32_t dmax, bool write)
{
    struct emitter *e = be->e;
    emit_lea_eax(e, base, dmin, true);
    emit_u8(e, 0x89); emit_u8(e, 0xc2);        /* mov edx, eax */
    emit_u8(e, 0x48); emit_u8(e, 0x39); emit_u8(e, 0xc2);   /* cmp rdx, rax: the range wraps at 4 GiB */
    be->base_miss_reg[be->nbase_miss] = base;
    be->base_miss[be->nbase_miss++] = emit_jcc32(e, CC_NE);
    emit_tlb_index_edx(e);
    emit_u8(e, 0x8d); emit_u8(e, 0xb0);        /* lea esi, [rax + dmax - dmin] */
    emit_u32(e, (uint32_t)(dmax - dmin));
    emit_u8(e, 0x81); emit_u8(e, 0xe6); emit_u32(e, PAGE_MASK);   /* and esi, PAGE_MASK */
    emit_u8(e, 0x3b); emit_u8(e, 0xb4); emit_u8(e, 0x13);          /* cmp esi, [rbx + rdx + tag] */
    emit_u32(e, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)));
    be->base_miss_reg[be->nbase_miss] = base;
    be->base_miss[be->nbase_miss++] = emit_jcc32(e, CC_NE);
    emit_u8(e, 0x48); emit_u8(e, 0x8b); emit_u8(e, 0x94); emit_u8(e, 0x13);  /* mov rdx, [rbx+rdx+addend] */
    emit_u32(e, (uint32_t)OFF_TLB(be->user, addend));
    emit_u8(e, 0x48); emit_u8(e, 0x89);                        /* mov [rbx+bt_base_addend[i]], rdx */
    modrm_rbx(e, H_RDX, (int32_t)(offsetof(struct cpu, bt_base_addend) + 8 * base));
    be->rdx_addend = base;
}

/* A two-page block's entry check: the TLB maps its second linear page
 * (lin2, a constant in flat code) to the physical page it was translated from. */
void native_emit_page2_check(struct block_emit *be, uint32_t lin2, uint32_t phys2)
{
    emit_tlb_maps_check(be, lin2, phys2, be->page2_miss);
}

/*
 * Whether the instruction's code leaves deferred flags in the host's
 * EFLAGS intact until it sets the flags it writes itself: moves, PUSH/POP,
 * ALU ops (ADC/SBB when CF is among them), shifts and IMUL whose host flags
 * are the guest's or dead, and with a 4 GiB CS CALL/RET/JMP; memory
 * operands through the flag-keeping probe, and at most two probes before the
 * flags are overwritten.  Jcc, SETcc and CMOVcc whose flags are all there
 * test them in place.  Everything else captures them first.
 */
static bool keeps_host_flags(const struct block_emit *be, const struct insn *in, uint32_t eip)
{
    int op = in->op;
    if (insn_is_jcc(in))
        return jcc_on_host_flags(be, op & 0xf, native_branch_target(in, eip));
    if (high_byte_regs(in))
        return false;
    if ((flags_read(in) & 0x1) && !(be->host_keep & 0x1))
        return false;                          /* ADC/SBB would bt CF in */
    bool ok;
    if (alu_family(op) || op == 0x80 || op == 0x81 || op == 0x83)
        ok = true;
    else if ((op >= 0x190 && op <= 0x19f) || (op >= 0x140 && op <= 0x14f))
        ok = cond_in_host(be, op & 0xf);       /* setcc, cmovcc on the host's flags */
    else if (op == 0xc0 || op == 0xc1 || op == 0xd0 || op == 0xd1)
        ok = native_flags_written(in) && (be->flags_dead || shift_flags_from_host(be, in));
    else if (op == 0x1af || op == 0x69 || op == 0x6b)
        ok = be->flags_dead;                   /* IMUL: all its flags dead */
    else if (op >= 0x40 && op <= 0x5f)         /* inc/dec, push/pop reg */
        ok = true;
    else if (op >= 0xb0 && op <= 0xbf)
        ok = true;
    else if (op >= 0x1c8 && op <= 0x1cf)
        ok = true;
    else {
        switch (op) {
        case 0x84: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8a: case 0x8b:
        case 0x8d: case 0x90: case 0x98: case 0x99: case 0xa8: case 0xa9: case 0xc6: case 0xc7:
        case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: case 0x1b0: case 0x1b1: case 0x1c0: case 0x1c1:
            ok = true;
            break;
        case 0xf6: case 0xf7:
            if (in->reg == 4 || in->reg == 6)
                ok = in->reg == 4 && be->flags_dead;   /* MUL as IMUL; DIV's check compares */
            else
                ok = in->reg == 0 || in->reg == 2 || in->reg == 3;   /* test, not, neg */
            break;
        case 0xfe: case 0xff:
            /* inc, dec, push r/m; call, jmp r/m with a 4 GiB CS (no limit check) */
            ok = in->reg <= 1 || (op == 0xff && in->reg == 6) ||
                 (op == 0xff && (in->reg == 2 || in->reg == 4) && cs_covers_all(be));
            break;
        case 0xe8: case 0xe9: case 0xeb: case 0xc2: case 0xc3:
            ok = cs_covers_all(be);            /* exits merge the deferred flags themselves */
            break;
        default:
            ok = false;
        }
    }
    if (!ok)
        return false;
    /* Deferred flags make every probe until they are overwritten the longer,
     * flag-keeping one: past two, one pushfq now is cheaper. */
    if (be->probes_ahead > 2 && native_probes(in, cached_operands(be)) && be->logic_reg < 0)
        return false;
    bool stack_probe = ((op >= 0x50 && op <= 0x5f) || op == 0xe8 || op == 0xc2 || op == 0xc3 ||
                        (op == 0xff && (in->reg == 6 || in->reg == 2))) && !be->stack_cached;
    if (stack_probe && !probe_keeps_flags(be, SEG_SS))
        return false;
    if (in->has_modrm && in->mod != 3 && op != 0x8d)
        return probe_keeps_flags(be, in->ea_seg);
    return true;
}

/* Native instructions whose own host code leaves RDX alone (their memory
 * operand's, from emit_rm, tracks itself): a covered operand after them may
 * use the page addend RDX still holds. */
static bool keeps_rdx(const struct block_emit *be, const struct insn *in)
{
    int op = in->op;
    if (be->stack_cached && ((op >= 0x50 && op <= 0x5f) || op == 0x68 || op == 0x6a))
        return true;
    if (alu_family(op) || (op >= 0x40 && op <= 0x4f) || (op >= 0xb0 && op <= 0xbf))
        return true;
    switch (op) {
    case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0x86: case 0x87:
    case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8d: case 0x90: case 0xc6: case 0xc7:
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf:
        return true;
    case 0xf6: case 0xf7:
        return in->reg == 0 || in->reg == 2 || in->reg == 3;   /* test, not, neg (MUL/DIV write RDX) */
    }
    return false;
}

uint32_t native_branch_target(const struct insn *in, uint32_t eip)
{
    bool rel8 = in->op == 0xeb || (in->op >= 0x70 && in->op <= 0x7f);
    uint32_t target = eip + in->len + (rel8 ? (uint32_t)(int32_t)(int8_t)in->imm : in->imm);
    return in->op32 ? target : target & 0xffff;
}

/* Instructions whose register writes all come after their one probe:
 * flags redone from a register they write are still right at the probe. */
static bool writes_after_its_probe(const struct insn *in)
{
    int op = in->op;
    if (alu_family(op))
        return true;
    switch (op) {
    case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0x88: case 0x89: case 0x8a: case 0x8b:
    case 0x69: case 0x6b: case 0x1af: case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf:
        return true;
    case 0xf6: case 0xf7:
        return in->reg <= 5;                   /* not DIV, IDIV */
    }
    return false;
}

bool native_emit(struct block_emit *be, const struct insn *in, uint32_t eip)
{
    if (be->jump_followed) {
        be->pending++;             /* the code at its target comes next: the JMP only retires */
        return false;
    }
    struct emitter *e = be->e;
    int op = in->op;
    uint32_t next = eip + in->len;
    struct native_stub *s = cur_stub(be);
    if (be->host_clear && !keeps_host_flags(be, in, eip))
        emit_capture(be);
    if (be->pend_keep) {
        uint32_t rd = flags_read(in) & ~be->host_keep;   /* deferred ones are read where they are */
        bool split = (rd & be->pend_clear) && (rd & ~be->pend_keep);   /* some in R11, some in memory */
        if (split || flags_merged_by_hand(in))
            emit_materialize(be);
    }
    s->nfixups = 0;
    s->step = NULL;
    s->in = in;
    s->eip = eip;
    s->pending = be->pending;
    s->pend_keep = be->pend_keep;
    s->pend_clear = be->pend_clear;
    s->host_keep = be->host_keep;
    s->host_clear = be->host_clear;
    s->of_rm = be->of_rm;
    s->of_kind = be->of_kind;
    s->of_size = be->of_size;
    bool logic_reg_written = be->logic_reg >= 0 && (native_regs_written(in) & 1u << be->logic_reg);
    unsigned logic_notes = be->logic_notes;
    if (logic_reg_written && !writes_after_its_probe(in))
        be->logic_reg = -1;
    /* ADD EDX, [mem]: nothing between its one probe and its own flags needs them. */
    be->logic_overwritten = native_flags_written(in) == FLAGS_ARITH && !flags_read(in) &&
                            native_probes(in, cached_operands(be)) == 1;
    s->logic_reg = be->host_clear ? be->logic_reg : -1;
    s->logic_size = be->logic_size;
    if (native_flags_written(in) & 0x800)
        be->of_rm = -1;                        /* after this one's stub: it overwrites OF */
    if (be->regs_used & ~be->regs_valid) {
        emit_regs_load(e, be->regs_used & ~be->regs_valid);
        be->regs_valid = be->regs_used;
    }
    s->regs = be->regs_used;
    s->dirty = be->regs_dirty;
    /* Before the body: CALL and RET write ESP and leave inside it. */
    be->regs_dirty |= native_regs_written(in);
    be->hi_regs = (unsigned)high_byte_regs(in);
    be->hi_rotated = false;
    bool ends = false;

    if (alu_family(op)) {
        emit_alu(be, in);
    } else if (op >= 0x40 && op <= 0x4f) {     /* inc/dec reg */
        emit_op(e, opsize(in), 0xff, EXT(op >= 0x48), hreg(op & 7));
        emit_flags(be, FLAGS_INCDEC);
    } else if (op >= 0x50 && op <= 0x57) {
        emit_push_value(be, in, op & 7, 0);
    } else if (op >= 0x58 && op <= 0x5f) {
        emit_pop_ecx(be, 0, false);
        emit_mov_rr32(e, hreg(op & 7), H_RCX); /* after ESP: pop esp */
    } else if (op >= 0xb0 && op <= 0xbf) {     /* mov reg, imm */
        int size = op >= 0xb8 ? opsize(in) : 1;
        emit_high_bytes_in(be);
        emit_op(e, size, size == 1 ? 0xc6 : 0xc7, EXT(0), byte_or_hreg(op & 7, size));
        emit_imm(e, in->imm, size);
    } else if (insn_is_jcc(in)) {
        ends = emit_jcc(be, op & 0xf, next, native_branch_target(in, eip));
    } else if (op >= 0x190 && op <= 0x19f) {   /* setcc r/m8 */
        int rm = emit_rm(be, in, 1, true);
        if (cond_in_host(be, op & 0xf)) {
            emit_op(e, 1, 0x0f90 | (op & 0xf), EXT(0), rm);
        } else {
            emit_cond_base(be, op & 0xf);
            emit_op(e, 1, 0x0f90 | host_cc(op & 0xf), EXT(0), rm);
        }
    } else if (op >= 0x1c8 && op <= 0x1cf) {   /* bswap r32 */
        emit_rex(e, 0, 0, hreg(op & 7));
        emit_u8(e, 0x0f); emit_u8(e, 0xc8 | (hreg(op & 7) & 7));
    } else if (op >= 0x140 && op <= 0x14f) {   /* cmovcc r32, r/m32 */
        emit_op(e, 4, 0x8b, H_RSI, emit_rm(be, in, 4, false));   /* mov esi, rm */
        if (cond_in_host(be, op & 0xf)) {
            emit_op(e, 4, 0x0f40 | (op & 0xf), hreg(in->reg), H_RSI);
        } else {
            emit_cond_base(be, op & 0xf);
            emit_op(e, 4, 0x0f40 | host_cc(op & 0xf), hreg(in->reg), H_RSI);
        }
    } else {
        switch (op) {
        case 0x80: case 0x81: case 0x83:
            emit_group1(be, in);
            break;
        case 0x84: case 0x85: {                /* test r/m, reg */
            int size = (op & 1) ? opsize(in) : 1;
            emit_op(e, size, op, byte_or_hreg(in->reg, size), emit_rm(be, in, size, false));
            emit_flags(be, FLAGS_LOGIC);
            if (in->mod == 3 && in->rm == in->reg)
                note_logic_result(be, in->reg, size);
            break;
        }
        case 0xfb:
            emit_sti(be);
            break;
        case 0xfa: case 0xfc: case 0xfd:       /* cli, cld, std: EFLAGS in struct cpu */
            if (op == 0xfa) {
                emit_u8(e, 0x83);              /* cmp dword [rbx+cpl], 0: IOPL decides elsewhere */
                modrm_rbx(e, 7, (int32_t)offsetof(struct cpu, cpl));
                emit_u8(e, 0);
                jump_to_stub(be, CC_NE);
            }
            emit_u8(e, 0x81);                  /* and/or dword [rbx+eflags], imm32 */
            modrm_rbx(e, op == 0xfd ? 1 : 4, OFF_FLAGS);
            emit_u32(e, op == 0xfa ? ~(uint32_t)FL_IF : op == 0xfc ? ~(uint32_t)FL_DF : FL_DF);
            break;
        case 0x86: case 0x87: {                /* xchg r/m, reg */
            int size = (op & 1) ? opsize(in) : 1;
            emit_op(e, size, op, byte_or_hreg(in->reg, size), emit_rm(be, in, size, true));
            break;
        }
        case 0x1c0: case 0x1c1: {              /* xadd r/m, reg */
            int size = (op & 1) ? opsize(in) : 1;
            emit_op(e, size, 0x0fc0 | (op & 1), byte_or_hreg(in->reg, size), emit_rm(be, in, size, true));
            emit_flags(be, FLAGS_ARITH);
            break;
        }
        case 0x1b0: case 0x1b1: {              /* cmpxchg r/m, reg: the host's, on a copy of EAX */
            int size = (op & 1) ? opsize(in) : 1;
            int rm = emit_rm(be, in, size, true);
            emit_mov_rr32(e, H_RAX, hreg(R_EAX));
            emit_op(e, size, 0x0fb0 | (op & 1), byte_or_hreg(in->reg, size), rm);
            emit_mov_rr32(e, hreg(R_EAX), H_RAX);
            emit_flags(be, FLAGS_ARITH);
            break;
        }
        case 0x88: case 0x89: case 0x8a: case 0x8b:
            emit_mov(be, in);
            break;
        case 0x8d:                             /* lea */
            if (in->op32) {
                emit_ea_to(e, in, hreg(in->reg));
            } else {
                emit_ea(e, in);
                emit_op(e, 2, 0x89, H_RAX, hreg(in->reg));
            }
            break;
        case 0x90:
            break;
        case 0x98:                             /* cwde */
            emit_op(e, 4, 0x0fbf, hreg(R_EAX), hreg(R_EAX));
            break;
        case 0x99:                             /* cdq */
            emit_mov_rr32(e, H_RAX, hreg(R_EAX));
            emit_u8(e, 0x99);
            emit_mov_rr32(e, hreg(R_EDX), H_RDX);
            break;
        case 0xa8: case 0xa9: {                /* test al/eax, imm */
            int size = (op & 1) ? opsize(in) : 1;
            emit_op(e, size, sized_op(0xf6, size), EXT(0), hreg(R_EAX));
            emit_imm(e, in->imm, size);
            emit_flags(be, FLAGS_LOGIC);
            break;
        }
        case 0xc6: case 0xc7: {                /* mov r/m, imm */
            int size = (op & 1) ? opsize(in) : 1;
            emit_op(e, size, op, EXT(0), emit_rm(be, in, size, true));
            emit_imm(e, in->imm, size);
            break;
        }
        case 0xf6: case 0xf7: {
            int size = (op & 1) ? opsize(in) : 1;
            if (in->reg == 0) {                /* test r/m, imm */
                emit_op(e, size, op, EXT(0), emit_rm(be, in, size, false));
                emit_imm(e, in->imm, size);
                emit_flags(be, FLAGS_LOGIC);
            } else if (in->reg == 4) {
                emit_mul(be, in);
            } else if (in->reg == 6) {
                emit_div(be, in);
            } else {
                emit_unary(be, in, 0xf6, in->reg, in->reg == 3 ? FLAGS_ARITH : 0);   /* not / neg */
            }
            break;
        }
        case 0xfe:                             /* inc/dec r/m8 */
            emit_unary(be, in, 0xfe, in->reg, FLAGS_INCDEC);
            break;
        case 0xff:
            if (in->reg <= 1) {                /* inc/dec r/m */
                emit_unary(be, in, 0xfe, in->reg, FLAGS_INCDEC);
            } else if (in->reg == 6) {         /* push r/m32 */
                emit_op(e, 4, 0x8b, H_RDI, emit_rm(be, in, 4, false));
                emit_push_value(be, in, PUSH_EDI, 0);
            } else if (in->reg == 2) {         /* call r/m32 */
                emit_load_target_edi(be, in);
                emit_push_value(be, in, -1, next);
                emit_return_push(be, next);
                emit_exit_edi(be, false);
                ends = true;
            } else {                           /* jmp r/m32 */
                emit_load_target_edi(be, in);
                emit_exit_edi(be, false);
                ends = true;
            }
            break;
        case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
            emit_shift(be, in);
            break;
        case 0x1af: case 0x69: case 0x6b:
            emit_imul(be, in);
            break;
        case 0x1ba:
            emit_bit_imm(be, in);
            break;
        case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:
            emit_bit_reg(be, in);
            break;
        case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad:
            emit_double_shift(be, in);
            break;
        case 0x1c7:
            emit_cmpxchg8b(be, in);
            break;
        case 0xa0: case 0xa1: case 0xa2: case 0xa3:
            emit_mov_moffs(be, in);
            break;
        case 0xaa: case 0xab: case 0xac: case 0xad:
            if (in->prefixes & (PFX_REP | PFX_REPNE))
                emit_rep_string(be, in);
            else
                emit_stos_lods(be, in);
            break;
        case 0xa4: case 0xa5:
            emit_rep_string(be, in);
            break;
        case 0xc9:                             /* leave */
            emit_mov_rr32(e, H_RAX, hreg(R_EBP));
            emit_probe(be, SEG_SS, 4, false, true);
            emit_u8(e, 0x8b); modrm_rdx(e, H_RCX);
            emit_u8(e, 0x83); emit_u8(e, 0xc0); emit_u8(e, 4);   /* add eax, 4 */
            emit_mov_rr32(e, hreg(R_ESP), H_RAX);
            emit_mov_rr32(e, hreg(R_EBP), H_RCX);
            break;
        case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf: {   /* movzx/movsx */
            int src = (op & 1) ? 2 : 1;
            int rm = emit_rm(be, in, src, false);
            emit_op(e, opsize(in), 0x0f00 | (op & 0xff), hreg(in->reg), rm);
            break;
        }
        case 0x9c:                             /* pushf: EFLAGS whole in memory (flags_merged_by_hand) */
            emit_load_rbx(e, H_RDI, OFF_FLAGS);
            emit_u8(e, 0x81); emit_u8(e, 0xe7); emit_u32(e, ~(FL_VM | FL_RF));   /* and edi, ~(VM | RF) */
            emit_push_value(be, in, PUSH_EDI, 0);
            break;
        case 0x68: case 0x6a: {
            uint32_t v = op == 0x6a ? (uint32_t)(int32_t)(int8_t)in->imm : in->imm;
            emit_push_value(be, in, -1, v);
            break;
        }
        case 0xe8: {                           /* call rel32 */
            uint32_t target = next + in->imm;
            check_target(be, target);
            emit_push_value(be, in, -1, next);
            if (be->chain && be->flat && be->nchain + 2 <= BT_CHAIN_SLOTS && next) {
                emit_patched_exit(be, target, be->pending + 1, next);
            } else {
                emit_return_push(be, next);
                emit_exit_n(be, target, be->pending + 1);
            }
            ends = true;
            break;
        }
        case 0xe9: case 0xeb: {
            uint32_t target = native_branch_target(in, eip);
            check_target(be, target);
            emit_exit_n(be, target, be->pending + 1);
            ends = true;
            break;
        }
        case 0xc2: case 0xc3:                  /* ret [imm16] */
            emit_pop_ecx(be, op == 0xc2 ? (in->imm & 0xffff) : 0, true);
            emit_u8(e, 0x89); emit_u8(e, 0xcf); /* mov edi, ecx */
            emit_exit_edi(be, true);
            ends = true;
            break;
        }
    }
    if (be->hi_rotated) {
        emit_capture(be);                      /* the rotation changes CF and OF */
        unsigned back = be->hi_regs;
        if ((op == 0x1b6 || op == 0x1be) && in->mod == 3)
            back &= ~(1u << in->reg);          /* movzx eax, ah: EAX was written whole */
        emit_high_byte_rotate(be, back, true);
    }
    if (logic_reg_written && be->logic_notes == logic_notes)
        be->logic_reg = -1;                    /* not by noting its own result */
    if (s->nfixups) {
        s->resume = ends ? NULL : e->p;
        s->host_after = be->host_clear != 0;
        be->nstubs++;
    }
    if (s->nfixups || !keeps_rdx(be, in))
        be->rdx_addend = -1;   /* a stub's call comes back here with RDX lost */
    be->pending++;
    return ends;
}

/* Guest registers whose host registers survive a call into C (callee-saved). */
#define GUEST_IN_CALLEE_SAVED (1u << R_EBX | 1u << R_ESP | 1u << R_EBP | 1u << R_ESI | 1u << R_EDI)

/* A threaded instruction that writes no guest register but EAX and EDX
 * (x87 but FNSTSW AX, MUL/DIV, RDTSC, flag instructions): the registers in
 * callee-saved host registers still hold their values after it. */
static bool threaded_keeps_callee_saved(const struct insn *in)
{
    int op = in->op;
    if (op >= 0xd8 && op <= 0xdf)
        return !(op == 0xdf && in->modrm == 0xe0);
    if (op == 0xf6 || op == 0xf7)
        return in->reg >= 4;
    switch (op) {
    case 0x131: case 0x9e: case 0x9f: case 0xf5: case 0xf8: case 0xf9: case 0xfc: case 0xfd:
        return true;
    }
    return false;
}

void native_emit_threaded(struct block_emit *be, const struct insn *in, uint32_t eip, bool last,
                          bool (*step)(struct cpu *, const struct insn *))
{
    struct emitter *e = be->e;
    be->rdx_addend = -1;
    emit_capture(be);
    emit_spill(be);
    be->regs_valid = threaded_keeps_callee_saved(in) ? be->regs_valid & GUEST_IN_CALLEE_SAVED : 0;
    be->regs_dirty = 0;
    emit_materialize(be);
    native_flush_count(be);
    emit_call_step(e, eip, in, step);
    /* After a plain one nothing the interrupt check needs to see happened:
     * a chaining block goes on directly at its end too. */
    bool goes_on = be->chain && native_threaded_is_plain(in);
    if (!last || goes_on) {
        emit_test_al(e);                       /* step says whether the block may go on */
        be->plain_exits[be->nplain++] = emit_jcc32(e, CC_E);
    }
    if (!last)
        return;
    if (goes_on) {
        emit_u8(e, 0x8b);                                      /* mov edi, [rbx+eip] */
        modrm_rbx(e, H_RDI, OFF_EIP);
        emit_jump_cache(be, false, false, false);
    }
    be->plain_exits[be->nplain++] = emit_jmp32(be->e);
    hot_code(be);
}
