/*
 * Instruction bodies, control and stack: PUSH/POP through cached stack
 * slots, Jcc, CALL/RET with the return-address stack, indirect jumps
 * through the jump cache, chained entries and STI.
 */
#include "bt/native_internal.h"

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

void emit_push_value(struct block_emit *be, const struct insn *in, int src_reg, uint32_t imm)
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
void emit_pop_ecx(struct block_emit *be, uint32_t extra, bool check_eip)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RAX, hreg(R_ESP));
    emit_op(e, 4, 0x8b, H_RCX, emit_stack_slot(be, false));   /* mov ecx, [slot] */
    if (check_eip && !cs_covers_all(be)) {
            emit_alu_r32_m(e, ALU_CMP, H_RCX, cpu_field(OFF_SEG(SEG_CS, limit)));
            jump_to_stub(be, CC_A);
        }
        emit_lea_r32_m(e, H_RAX, mem_d32(H_RAX, 4 + extra));      /* flags kept */
    emit_mov_rr32(e, hreg(R_ESP), H_RAX);
}

/* A direct jump target beyond what the lookup verified needs the CS limit check. */
void check_target(struct block_emit *be, uint32_t target)
{
    if (target <= be->limit_checked)
        return;
    struct emitter *e = be->e;
    emit_alu_m32_imm32(e, ALU_CMP, cpu_field(OFF_SEG(SEG_CS, limit)), target);
    jump_to_stub(be, CC_B);
}

/* All the flags condition cc tests are deferred in the host's EFLAGS. */
bool cond_in_host(const struct block_emit *be, int cc)
{
    return (be->host_keep & cond_flags(cc)) == cond_flags(cc);
}

/* A conditional jump tests deferred flags where they are, in the host's
 * EFLAGS, when all it needs is there and no limit check (a CMP) comes
 * between. */
bool jcc_on_host_flags(const struct block_emit *be, int cc, uint32_t target)
{
    return cond_in_host(be, cc) && target <= be->limit_checked;
}

/* Returns true when the jump ends the block; a flat block goes on past one
 * that is not its last instruction (a side exit: taken leaves, not taken
 * goes on inline). */
bool emit_jcc(struct block_emit *be, int cc, uint32_t next, uint32_t target)
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

/* edi = dword r/m operand that is a branch target, checked against the CS limit. */
void emit_load_target_edi(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    emit_op(e, 4, 0x8b, H_RDI, emit_rm(be, in, 4, false));    /* mov edi, rm */
    if (cs_covers_all(be))
        return;
    emit_alu_r32_m(e, ALU_CMP, H_RDI, cpu_field(OFF_SEG(SEG_CS, limit)));
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
    emit_alu_m32_imm32(e, ALU_CMP, mem_d32(H_RAX, offsetof(struct block, code32)),
                       1u | (uint32_t)be->user << 8 | 1u << 16 | (uint32_t)be->flat_key << 24);
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
    emit_mov_rr64(e, H_RSI, H_RAX);
    emit_chained_flags_ax(be, flags_in_r11);
    emit_jmp_m64(e, mem_d32(H_RSI, offsetof(struct block, entry_chained)));
}

/*
 * The return stack (struct cpu's bt_ras): a CALL of a chaining flat block
 * whose return site lies in the block's first page pushes that EIP and a
 * chain slot for it.  The return site's block then has the CALL's page,
 * mapped as when the CALL ran: every TLB flush empties the stack, so no
 * TLB check is needed when a RET pops the same EIP.  bt_run resolves the
 * slot the first time (see emit_return_pop).
 */
