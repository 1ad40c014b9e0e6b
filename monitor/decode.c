/*
 * Table-driven x86 decoder and the opcode table (see decode.h for its
 * columns and users).  One row per opcode (one-byte map and the 0F map, with
 * eight sub-rows for a group whose members differ).  The decoder reads only
 * a row's shape: whether a ModRM byte follows, what immediate follows, and
 * whether the emulated CPU (a P6-class processor without MMX/SSE) defines it
 * (the XMM data moves 0F 10/11/28/29/6F/7F excepted: see fpu_sse_move).
 * Lengths of SSE/MMX encodings are still decoded exactly so that a #UD is
 * raised for the right instruction and the capstone cross-check agrees.
 */
#include "monitor/decode.h"
#include "monitor/cpu.h"

#include <string.h>

/* Shape bits (opinfo.shape). */
enum {
    M = 0x01,           /* ModRM follows */
    X = 0x02,           /* undefined on the emulated CPU (#UD) */
    FORCE_REG = 0x04,   /* MOV CRn/DRn: ModRM mod is ignored and taken as 11 */
    /* immediate kinds, in bits 4-7 */
    I_B = 0x10, I_W = 0x20, I_Z = 0x30, I_A = 0x40, I_P = 0x50, I_WB = 0x60, I_G3 = 0x70,
};
#define IMM_KIND(f) ((f) & 0xf0)

/*
 * Opcodes the emulated CPU lacks still get the shape every CPU that defines
 * them gives them: 0F 0F is 3DNow! (ModRM, then the operation in an imm8
 * position), 0F 24/26 the 386/486 MOV to/from TRn (shaped like MOV CRn),
 * 0F 78/79 VMREAD/VMWRITE, 0F A6/A7 the 486 A-step CMPXCHG and VIA PadLock,
 * 0F B9/0F FF UD1/UD0 (Intel's form, with ModRM).
 */
#define MX (M | X)

/* ------------------------------------------------------------------ */
/* the opcode table                                                     */

/* Later rows of a range override earlier ones (the 0F map starts as all
 * #UD, a group as its common row), which GCC would warn about row by row. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"

/* Flag sets, by what the SDM says each instruction does to them. */
#define F_ARITH   FL_ARITH
#define F_LOGIC_U FL_AF                                   /* AND/OR/XOR/TEST: AF undefined */
#define F_INCDEC  (FL_ARITH & ~FL_CF)
#define F_MUL_U   (FL_SF | FL_ZF | FL_AF | FL_PF)         /* MUL/IMUL: only CF/OF defined */
#define F_BT_U    (FL_OF | FL_SF | FL_AF | FL_PF)         /* BT*: CF defined, ZF kept */
#define F_SAHF    (FL_SF | FL_ZF | FL_AF | FL_PF | FL_CF)
#define F_PUSHED  (FL_ARITH | FL_TF | FL_IF | FL_DF | FL_IOPL | FL_NT | FL_AC | FL_ID)
#define F_ALL     (F_PUSHED | FL_RF | FL_VM | FL_VIF | FL_VIP)
#define F_INT_W   (FL_TF | FL_IF | FL_NT | FL_RF | FL_VM)   /* delivering an interrupt */
/* Far JMP/CALL/RET and IRET may switch tasks, which loads EFLAGS whole: F_ALL. */

/* Condition codes' flags, by the low four bits of Jcc/SETcc/CMOVcc. */
#define CC_FLAGS(cc) ((cc) >> 1 == 0 ? FL_OF : (cc) >> 1 == 1 ? FL_CF : (cc) >> 1 == 2 ? FL_ZF :      \
                      (cc) >> 1 == 3 ? FL_CF | FL_ZF : (cc) >> 1 == 4 ? FL_SF : (cc) >> 1 == 5 ? FL_PF : \
                      (cc) >> 1 == 6 ? FL_SF | FL_OF : FL_ZF | FL_SF | FL_OF)

#define rA (1u << R_EAX)
#define rC (1u << R_ECX)
#define rD (1u << R_EDX)
#define rB (1u << R_EBX)
#define rSP (1u << R_ESP)
#define rBP (1u << R_EBP)
#define rSI (1u << R_ESI)
#define rDI (1u << R_EDI)

/* Column shorthands for the rows below. */
#define S(x) .shape = (x)
#define K(x) .form = OPF_##x
#define Z(x) .size = OPSZ_##x
#define A(x) .attr = (x)
#define SE(x) .sensitive = (x)
#define IM(x) .implicit = (x)
#define H(x) .handler = H_##x
#define FR(x) .fl_read = (x)
#define FW(x) .fl_written = (x)
#define FU(x) .fl_undef = (x)
#define G(x) .group = (x)
#define IW(x) .implicit_w = (x)
#define NV(x) .native = (x)
#define LK OPA_LOCK
#define EB OPA_ENDS
#define PL OPA_PLAIN
#define CN OPA_COUNTED
#define UK OPA_UNDEF_KEPT
#define N NAT_YES
#define N32 (NAT_YES | NAT_OP32)

/* ALU op n (ADD OR ADC SBB AND SUB XOR CMP): six rows from n * 8. */
#define ALU_LOCK(n) ((n) == 7 ? PL : LK | PL)
#define ALU_ACC_W(n) ((n) == 7 ? 0 : rA)   /* CMP writes no register */
#define ALU_READ(n) ((n) == 2 || (n) == 3 ? FL_CF : 0)
#define ALU_UNDEF(n) ((n) == 1 || (n) == 4 || (n) == 6 ? F_LOGIC_U : 0)
#define ALU_COMMON(n) FR(ALU_READ(n)), FW(F_ARITH), FU(ALU_UNDEF(n)), NV(N)
#define ALU_ROWS(n)                                                                                 \
    [(n) * 8 + 0] = { S(M), K(RM_REG), Z(B), A(ALU_LOCK(n)), H(alu_rm_r), ALU_COMMON(n) },          \
    [(n) * 8 + 1] = { S(M), K(RM_REG), Z(V), A(ALU_LOCK(n)), H(alu_rm_r), ALU_COMMON(n) },          \
    [(n) * 8 + 2] = { S(M), K(REG_RM), Z(B), A(PL), H(alu_r_rm), ALU_COMMON(n) },                   \
    [(n) * 8 + 3] = { S(M), K(REG_RM), Z(V), A(PL), H(alu_r_rm), ALU_COMMON(n) },                   \
    [(n) * 8 + 4] = { S(I_B), K(ACC_IMM), Z(B), A(PL), IM(rA), IW(ALU_ACC_W(n)), H(alu_acc_imm),    \
                      ALU_COMMON(n) },                                                              \
    [(n) * 8 + 5] = { S(I_Z), K(ACC_IMM), Z(V), A(PL), IM(rA), IW(ALU_ACC_W(n)), H(alu_acc_imm),    \
                      ALU_COMMON(n) }

