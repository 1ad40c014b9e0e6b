/*
 * The one x86 instruction decoder, shared by the interpreter and the
 * translator, and the one opcode table (monitor/decode.c) that holds what
 * the engines know about each opcode.  The decoder knows lengths and operand
 * shapes, not semantics; the table's other columns say, per opcode (and per
 * ModRM.reg where a group's members differ): operand form and size, whether
 * LOCK is allowed, the arithmetic and system flags read / written / left
 * undefined, the registers used without being named, whether it ends a
 * translated block, why it is sensitive (must reach the monitor), which
 * interpreter handler runs it, and (later) which translator emitter does.
 *
 * Users: decode() (shape), interp_exec (handler, lockable: monitor/interp.c),
 * bt.c (ends a block), bt/select.c (native or threaded, plain, flags read
 * and written, implicit registers, shifts by CL: lookups of these columns).
 */
#ifndef RV_DECODE_H
#define RV_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#define INSN_MAX_LEN 15

/* Prefix bits in insn.prefixes. */
#define PFX_LOCK   0x01
#define PFX_REP    0x02   /* F3: REP / REPE */
#define PFX_REPNE  0x04   /* F2: REPNE */
#define PFX_OPSIZE 0x08   /* 66 */
#define PFX_ADSIZE 0x10   /* 67 */

/* Decoder return values other than a length. */
#define DECODE_NEED_MORE (-1)   /* the instruction continues past the bytes given */
#define DECODE_TOO_LONG  (-2)   /* more than 15 bytes: #GP(0) */

struct insn {
    uint16_t op;          /* 0x000-0x0ff one-byte map, 0x100-0x1ff the 0F map */
    uint8_t len;
    uint8_t prefixes;
    int8_t seg;           /* segment override (SEG_*) or -1 */
    bool op32;            /* effective operand size is 32 */
    bool addr32;          /* effective address size is 32 */
    bool has_modrm;
    bool invalid;         /* opcode is undefined on the emulated CPU: #UD */
    uint8_t modrm, mod, reg, rm;
    /* Memory operand, pre-digested so executing it is a sum:
     * ea = base + index << scale + disp (truncated to the address size). */
    int8_t ea_base;       /* register index or -1 */
    int8_t ea_index;      /* register index or -1 */
    uint8_t ea_scale;
    int8_t ea_seg;        /* segment used: override, or DS/SS by the base register */
    int32_t disp;
    uint32_t imm;         /* first immediate (zero-extended as encoded; sign-extension is semantic) */
    uint32_t imm2;        /* second immediate: ENTER's level, far pointer's selector */
    uint8_t imm_size;     /* bytes of the first immediate (0 if none) */
};

static inline bool insn_is_mem(const struct insn *i) { return i->has_modrm && i->mod != 3; }

/* ---- the opcode table ---- */

/* The interpreter's handlers, one per instruction (or per family sharing one
 * body, like the eight ALU operations); interp.c defines h_NAME for each and
 * dispatches through opinfo(in)->handler.  unimpl: no handler (#UD, logged). */
#define INTERP_HANDLERS(X)                                                          \
    X(unimpl) X(ud) X(alu_rm_r) X(alu_r_rm) X(alu_acc_imm) X(alu_rm_imm)             \
    X(push_sreg) X(pop_sreg) X(daa) X(das) X(aaa) X(aas) X(inc_r) X(dec_r)           \
    X(push_r) X(pop_r) X(pusha) X(popa) X(bound) X(arpl) X(push_imm) X(push_imm8)    \
    X(imul_imm) X(string) X(jcc_short) X(test_rm_r) X(xchg_rm_r) X(mov_rm_r)         \
    X(mov_r_rm) X(mov_rm_sreg) X(lea) X(mov_sreg_rm) X(pop_rm) X(nop) X(xchg_acc_r)  \
    X(cbw) X(cwd) X(call_far) X(fwait) X(pushf) X(popf) X(sahf) X(lahf)              \
    X(mov_acc_moffs) X(mov_moffs_acc) X(test_acc_imm) X(mov_r8_imm) X(mov_r_imm)     \
    X(shift) X(ret_near) X(les) X(lds) X(mov_rm_imm) X(enter) X(leave) X(ret_far)    \
    X(int3) X(int_imm) X(into) X(iret) X(aam) X(aad) X(salc) X(xlat) X(fpu)          \
    X(loop) X(jcxz) X(in) X(out) X(call_near) X(jmp_near) X(jmp_far) X(jmp_short)    \
    X(icebp) X(hlt) X(cmc) X(test_rm_imm) X(not) X(neg) X(mul) X(imul) X(div)        \
    X(idiv) X(clc) X(stc) X(cli) X(sti) X(cld) X(std) X(inc_rm) X(dec_rm)            \
    X(call_near_rm) X(call_far_m) X(jmp_near_rm) X(jmp_far_m) X(push_rm)             \
    X(sldt_str) X(lldt) X(ltr) X(verr_verw) X(sgdt_sidt) X(lgdt_lidt) X(smsw)        \
    X(lmsw) X(invlpg) X(lar_lsl) X(clts) X(invd) X(hint_nop) X(mov_from_cr)          \
    X(mov_to_cr) X(mov_from_dr) X(mov_to_dr) X(wrmsr) X(rdtsc) X(rdmsr)              \
    X(sysenter) X(sysexit) X(cpuid) X(cmovcc) X(jcc_near) X(setcc) X(bswap)          \
    X(push_fs) X(push_gs) X(pop_fs) X(pop_gs) X(bt_reg) X(bt_imm) X(shld_shrd)      \
    X(imul_r_rm) X(cmpxchg) X(lss) X(lfs) X(lgs) X(movzx8) X(movzx16) X(movsx8)     \
    X(movsx16) X(bsf_bsr) X(xadd) X(cmpxchg8b) X(sse_move) X(rdpid)

