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
 *
 * This file owns native_emit (one guest instruction: deferred flags settled
 * for it, its stub opened, its body chosen by a switch of one-line cases,
 * the stub closed) and native_emit_threaded.  The bodies, operands, flags,
 * stubs and encoders live beside it: bt/native_internal.h lists them; the
 * conventions above hold in all of them.
 */
#include "bt/native_internal.h"

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

/* Operand size of an instruction whose opcode's low bit selects byte or word/dword. */
static int size_by_w(const struct insn *in)
{
    return (in->op & 1) ? opsize(in) : 1;
}

static void emit_inc_dec_reg(struct block_emit *be, const struct insn *in)
{
    emit_op(be->e, opsize(in), 0xff, EXT(in->op >= 0x48), hreg(in->op & 7));
    emit_flags(be, FLAGS_INCDEC);
}

static void emit_pop_reg(struct block_emit *be, const struct insn *in)
{
    emit_pop_ecx(be, 0, false);
    emit_mov_rr32(be->e, hreg(in->op & 7), H_RCX); /* after ESP: pop esp */
}

/* mov reg, imm */
static void emit_mov_reg_imm(struct block_emit *be, const struct insn *in)
{
    int size = in->op >= 0xb8 ? opsize(in) : 1;
    emit_high_bytes_in(be);
    emit_op(be->e, size, size == 1 ? 0xc6 : 0xc7, EXT(0), byte_or_hreg(in->op & 7, size));
    emit_imm(be->e, in->imm, size);
}

/* setcc r/m8 */
static void emit_setcc(struct block_emit *be, const struct insn *in)
{
    int cc = in->op & 0xf;
    int rm = emit_rm(be, in, 1, true);
    if (cond_in_host(be, cc)) {
        emit_op(be->e, 1, 0x0f90 | cc, EXT(0), rm);
    } else {
        emit_cond_base(be, cc);
        emit_op(be->e, 1, 0x0f90 | host_cc(cc), EXT(0), rm);
    }
}

static void emit_bswap_reg(struct block_emit *be, const struct insn *in)
{
    emit_bswap_r32(be->e, hreg(in->op & 7));
}

/* cmovcc r32, r/m32 */
static void emit_cmovcc(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int cc = in->op & 0xf;
    emit_op(e, 4, 0x8b, H_RSI, emit_rm(be, in, 4, false));   /* mov esi, rm */
    if (cond_in_host(be, cc)) {
        emit_op(e, 4, 0x0f40 | cc, hreg(in->reg), H_RSI);
    } else {
        emit_cond_base(be, cc);
        emit_op(e, 4, 0x0f40 | host_cc(cc), hreg(in->reg), H_RSI);
    }
}

/* test r/m, reg */
static void emit_test_rm_reg(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    emit_op(be->e, size, in->op, byte_or_hreg(in->reg, size), emit_rm(be, in, size, false));
    emit_flags(be, FLAGS_LOGIC);
    if (in->mod == 3 && in->rm == in->reg)
        note_logic_result(be, in->reg, size);
}

/* cli, cld, std: EFLAGS in struct cpu */
static void emit_cli_cld_std(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    if (op == 0xfa) {                  /* CPL 0 only: IOPL decides elsewhere */
        emit_alu_m32_imm8(e, ALU_CMP, cpu_field((int32_t)offsetof(struct cpu, cpl)), 0);
        jump_to_stub(be, CC_NE);
    }
    emit_alu_m32_imm32(e, op == 0xfd ? ALU_OR : ALU_AND, cpu_field(OFF_FLAGS),
                       op == 0xfa ? ~(uint32_t)FL_IF : op == 0xfc ? ~(uint32_t)FL_DF : FL_DF);
}

/* xchg r/m, reg */
static void emit_xchg(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    emit_op(be->e, size, in->op, byte_or_hreg(in->reg, size), emit_rm(be, in, size, true));
}

/* xadd r/m, reg */
static void emit_xadd(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    emit_op(be->e, size, 0x0fc0 | (in->op & 1), byte_or_hreg(in->reg, size), emit_rm(be, in, size, true));
    emit_flags(be, FLAGS_ARITH);
}

/* cmpxchg r/m, reg: the host's, on a copy of EAX */
static void emit_cmpxchg(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = size_by_w(in);
    int rm = emit_rm(be, in, size, true);
    emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    emit_op(e, size, 0x0fb0 | (in->op & 1), byte_or_hreg(in->reg, size), rm);
    emit_mov_rr32(e, hreg(R_EAX), H_RAX);
    emit_flags(be, FLAGS_ARITH);
}