/* Group 1 (80-83): the ALU op is ModRM.reg.  82, 80's alias, is left
 * to the interpreter by the translator. */
#define GRP1_ROW(n, sz, nv) [n] = { K(RM_IMM), Z(sz), A(ALU_LOCK(n)), H(alu_rm_imm), ALU_COMMON(n), NV(nv) }
#define GRP1(sz, nv)                                                                          \
    { GRP1_ROW(0, sz, nv), GRP1_ROW(1, sz, nv), GRP1_ROW(2, sz, nv), GRP1_ROW(3, sz, nv),     \
      GRP1_ROW(4, sz, nv), GRP1_ROW(5, sz, nv), GRP1_ROW(6, sz, nv), GRP1_ROW(7, sz, nv) }
static const struct opinfo grp1_b[8] = GRP1(B, N);
static const struct opinfo grp1_v[8] = GRP1(V, N);
static const struct opinfo grp1_82[8] = GRP1(B, 0);

/* Group 2 (C0 C1 D0-D3): ROL ROR RCL RCR SHL SHR SAL SAR.  Rotates write
 * only CF and OF (the SDM's "Flags Affected" for RCL/RCR too); RCL/RCR read
 * CF; OF is undefined for counts above 1, AF for any shift.  Nothing is
 * written when the masked count is 0.  RCL/RCR stay threaded. */
#define GRP2_ROW(n, sz, k, im)                                                               \
    [n] = { K(k), Z(sz), A(PL | CN), IM(im), H(shift), FR((n) == 2 || (n) == 3 ? FL_CF : 0), \
            FW((n) < 4 ? FL_CF | FL_OF : F_ARITH), FU((n) < 4 ? FL_OF : FL_OF | FL_AF),       \
            NV((n) == 2 || (n) == 3 ? 0 : N) }
#define GRP2(sz, k, im)                                                                     \
    { GRP2_ROW(0, sz, k, im), GRP2_ROW(1, sz, k, im), GRP2_ROW(2, sz, k, im), GRP2_ROW(3, sz, k, im), \
      GRP2_ROW(4, sz, k, im), GRP2_ROW(5, sz, k, im), GRP2_ROW(6, sz, k, im), GRP2_ROW(7, sz, k, im) }
static const struct opinfo grp2_b_imm[8] = GRP2(B, RM_IMM, 0);
static const struct opinfo grp2_v_imm[8] = GRP2(V, RM_IMM, 0);
static const struct opinfo grp2_b_1[8] = GRP2(B, RM, 0);
static const struct opinfo grp2_v_1[8] = GRP2(V, RM, 0);
static const struct opinfo grp2_b_cl[8] = GRP2(B, RM, rC);
static const struct opinfo grp2_v_cl[8] = GRP2(V, RM, rC);

/* Group 3 (F6 F7): TEST NOT NEG MUL IMUL DIV IDIV.  A byte MUL/DIV uses
 * AX alone; the word and dword forms EDX too. */
#define GRP3(sz, ad, nv)                                                                           \
    {                                                                                              \
        [0] = { K(RM_IMM), Z(sz), A(PL), H(test_rm_imm), FW(F_ARITH), FU(F_LOGIC_U), NV(N) },       \
        [1] = { K(RM_IMM), Z(sz), A(PL), H(test_rm_imm), FW(F_ARITH), FU(F_LOGIC_U) },              \
        [2] = { K(RM), Z(sz), A(LK | PL), H(not), NV(N) },                                          \
        [3] = { K(RM), Z(sz), A(LK | PL), H(neg), FW(F_ARITH), NV(N) },                             \
        [4] = { K(RM), Z(sz), A(PL), IM(ad), IW(ad), H(mul), FW(F_ARITH), FU(F_MUL_U), NV(nv) },    \
        [5] = { K(RM), Z(sz), A(PL), IM(ad), IW(ad), H(imul), FW(F_ARITH), FU(F_MUL_U) },           \
        [6] = { K(RM), Z(sz), A(PL | UK), IM(ad), IW(ad), H(div), FW(F_ARITH), FU(F_ARITH), NV(nv) }, \
        [7] = { K(RM), Z(sz), A(PL | UK), IM(ad), IW(ad), H(idiv), FW(F_ARITH), FU(F_ARITH) },      \
    }
/* The translator runs MUL and DIV natively at 32 bits only. */
static const struct opinfo grp3_b[8] = GRP3(B, rA, 0);
static const struct opinfo grp3_v[8] = GRP3(V, rA | rD, N32);

/* Group 4 (FE): INC/DEC r/m8; group 5 (FF): INC DEC CALL CALLF JMP JMPF PUSH. */
static const struct opinfo grp4[8] = {
    [0] = { K(RM), Z(B), A(LK | PL), H(inc_rm), FW(F_INCDEC), NV(N) },
    [1] = { K(RM), Z(B), A(LK | PL), H(dec_rm), FW(F_INCDEC), NV(N) },
    [2 ... 7] = { A(PL), H(ud) },
};
static const struct opinfo grp5[8] = {
    [0] = { K(RM), Z(V), A(LK | PL), H(inc_rm), FW(F_INCDEC), NV(N) },
    [1] = { K(RM), Z(V), A(LK | PL), H(dec_rm), FW(F_INCDEC), NV(N) },
    [2] = { K(RM), Z(V), A(EB), IM(rSP), IW(rSP), H(call_near_rm), NV(N32) },
    [3] = { K(RM), Z(V), A(EB), IM(rSP), IW(rSP), SE(SENS_SEG), H(call_far_m), FW(F_ALL) },
    [4] = { K(RM), Z(V), A(EB), H(jmp_near_rm), NV(N32) },
    [5] = { K(RM), Z(V), A(EB), SE(SENS_SEG), H(jmp_far_m), FW(F_ALL) },
    [6] = { K(RM), Z(V), A(PL), IM(rSP), IW(rSP), H(push_rm), NV(N32) },
    [7] = { H(ud) },
};

