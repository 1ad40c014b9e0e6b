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
void emit_put_flags_eax(struct emitter *e, uint32_t clear)
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
bool shift_flags_from_host(const struct block_emit *be, const struct insn *in)
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
    emit_u8(e, 0xb8); emit_u32(e, in->imm);                    /* mov eax, offset */
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
void emit_bit_imm(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int size = opsize(in);
    int rm = emit_rm(be, in, size, in->reg != 4);
    emit_op(e, size, 0x0fba, EXT(in->reg), rm);               /* bt* rm, imm8 */
    emit_u8(e, in->imm & (size * 8 - 1));
    emit_flags(be, 0x1);
}
