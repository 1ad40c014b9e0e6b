/*
 * Deferred guest flags: the host's EFLAGS after a flag-setting host
 * instruction, captured into R11, merged into struct cpu's EFLAGS where
 * someone may look, and moved to and from AX (LAHF/SETO) across chained
 * entries.  The state lives in struct block_emit (host_keep/host_clear,
 * pend_keep/pend_clear, logic_reg).
 */
#include "bt/native_internal.h"

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
void emit_flags_layout_from_ax(struct emitter *e, int dst)
{
    emit_shift_r8_imm8(e, SH_SHL, H_RAX, 3);
    emit_shift_r16_imm8(e, SH_ROL, H_RAX, 8);
    emit_movzx_r32_r16(e, dst, H_RAX);
}

/* The flags in eax (host layout, only bits of `keep` set) are the new
 * values of the guest flags `clear`: fold them into R11. */
void emit_combine_eax(struct block_emit *be, uint32_t keep, uint32_t clear)
{
    struct emitter *e = be->e;
    if (be->pend_clear & ~clear) {
        emit_alu_r32_imm32(e, ALU_AND, H_R11, ~clear);
        emit_alu_rr32(e, ALU_OR, H_R11, H_RAX);
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
void emit_host_into_r11(struct emitter *e, uint32_t hkeep, uint32_t hclear, uint32_t *keep, uint32_t *clear)
{
    if (!hclear)
        return;
    if (!(*clear & ~hclear)) {
        emit_pushfq(e);                                        /* they replace all of R11 */
        emit_pop(e, H_R11);
        *keep = hkeep;
        *clear = hclear;
        return;
    }
    emit_pushfq(e);
    emit_pop(e, H_RAX);
    emit_alu_eax_imm32(e, ALU_AND, hkeep);
    emit_alu_r32_imm32(e, ALU_AND, H_R11, ~hclear);
    emit_alu_rr32(e, ALU_OR, H_R11, H_RAX);
    *keep = (*keep & ~hclear) | hkeep;
    *clear |= hclear;
}

/* The deferred flags from the host's EFLAGS into R11. */
void emit_capture(struct block_emit *be)
{
    emit_host_into_r11(be->e, be->host_keep, be->host_clear, &be->pend_keep, &be->pend_clear);
    be->host_keep = be->host_clear = 0;
    be->logic_reg = -1;
}

/* A host instruction whose guest flags are dead changed the host flags
 * `mask`: the deferred ones among them are gone (dead as well). */
void host_flags_clobbered(struct block_emit *be, uint32_t mask)
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
void emit_flags_kc(struct block_emit *be, uint32_t keep, uint32_t clear)
{
    be->logic_reg = -1;
    if (be->flags_dead) {
        host_flags_clobbered(be, clear);
        return;
    }
    be->host_keep = (be->host_keep & ~clear) | keep;
    be->host_clear |= clear;
}

void emit_flags(struct block_emit *be, uint32_t mask)
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
void note_logic_result(struct block_emit *be, int guest, int size)
{
    if (be->host_keep == FLAGS_LOGIC && be->host_clear == FLAGS_ARITH && !(size == 1 && guest >= 4))
        be->logic_reg = guest, be->logic_size = size, be->logic_notes++;
}

void emit_redo_logic_flags(struct emitter *e, int guest, int size)
{
    emit_op(e, size, size == 1 ? 0x84 : 0x85, hreg(guest), hreg(guest));   /* test r, r */
}

/* EFLAGS = (EFLAGS & ~clear) | (r11 & keep). */
void emit_merge_r11(struct emitter *e, uint32_t keep, uint32_t clear)
{
    emit_alu_r32_imm32(e, ALU_AND, H_R11, keep);
    emit_alu_m32_imm32(e, ALU_AND, cpu_field(OFF_FLAGS), ~clear);
    emit_alu_m_r32(e, ALU_OR, cpu_field(OFF_FLAGS), H_R11);
}

/* Merge captured flags now (the code that follows sees EFLAGS in memory). */
void emit_materialize(struct block_emit *be)
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
bool host_flags_whole(const struct block_emit *be)
{
    return be->host_clear == FLAGS_ARITH && (be->host_keep | FL_AF) == FLAGS_ARITH && host_has_lahf();
}

/* ah = SF ZF AF PF CF (LAHF), al = OF: two cheap instructions, no pushfq. */
static void emit_lahf_ax(struct emitter *e)
{
    emit_lahf(e);
    emit_setcc_r8(e, CC_O, H_RAX);
}

/* The guest's flags, all deferred in the host's EFLAGS, into AX as
 * emit_lahf_ax takes them, with AF cleared where a logic op cleared it. */
void emit_flags_to_ax(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_lahf_ax(e);
    if (!(be->host_keep & FL_AF)) {
        emit_alu_r8_imm8(e, ALU_AND, 4, (uint8_t)~FL_AF);       /* and ah, ~AF */
    }
}

/* The flags emit_lahf_ax took (`keep`: AF or not) into EFLAGS in memory.
 * LAHF's byte has CF PF AF ZF SF where EFLAGS has them.  EFLAGS is written
 * as a dword: byte stores would stall the dword loads that follow (store
 * forwarding).  Clobbers eax, edx. */
void emit_merge_ax(struct emitter *e, uint32_t keep)
{
    emit_flags_layout_from_ax(e, H_RDX);
    emit_alu_r32_imm32(e, ALU_AND, H_RDX, keep | FL_OF);       /* LAHF's bit 1 is set */
    emit_alu_m32_imm32(e, ALU_AND, cpu_field(OFF_FLAGS), ~FLAGS_ARITH);
    emit_alu_m_r32(e, ALU_OR, cpu_field(OFF_FLAGS), H_RDX);
}

/* AX as emit_lahf_ax leaves it, from the (whole) EFLAGS in memory. */
void emit_ax_from_eflags(struct emitter *e)
{
    emit_movzx_r32_m8(e, H_RAX, cpu_field(OFF_FLAGS));
    emit_shift_r32_imm8(e, SH_SHL, H_RAX, 8);
    emit_bt_m32_imm8(e, cpu_field(OFF_FLAGS), 11);             /* OF */
    emit_setcc_r8(e, CC_B, H_RAX);
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
        emit_alu_al_imm8(e, ALU_ADD, 0x7f);                    /* OF = (al == 1) */
        emit_sahf(e);
        be->host_keep = be->host_clear = FLAGS_ARITH;
        break;
    case ENTRY_FLAGS_R11_FROM_EFLAGS:
        emit_mov_r32_m(e, H_R11, cpu_field(OFF_FLAGS));
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
void emit_entry_flags_out(struct block_emit *be)
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
void emit_materialize_on_exit(struct block_emit *be)
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
bool emit_flags_for_handover(struct block_emit *be)
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
bool flags_in_r11(const struct block_emit *be, uint32_t need)
{
    return (be->pend_keep & need) != 0;
}

/* The guest CF into the host CF (ADC/SBB): already there when deferred, else
 * bt r11d, 0 or bt dword [rbx+eflags], 0. */
void emit_load_cf(struct block_emit *be)
{
    struct emitter *e = be->e;
    if (be->host_keep & FL_CF)
        return;
    if (flags_in_r11(be, FL_CF))
        emit_bt_r32_imm8(e, H_R11, 0);
    else
        emit_bt_m32_imm8(e, cpu_field(OFF_FLAGS), 0);
}

/* The block's CS covers every EIP (a flat block: 4 GiB by its key). */
bool cs_covers_all(const struct block_emit *be)
{
    return be->limit_checked == 0xffffffffu;
}