/* Group 1A (8F): POP r/m; group 11 (C6 C7): MOV r/m, imm. */
static const struct opinfo grp1a[8] = {
    [0] = { K(RM), Z(V), A(PL), IM(rSP), IW(rSP), H(pop_rm) },
    [1 ... 7] = { A(PL), H(ud) },
};
static const struct opinfo grp11_b[8] = {
    [0] = { K(RM_IMM), Z(B), A(PL), H(mov_rm_imm), NV(N) },
    [1 ... 7] = { A(PL), H(ud) },
};
static const struct opinfo grp11_v[8] = {
    [0] = { K(RM_IMM), Z(V), A(PL), H(mov_rm_imm), NV(N) },
    [1 ... 7] = { A(PL), H(ud) },
};

/* MOV Sreg, r/m (8E): plain but for SS, which shadows interrupts (a load of
 * CS is #UD; ES and DS, FS and GS have bt's guards). */
static const struct opinfo grp_mov_sreg[8] = {
    [0 ... 7] = { K(REG_RM), Z(W), A(PL), SE(SENS_SEG), H(mov_sreg_rm) },
    [SEG_SS] = { K(REG_RM), Z(W), SE(SENS_SEG), H(mov_sreg_rm) },
};

/* Group 6 (0F 00): SLDT STR LLDT LTR VERR VERW; all end a block. */
static const struct opinfo grp6[8] = {
    [0] = { K(RM), Z(W), A(EB | PL), SE(SENS_SEG), H(sldt_str) },
    [1] = { K(RM), Z(W), A(EB | PL), SE(SENS_SEG), H(sldt_str) },
    [2] = { K(RM), Z(W), A(EB), SE(SENS_SEG), H(lldt) },
    [3] = { K(RM), Z(W), A(EB), SE(SENS_SEG), H(ltr) },
    [4] = { K(RM), Z(W), A(EB | PL), SE(SENS_SEG), H(verr_verw), FW(FL_ZF) },
    [5] = { K(RM), Z(W), A(EB | PL), SE(SENS_SEG), H(verr_verw), FW(FL_ZF) },
    [6 ... 7] = { A(EB), H(ud) },
};

/* Group 7 (0F 01): SGDT SIDT LGDT LIDT SMSW - LMSW INVLPG; all end a block. */
static const struct opinfo grp7[8] = {
    [0] = { K(RM), A(EB), SE(SENS_SEG), H(sgdt_sidt) },
    [1] = { K(RM), A(EB), SE(SENS_SEG), H(sgdt_sidt) },
    [2] = { K(RM), A(EB), SE(SENS_SEG), H(lgdt_lidt) },
    [3] = { K(RM), A(EB), SE(SENS_SEG), H(lgdt_lidt) },
    [4] = { K(RM), Z(W), A(EB), SE(SENS_CR), H(smsw) },
    [5] = { A(EB), H(ud) },
    [6] = { K(RM), Z(W), A(EB), SE(SENS_CR), H(lmsw) },
    [7] = { K(RM), A(EB), SE(SENS_CR), H(invlpg) },
};

/* Group 8 (0F BA): BT BTS BTR BTC r/m, imm8 at /4-/7. */
static const struct opinfo grp8[8] = {
    [0 ... 3] = { A(PL), H(bt_imm) },   /* the handler raises the #UD */
    [4] = { K(RM_IMM), Z(V), A(PL | UK), H(bt_imm), FW(FL_CF | F_BT_U), FU(F_BT_U), NV(N) },
    [5 ... 7] = { K(RM_IMM), Z(V), A(LK | PL | UK), H(bt_imm), FW(FL_CF | F_BT_U), FU(F_BT_U), NV(N) },
};

/* Group 9 (0F C7): CMPXCHG8B m64 at /1. */
static const struct opinfo grp9[8] = {
    [0 ... 7] = { A(PL), H(cmpxchg8b) },   /* the handler raises the #UD */
    [1] = { K(RM), A(LK | PL), IM(rA | rC | rD | rB), IW(rA | rD), H(cmpxchg8b), FW(FL_ZF), NV(N | NAT_MEM) },
    [7] = { K(RM), Z(D), A(PL), SE(SENS_MSR), H(rdpid) },            /* F3 0F C7 /7 (mod 3): RDPID */
};

#define CC_ROW(op, cc, ...) [(op) + (cc)] = { __VA_ARGS__, FR(CC_FLAGS(cc)) }
#define CC_ROWS(op, ...)                                                                         \
    CC_ROW(op, 0, __VA_ARGS__), CC_ROW(op, 1, __VA_ARGS__), CC_ROW(op, 2, __VA_ARGS__),          \
    CC_ROW(op, 3, __VA_ARGS__), CC_ROW(op, 4, __VA_ARGS__), CC_ROW(op, 5, __VA_ARGS__),          \
    CC_ROW(op, 6, __VA_ARGS__), CC_ROW(op, 7, __VA_ARGS__), CC_ROW(op, 8, __VA_ARGS__),          \
    CC_ROW(op, 9, __VA_ARGS__), CC_ROW(op, 10, __VA_ARGS__), CC_ROW(op, 11, __VA_ARGS__),        \
    CC_ROW(op, 12, __VA_ARGS__), CC_ROW(op, 13, __VA_ARGS__), CC_ROW(op, 14, __VA_ARGS__),       \
    CC_ROW(op, 15, __VA_ARGS__)

#define STR_ROWS(op, h, r, w, im, iw, se, a, nv)                                                  \
    [op] = { K(NONE), Z(B), A(a), IM(im), IW(iw), SE(se), H(h), FR(FL_DF | (r)), FW(w), NV(nv) },  \
    [(op) + 1] = { K(NONE), Z(V), A(a), IM(im), IW(iw), SE(se), H(h), FR(FL_DF | (r)), FW(w), NV(nv) }