static void emit_lea(struct block_emit *be, const struct insn *in)
{
    if (in->op32) {
        emit_ea_to(be->e, in, hreg(in->reg));
    } else {
        emit_ea(be->e, in);
        emit_op(be->e, 2, 0x89, H_RAX, hreg(in->reg));
    }
}

static void emit_cwde(struct block_emit *be)
{
    emit_op(be->e, 4, 0x0fbf, hreg(R_EAX), hreg(R_EAX));
}

static void emit_cdq_guest(struct block_emit *be)
{
    emit_mov_rr32(be->e, H_RAX, hreg(R_EAX));
        emit_cdq(be->e);
    emit_mov_rr32(be->e, hreg(R_EDX), H_RDX);
}

/* test al/eax, imm */
static void emit_test_eax_imm(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    emit_op(be->e, size, sized_op(0xf6, size), EXT(0), hreg(R_EAX));
    emit_imm(be->e, in->imm, size);
    emit_flags(be, FLAGS_LOGIC);
}

/* mov r/m, imm */
static void emit_mov_rm_imm(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    emit_op(be->e, size, in->op, EXT(0), emit_rm(be, in, size, true));
    emit_imm(be->e, in->imm, size);
}

/* Group 3: test r/m, imm; not; neg; mul; div (imul and idiv are threaded). */
static void emit_group3(struct block_emit *be, const struct insn *in)
{
    int size = size_by_w(in);
    if (in->reg == 0) {                /* test r/m, imm */
        emit_op(be->e, size, in->op, EXT(0), emit_rm(be, in, size, false));
        emit_imm(be->e, in->imm, size);
        emit_flags(be, FLAGS_LOGIC);
    } else if (in->reg == 4) {
        emit_mul(be, in);
    } else if (in->reg == 6) {
        emit_div(be, in);
    } else {
        emit_unary(be, in, 0xf6, in->reg, in->reg == 3 ? FLAGS_ARITH : 0);   /* not / neg */
    }
}

/* Group 5: inc/dec, push r/m32, call and jmp r/m32.  Returns whether it ends the block. */
static bool emit_group5(struct block_emit *be, const struct insn *in, uint32_t next)
{
    if (in->reg <= 1) {                /* inc/dec r/m */
        emit_unary(be, in, 0xfe, in->reg, FLAGS_INCDEC);
        return false;
    }
    if (in->reg == 6) {                /* push r/m32 */
        emit_op(be->e, 4, 0x8b, H_RDI, emit_rm(be, in, 4, false));
        emit_push_value(be, in, PUSH_EDI, 0);
        return false;
    }
    emit_load_target_edi(be, in);
    if (in->reg == 2) {                /* call r/m32 */
        emit_push_value(be, in, -1, next);
        emit_return_push(be, next);
    }
    emit_exit_edi(be, false);
    return true;
}

static void emit_string(struct block_emit *be, const struct insn *in)
{
    if (in->prefixes & (PFX_REP | PFX_REPNE))
        emit_rep_string(be, in);
    else
        emit_stos_lods(be, in);
}

static void emit_leave(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RAX, hreg(R_EBP));
    emit_probe(be, SEG_SS, 4, false, true);
    emit_mov_r32_m(e, H_RCX, mem_ind(H_RDX));
    emit_alu_r32_imm8(e, ALU_ADD, H_RAX, 4);
    emit_mov_rr32(e, hreg(R_ESP), H_RAX);
    emit_mov_rr32(e, hreg(R_EBP), H_RCX);
}

/* movzx/movsx */
static void emit_movzx_movsx(struct block_emit *be, const struct insn *in)
{
    int src = (in->op & 1) ? 2 : 1;
    int rm = emit_rm(be, in, src, false);
    emit_op(be->e, opsize(in), 0x0f00 | (in->op & 0xff), hreg(in->reg), rm);
}

/* pushf: EFLAGS whole in memory (flags_merged_by_hand) */
static void emit_pushf(struct block_emit *be, const struct insn *in)
{
    emit_load_rbx(be->e, H_RDI, OFF_FLAGS);
        emit_alu_r32_imm32(be->e, ALU_AND, H_RDI, ~(FL_VM | FL_RF));
    emit_push_value(be, in, PUSH_EDI, 0);
}

static void emit_push_imm(struct block_emit *be, const struct insn *in)
{
    uint32_t v = in->op == 0x6a ? (uint32_t)(int32_t)(int8_t)in->imm : in->imm;
    emit_push_value(be, in, -1, v);
}

