/*
 * Stubs and exits: the out-of-line slow path of each native instruction
 * (bt_step through the interpreter's semantics), the cold code, fixed-EIP
 * exits (chained by patched jumps or left unchained for bt_run), the budget
 * check every chained way out makes, calls into C and host CALL/RET for
 * guest CALL/RET.
 */
#include "bt/native_internal.h"

struct native_stub *cur_stub(struct block_emit *be)
{
    return &be->stubs[be->nstubs];
}

/* The rel32 field of a jump to this instruction's stub. */
void add_stub_fixup(struct block_emit *be, uint8_t *field)
{
    struct native_stub *s = cur_stub(be);
    if (s->nfixups == NATIVE_MAX_FIXUPS) {
        fprintf(stderr, "retrovisor: bt: too many slow-path jumps in one instruction\n");
        abort();
    }
    s->fixups[s->nfixups++] = field;
}

void jump_to_stub(struct block_emit *be, uint8_t cc)
{
    add_stub_fixup(be, emit_jcc32(be->e, cc));
}

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
uint8_t *emit_leave_check(struct block_emit *be, bool counted)
{
    struct emitter *e = be->e;
    if (!counted || be->leave_below)
        emit_alu_m64_imm8(e, ALU_CMP, cpu_field(OFF_BUDGET), be->leave_below);
    return emit_jcc32(e, CC_LE);
}

/* Code that runs only on the way out to bt_run (a chained exit not yet
 * patched, a jump cache miss) goes with the stubs, out of the body's cache
 * lines; the body goes on where it was. */
struct emitter *cold_code(struct block_emit *be)
{
    be->e = be->cold;
    return be->e;
}

struct emitter *hot_code(struct block_emit *be)
{
    be->e = be->hot;
    return be->e;
}

/* The next of the block's fixed-target exit slots, for `eip`. */
struct chain_slot *new_chain_slot(struct block_emit *be, uint32_t eip)
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
    emit_mov_m_r64(e, cpu_field((int32_t)offsetof(struct cpu, bt_chain_slot)), H_RAX);
}

/* Jumps out (the rel32 fields go to miss[0] and miss[1]) unless the TLB
 * maps the linear page `lin`, a constant, to the physical page `phys`.
 * Returns where `phys` sits in the code, for a caller that patches it. */
