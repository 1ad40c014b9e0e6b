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
    emit_u8(e, 0xc0); emit_u8(e, 0xe0); emit_u8(e, 3);         /* shl al, 3 */
    emit_u8(e, 0x66); emit_u8(e, 0xc1); emit_u8(e, 0xc0); emit_u8(e, 8);   /* rol ax, 8 */
    if (dst & 8)
        emit_u8(e, 0x44);
    emit_u8(e, 0x0f); emit_u8(e, 0xb7); emit_u8(e, 0xc0 | (dst & 7) << 3);   /* movzx dst, ax */
}

/* The flags in eax (host layout, only bits of `keep` set) are the new
 * values of the guest flags `clear`: fold them into R11. */
void emit_combine_eax(struct block_emit *be, uint32_t keep, uint32_t clear)
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
void emit_host_into_r11(struct emitter *e, uint32_t hkeep, uint32_t hclear, uint32_t *keep, uint32_t *clear)
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
    emit_u8(e, 0x41); emit_u8(e, 0x81); emit_u8(e, 0xe3);      /* and r11d, keep */
    emit_u32(e, keep);
    emit_u8(e, 0x81);                                          /* and dword [rbx+eflags], ~clear */
    modrm_rbx(e, 4, OFF_FLAGS);
    emit_u32(e, ~clear);
    emit_u8(e, 0x44); emit_u8(e, 0x09);                        /* or [rbx+eflags], r11d */
    modrm_rbx(e, 3, OFF_FLAGS);
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
void emit_flags_to_ax(struct block_emit *be)
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
void emit_merge_ax(struct emitter *e, uint32_t keep)
{
    emit_flags_layout_from_ax(e, H_RDX);
    emit_u8(e, 0x81); emit_u8(e, 0xe2);                        /* and edx, arith (LAHF's bit 1 is set) */
    emit_u32(e, keep | 0x800);
    emit_u8(e, 0x81); modrm_rbx(e, 4, OFF_FLAGS);              /* and dword [rbx+eflags], ~arith */
    emit_u32(e, ~FLAGS_ARITH);
    emit_u8(e, 0x09); modrm_rbx(e, H_RDX, OFF_FLAGS);          /* or [rbx+eflags], edx */
}

/* AX as emit_lahf_ax leaves it, from the (whole) EFLAGS in memory. */
void emit_ax_from_eflags(struct emitter *e)
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
bool cs_covers_all(const struct block_emit *be)
{
    return be->limit_checked == 0xffffffffu;
}