const struct opinfo opinfo_table[0x200] = {
    /* ---- one-byte map ---- */
    ALU_ROWS(0), ALU_ROWS(1), ALU_ROWS(2), ALU_ROWS(3), ALU_ROWS(4), ALU_ROWS(5), ALU_ROWS(6), ALU_ROWS(7),
    [0x06] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), H(push_sreg) },
    [0x0e] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), H(push_sreg) },
    [0x16] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), H(push_sreg) },
    [0x1e] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), H(push_sreg) },
    [0x07] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), SE(SENS_SEG), H(pop_sreg) },
    [0x17] = { K(NONE), Z(W), IM(rSP), IW(rSP), SE(SENS_SEG), H(pop_sreg) },   /* SS shadows interrupts */
    [0x1f] = { K(NONE), Z(W), A(PL), IM(rSP), IW(rSP), SE(SENS_SEG), H(pop_sreg) },
    [0x0f] = { H(unimpl) },                  /* the 0F escape: never an op of its own */
    [0x26] = { H(unimpl) }, [0x2e] = { H(unimpl) }, [0x36] = { H(unimpl) }, [0x3e] = { H(unimpl) },
    [0x27] = { IM(rA), IW(rA), H(daa), FR(FL_CF | FL_AF), FW(F_ARITH), FU(FL_OF) },
    [0x2f] = { IM(rA), IW(rA), H(das), FR(FL_CF | FL_AF), FW(F_ARITH), FU(FL_OF) },
    [0x37] = { IM(rA), IW(rA), H(aaa), FR(FL_AF), FW(F_ARITH), FU(FL_OF | FL_SF | FL_ZF | FL_PF) },
    [0x3f] = { IM(rA), IW(rA), H(aas), FR(FL_AF), FW(F_ARITH), FU(FL_OF | FL_SF | FL_ZF | FL_PF) },
    [0x40 ... 0x47] = { K(OPREG), Z(V), A(PL), H(inc_r), FW(F_INCDEC), NV(N) },
    [0x48 ... 0x4f] = { K(OPREG), Z(V), A(PL), H(dec_r), FW(F_INCDEC), NV(N) },
    [0x50 ... 0x57] = { K(OPREG), Z(V), A(PL | OPA_OPREG_READ), IM(rSP), IW(rSP), H(push_r), NV(N32) },
    [0x58 ... 0x5f] = { K(OPREG), Z(V), A(PL), IM(rSP), IW(rSP), H(pop_r), NV(N32) },
    [0x60] = { Z(V), A(PL), IM(0xff), IW(rSP), H(pusha) },
    [0x61] = { Z(V), A(PL), IM(0xff), IW(0xff), H(popa) },
    [0x62] = { S(M), K(REG_RM), Z(V), SE(SENS_INT), H(bound) },
    [0x63] = { S(M), K(RM_REG), Z(W), SE(SENS_SEG), H(arpl), FW(FL_ZF) },
    [0x64 ... 0x67] = { H(unimpl) },         /* prefixes */
    [0x68] = { S(I_Z), K(IMM), Z(V), A(PL), IM(rSP), IW(rSP), H(push_imm), NV(N32) },
    [0x69] = { S(M | I_Z), K(REG_RM_IMM), Z(V), A(PL), H(imul_imm), FW(F_ARITH), FU(F_MUL_U), NV(N) },
    [0x6a] = { S(I_B), K(IMM), Z(V), A(PL), IM(rSP), IW(rSP), H(push_imm8), NV(N32) },
    [0x6b] = { S(M | I_B), K(REG_RM_IMM), Z(V), A(PL), H(imul_imm), FW(F_ARITH), FU(F_MUL_U), NV(N) },
    STR_ROWS(0x6c, string, 0, 0, rD | rDI | rC, rDI | rC, SENS_IO, 0, 0),                    /* INS */
    STR_ROWS(0x6e, string, 0, 0, rD | rSI | rC, rSI | rC, SENS_IO, 0, 0),                    /* OUTS */
    CC_ROWS(0x70, S(I_B), K(REL), A(EB), H(jcc_short), NV(N)),
    [0x80] = { S(M | I_B), K(RM_IMM), Z(B), H(alu_rm_imm), G(grp1_b) },
    [0x81] = { S(M | I_Z), K(RM_IMM), Z(V), H(alu_rm_imm), G(grp1_v) },
    [0x82] = { S(M | I_B), K(RM_IMM), Z(B), H(alu_rm_imm), G(grp1_82) },
    [0x83] = { S(M | I_B), K(RM_IMM), Z(V), H(alu_rm_imm), G(grp1_v) },
    [0x84] = { S(M), K(RM_REG), Z(B), A(PL), H(test_rm_r), FW(F_ARITH), FU(F_LOGIC_U), NV(N) },
    [0x85] = { S(M), K(RM_REG), Z(V), A(PL), H(test_rm_r), FW(F_ARITH), FU(F_LOGIC_U), NV(N) },
    [0x86] = { S(M), K(RM_REG), Z(B), A(LK | PL), H(xchg_rm_r), NV(N) },
    [0x87] = { S(M), K(RM_REG), Z(V), A(LK | PL), H(xchg_rm_r), NV(N) },
    [0x88] = { S(M), K(RM_REG), Z(B), A(PL), H(mov_rm_r), NV(N) },
    [0x89] = { S(M), K(RM_REG), Z(V), A(PL), H(mov_rm_r), NV(N) },
    [0x8a] = { S(M), K(REG_RM), Z(B), A(PL), H(mov_r_rm), NV(N) },
    [0x8b] = { S(M), K(REG_RM), Z(V), A(PL), H(mov_r_rm), NV(N) },
    [0x8c] = { S(M), K(RM_REG), Z(W), A(PL), H(mov_rm_sreg) },
    [0x8d] = { S(M), K(REG_RM), Z(V), A(PL), H(lea), NV(N | NAT_MEM) },
    [0x8e] = { S(M), K(REG_RM), Z(W), SE(SENS_SEG), H(mov_sreg_rm), G(grp_mov_sreg) },
    [0x8f] = { S(M), K(RM), Z(V), H(pop_rm), G(grp1a) },
    [0x90] = { A(PL), H(nop), NV(N) },
    [0x91 ... 0x97] = { K(OPREG), Z(V), A(PL), IM(rA), IW(rA), H(xchg_acc_r) },
    [0x98] = { Z(V), A(PL), IM(rA), IW(rA), H(cbw), NV(N32) },
    [0x99] = { Z(V), A(PL), IM(rA | rD), IW(rD), H(cwd), NV(N32) },
    [0x9a] = { S(I_P), K(FAR), A(EB), IM(rSP), IW(rSP), SE(SENS_SEG), H(call_far), FW(F_ALL) },
    [0x9b] = { A(PL), SE(SENS_FPU), H(fwait) },
    [0x9c] = { Z(V), A(PL), IM(rSP), IW(rSP), SE(SENS_IF), H(pushf), FR(F_PUSHED), NV(N32) },
    [0x9d] = { Z(V), A(EB | PL), IM(rSP), IW(rSP), SE(SENS_IF), H(popf), FW(F_PUSHED) },
    [0x9e] = { A(PL), IM(rA), H(sahf), FW(F_SAHF) },
    [0x9f] = { A(PL), IM(rA), IW(rA), H(lahf), FR(F_SAHF) },
    [0xa0] = { S(I_A), K(MOFFS), Z(B), A(PL), IM(rA), IW(rA), H(mov_acc_moffs), NV(N | NAT_ADDR32) },
    [0xa1] = { S(I_A), K(MOFFS), Z(V), A(PL), IM(rA), IW(rA), H(mov_acc_moffs), NV(N | NAT_ADDR32) },
    [0xa2] = { S(I_A), K(MOFFS), Z(B), A(PL), IM(rA), H(mov_moffs_acc), NV(N | NAT_ADDR32) },
    [0xa3] = { S(I_A), K(MOFFS), Z(V), A(PL), IM(rA), H(mov_moffs_acc), NV(N | NAT_ADDR32) },
    /* Native strings: REP MOVS, STOS with or without REP, one LODS. */
    STR_ROWS(0xa4, string, 0, 0, rSI | rDI | rC, rSI | rDI | rC, 0, PL, N | NAT_ADDR32 | NAT_REP),   /* MOVS */
    STR_ROWS(0xa6, string, 0, F_ARITH, rSI | rDI | rC, rSI | rDI | rC, 0, PL, 0),   /* CMPS (REPE/REPNE read ZF) */
    [0xa8] = { S(I_B), K(ACC_IMM), Z(B), A(PL), IM(rA), H(test_acc_imm), FW(F_ARITH), FU(F_LOGIC_U), NV(N) },
    [0xa9] = { S(I_Z), K(ACC_IMM), Z(V), A(PL), IM(rA), H(test_acc_imm), FW(F_ARITH), FU(F_LOGIC_U), NV(N) },
    STR_ROWS(0xaa, string, 0, 0, rA | rDI | rC, rDI | rC, 0, PL, N | NAT_ADDR32),                    /* STOS */
    STR_ROWS(0xac, string, 0, 0, rA | rSI | rC, rA | rSI | rC, 0, PL, N | NAT_ADDR32 | NAT_NO_REP), /* LODS */
    STR_ROWS(0xae, string, 0, F_ARITH, rA | rDI | rC, rDI | rC, 0, PL, 0),                            /* SCAS */
    [0xb0 ... 0xb7] = { S(I_B), K(OPREG_IMM), Z(B), A(PL), H(mov_r8_imm), NV(N) },
    [0xb8 ... 0xbf] = { S(I_Z), K(OPREG_IMM), Z(V), A(PL), H(mov_r_imm), NV(N) },
    [0xc0] = { S(M | I_B), K(RM_IMM), Z(B), H(shift), G(grp2_b_imm) },
    [0xc1] = { S(M | I_B), K(RM_IMM), Z(V), H(shift), G(grp2_v_imm) },
    [0xc2] = { S(I_W), K(IMM), Z(V), A(EB), IM(rSP), IW(rSP), H(ret_near), NV(N32) },
    [0xc3] = { Z(V), A(EB), IM(rSP), IW(rSP), H(ret_near), NV(N32) },
    [0xc4] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(les) },
    [0xc5] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lds) },
    [0xc6] = { S(M | I_B), K(RM_IMM), Z(B), H(mov_rm_imm), G(grp11_b) },
    [0xc7] = { S(M | I_Z), K(RM_IMM), Z(V), H(mov_rm_imm), G(grp11_v) },
    [0xc8] = { S(I_WB), K(IMM), Z(V), A(PL), IM(rSP | rBP), IW(rSP | rBP), H(enter) },
    [0xc9] = { Z(V), A(PL), IM(rSP | rBP), IW(rSP | rBP), H(leave), NV(N32) },
    [0xca] = { S(I_W), K(IMM), Z(V), A(EB), IM(rSP), IW(rSP), SE(SENS_SEG), H(ret_far) },
    [0xcb] = { Z(V), A(EB), IM(rSP), IW(rSP), SE(SENS_SEG), H(ret_far) },
    [0xcc] = { A(EB), IM(rSP), IW(rSP), SE(SENS_INT), H(int3), FW(F_INT_W) },
    [0xcd] = { S(I_B), K(IMM), A(EB), IM(rSP), IW(rSP), SE(SENS_INT), H(int_imm), FW(F_INT_W) },
    [0xce] = { A(EB), IM(rSP), IW(rSP), SE(SENS_INT), H(into), FR(FL_OF), FW(F_INT_W) },
    [0xcf] = { Z(V), A(EB), IM(rSP), IW(rSP), SE(SENS_INT | SENS_SEG | SENS_IF), H(iret), FW(F_ALL) },
    [0xd0] = { S(M), K(RM), Z(B), H(shift), G(grp2_b_1) },
    [0xd1] = { S(M), K(RM), Z(V), H(shift), G(grp2_v_1) },
    [0xd2] = { S(M), K(RM), Z(B), IM(rC), H(shift), G(grp2_b_cl) },
    [0xd3] = { S(M), K(RM), Z(V), IM(rC), H(shift), G(grp2_v_cl) },
    [0xd4] = { S(I_B), K(IMM), A(PL), IM(rA), IW(rA), H(aam), FW(F_ARITH), FU(FL_OF | FL_AF | FL_CF) },
    [0xd5] = { S(I_B), K(IMM), A(PL), IM(rA), IW(rA), H(aad), FW(F_ARITH), FU(FL_OF | FL_AF | FL_CF) },
    [0xd6] = { A(PL), IM(rA), IW(rA), H(salc), FR(FL_CF) },
    [0xd7] = { Z(B), A(PL), IM(rA | rB), IW(rA), H(xlat) },
    /* x87: FCMOVcc (DA, DB) read, FCOMI/FUCOMI (DB, DF) write ZF PF CF. */
    [0xd8 ... 0xdf] = { S(M), K(RM), A(PL), SE(SENS_FPU), H(fpu) },
    [0xda] = { S(M), K(RM), A(PL), SE(SENS_FPU), H(fpu), FR(FL_CF | FL_ZF | FL_PF) },
    [0xdb] = { S(M), K(RM), A(PL), SE(SENS_FPU), H(fpu), FR(FL_CF | FL_ZF | FL_PF), FW(FL_ZF | FL_PF | FL_CF) },
    [0xdf] = { S(M), K(RM), A(PL), SE(SENS_FPU), H(fpu), FW(FL_ZF | FL_PF | FL_CF) },
    [0xe0] = { S(I_B), K(REL), A(EB), IM(rC), IW(rC), H(loop), FR(FL_ZF) },
    [0xe1] = { S(I_B), K(REL), A(EB), IM(rC), IW(rC), H(loop), FR(FL_ZF) },
    [0xe2] = { S(I_B), K(REL), A(EB), IM(rC), IW(rC), H(loop) },
    [0xe3] = { S(I_B), K(REL), A(EB), IM(rC), H(jcxz) },
    [0xe4] = { S(I_B), K(PORT), Z(B), IM(rA), IW(rA), SE(SENS_IO), H(in) },
    [0xe5] = { S(I_B), K(PORT), Z(V), IM(rA), IW(rA), SE(SENS_IO), H(in) },
    [0xe6] = { S(I_B), K(PORT), Z(B), IM(rA), SE(SENS_IO), H(out) },
    [0xe7] = { S(I_B), K(PORT), Z(V), IM(rA), SE(SENS_IO), H(out) },
    [0xe8] = { S(I_Z), K(REL), Z(V), A(EB), IM(rSP), IW(rSP), H(call_near), NV(N32) },
    [0xe9] = { S(I_Z), K(REL), A(EB), H(jmp_near), NV(N) },
    [0xea] = { S(I_P), K(FAR), A(EB), SE(SENS_SEG), H(jmp_far), FW(F_ALL) },
    [0xeb] = { S(I_B), K(REL), A(EB), H(jmp_short), NV(N) },
    [0xec] = { K(PORT), Z(B), IM(rA | rD), IW(rA), SE(SENS_IO), H(in) },
    [0xed] = { K(PORT), Z(V), IM(rA | rD), IW(rA), SE(SENS_IO), H(in) },
    [0xee] = { K(PORT), Z(B), IM(rA | rD), SE(SENS_IO), H(out) },
    [0xef] = { K(PORT), Z(V), IM(rA | rD), SE(SENS_IO), H(out) },
    [0xf0] = { H(unimpl) }, [0xf2] = { H(unimpl) }, [0xf3] = { H(unimpl) },   /* prefixes */
    [0xf1] = { A(EB), IM(rSP), IW(rSP), SE(SENS_INT), H(icebp), FW(F_INT_W) },
    [0xf4] = { A(EB), SE(SENS_HLT), H(hlt) },
    [0xf5] = { A(PL), H(cmc), FR(FL_CF), FW(FL_CF) },
    [0xf6] = { S(M | I_G3), K(RM), Z(B), H(test_rm_imm), G(grp3_b) },
    [0xf7] = { S(M | I_G3), K(RM), Z(V), H(test_rm_imm), G(grp3_v) },
    [0xf8] = { A(PL), H(clc), FW(FL_CF) },
    [0xf9] = { A(PL), H(stc), FW(FL_CF) },
    /* CLI/STI: native at CPL 0 (else their stub); plain, STI with bt's guard */
    [0xfa] = { A(PL), SE(SENS_IF), H(cli), FW(FL_IF), NV(N) },
    [0xfb] = { A(PL), SE(SENS_IF), H(sti), FW(FL_IF), NV(N) },
    [0xfc] = { A(PL), H(cld), FW(FL_DF), NV(N) },
    [0xfd] = { A(PL), H(std), FW(FL_DF), NV(N) },
    [0xfe] = { S(M), K(RM), Z(B), H(inc_rm), G(grp4) },
    [0xff] = { S(M), K(RM), Z(V), H(inc_rm), G(grp5) },

    /* ---- 0F map ---- (rows the emulated CPU lacks keep the shape CPUs that
     * define them give them: see the note above the shapes) */
    [0x100 ... 0x1ff] = { S(X), H(unimpl) },
    [0x100] = { S(M), K(RM), Z(W), A(EB), SE(SENS_SEG), H(sldt_str), G(grp6) },
    [0x101] = { S(M), K(RM), A(EB), SE(SENS_SEG), H(sgdt_sidt), G(grp7) },
    [0x102] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lar_lsl), FW(FL_ZF) },
    [0x103] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lar_lsl), FW(FL_ZF) },
    [0x106] = { A(EB), SE(SENS_CR), H(clts) },
    [0x108] = { SE(SENS_CR), H(invd) },
    [0x109] = { SE(SENS_CR), H(invd) },
    [0x10b] = { A(EB), H(ud) },                                      /* UD2 */
    [0x10d] = { S(MX) }, [0x10f] = { S(MX | I_B) },                  /* 3DNow! prefetch / ops */
    [0x110 ... 0x117] = { S(MX) },
    [0x118 ... 0x11f] = { S(M), K(RM), H(hint_nop) },
    [0x120] = { S(M | FORCE_REG), K(RM_REG), Z(D), A(EB | PL), SE(SENS_CR), H(mov_from_cr) },
    [0x121] = { S(M | FORCE_REG), K(RM_REG), Z(D), A(EB | PL), SE(SENS_CR), H(mov_from_dr) },
    [0x122] = { S(M | FORCE_REG), K(REG_RM), Z(D), A(EB), SE(SENS_CR), H(mov_to_cr) },
    [0x123] = { S(M | FORCE_REG), K(REG_RM), Z(D), A(EB), SE(SENS_CR), H(mov_to_dr) },
    [0x124] = { S(MX | FORCE_REG) }, [0x126] = { S(MX | FORCE_REG) },   /* MOV TRn (386/486) */
    [0x128 ... 0x12f] = { S(MX) },
    [0x130] = { A(EB), IM(rA | rC | rD), SE(SENS_MSR), H(wrmsr) },
    [0x131] = { A(PL), IM(rA | rD), IW(rA | rD), SE(SENS_MSR), H(rdtsc) },
    [0x132] = { IM(rA | rC | rD), IW(rA | rD), SE(SENS_MSR), H(rdmsr) },
    [0x133] = { IM(rA | rC | rD), IW(rA | rD), SE(SENS_MSR), H(unimpl) },       /* RDPMC: not emulated */
    [0x134] = { A(EB), IM(rSP), IW(rSP), SE(SENS_MSR | SENS_SEG), H(sysenter), FW(FL_VM | FL_IF | FL_RF) },
    [0x135] = { A(EB), IM(rC | rD | rSP), IW(rSP), SE(SENS_MSR | SENS_SEG), H(sysexit) },
    CC_ROWS(0x140, S(M), K(REG_RM), Z(V), A(PL), H(cmovcc), NV(N32)),
    [0x150 ... 0x16f] = { S(MX) },
    [0x170 ... 0x173] = { S(MX | I_B) }, [0x174 ... 0x176] = { S(MX) },
    [0x178] = { S(MX) }, [0x179] = { S(MX) }, [0x17c ... 0x17f] = { S(MX) },
    CC_ROWS(0x180, S(I_Z), K(REL), A(EB), H(jcc_near), NV(N)),
    CC_ROWS(0x190, S(M), K(RM), Z(B), A(PL), H(setcc), NV(N)),
    [0x1a0] = { Z(W), A(PL), IM(rSP), IW(rSP), H(push_fs) },
    [0x1a1] = { Z(W), A(PL), IM(rSP), IW(rSP), SE(SENS_SEG), H(pop_fs) },
    [0x1a2] = { A(PL), IM(rA | rC | rD | rB), IW(rA | rC | rD | rB), SE(SENS_MSR), H(cpuid) },
    /* BT* r/m, reg: a register operand's bit offset wraps, a memory one's reaches
     * far; the translator does the latter at 32 bits only. */
    [0x1a3] = { S(M), K(RM_REG), Z(V), A(PL | UK), H(bt_reg), FW(FL_CF | F_BT_U), FU(F_BT_U),
                NV(N | NAT_MEM_OP32) },
    /* SHLD/SHRD: native at 32 bits (16-bit counts above 16 are undefined on the host) */
    [0x1a4] = { S(M | I_B), K(REG_RM_IMM), Z(V), A(PL | CN), H(shld_shrd), FW(F_ARITH), FU(FL_AF | FL_OF), NV(N32) },
    [0x1a5] = { S(M), K(RM_REG), Z(V), A(PL | CN), IM(rC), H(shld_shrd), FW(F_ARITH), FU(FL_AF | FL_OF), NV(N32) },
    [0x1a6] = { S(MX) }, [0x1a7] = { S(MX) },
    [0x1a8] = { Z(W), A(PL), IM(rSP), IW(rSP), H(push_gs) },
    [0x1a9] = { Z(W), A(PL), IM(rSP), IW(rSP), SE(SENS_SEG), H(pop_gs) },
    [0x1ab] = { S(M), K(RM_REG), Z(V), A(LK | PL | UK), H(bt_reg), FW(FL_CF | F_BT_U), FU(F_BT_U),
                NV(N | NAT_MEM_OP32) },
    [0x1ac] = { S(M | I_B), K(REG_RM_IMM), Z(V), A(PL | CN), H(shld_shrd), FW(F_ARITH), FU(FL_AF | FL_OF), NV(N32) },
    [0x1ad] = { S(M), K(RM_REG), Z(V), A(PL | CN), IM(rC), H(shld_shrd), FW(F_ARITH), FU(FL_AF | FL_OF), NV(N32) },
    [0x1ae] = { S(M), K(RM), SE(SENS_FPU), H(fpu) },                /* FXSAVE/FXRSTOR */
    [0x1af] = { S(M), K(REG_RM), Z(V), A(PL), H(imul_r_rm), FW(F_ARITH), FU(F_MUL_U), NV(N) },
    [0x1b0] = { S(M), K(RM_REG), Z(B), A(LK | PL), IM(rA), IW(rA), H(cmpxchg), FW(F_ARITH), NV(N | NAT_VIA_EAX) },
    [0x1b1] = { S(M), K(RM_REG), Z(V), A(LK | PL), IM(rA), IW(rA), H(cmpxchg), FW(F_ARITH), NV(N | NAT_VIA_EAX) },
    [0x1b2] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lss) },
    [0x1b3] = { S(M), K(RM_REG), Z(V), A(LK | PL | UK), H(bt_reg), FW(FL_CF | F_BT_U), FU(F_BT_U),
                NV(N | NAT_MEM_OP32) },
    [0x1b4] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lfs) },
    [0x1b5] = { S(M), K(REG_RM), Z(V), SE(SENS_SEG), H(lgs) },
    [0x1b6] = { S(M), K(REG_RM), Z(V), A(PL), H(movzx8), NV(N) },
    [0x1b7] = { S(M), K(REG_RM), Z(V), A(PL), H(movzx16), NV(N) },
    [0x1b8] = { S(MX) }, [0x1b9] = { S(MX) },                        /* POPCNT, UD1 */
    [0x1ba] = { S(M | I_B), K(RM_IMM), Z(V), H(bt_imm), G(grp8) },
    [0x1bb] = { S(M), K(RM_REG), Z(V), A(LK | PL | UK), H(bt_reg), FW(FL_CF | F_BT_U), FU(F_BT_U),
                NV(N | NAT_MEM_OP32) },
    [0x1bc] = { S(M), K(REG_RM), Z(V), A(PL), H(bsf_bsr), FW(F_ARITH), FU(F_ARITH & ~FL_ZF) },
    [0x1bd] = { S(M), K(REG_RM), Z(V), A(PL), H(bsf_bsr), FW(F_ARITH), FU(F_ARITH & ~FL_ZF) },
    [0x1be] = { S(M), K(REG_RM), Z(V), A(PL), H(movsx8), NV(N) },
    [0x1bf] = { S(M), K(REG_RM), Z(V), A(PL), H(movsx16), NV(N) },
    [0x1c0] = { S(M), K(RM_REG), Z(B), A(LK | PL), H(xadd), FW(F_ARITH), NV(N) },
    [0x1c1] = { S(M), K(RM_REG), Z(V), A(LK | PL), H(xadd), FW(F_ARITH), NV(N) },
    [0x1c2] = { S(MX | I_B) }, [0x1c3] = { S(MX) },
    [0x1c4 ... 0x1c6] = { S(MX | I_B) },
    [0x1c7] = { S(M), K(RM), H(cmpxchg8b), G(grp9) },
    [0x1c8 ... 0x1cf] = { K(OPREG), Z(D), A(PL), H(bswap), NV(N32) },
    [0x1d0 ... 0x1ff] = { S(MX) },
    /* The XMM data moves (MOVUPS/MOVAPS/MOVDQA/MOVDQU/MOVSS/MOVSD), which
     * kvm-unit-tests' emulator test runs whatever CPUID says: fpu_sse_move. */
    [0x110] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
    [0x111] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
    [0x128] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
    [0x129] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
    [0x16f] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
    [0x17f] = { S(M), K(RM), SE(SENS_FPU), H(sse_move) },
};