/* call rel32 */
static bool emit_call_rel(struct block_emit *be, const struct insn *in, uint32_t next)
{
    uint32_t target = next + in->imm;
    check_target(be, target);
    emit_push_value(be, in, -1, next);
    if (be->chain && be->flat && be->nchain + 2 <= BT_CHAIN_SLOTS && next) {
        emit_patched_exit(be, target, be->pending + 1, next);
    } else {
        emit_return_push(be, next);
        emit_exit_n(be, target, be->pending + 1);
    }
    return true;
}

static bool emit_jmp_rel(struct block_emit *be, const struct insn *in, uint32_t eip)
{
    uint32_t target = native_branch_target(in, eip);
    check_target(be, target);
    emit_exit_n(be, target, be->pending + 1);
    return true;
}

/* ret [imm16] */
static bool emit_ret_near(struct block_emit *be, const struct insn *in)
{
    emit_pop_ecx(be, in->op == 0xc2 ? (in->imm & 0xffff) : 0, true);
        emit_mov_rr32(be->e, H_RDI, H_RCX);
    emit_exit_edi(be, true);
    return true;
}

/* The opcodes that come in runs of registers or conditions.  Returns
 * whether `in` was one (its body emitted; *ends: it ends the block). */
static bool emit_by_range(struct block_emit *be, const struct insn *in, uint32_t eip, bool *ends)
{
    int op = in->op;
    if (alu_family(op))
        emit_alu(be, in);
    else if (op >= 0x40 && op <= 0x4f)     /* inc/dec reg */
        emit_inc_dec_reg(be, in);
    else if (op >= 0x50 && op <= 0x57)
        emit_push_value(be, in, op & 7, 0);
    else if (op >= 0x58 && op <= 0x5f)
        emit_pop_reg(be, in);
    else if (op >= 0xb0 && op <= 0xbf)     /* mov reg, imm */
        emit_mov_reg_imm(be, in);
    else if (insn_is_jcc(in))
        *ends = emit_jcc(be, op & 0xf, eip + in->len, native_branch_target(in, eip));
    else if (op >= 0x190 && op <= 0x19f)
        emit_setcc(be, in);
    else if (op >= 0x1c8 && op <= 0x1cf)
        emit_bswap_reg(be, in);
    else if (op >= 0x140 && op <= 0x14f)
        emit_cmovcc(be, in);
    else
        return false;
    return true;
}

/* The body of native instruction `in`.  Returns whether it ends the block. */
static bool emit_body(struct block_emit *be, const struct insn *in, uint32_t eip)
{
    bool ends = false;
    uint32_t next = eip + in->len;
    if (emit_by_range(be, in, eip, &ends))
        return ends;
    switch (in->op) {
    case 0x80: case 0x81: case 0x83:                    emit_group1(be, in); break;
    case 0x84: case 0x85:                               emit_test_rm_reg(be, in); break;
    case 0xfb:                                          emit_sti(be); break;
    case 0xfa: case 0xfc: case 0xfd:                    emit_cli_cld_std(be, in); break;
    case 0x86: case 0x87:                               emit_xchg(be, in); break;
    case 0x1c0: case 0x1c1:                             emit_xadd(be, in); break;
    case 0x1b0: case 0x1b1:                             emit_cmpxchg(be, in); break;
    case 0x88: case 0x89: case 0x8a: case 0x8b:         emit_mov(be, in); break;
    case 0x8d:                                          emit_lea(be, in); break;
    case 0x90:                                          break;
    case 0x98:                                          emit_cwde(be); break;
    case 0x99:                                          emit_cdq_guest(be); break;
    case 0xa8: case 0xa9:                               emit_test_eax_imm(be, in); break;
    case 0xc6: case 0xc7:                               emit_mov_rm_imm(be, in); break;
    case 0xf6: case 0xf7:                               emit_group3(be, in); break;
    case 0xfe:                                          emit_unary(be, in, 0xfe, in->reg, FLAGS_INCDEC); break;
    case 0xff:                                          return emit_group5(be, in, next);
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: emit_shift(be, in); break;
    case 0x1af: case 0x69: case 0x6b:                   emit_imul(be, in); break;
    case 0x1ba:                                         emit_bit_imm(be, in); break;
    case 0x1a3: case 0x1ab: case 0x1b3: case 0x1bb:     emit_bit_reg(be, in); break;
    case 0x1a4: case 0x1a5: case 0x1ac: case 0x1ad:     emit_double_shift(be, in); break;
    case 0x1c7:                                         emit_cmpxchg8b(be, in); break;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3:         emit_mov_moffs(be, in); break;
    case 0xaa: case 0xab: case 0xac: case 0xad:         emit_string(be, in); break;
    case 0xa4: case 0xa5:                               emit_rep_string(be, in); break;
    case 0xc9:                                          emit_leave(be); break;
    case 0x1b6: case 0x1b7: case 0x1be: case 0x1bf:     emit_movzx_movsx(be, in); break;
    case 0x9c:                                          emit_pushf(be, in); break;
    case 0x68: case 0x6a:                               emit_push_imm(be, in); break;
    case 0xe8:                                          return emit_call_rel(be, in, next);
    case 0xe9: case 0xeb:                               return emit_jmp_rel(be, in, eip);
    case 0xc2: case 0xc3:                               return emit_ret_near(be, in);
    }
    return false;
}

