/*
 * Instruction bodies, strings: STOS/LODS, and REP MOVS/STOS a page at a
 * time through the host's own REP MOVS/STOS.
 */
#include "bt/native_internal.h"

/* ecx = +size, or -size when EFLAGS.DF is set (string index step). */
static void emit_string_delta_ecx(struct emitter *e, int size)
{
    emit_mov_r32_m(e, H_RCX, cpu_field(OFF_FLAGS));
    emit_shift_r32_imm8(e, SH_SHR, H_RCX, 10);                /* DF */
    emit_alu_r32_imm8(e, ALU_AND, H_RCX, 1);
    emit_imul_r32_r32_imm8(e, H_RCX, H_RCX, (int8_t)(-2 * size));
    emit_alu_r32_imm8(e, ALU_ADD, H_RCX, (int8_t)size);
}

/* One STOS or LODS (no REP): ES:EDI or seg:ESI, then the index steps by DF. */
void emit_stos_lods(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    int size = (op & 1) ? opsize(in) : 1;
    bool stos = op <= 0xab;
    int idx = hreg(stos ? R_EDI : R_ESI);
    emit_mov_rr32(e, H_RAX, idx);
    emit_probe(be, stos ? SEG_ES : (in->seg >= 0 ? in->seg : SEG_DS), size, stos, false);
    emit_op(e, size, sized_op(stos ? 0x88 : 0x8a, size), hreg(R_EAX), MEM_RDX);
    emit_string_delta_ecx(e, size);
    emit_alu_rr32(e, ALU_ADD, idx, H_RCX);
}

/* ecx = min(ecx, the whole elements of 1 << shift bytes from the flat
 * offset in `idx` to the end of its page). */
static void emit_min_page_room(struct emitter *e, int idx, int shift)
{
    emit_mov_rr32(e, H_RAX, idx);
    emit_alu_eax_imm32(e, ALU_AND, PAGE_SIZE - 1);
    emit_alu_eax_imm32(e, ALU_SUB, PAGE_SIZE);
    emit_neg_r32(e, H_RAX);                                   /* bytes left in the page */
    if (shift)
        emit_shift_r32_imm8(e, SH_SHR, H_RAX, (uint8_t)shift);
    emit_alu_rr32(e, ALU_CMP, H_RCX, H_RAX);
    emit_cmovcc_rr32(e, CC_A, H_RCX, H_RAX);
}

/* At most this many bytes go through the native REP MOVS/STOS, a page at a
 * time; longer ones are the interpreter's, which lets interrupts in. */
#define REP_NATIVE_BYTES 0x10000u

/*
 * REP MOVS/STOS with DF=0: the host's own REP MOVS/STOS, as far as the
 * source and the destination stay in their pages, then again from the
 * next ones.  It gives the element-by-element result, overlap included.
 * After each round ECX, ESI and EDI are in struct cpu too, so a round that
 * cannot run (a TLB miss, a code page, MMIO, an element across pages) goes
 * to the stub, where the interpreter finishes the instruction.  DF=1, more
 * than REP_NATIVE_BYTES and segments that are not flat go there at once.
 */
void emit_rep_string(struct block_emit *be, const struct insn *in)
{
    struct emitter *e = be->e;
    int op = in->op;
    int size = (op & 1) ? opsize(in) : 1;
    int shift = size == 4 ? 2 : size == 2 ? 1 : 0;
    bool movs = op <= 0xa5;
    int src = in->seg >= 0 ? in->seg : SEG_DS;
    be->rdx_addend = -1;
    if (!be->flat || (movs && src != SEG_DS && src != SEG_ES && src != SEG_SS)) {
        add_stub_fixup(be, emit_jmp32(e));
        return;
    }
    int ecx = hreg(R_ECX), esi = hreg(R_ESI), edi = hreg(R_EDI);
    emit_test_rr32(e, ecx, ecx);
    uint8_t *none = emit_jcc32(e, CC_E);
    emit_test_m32_imm32(e, cpu_field(OFF_FLAGS), FL_DF);
    jump_to_stub(be, CC_NE);
    emit_alu_r32_imm32(e, ALU_CMP, ecx, REP_NATIVE_BYTES >> shift);   /* the most elements */
    jump_to_stub(be, CC_A);
    uint8_t *round = e->p;
    emit_mov_rr32(e, H_RCX, ecx);
    emit_min_page_room(e, edi, shift);
    if (movs)
        emit_min_page_room(e, esi, shift);
    emit_test_rr32(e, H_RCX, H_RCX);                           /* an element across pages */
    jump_to_stub(be, CC_E);
    emit_mov_rr32(e, H_RAX, edi);
    emit_tlb_lookup(be, H_RAX, 1, true);
    emit_mov_rr64(e, H_RDI, H_RDX);
    if (movs) {
        emit_mov_rr32(e, H_RAX, esi);
        emit_tlb_lookup(be, H_RAX, 1, false);
        emit_mov_rr64(e, H_RSI, H_RDX);
    } else {
        emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    }
    emit_mov_rr32(e, H_RDX, H_RCX);
    if (shift)
        emit_shift_r32_imm8(e, SH_SHL, H_RDX, (uint8_t)shift);   /* the bytes */
    emit_alu_rr32(e, ALU_SUB, ecx, H_RCX);                     /* the round's elements */
    emit_rep_string_op(e, size, (uint8_t)op);
    if (movs)
        emit_alu_rr32(e, ALU_ADD, esi, H_RDX);
    emit_alu_rr32(e, ALU_ADD, edi, H_RDX);
    emit_regs_store(e, 1u << R_ECX | 1u << R_EDI | (movs ? 1u << R_ESI : 0));
    emit_test_rr32(e, ecx, ecx);
    emit_patch_rel32(emit_jcc32(e, CC_NE), round);
    emit_patch_rel32(none, e->p);
}