#pragma GCC diagnostic pop

/* 16-bit addressing: rm -> (base, index), mod 0 rm 6 is disp16 alone. */
static const int8_t ea16_base[8] = { R_EBX, R_EBX, R_EBP, R_EBP, R_ESI, R_EDI, R_EBP, R_EBX };
static const int8_t ea16_index[8] = { R_ESI, R_EDI, R_ESI, R_EDI, -1, -1, -1, -1 };

static int prefix_segment(uint8_t b)
{
    switch (b) {
    case 0x26: return SEG_ES;
    case 0x2e: return SEG_CS;
    case 0x36: return SEG_SS;
    case 0x3e: return SEG_DS;
    case 0x64: return SEG_FS;
    case 0x65: return SEG_GS;
    default: return -1;
    }
}

/*
 * The instruction needs bytes up to buf[need - 1] and they are not all there
 * (or not all allowed): past 15 bytes it is #GP whatever follows, so the
 * caller must not go fetching (and faulting on) a 16th byte.
 */
static int short_of(int need, int avail)
{
    if (need > INSN_MAX_LEN)
        return DECODE_TOO_LONG;
    return need > avail ? DECODE_NEED_MORE : 0;
}

/* Little-endian fetch of n bytes; the caller has checked they are there. */
static uint32_t take(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int k = n - 1; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static int32_t sign_extend(uint32_t v, int bytes)
{
    if (bytes == 1)
        return (int8_t)v;
    if (bytes == 2)
        return (int16_t)v;
    return (int32_t)v;
}

/* Parse ModRM/SIB/displacement starting at buf[pos]; returns the new pos or < 0. */
static int decode_modrm(const uint8_t *buf, int pos, int avail, struct insn *in, bool force_reg)
{
    int err;
    if ((err = short_of(pos + 1, avail)))
        return err;
    uint8_t m = buf[pos++];
    in->has_modrm = true;
    in->modrm = m;
    in->mod = force_reg ? 3 : m >> 6;
    in->reg = (m >> 3) & 7;
    in->rm = m & 7;
    in->ea_base = in->ea_index = -1;
    in->ea_scale = 0;
    in->disp = 0;
    if (in->mod == 3)
        return pos;

    int disp_bytes = 0;
    int8_t def_seg = SEG_DS;
    if (!in->addr32) {
        if (in->mod == 0 && in->rm == 6) {
            disp_bytes = 2;
        } else {
            in->ea_base = ea16_base[in->rm];
            in->ea_index = ea16_index[in->rm];
            if (in->ea_base == R_EBP)
                def_seg = SEG_SS;
            disp_bytes = in->mod == 1 ? 1 : in->mod == 2 ? 2 : 0;
        }
    } else {
        int base = in->rm;
        if (in->rm == 4) {
            if ((err = short_of(pos + 1, avail)))
                return err;
            uint8_t sib = buf[pos++];
            int idx = (sib >> 3) & 7;
            in->ea_scale = sib >> 6;
            in->ea_index = idx == 4 ? -1 : idx;
            base = sib & 7;
        }
        if (in->mod == 0 && base == 5) {
            disp_bytes = 4;
        } else {
            in->ea_base = base;
            if (base == R_ESP || base == R_EBP)
                def_seg = SEG_SS;
            disp_bytes = in->mod == 1 ? 1 : in->mod == 2 ? 4 : 0;
        }
    }
    if ((err = short_of(pos + disp_bytes, avail)))
        return err;
    in->disp = sign_extend(take(buf + pos, disp_bytes), disp_bytes);
    pos += disp_bytes;
    in->ea_seg = in->seg >= 0 ? in->seg : def_seg;
    return pos;
}

static int immediate_bytes(uint8_t flags, const struct insn *in, int *second)
{
    int z = in->op32 ? 4 : 2;
    *second = 0;
    switch (IMM_KIND(flags)) {
    case I_B: return 1;
    case I_W: return 2;
    case I_Z: return z;
    case I_A: return in->addr32 ? 4 : 2;
    case I_P: *second = 2; return z;
    case I_WB: *second = 1; return 2;
    case I_G3: return in->reg <= 1 ? (in->op == 0xf6 ? 1 : z) : 0;
    default: return 0;
    }
}

int decode(const uint8_t *buf, int avail, bool code32, struct insn *in)
{
    memset(in, 0, sizeof(*in));
    in->seg = -1;
    in->ea_seg = SEG_DS;
    in->ea_base = in->ea_index = -1;
    int pos = 0;
    bool opsize = false, adsize = false;

    int err;
    for (;;) {
        if ((err = short_of(pos + 1, avail)))
            return err;
        uint8_t b = buf[pos];
        int s = prefix_segment(b);
        if (s >= 0)
            in->seg = s;
        else if (b == 0x66)
            opsize = true;
        else if (b == 0x67)
            adsize = true;
        else if (b == 0xf0)
            in->prefixes |= PFX_LOCK;
        else if (b == 0xf2)
            in->prefixes = (in->prefixes & ~PFX_REP) | PFX_REPNE;
        else if (b == 0xf3)
            in->prefixes = (in->prefixes & ~PFX_REPNE) | PFX_REP;
        else
            break;
        pos++;
    }
    if (opsize)
        in->prefixes |= PFX_OPSIZE;
    if (adsize)
        in->prefixes |= PFX_ADSIZE;
    in->op32 = code32 ^ opsize;
    in->addr32 = code32 ^ adsize;

    uint8_t flags;
    uint8_t b = buf[pos++];
    if (b == 0x0f) {
        if ((err = short_of(pos + 1, avail)))
            return err;
        b = buf[pos++];
        in->op = 0x100 | b;
        flags = opinfo_table[0x100 | b].shape;
        /* Three-byte maps (SSSE3 and later): decode the length, never execute. */
        if (b == 0x38 || b == 0x3a) {
            if ((err = short_of(pos + 1, avail)))
                return err;
            pos++;
            flags = M | X | (b == 0x3a ? I_B : 0);
        }
    } else {
        in->op = b;
        flags = opinfo_table[b].shape;
    }
    in->invalid = flags & X;

    if (flags & M) {
        pos = decode_modrm(buf, pos, avail, in, flags & FORCE_REG);
        if (pos < 0)
            return pos;
    }
    int second;
    int n = immediate_bytes(flags, in, &second);
    if ((err = short_of(pos + n + second, avail)))
        return err;
    in->imm = take(buf + pos, n);
    in->imm_size = n;
    pos += n;
    in->imm2 = take(buf + pos, second);
    pos += second;
    in->len = pos;
    return pos;
}
