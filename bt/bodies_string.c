/*
 * Instruction bodies, strings: STOS/LODS, and REP MOVS/STOS a page at a
 * time through the host's own REP MOVS/STOS.
 */
#include "bt/native_internal.h"

/* ecx = +size, or -size when EFLAGS.DF is set (string index step). */
static void emit_string_delta_ecx(struct emitter *e, int size)
{
    emit_u8(e, 0x8b);                                          /* mov ecx, [rbx+eflags] */
    modrm_rbx(e, H_RCX, OFF_FLAGS);
    emit_u8(e, 0xc1); emit_u8(e, 0xe9); emit_u8(e, 10);        /* shr ecx, 10 */
    emit_u8(e, 0x83); emit_u8(e, 0xe1); emit_u8(e, 1);         /* and ecx, 1 */
    emit_u8(e, 0x6b); emit_u8(e, 0xc9); emit_u8(e, (uint8_t)(-2 * size));   /* imul ecx, ecx, -2*size */
    emit_u8(e, 0x83); emit_u8(e, 0xc1); emit_u8(e, size);      /* add ecx, size */
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
    emit_op(e, 4, 0x01, H_RCX, idx);                           /* add idx, ecx */
}

/* ecx = min(ecx, the whole elements of 1 << shift bytes from the flat
 * offset in `idx` to the end of its page). */
static void emit_min_page_room(struct emitter *e, int idx, int shift)
{
    emit_mov_rr32(e, H_RAX, idx);
    emit_u8(e, 0x25); emit_u32(e, PAGE_SIZE - 1);              /* and eax, 0xfff */
    emit_u8(e, 0x2d); emit_u32(e, PAGE_SIZE);                  /* sub eax, 4096 */
    emit_u8(e, 0xf7); emit_u8(e, 0xd8);                        /* neg eax: bytes left in the page */
    if (shift) {
        emit_u8(e, 0xc1); emit_u8(e, 0xe8); emit_u8(e, (uint8_t)shift);   /* shr eax, shift */
    }
    emit_u8(e, 0x39); emit_u8(e, 0xc1);                        /* cmp ecx, eax */
    emit_u8(e, 0x0f); emit_u8(e, 0x47); emit_u8(e, 0xc8);      /* cmova ecx, eax */
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
    emit_op(e, 4, 0x85, ecx, ecx);                             /* test ecx, ecx */
    uint8_t *none = emit_jcc32(e, CC_E);
    emit_u8(e, 0xf7); modrm_rbx(e, 0, OFF_FLAGS); emit_u32(e, FL_DF);   /* test dword [rbx+eflags], DF */
    jump_to_stub(be, CC_NE);
    emit_op(e, 4, 0x81, EXT(7), ecx);                          /* cmp ecx, the most elements */
    emit_u32(e, REP_NATIVE_BYTES >> shift);
    jump_to_stub(be, CC_A);
    uint8_t *round = e->p;
    emit_mov_rr32(e, H_RCX, ecx);
    emit_min_page_room(e, edi, shift);
    if (movs)
        emit_min_page_room(e, esi, shift);
    emit_u8(e, 0x85); emit_u8(e, 0xc9);                        /* test ecx, ecx: an element across pages */
    jump_to_stub(be, CC_E);
    emit_mov_rr32(e, H_RAX, edi);
    emit_tlb_lookup(be, H_RAX, 1, true);
    emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xd7);      /* mov rdi, rdx */
    if (movs) {
        emit_mov_rr32(e, H_RAX, esi);
        emit_tlb_lookup(be, H_RAX, 1, false);
        emit_u8(e, 0x48); emit_u8(e, 0x89); emit_u8(e, 0xd6);  /* mov rsi, rdx */
    } else {
        emit_mov_rr32(e, H_RAX, hreg(R_EAX));
    }
    emit_mov_rr32(e, H_RDX, H_RCX);
    if (shift) {
        emit_u8(e, 0xc1); emit_u8(e, 0xe2); emit_u8(e, (uint8_t)shift);   /* shl edx, shift: the bytes */
    }
    emit_op(e, 4, 0x29, H_RCX, ecx);                           /* sub ecx, the round's elements */
    emit_u8(e, 0xf3);                                          /* rep movs/stos */
    if (size == 2)
        emit_u8(e, 0x66);
    emit_u8(e, (uint8_t)op);
    if (movs)
        emit_op(e, 4, 0x01, H_RDX, esi);                       /* add esi, edx */
    emit_op(e, 4, 0x01, H_RDX, edi);                           /* add edi, edx */
    emit_regs_store(e, 1u << R_ECX | 1u << R_EDI | (movs ? 1u << R_ESI : 0));
    emit_op(e, 4, 0x85, ecx, ecx);                             /* test ecx, ecx */
    emit_patch_rel32(emit_jcc32(e, CC_NE), round);
    emit_patch_rel32(none, e->p);
}