uint8_t *emit_tlb_maps_check(struct block_emit *be, uint32_t lin, uint32_t phys, uint8_t **miss)
{
    struct emitter *e = be->e;
    int32_t entry = (int32_t)(((lin >> 12) & (TLB_SIZE - 1)) * sizeof(struct tlb_entry));
    emit_alu_m32_imm32(e, ALU_CMP, cpu_field(OFF_TLB(be->user, tag_read) + entry), lin);
    miss[0] = emit_jcc32(e, CC_NE);
    emit_alu_m32_imm32(e, ALU_CMP, cpu_field(OFF_TLB(be->user, phys) + entry), phys);
    uint8_t *field = e->p - 4;                 /* the immediate */
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
uint8_t *emit_host_call(struct block_emit *be, uint32_t ret_eip, uint8_t **out, int *n)
{
    struct emitter *e = be->e;
    emit_alu_r64_m(e, ALU_CMP, H_RSP, cpu_field(OFF_HOST_RSP_FLOOR));
    out[(*n)++] = emit_jcc32(e, CC_BE);
    emit_push_imm32(e, ret_eip);               /* sign-extended */
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
void emit_patched_exit(struct block_emit *be, uint32_t eip, int count, uint32_t ret_eip)
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
    out[n++] = emit_leave_check(be, count != 0);
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
void emit_load_addend(struct emitter *e, int base)
{
    emit_mov_r64_m(e, H_RDX, cpu_field((int32_t)(offsetof(struct cpu, bt_base_addend) + 8 * base)));
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
    if (be->leave_below)
        emit_alu_m64_imm8(e, ALU_CMP, cpu_field(OFF_BUDGET), be->leave_below);
    emit_patch_rel32(emit_jcc32(e, CC_G), be->loop_top ? be->loop_top : be->self->entry_chained);
    if (r11)                                                   /* the budget is spent: out to bt_run */
        emit_merge_r11(e, FLAGS_ARITH, FLAGS_ARITH);
    else
        emit_merge_ax(e, FLAGS_ARITH);
    emit_spill(be);
    emit_store_eip(e, eip);
    emit_epilogue(e);
}

void emit_exit_n(struct block_emit *be, uint32_t eip, int count)
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
        emit_mov_r32_imm32(e, H_RDI, eip);
        emit_jump_cache(be, count != 0, flags_in_r11, false);
        if (be->flat)
            emit_spill(be);                    /* not found: out to bt_run */
    } else if (be->chain && be->nchain < BT_CHAIN_SLOTS) {
        /* EIP and the slot matter only to bt_run: stored on the way out. */
        struct chain_slot *slot = new_chain_slot(be, eip);
        uint8_t *out[5];
        out[0] = emit_leave_check(be, count != 0);
        emit_test_m32_imm32(e, cpu_field(OFF_SEG(SEG_CS, base)), PAGE_SIZE - 1);
        out[1] = emit_jcc32(e, CC_NE);
        emit_mov_imm64(e, H_RAX, (uintptr_t)slot);
        emit_mov_r64_m(e, H_RAX, mem_ind(H_RAX));
        emit_test_rr64(e, H_RAX, H_RAX);
        out[2] = emit_jcc32(e, CC_E);
        emit_alu_m8_imm8(e, ALU_CMP, mem_d32(H_RAX, offsetof(struct block, valid)), 0);
        out[3] = emit_jcc32(e, CC_E);
        emit_mov_r32_m(e, H_RCX, mem_d32(H_RAX, offsetof(struct block, last)));
        emit_alu_r32_m(e, ALU_CMP, H_RCX, cpu_field(OFF_SEG(SEG_CS, limit)));
        out[4] = emit_jcc32(e, CC_A);
        emit_jmp_m64(e, mem_d32(H_RAX, offsetof(struct block, entry)));
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
void emit_call_step(struct emitter *e, uint32_t eip, const struct insn *in,
                           bool (*step)(struct cpu *, const struct insn *))
{
    emit_store_eip(e, eip);
    emit_mov_rr64(e, H_RDI, H_RBX);
    emit_mov_imm64(e, H_RSI, (uintptr_t)in);
    emit_mov_imm64(e, H_RAX, (uintptr_t)step);
    emit_call_r(e, H_RAX);
}

/* An entry check failed: nothing has run; the registers came loaded.
 * Which register's, bt_run learns from bt_nocache_reg. */
static void emit_base_miss_stub(struct block_emit *be)
{
    struct emitter *e = be->e;
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
        emit_mov_m32_imm32(e, cpu_field((int32_t)offsetof(struct cpu, bt_nocache_reg)), (uint32_t)r);
        to_common[n++] = emit_jmp32(e);
    }
    for (int k = 0; k < n; k++)
        emit_patch_rel32(to_common[k], e->p);
    emit_entry_flags_out(be);
    emit_regs_store(e, NATIVE_ALL_REGS);
    emit_store_eip(e, be->block_eip);
    emit_mov_imm64(e, H_RAX, (uintptr_t)be->self);
    emit_mov_m_r64(e, cpu_field((int32_t)offsetof(struct cpu, bt_nocache)), H_RAX);
    emit_epilogue(e);
}

/* The second page is not in the TLB, or maps elsewhere: nothing has
 * run; bt_run's lookup walks the page tables and decides. */
static void emit_page2_miss_stub(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_patch_rel32(be->page2_miss[0], e->p);
    emit_patch_rel32(be->page2_miss[1], e->p);
    emit_entry_flags_out(be);
    emit_regs_store(e, NATIVE_ALL_REGS);
    emit_store_eip(e, be->block_eip);
    emit_epilogue(e);
}

/* The guest flags as they were before the instruction, in EFLAGS (and the
 * OF a shift's stub owes: see emit_shift). */
static void emit_stub_flags(struct emitter *e, const struct native_stub *s)
{
    uint32_t keep = s->pend_keep, clear = s->pend_clear;
    if (s->logic_reg >= 0)
        emit_redo_logic_flags(e, s->logic_reg, s->logic_size);   /* the probe's lookup clobbered them */
    emit_host_into_r11(e, s->host_keep, s->host_clear, &keep, &clear);
    emit_regs_store(e, s->dirty);
    if (keep)
        emit_merge_r11(e, keep, clear);
    if (s->of_rm >= 0) {
        if (s->of_kind != 5) {
            emit_mov_r32_m(e, H_RSI, cpu_field(OFF_FLAGS));   /* CF for SHL/SAL's OF */
        }
        emit_shift_of(e, s->of_kind, s->of_size, s->of_rm);
        emit_put_flags_eax(e, FL_OF);
    }
}

/* One instruction's stub: the whole instruction through `step`, then back
 * into the body after it, or out through `plain_exit`. */
static void emit_insn_stub(struct emitter *e, const struct native_stub *s,
                           bool (*step)(struct cpu *, const struct insn *), uint8_t *plain_exit)
{
    for (int f = 0; f < s->nfixups; f++)
        emit_patch_rel32(s->fixups[f], e->p);
    emit_stub_flags(e, s);
    emit_count(e, s->pending);
    emit_call_step(e, s->eip, s->in, s->step ? s->step : step);
    if (!s->resume) {
        /* A control transfer: the interpreter has set EIP and counted it. */
        emit_patch_rel32(emit_jmp32(e), plain_exit);
        return;
    }
    emit_test_al(e);
    emit_patch_rel32(emit_jcc32(e, CC_E), plain_exit);
    emit_regs_load(e, s->regs);
    /* EFLAGS is whole in memory now: later merges of R11 must change nothing. */
    emit_mov_r32_m(e, H_R11, cpu_field(OFF_FLAGS));
    /* The resumed code retires this instruction and the earlier ones again. */
    emit_count(e, -(s->pending + 1));
    if (s->host_after) {
        /* It expects the flags in the host's EFLAGS too: the arithmetic
         * ones only (TF, DF and the rest stay the host's). */
        emit_mov_rr32(e, H_RAX, H_R11);
        emit_alu_eax_imm32(e, ALU_AND, FLAGS_ARITH);
        emit_push(e, H_RAX);
        emit_popfq(e);
    }
    emit_patch_rel32(emit_jmp32(e), s->resume);
}

void native_emit_stubs(struct block_emit *be, bool (*step)(struct cpu *, const struct insn *))
{
    struct emitter *e = be->e;
    if (be->nbase_miss)
        emit_base_miss_stub(be);
    if (be->page2_miss[0])
        emit_page2_miss_stub(be);
    uint8_t *plain_exit = e->p;
    emit_epilogue(e);
    for (int k = 0; k < be->nplain; k++)
        emit_patch_rel32(be->plain_exits[k], plain_exit);
    for (int k = 0; k < be->nstubs; k++)
        emit_insn_stub(e, &be->stubs[k], step, plain_exit);
}