/* Before the body: deferred flags captured or merged where `in` needs
 * them elsewhere. */
static void emit_flags_for_insn(struct block_emit *be, const struct insn *in, uint32_t eip)
{
    if (be->host_clear && !keeps_host_flags(be, in, eip))
        emit_capture(be);
    if (be->pend_keep) {
        uint32_t rd = flags_read(in) & ~be->host_keep;   /* deferred ones are read where they are */
        bool split = (rd & be->pend_clear) && (rd & ~be->pend_keep);   /* some in R11, some in memory */
        if (split || flags_merged_by_hand(in))
            emit_materialize(be);
    }
}

/* The stub of `in` starts with the block's state before it. */
static void open_stub(struct block_emit *be, struct native_stub *s, const struct insn *in, uint32_t eip)
{
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
}

/* The logic-result note (note_logic_result) across `in`; returns whether
 * `in` writes the noted register. */
static bool track_logic_reg(struct block_emit *be, struct native_stub *s, const struct insn *in)
{
    bool logic_reg_written = be->logic_reg >= 0 && (native_regs_written(in) & 1u << be->logic_reg);
    if (logic_reg_written && !writes_after_its_probe(in))
        be->logic_reg = -1;
    /* ADD EDX, [mem]: nothing between its one probe and its own flags needs them. */
    be->logic_overwritten = native_flags_written(in) == FLAGS_ARITH && !flags_read(in) &&
                            native_probes(in, cached_operands(be)) == 1;
    s->logic_reg = be->host_clear ? be->logic_reg : -1;
    s->logic_size = be->logic_size;
    if (native_flags_written(in) & FL_OF)
        be->of_rm = -1;                        /* after this one's stub: it overwrites OF */
    return logic_reg_written;
}

/* The registers `in` uses are in their host registers. */
static void load_regs_for(struct block_emit *be, struct native_stub *s, const struct insn *in)
{
    if (be->regs_used & ~be->regs_valid) {
        emit_regs_load(be->e, be->regs_used & ~be->regs_valid);
        be->regs_valid = be->regs_used;
    }
    s->regs = be->regs_used;
    s->dirty = be->regs_dirty;
    /* Before the body: CALL and RET write ESP and leave inside it. */
    be->regs_dirty |= native_regs_written(in);
    be->hi_regs = (unsigned)high_byte_regs(in);
    be->hi_rotated = false;
}

/* After the body: AH..BH rotated back, the stub closed. */
static void close_insn(struct block_emit *be, struct native_stub *s, const struct insn *in, bool ends)
{
    if (be->hi_rotated) {
        emit_capture(be);                      /* the rotation changes CF and OF */
        unsigned back = be->hi_regs;
        if ((in->op == 0x1b6 || in->op == 0x1be) && in->mod == 3)
            back &= ~(1u << in->reg);          /* movzx eax, ah: EAX was written whole */
        emit_high_byte_rotate(be, back, true);
    }
    if (s->nfixups) {
        s->resume = ends ? NULL : be->e->p;
        s->host_after = be->host_clear != 0;
        be->nstubs++;
    }
    if (s->nfixups || !keeps_rdx(be, in))
        be->rdx_addend = -1;   /* a stub's call comes back here with RDX lost */
    be->pending++;
}

bool native_emit(struct block_emit *be, const struct insn *in, uint32_t eip)
{
    if (be->jump_followed) {
        be->pending++;             /* the code at its target comes next: the JMP only retires */
        return false;
    }
    struct native_stub *s = cur_stub(be);
    emit_flags_for_insn(be, in, eip);
    open_stub(be, s, in, eip);
    unsigned logic_notes = be->logic_notes;
    bool logic_reg_written = track_logic_reg(be, s, in);
    load_regs_for(be, s, in);
    bool ends = emit_body(be, in, eip);
    if (logic_reg_written && be->logic_notes == logic_notes)
        be->logic_reg = -1;                    /* not by noting its own result */
    close_insn(be, s, in, ends);
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
        emit_mov_r32_m(e, H_RDI, cpu_field(OFF_EIP));
        emit_jump_cache(be, false, false, false);
    }
    be->plain_exits[be->nplain++] = emit_jmp32(be->e);
    hot_code(be);
}