void emit_return_push(struct block_emit *be, uint32_t ret_eip)
{
    struct emitter *e = be->e;
    if (!be->chain || !be->flat || ((ret_eip ^ be->block_eip) & PAGE_MASK) || be->nchain >= BT_CHAIN_SLOTS - 1)
        return;
    struct chain_slot *slot = new_chain_slot(be, ret_eip);
    emit_mov_r32_m(e, H_RCX, cpu_field(OFF_RAS_TOP));
    emit_lea_r32_m(e, H_RCX, mem_at(H_RCX, 16));
    emit_movzx_r32_r8(e, H_RCX, H_RCX);                        /* 16 entries of 16 bytes */
    emit_mov_m_r32(e, cpu_field(OFF_RAS_TOP), H_RCX);
    emit_mov_m32_imm32(e, mem_sib(H_RBX, H_RCX, 0, OFF_RAS_EIP, MEM_DISP32), ret_eip);
    emit_mov_imm64(e, H_RAX, (uintptr_t)slot);
    emit_mov_m_r64(e, mem_sib(H_RBX, H_RCX, 0, OFF_RAS_SLOT, MEM_DISP32), H_RAX);
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
    emit_mov_r32_m(e, H_RCX, cpu_field(OFF_RAS_TOP));
    emit_lea_r32_m(e, H_RDX, mem_at(H_RCX, -16));
    emit_movzx_r32_r8(e, H_RDX, H_RDX);
    emit_mov_m_r32(e, cpu_field(OFF_RAS_TOP), H_RDX);
    emit_alu_r32_m(e, ALU_CMP, H_RDI, mem_sib(H_RBX, H_RCX, 0, OFF_RAS_EIP, MEM_DISP32));
    uint8_t *other = emit_jcc32(e, CC_NE);
    emit_mov_r64_m(e, H_RSI, mem_sib(H_RBX, H_RCX, 0, OFF_RAS_SLOT, MEM_DISP32));
    _Static_assert(offsetof(struct chain_slot, target) == 0, "slot target at offset 0");
    emit_mov_r64_m(e, H_RAX, mem_ind(H_RSI));                 /* the slot's target */
    emit_test_rr64(e, H_RAX, H_RAX);
    uint8_t *unresolved = emit_jcc32(e, CC_E);
    emit_cmp_block_kind(be);
    uint8_t *stale = emit_jcc32(e, CC_NE);
    emit_enter_chained(be, flags_in_r11);
    emit_patch_rel32(unresolved, e->p);
    emit_mov_m_r64(e, cpu_field((int32_t)offsetof(struct cpu, bt_chain_slot)), H_RSI);
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
void emit_host_return(struct block_emit *be, bool flags_in_r11)
{
    struct emitter *e = be->e;
    emit_alu_r64_m(e, ALU_CMP, H_RSP, cpu_field(OFF_HOST_RSP));
    uint8_t *none = emit_jcc32(e, CC_AE);
    emit_movsxd_r64_r32(e, H_RCX, H_RDI);                     /* as PUSH imm32 left it */
    emit_alu_r64_m(e, ALU_CMP, H_RCX, mem_at(H_RSP, 8));
    uint8_t *other = emit_jcc32(e, CC_NE);
    emit_chained_flags_ax(be, flags_in_r11);
    emit_ret_imm16(e, 8);
    emit_patch_rel32(other, e->p);
    emit_alu_r64_imm8(e, ALU_ADD, H_RSP, 16);
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
void emit_jump_cache(struct block_emit *be, bool counted, bool flags_in_r11, bool ret)
{
    struct emitter *e = be->e;
    uint8_t *out[12];
    if (be->flat)
        emit_regs_load(e, NATIVE_ALL_REGS & ~be->regs_valid);   /* a flat target's entry_chained takes all */
    out[0] = emit_leave_check(be, counted);
    int n = 1;
    if (ret && be->flat) {
        emit_host_return(be, flags_in_r11);
        emit_return_pop(be, flags_in_r11, &out[n++]);
    }
    emit_mov_rr32(e, H_RAX, H_RDI);
    emit_shift_r32_imm8(e, SH_SHR, H_RAX, 16);
    emit_alu_rr32(e, ALU_XOR, H_RAX, H_RDI);
    emit_alu_eax_imm32(e, ALU_AND, BT_JUMP_CACHE_SIZE - 1);   /* bt_jump_cache_index */
    emit_mov_imm64(e, H_RSI, (uintptr_t)be->jump_cache);
    emit_mov_r64_m(e, H_RAX, mem_sib(H_RSI, H_RAX, 3, 0, MEM_NODISP));
    emit_test_rr64(e, H_RAX, H_RAX);
    out[n++] = emit_jcc32(e, CC_E);
    emit_alu_r32_m(e, ALU_CMP, H_RDI, mem_d32(H_RAX, offsetof(struct block, eip)));
    out[n++] = emit_jcc32(e, CC_NE);
    emit_cmp_block_kind(be);
    out[n++] = emit_jcc32(e, CC_NE);
    if (!be->flat) {
        /* (A flat CS has base 0 and covers every EIP.) */
        emit_mov_r32_m(e, H_RCX, mem_d32(H_RAX, offsetof(struct block, last)));
        emit_alu_r32_m(e, ALU_CMP, H_RCX, cpu_field(OFF_SEG(SEG_CS, limit)));
        out[n++] = emit_jcc32(e, CC_A);
    }
    /* The target's linear page must be in the TLB, mapped to the block's page. */
    emit_mov_rr32(e, H_RCX, H_RDI);
    if (!be->flat)
        emit_alu_r32_m(e, ALU_ADD, H_RCX, cpu_field(OFF_SEG(SEG_CS, base)));
    emit_mov_rr32(e, H_RDX, H_RCX);
    emit_tlb_index_edx(e);
    emit_alu_r32_imm32(e, ALU_AND, H_RCX, PAGE_MASK);
    emit_alu_r32_m(e, ALU_CMP, H_RCX, mem_sib(H_RBX, H_RDX, 0, OFF_TLB(be->user, tag_read), MEM_DISP32));
    out[n++] = emit_jcc32(e, CC_NE);
    emit_mov_r32_m(e, H_RCX, mem_sib(H_RBX, H_RDX, 0, OFF_TLB(be->user, phys), MEM_DISP32));
    emit_alu_r32_m(e, ALU_XOR, H_RCX, mem_d32(H_RAX, offsetof(struct block, phys)));
    emit_alu_r32_imm32(e, ALU_AND, H_RCX, PAGE_MASK);
    out[n++] = emit_jcc32(e, CC_NE);
    if (be->flat) {
        emit_enter_chained(be, flags_in_r11);
    } else {
        emit_jmp_m64(e, mem_d32(H_RAX, offsetof(struct block, entry)));
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
void emit_exit_edi(struct block_emit *be, bool ret)
{
    struct emitter *e = be->e;
    bool handover = be->chain && be->flat;     /* registers go to the target in host registers */
    if (!handover)
        emit_spill(be);
    bool flags_in_r11 = handover ? emit_flags_for_handover(be) : (emit_materialize_on_exit(be), false);
    emit_mov_m_r32(e, cpu_field(OFF_EIP), H_RDI);
    emit_count(e, be->pending + 1);
    if (be->chain)
        emit_jump_cache(be, true, flags_in_r11, ret);
    if (handover)
        emit_spill(be);                        /* not found: out to bt_run */
    emit_epilogue(be->e);
    hot_code(be);
}

/*
 * STI at CPL 0 with no interrupt waiting: IF set, and the one-instruction
 * shadow when IF was clear, as the interpreter does.  Above CPL 0 (IOPL
 * decides), and when the interrupt controller's output is up, the stub:
 * the interpreter runs it and its step leaves the block when an interrupt
 * has become deliverable, for bt_run to take it.  Without a controller
 * flag to poll it stays threaded.
 */
void emit_sti(struct block_emit *be)
{
    struct emitter *e = be->e;
    cur_stub(be)->step = be->interrupt_step;
    if (!be->intr_line) {
        add_stub_fixup(be, emit_jmp32(e));
        return;
    }
    emit_alu_m32_imm8(e, ALU_CMP, cpu_field((int32_t)offsetof(struct cpu, cpl)), 0);
    jump_to_stub(be, CC_NE);
    emit_mov_imm64(e, H_RAX, (uintptr_t)be->intr_line);
    emit_alu_m8_imm8(e, ALU_CMP, mem_ind(H_RAX), 0);           /* the interrupt line */
    jump_to_stub(be, CC_NE);
    emit_load_rbx(e, H_RCX, OFF_FLAGS);
    emit_not_r32(e, H_RCX);
    emit_shift_r32_imm8(e, SH_SHR, H_RCX, 9);                 /* IF clear before */
    emit_alu_r32_imm8(e, ALU_AND, H_RCX, 1);
    emit_alu_m_r8(e, ALU_OR, cpu_field((int32_t)offsetof(struct cpu, intr_shadow)), H_RCX);
    emit_alu_m32_imm32(e, ALU_OR, cpu_field(OFF_FLAGS), FL_IF);
}
