/*
 * Instruction bodies, data: ALU and group-1 ops, MOV, INC/DEC/NOT/NEG,
 * shifts and rotates (by 1, imm8 and CL), double shifts, MUL/IMUL/DIV,
 * BT/BTS/BTR/BTC, MOV moffs and CMPXCHG8B.
 */
#include "bt/native_internal.h"

int opsize(const struct insn *in) { return in->op32 ? 4 : 2; }

void emit_alu(struct block_emit *be, const struct insn *in)
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

void emit_group1(struct block_emit *be, const struct insn *in)
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

void emit_mov(struct block_emit *be, const struct insn *in)
{
    int size = (in->op & 1) ? opsize(in) : 1;
    int rm = emit_rm(be, in, size, in->op <= 0x89);
    emit_op(be->e, size, in->op, byte_or_hreg(in->reg, size), rm);
}
void emit_unary(struct block_emit *be, const struct insn *in, int host_op, int ext, uint32_t mask)
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
void emit_shift_of(struct emitter *e, int kind, int size, int rm)
{
    int w = size * 8;
    if (size == 4)
        emit_op(e, 4, 0x8b, H_RAX, rm);                        /* mov eax, rm */
    else
        emit_op(e, 4, size == 1 ? 0x0fb6 : 0x0fb7, H_RAX, rm); /* movzx eax, rm */
    if (kind == SH_SAR) {                                      /* 0 */
        emit_alu_rr32(e, ALU_XOR, H_RAX, H_RAX);
        return;
    }
    if (kind == SH_ROR || kind == SH_SHR) {                    /* msb(r ^ r << 1) */
        emit_lea_r32_m(e, H_RCX, mem_sib(H_RAX, H_RAX, 0, 0, MEM_NODISP));
        emit_alu_rr32(e, ALU_XOR, H_RAX, H_RCX);
        emit_shift_r32_imm8(e, SH_SHR, H_RAX, w - 1);
        emit_alu_r32_imm8(e, ALU_AND, H_RAX, 1);
    } else {                                                   /* ROL, SHL: CF ^ msb(r) */
        emit_shift_r32_imm8(e, SH_SHR, H_RAX, w - 1);
        emit_mov_rr32(e, H_RCX, H_RSI);
        emit_alu_r32_imm8(e, ALU_AND, H_RCX, 1);
        emit_alu_rr32(e, ALU_XOR, H_RAX, H_RCX);
    }
    emit_shift_r32_imm8(e, SH_SHL, H_RAX, 11);                /* to OF */
}

/* guest EFLAGS = (EFLAGS & ~clear) | eax, with eax already masked. */
void emit_put_flags_eax(struct emitter *e, uint32_t clear)
{
    emit_alu_m32_imm32(e, ALU_AND, cpu_field(OFF_FLAGS), ~clear);
    emit_alu_m_r32(e, ALU_OR, cpu_field(OFF_FLAGS), H_RAX);
}

/* A shift or rotate by an immediate count whose flags the host gets right
 * as the guest defines them: all of them for a count of 1 (OF included),
 * all but OF when OF is dead after it (a count above 1 leaves the host's OF
 * undefined; the shared semantics define it). */
bool shift_flags_from_host(const struct block_emit *be, const struct insn *in)
{
    unsigned n = in->op <= 0xc1 ? (in->imm & 31) : 1;
    return n == 1 || !(be->flags_live & FL_OF);
}

/* ecx = CL & 31 for a shift by CL; returns the rel32 of the jump taken on
 * a zero count, which changes nothing at all (not even the flags). */
static uint8_t *emit_cl_count(struct block_emit *be)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RCX, hreg(R_ECX));
    emit_alu_r32_imm8(e, ALU_AND, H_RCX, 31);
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
                host_flags_clobbered(be, rotate ? FL_OF | FL_CF : FLAGS_ARITH);
    } else {
            emit_pushfq(e);
            emit_pop(e, H_RSI);
            emit_shift_of(e, kind, size, rm);
            uint32_t host_mask = rotate ? FL_CF : FL_CF | FL_PF | FL_ZF | FL_SF;
            emit_alu_r32_imm32(e, ALU_AND, H_RSI, host_mask);
            emit_alu_rr32(e, ALU_OR, H_RAX, H_RSI);
            if (zero_count)
                emit_put_flags_eax(e, rotate ? FL_OF | FL_CF : FLAGS_ARITH);
            else
                emit_combine_eax(be, rotate ? FL_OF | FL_CF : FLAGS_LOGIC, rotate ? FL_OF | FL_CF : FLAGS_ARITH);
    }
    if (zero_count)
        emit_patch_rel32(zero_count, e->p);
}