#define INTERP_HANDLER_ID(name) H_##name,
enum interp_handler { INTERP_HANDLERS(INTERP_HANDLER_ID) H_COUNT };

/* Operand forms (Intel's operand-encoding columns, in our words). */
enum op_form {
    OPF_NONE,       /* no explicit operand, or only implicit ones */
    OPF_RM_REG,     /* r/m is the destination, ModRM.reg the source */
    OPF_REG_RM,     /* ModRM.reg is the destination, r/m the source */
    OPF_RM,         /* r/m alone (groups, SETcc, POP r/m...) */
    OPF_RM_IMM,     /* r/m and an immediate */
    OPF_REG_RM_IMM, /* IMUL r, r/m, imm; SHLD/SHRD r/m, r, imm */
    OPF_ACC_IMM,    /* AL/eAX and an immediate */
    OPF_OPREG,      /* a register in the opcode's low three bits */
    OPF_OPREG_IMM,  /* MOV r, imm */
    OPF_IMM,        /* an immediate alone (PUSH imm, INT n, RET n, ENTER) */
    OPF_REL,        /* a relative branch target */
    OPF_FAR,        /* a far pointer (ptr16:16/32) */
    OPF_MOFFS,      /* a memory offset (MOV AL/eAX, moffs) */
    OPF_PORT,       /* an I/O port: imm8 or DX */
};

/* Size of the main operand. */
enum op_size { OPSZ_NONE, OPSZ_B, OPSZ_W, OPSZ_V, OPSZ_D };

/* opinfo.attr */
#define OPA_LOCK  0x01   /* LOCK allowed with a memory destination (else #UD) */
#define OPA_ENDS  0x02   /* ends a translated block (control transfer, mode or
                          * descriptor-table change, #UD); so does in->invalid */
#define OPA_PLAIN 0x04   /* run threaded, it only computes on registers, flags
                          * and memory, or changes state chained code does not
                          * assume: the block around it may chain (bt) */
#define OPA_COUNTED 0x08 /* a shift: flags are written only when the masked
                          * count (imm8, 1 or CL) is non-zero */
#define OPA_UNDEF_KEPT 0x10 /* the engines leave its undefined flags as they
                             * were (BT*, DIV, IDIV): written only where defined */
#define OPA_OPREG_READ 0x20 /* the register in the opcode is only read (PUSH r) */

/* opinfo.native: whether the translator runs the instruction as host code
 * (else threaded through the interpreter's handler), and on what
 * conditions.  Beyond these, every native form needs 32-bit addressing for
 * a memory operand, an allowed LOCK and no AH..BH it cannot rotate (bt). */
#define NAT_YES     0x01 /* native */
#define NAT_OP32    0x02 /* only with a 32-bit operand size */
#define NAT_ADDR32  0x04 /* only with a 32-bit address size (moffs, strings) */
#define NAT_MEM     0x08 /* only with a memory operand (LEA, CMPXCHG8B) */
#define NAT_REP     0x10 /* only with REP/REPNE (MOVS) */
#define NAT_NO_REP  0x20 /* only without REP/REPNE (LODS) */
#define NAT_MEM_OP32 0x40 /* a 32-bit operand size when the operand is in memory (BT* r/m, reg) */
#define NAT_VIA_EAX 0x80 /* goes through the host's EAX (CMPXCHG): not with EAX
                          * as its register r/m, nor naming AH..BH */

