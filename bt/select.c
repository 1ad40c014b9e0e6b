/*
 * Which instructions: the predicates the block builder (bt.c) and the
 * emitter ask about one guest instruction: native or threaded, registers
 * used and written (implicit ones included), AH..BH handling, threaded
 * instructions that keep a block chainable, flags written, read and needed
 * (flag liveness), stack effects and branch targets.  The per-opcode facts
 * (native or not and on what conditions, plain, flags read and written,
 * implicit registers, shifts by CL) are the opcode table's columns
 * (monitor/decode.h); tests/unit/test_bt_select.c compares these lookups
 * with the switch statements they replaced.
 */
#include "bt/native_internal.h"

bool alu_family(int op) { return op < 0x40 && (op & 7) < 6; }

/*
 * AH, CH, DH and BH have no encoding next to a REX prefix, so an
 * instruction naming one rotates the host register by 8 around itself: its
 * low byte is then the guest's high byte.  The mask of such registers, or
 * -1 when the instruction also names the same register otherwise (AL with
 * AH, CL as a shift count of CH): those are threaded.
 */
int high_byte_regs(const struct insn *in)
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
void emit_high_byte_rotate(struct block_emit *be, unsigned mask, bool back)
{
    for (int g = 0; g < 4; g++)
        if (mask & 1u << g) {
            emit_op(be->e, 4, 0xc1, EXT(back ? 0 : 1), hreg(g));
            emit_u8(be->e, 8);
        }
}

/* The rotation happens once the operands' probes are done (a stub still
 * sees the registers as they are) and before anything reads CF. */
void emit_high_bytes_in(struct block_emit *be)
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
bool writes_rm(const struct insn *in)
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

/* The register in the opcode's low three bits (INC r, PUSH r, MOV r, imm,
 * BSWAP), with its AH..BH alias as the translator has always counted it
 * (a byte MOV's AH..BH lives in EAX..EBX; for the others the alias is an
 * over-approximation, kept so that the translations stay the same). */
static unsigned opcode_reg_bits(const struct insn *in)
{
    int op = in->op;
    if (op >= 0x50 && op <= 0x5f)
        return 1u << (op & 7);
    return 1u << (op & 7) | 1u << (op & 3);
}

/* Registers a native instruction uses (or, `written`, writes) without
 * naming them in ModRM: the table's implicit columns, the register in the
 * opcode, and a string instruction's ECX only with a REP prefix. */
unsigned native_implicit_regs(const struct insn *in, bool written)
{
    const struct opinfo *oi = opinfo(in);
    unsigned m = written ? oi->implicit_w : oi->implicit;
    if (oi->handler == H_string && !(in->prefixes & (PFX_REP | PFX_REPNE)))
        m &= ~(1u << R_ECX);
    if ((oi->form == OPF_OPREG || oi->form == OPF_OPREG_IMM) && !(written && (oi->attr & OPA_OPREG_READ)))
        m |= opcode_reg_bits(in);
    return m;
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
    unsigned m = native_implicit_regs(in, false);
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
    unsigned m = native_implicit_regs(in, true);
    if (in->has_modrm) {
        if (writes_reg(in))
            m |= reg_bits(in, in->reg);
        if (in->mod == 3 && writes_rm(in))
            m |= reg_bits(in, in->rm);
    }
    return m;
}

/* The translator runs `in` as host code: its row's NAT_* conditions hold,
 * and the ones every native form needs. */
bool native_supported(const struct insn *in)
{
    if (in->invalid || high_byte_regs(in) < 0)
        return false;
    /* With one virtual CPU a locked read-modify-write is the plain one; where
     * LOCK is not allowed the interpreter raises the #UD. */
    if ((in->prefixes & PFX_LOCK) && !insn_lock_allowed(in))
        return false;
    if (insn_is_mem(in) && !in->addr32)
        return false;                          /* 16-bit addressing: threaded */
    unsigned nat = opinfo(in)->native;
    bool rep = in->prefixes & (PFX_REP | PFX_REPNE);
    if (!(nat & NAT_YES))
        return false;
    if (((nat & NAT_OP32) && !in->op32) || ((nat & NAT_ADDR32) && !in->addr32) ||
        ((nat & NAT_MEM) && !insn_is_mem(in)) || ((nat & NAT_MEM_OP32) && insn_is_mem(in) && !in->op32))
        return false;
    if (((nat & NAT_REP) && !rep) || ((nat & NAT_NO_REP) && rep))
        return false;
    /* CMPXCHG goes through the host's EAX: not with EAX as its register
     * r/m, nor naming AH..BH next to the AL it compares. */
    if ((nat & NAT_VIA_EAX) && ((in->mod == 3 && in->rm == R_EAX) || high_byte_regs(in)))
        return false;
    return true;
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
    return !in->invalid && (opinfo(in)->attr & OPA_PLAIN);
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
bool native_shifts_by_cl(const struct insn *in)
{
    const struct opinfo *oi = opinfo(in);
    return (oi->attr & OPA_COUNTED) && (oi->implicit & 1u << R_ECX);
}

#define FLAGS_ALL 0x8d5u

/* Arithmetic flags a native instruction always writes (0: none, or not
 * always): the table's written flags, less the undefined ones the engines
 * keep, and none for a shift whose count may be 0. */
uint32_t native_flags_written(const struct insn *in)
{
    const struct opinfo *oi = opinfo(in);
    uint32_t w = oi->fl_written & FL_ARITH;
    if (oi->attr & OPA_UNDEF_KEPT)
        w &= ~oi->fl_undef;
    if ((oi->attr & OPA_COUNTED) && (native_shifts_by_cl(in) || (in->imm_size && !(in->imm & 31))))
        return 0;
    return w;
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
    if (native_shifts_by_cl(in))
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



/* The arithmetic flags a native instruction reads. */
uint32_t flags_read(const struct insn *in)
{
    return opinfo(in)->fl_read & FL_ARITH;
}

uint32_t native_flags_read(const struct insn *in)
{
    if (!native_supported(in) || native_shifts_by_cl(in) || insn_is_jcc(in))
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
bool flags_merged_by_hand(const struct insn *in)
{
    return native_shifts_by_cl(in) || in->op == 0x9c;
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

uint32_t native_branch_target(const struct insn *in, uint32_t eip)
{
    bool rel8 = in->op == 0xeb || (in->op >= 0x70 && in->op <= 0x7f);
    uint32_t target = eip + in->len + (rel8 ? (uint32_t)(int32_t)(int8_t)in->imm : in->imm);
    return in->op32 ? target : target & 0xffff;
}