void emit_shift(struct block_emit *be, const struct insn *in)
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
            uint32_t of = n == 1 ? FL_OF : 0;
            emit_flags_kc(be, rotate ? FL_CF | of : FL_CF | FL_PF | FL_ZF | FL_SF | of, rotate ? FL_OF | FL_CF : FLAGS_ARITH);
            return;
        }
        if (!be->flags_dead && be->of_lazy && !rotate && in->mod == 3 && !high_byte_regs(in)) {
            /* Only a stub could observe OF before it is overwritten: the
             * host's other flags are deferred, OF left out (merged as 0),
             * and the stubs compute it from the result (SAR's is 0). */
            emit_flags_kc(be, FL_CF | FL_PF | FL_ZF | FL_SF, FLAGS_ARITH);
            if (kind != SH_SAR) {
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
    emit_pushfq(e);
    emit_pop(e, H_RSI);
    emit_alu_r32_imm32(e, ALU_AND, H_RSI, FL_CF | FL_OF);
    emit_op(e, size, 0x85, dst, dst);                          /* test dst, dst */
    emit_pushfq(e);
    emit_pop(e, H_RAX);
    emit_alu_eax_imm32(e, ALU_AND, FL_SF | FL_ZF | FL_PF);
    emit_alu_rr32(e, ALU_OR, H_RAX, H_RSI);
    emit_combine_eax(be, FLAGS_LOGIC, FLAGS_ARITH);           /* OF SF ZF PF CF; AF clear */
}

/* Two/three-operand IMUL. */
void emit_imul(struct block_emit *be, const struct insn *in)
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
void emit_mul(struct block_emit *be, const struct insn *in)
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
void emit_div(struct block_emit *be, const struct insn *in)
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


/* MOV AL/EAX <-> [seg:offset] with the offset in the instruction. */
void emit_mov_moffs(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = (in->op & 1) ? opsize(in) : 1;
    bool store = in->op >= 0xa2;
    emit_mov_r32_imm32(e, H_RAX, in->imm);                     /* the offset */
    emit_probe(be, in->seg >= 0 ? in->seg : SEG_DS, size, store, false);
    emit_op(e, size, sized_op(store ? 0x88 : 0x8a, size), hreg(R_EAX), MEM_RDX);
}

/* BT/BTS/BTR/BTC r/m, reg: only CF is set (alu_bit).  A memory operand
 * is the dword that holds the bit: the signed offset's upper bits move the
 * address (32-bit operands only). */
void emit_bit_reg(struct block_emit *be, const struct insn *in)
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
        emit_shift_r32_imm8(e, SH_SAR, H_RCX, 5);
        emit_lea_r32_m(e, H_RAX, mem_sib(H_RAX, H_RCX, 2, 0, MEM_NODISP));
        emit_probe(be, in->ea_seg, 4, write, false);
        emit_mov_rr32(e, H_RCX, hreg(in->reg));
        emit_alu_r32_imm8(e, ALU_AND, H_RCX, 31);
        emit_op(e, 4, 0x0f00 | (in->op & 0xff), H_RCX, MEM_RDX);   /* bt* [rdx], ecx */
    }
    emit_flags(be, FL_CF);
}

/* SHLD/SHRD r/m32, reg, imm8/CL: the host's, with OF as the shared
 * semantics define it for counts above 1 (SHLD's like SHL's, SHRD's like
 * SHR's) and AF cleared; a zero count changes nothing. */
void emit_double_shift(struct block_emit *be, const struct insn *in)
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
void emit_cmpxchg8b(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    emit_ea(e, in);
    emit_probe(be, in->ea_seg, 8, true, false);
    emit_mov_rr64(e, H_RSI, H_RDX);
    emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    emit_mov_rr32(e, H_RDX, hreg(R_EDX));
    emit_mov_rr32(e, H_RCX, hreg(R_ECX));
    emit_push(e, H_RBX);
    emit_mov_rr32(e, H_RBX, hreg(R_EBX));
    emit_cmpxchg8b_m(e, mem_ind(H_RSI));
    emit_pop(e, H_RBX);
    emit_mov_rr32(e, hreg(R_EAX), H_RAX);
    emit_mov_rr32(e, hreg(R_EDX), H_RDX);
        emit_flags(be, FL_ZF);
}

/* BT/BTS/BTR/BTC r/m, imm8: only CF is defined and set (alu_bit). */
void emit_bit_imm(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = opsize(in);
    int rm = emit_rm(be, in, size, in->reg != 4);
    emit_op(e, size, 0x0fba, EXT(in->reg), rm);               /* bt* rm, imm8 */
    emit_u8(e, in->imm & (size * 8 - 1));
    emit_flags(be, FL_CF);
}