/* opinfo.sensitive: why the instruction must reach the monitor's own code
 * (it touches machine state a translated block does not carry in registers). */
#define SENS_IO    0x01  /* I/O ports: IN/OUT/INS/OUTS (IOPL and the TSS bitmap) */
#define SENS_CR    0x02  /* control/debug registers, caches, TLB: MOV CRn/DRn, CLTS, LMSW, INVLPG, INVD */
#define SENS_SEG   0x04  /* loads a segment or descriptor-table register, reads descriptors */
#define SENS_INT   0x08  /* raises or returns from an interrupt or a task */
#define SENS_IF    0x10  /* changes IF or IOPL-governed flags: CLI, STI, POPF, PUSHF (v86) */
#define SENS_HLT   0x20  /* stops the CPU */
#define SENS_MSR   0x40  /* model-specific state: RDMSR, WRMSR, RDTSC, CPUID, SYSENTER/SYSEXIT */
#define SENS_FPU   0x80  /* x87 state (CR0.TS/EM/NE decide #NM/#MF) */

/* One row of the opcode table.  Flags are FL_* masks (monitor/cpu.h):
 * fl_written holds every flag the instruction may change, fl_undef the ones
 * among them whose value the architecture leaves undefined (a subset).
 * Shifts and rotates write only with a non-zero count.  implicit: guest
 * registers (bit i: r[i]) read or written without a ModRM or opcode field
 * naming them (string instructions list ECX, which only a REP prefix uses);
 * implicit_w those of them it writes. */
struct opinfo {
    uint8_t shape;          /* decoder: ModRM, #UD, immediate kind (decode.c's private bits) */
    uint8_t form;           /* enum op_form */
    uint8_t size;           /* enum op_size */
    uint8_t attr;           /* OPA_* */
    uint8_t sensitive;      /* SENS_* */
    uint8_t implicit;       /* registers used without being named */
    uint8_t handler;        /* enum interp_handler */
    uint8_t emitter;        /* the translator's emitter; 0: threaded through the
                             * interpreter (bt fills this in when native_emit
                             * dispatches through the table) */
    uint32_t fl_read, fl_written, fl_undef;
    uint8_t implicit_w;     /* of `implicit`, the registers written */
    uint8_t native;         /* NAT_*: the translator runs it as host code */
    const struct opinfo *group;   /* if set: eight sub-rows, by ModRM.reg */
};

/* Rows by insn.op: 0x000-0x0ff the one-byte map, 0x100-0x1ff the 0F map
 * (0F 38 and 0F 3A stand for the whole three-byte maps, all #UD). */
extern const struct opinfo opinfo_table[0x200];

/* The row of a decoded instruction: its group member's if it has one. */
static inline const struct opinfo *opinfo(const struct insn *in)
{
    const struct opinfo *oi = &opinfo_table[in->op];
    return oi->group ? &oi->group[in->reg] : oi;
}

/* LOCK is allowed on this instruction (a read-modify-write of memory); else #UD. */
static inline bool insn_lockable(const struct insn *in)
{
    return insn_is_mem(in) && (opinfo(in)->attr & OPA_LOCK);
}

/* A translated block ends after this instruction: it transfers control,
 * changes the mode or the tables code depends on, or raises #UD. */
static inline bool insn_ends_block(const struct insn *in)
{
    return (opinfo(in)->attr & OPA_ENDS) || in->invalid;
}

static inline uint32_t insn_flags_read(const struct insn *in) { return opinfo(in)->fl_read; }
static inline uint32_t insn_flags_written(const struct insn *in) { return opinfo(in)->fl_written; }
static inline uint32_t insn_flags_undefined(const struct insn *in) { return opinfo(in)->fl_undef; }
static inline unsigned insn_implicit_regs(const struct insn *in) { return opinfo(in)->implicit; }
static inline unsigned insn_sensitive(const struct insn *in) { return opinfo(in)->sensitive; }

/*
 * Decode the instruction at buf[0..avail).  code32 is the CS default size.
 * Returns the length, DECODE_NEED_MORE if avail bytes were not enough
 * (the caller fetches more, e.g. across a page boundary), or DECODE_TOO_LONG.
 */
int decode(const uint8_t *buf, int avail, bool code32, struct insn *out);

#endif
