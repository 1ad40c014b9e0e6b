/*
 * Operands and probes: effective addresses in host registers, the inline
 * memory probe (segment, software TLB, host pointer; the flag-keeping BMI2
 * variant), r/m operands of native instructions, and base-register page
 * caching (the entry checks that let [reg + disp] operands skip the probe).
 */
#include "bt/native_internal.h"

/* lea eax, [guest register's host register + d] (flags kept); `wide`:
 * lea rax, the sum without wrapping at 4 GiB. */
void emit_lea_eax(struct emitter *e, int guest, int32_t d, bool wide)
{
    int r = hreg(guest);
    if (wide)
        emit_lea_r64_m(e, H_RAX, mem_at(r, d));
    else
        emit_lea_r32_m(e, H_RAX, mem_at(r, d));
}

/* dst (a host register, 32 bits) = effective offset of the memory operand
 * (32-bit addressing): lea dst, [base + index << scale + disp32], always
 * with a SIB byte. */
void emit_ea_to(struct emitter *e, const struct insn *in, int dst)
{
    if (in->ea_base < 0 && in->ea_index < 0) {
        emit_mov_r32_imm32(e, dst, (uint32_t)in->disp);
        return;
    }
    int base = in->ea_base >= 0 ? hreg(in->ea_base) : -1;
    int index = in->ea_index >= 0 ? hreg(in->ea_index) : -1;
    emit_lea_r32_m(e, dst, mem_sib(base, index, in->ea_scale & 3, in->disp, MEM_DISP32_SIB));

}

void emit_ea(struct emitter *e, const struct insn *in)
{
    emit_ea_to(e, in, H_RAX);
}

_Static_assert(sizeof(struct tlb_entry) == 32, "translated code indexes the TLB by shifting");

/* edx = byte offset of the TLB entry for the linear address already in edx. */
void emit_tlb_index_edx(struct emitter *e)
{
    emit_shift_r32_imm8(e, SH_SHR, H_RDX, 12 - 5);
    emit_alu_r32_imm32(e, ALU_AND, H_RDX, (TLB_SIZE - 1) << 5);
}

/*
 * The TLB half of a probe: rdx = host address of `size` bytes at the linear
 * address in `lin` (RAX or RCX, kept), or a jump to the stub.  A hit needs
 * the tag of lin's entry to be the page of its last byte: the access does
 * not cross a page.  Clobbers esi.
 */
void emit_tlb_lookup(struct block_emit *be, int lin, int size, bool write)
{
    struct emitter *e = be->e;
    emit_mov_rr32(e, H_RDX, lin);
    emit_tlb_index_edx(e);
    emit_lea_r32_m(e, H_RSI, mem_at(lin, size - 1));
    emit_alu_r32_imm32(e, ALU_AND, H_RSI, PAGE_MASK);
    emit_alu_r32_m(e, ALU_CMP, H_RSI, mem_sib(H_RBX, H_RDX, 0, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)), MEM_DISP32));
    jump_to_stub(be, CC_NE);
    emit_mov_r64_m(e, H_RDX, mem_sib(H_RBX, H_RDX, 0, OFF_TLB(be->user, addend), MEM_DISP32));
    emit_alu_rr64(e, ALU_ADD, H_RDX, lin);
}

/* BMI2's shifts leave the flags alone: the flag-keeping probe needs them.
 * Without it (or when a test says so) deferred flags are captured before
 * every memory operand.  Each block is translated under one choice and
 * keeps it: deferred flags never cross a block boundary. */
static int flag_keeping_probe = -1;

void bt_set_flag_keeping_probe(bool want)
{
    flag_keeping_probe = want && __builtin_cpu_supports("bmi2");
}

static bool flag_keeping_probe_on(void)
{
    if (flag_keeping_probe < 0)
        bt_set_flag_keeping_probe(true);
    return flag_keeping_probe;
}

/*
 * emit_tlb_lookup for the linear address in `lin` (RAX or RDI, kept),
 * without changing the host flags (deferred guest flags live there): shifts
 * from BMI2, a subtraction by NOT and LEA, and JRCXZ for the test.
 * Clobbers ecx, esi.
 */
static void emit_tlb_lookup_keeping_flags(struct block_emit *be, int lin, int size, bool write)
{
    struct emitter *e = be->e;
    emit_rorx_r32(e, H_RDX, lin, (TLB_BITS + 12) & 31);      /* index bits on top */
    emit_mov_r32_imm32(e, H_RCX, 32 - TLB_BITS);
    emit_shrx(e, 0, H_RDX, H_RDX, H_RCX);                     /* the TLB index */
    emit_lea_r32_m(e, H_RDX, mem_sib(-1, H_RDX, 2, 0, MEM_DISP32));   /* (index * 32) / 8 */
    emit_lea_r32_m(e, H_RSI, mem_at(lin, size - 1));
    emit_mov_r32_imm32(e, H_RCX, 12);
    emit_shrx(e, 0, H_RSI, H_RSI, H_RCX);
    emit_shlx_r32(e, H_RSI, H_RSI, H_RCX);                    /* page of the last byte */
    emit_not_r32(e, H_RSI);
    emit_mov_r32_m(e, H_RCX, mem_sib(H_RBX, H_RDX, 3, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)), MEM_DISP32));
    emit_lea_r32_m(e, H_RCX, mem_sib(H_RCX, H_RSI, 0, 1, MEM_AUTO));   /* tag - page */
    emit_jrcxz(e, 5);                                         /* over the jump to the stub */
    add_stub_fixup(be, emit_jmp32(e));
    emit_mov_r64_m(e, H_RDX, mem_sib(H_RBX, H_RDX, 3, OFF_TLB(be->user, addend), MEM_DISP32));
    emit_lea_r64_m(e, H_RDX, mem_sib(H_RDX, lin, 0, 0, MEM_NODISP));
}

/* The instruction's operands that lie in pages checked at the block's entry. */
unsigned cached_operands(const struct block_emit *be)
{
    return (be->base_cached >= 0 ? CACHED_RM : 0) | (be->stack_cached ? CACHED_STACK : 0);
}

/* To the stub (which raises the #GP) when `size` bytes at offset eax
 * would wrap past 4 GiB.  Changes the host flags. */
static void emit_offset_wrap_check(struct block_emit *be, int size)
{
    if (size == 1)
        return;
    emit_alu_eax_imm32(be->e, ALU_CMP, (uint32_t)-size);
    jump_to_stub(be, CC_A);
}

/* FS or GS, 4 GiB by the block's key: its base is added, no other check. */
static bool based_4g(const struct block_emit *be, int sreg)
{
    return (sreg == SEG_FS && (be->flat_key & FLAT_FS)) || (sreg == SEG_GS && (be->flat_key & FLAT_GS));
}

/* Flat DS/ES/SS operands of a flat block, and 4 GiB FS/GS ones: the probe
 * can keep deferred flags. */
bool probe_keeps_flags(const struct block_emit *be, int sreg)
{
    return ((be->flat && (sreg == SEG_DS || sreg == SEG_ES || sreg == SEG_SS)) || based_4g(be, sreg)) &&
           flag_keeping_probe_on();
}

/*
 * edi = the linear address of `size` bytes at sreg:eax, FS or GS being a
 * 4 GiB segment, or a jump to the stub when the offset wraps past 4 GiB
 * (the interpreter raises the #GP).  `keep_flags`: without touching the
 * host's flags (BMI2's SHRX and JRCXZ test the carry out of bit 31).
 * Clobbers ecx, esi.
 */
static int emit_based_linear(struct block_emit *be, int sreg, int size, bool keep_flags)
{
    struct emitter *e = be->e;
    if (size > 1 && keep_flags) {
        emit_lea_r64_m(e, H_RCX, mem_at(H_RAX, size - 1));
        emit_mov_r32_imm32(e, H_RSI, 32);
        emit_shrx(e, 1, H_RCX, H_RCX, H_RSI);
        emit_jrcxz(e, 5);                                     /* over the jump to the stub */
        add_stub_fixup(be, emit_jmp32(e));
    } else {
        emit_offset_wrap_check(be, size);
    }
    emit_mov_r32_m(e, H_RDI, cpu_field(OFF_SEG(sreg, base)));
    emit_lea_r32_m(e, H_RDI, mem_sib(H_RDI, H_RAX, 0, 0, MEM_NODISP));
    return H_RDI;
}

/*
 * rdx = host address of `size` bytes at sreg:eax, or a jump to the stub.
 * Preserves eax; clobbers ecx, esi.  stack32 also requires a 32-bit SS.
 *
 * DS/ES/SS in a block translated for flat segments (base 0, 4 GiB limit,
 * writable, 32-bit stack: checked at lookup and kept by every instruction
 * until the first threaded one) need no segment check: offset = linear, and
 * a wrapping access crosses into a page the tag cannot match.
 */
void emit_probe(struct block_emit *be, int sreg, int size, bool write, bool stack32)
{
    be->rdx_addend = -1;
    struct emitter *e = be->e;
    bool based = based_4g(be, sreg);
    if (be->host_clear) {
        if (!probe_keeps_flags(be, sreg)) {
            fprintf(stderr, "retrovisor: bt: a probe would lose deferred flags\n");
            abort();
        }
        if (be->logic_reg >= 0) {
            emit_tlb_lookup(be, based ? emit_based_linear(be, sreg, size, false) : H_RAX, size, write);
            if (!be->logic_overwritten)
                emit_redo_logic_flags(e, be->logic_reg, be->logic_size);
            return;
        }
        emit_tlb_lookup_keeping_flags(be, based ? emit_based_linear(be, sreg, size, true) : H_RAX, size, write);
        return;
    }
    if (based) {
        emit_tlb_lookup(be, emit_based_linear(be, sreg, size, false), size, write);
        return;
    }
    if (be->flat && (sreg == SEG_DS || sreg == SEG_ES || sreg == SEG_SS)) {
        emit_tlb_lookup(be, H_RAX, size, write);
        return;
    }
    uint32_t mask = 0x9c | (write ? 2 : 0) | (stack32 ? SEG_ATTR_DB : 0);
    uint32_t want = 0x90 | (write ? 2 : 0) | (stack32 ? SEG_ATTR_DB : 0);
    emit_alu_m32_imm8(e, ALU_CMP, cpu_field(OFF_SEG(sreg, limit)), -1);
    jump_to_stub(be, CC_NE);
    emit_movzx_r32_m16(e, H_RCX, cpu_field(OFF_SEG(sreg, attr)));
    emit_alu_r32_imm32(e, ALU_AND, H_RCX, mask);
    emit_alu_r32_imm32(e, ALU_CMP, H_RCX, want);
    jump_to_stub(be, CC_NE);
    emit_offset_wrap_check(be, size);
    emit_mov_rr32(e, H_RCX, H_RAX);
    emit_alu_r32_m(e, ALU_ADD, H_RCX, cpu_field(OFF_SEG(sreg, base)));   /* linear address */
    emit_tlb_lookup(be, H_RCX, size, write);
}

/* The r/m operand: its guest register's host register, MEM_RDX after a
 * probe leaves the host address of the memory operand in rdx, or
 * MEM_COVERED. */
int emit_rm(struct block_emit *be, const struct insn *in, int size, bool write)
{
    struct emitter *e = be->e;
    if (in->mod != 3 && be->base_cached >= 0) {
        /* [reg + disp] in the page checked at the block's entry: no probe,
         * just the page's addend in rdx (which may still hold it) and
         * [rdx + reg + disp].  The host register's upper half is zero
         * (guest registers are only ever written as 32 bits or less), and
         * the entry check saw that reg + disp does not wrap, so the 64-bit
         * sum is the offset. */
        if (be->rdx_addend != be->base_cached) {
            emit_load_addend(e, be->base_cached);
            be->rdx_addend = be->base_cached;
        }
        e->mem_index = hreg(in->ea_base);
        e->mem_disp = in->disp;
        if (!(be->hi_regs & 1u << in->ea_base)) {
            emit_high_bytes_in(be);
            return MEM_COVERED;
        }
        /* The base is about to be rotated (mov bh, [ebx]): the address first. */
        emit_lea_r64_m(e, H_RDX, mem_sib(H_RDX, e->mem_index, 0, e->mem_disp, MEM_AUTO));
        be->rdx_addend = -1;
        emit_high_bytes_in(be);
        return MEM_RDX;
    }
    if (in->mod != 3) {
        emit_ea(e, in);
        emit_probe(be, in->ea_seg, size, write, false);
    }
    emit_high_bytes_in(be);
    return in->mod == 3 ? byte_or_hreg(in->rm, size) : MEM_RDX;
}


/*
 * Base-register page caching.  Compiled code addresses locals, arguments
 * and fields as [ESP + disp], [EBP + disp] or [reg + disp] again and again
 * in a block.  At the entry of a flat block, one check per such register
 * covers the range of its operands met before it is first written (and
 * before any threaded instruction): the range lies in one page the TLB maps
 * (for writes too if any of them writes), and that page's host - linear goes to
 * cpu.bt_base_addend.  Each covered operand is then 2 instructions
 * instead of a probe (see emit_rm).  The mapping cannot change meanwhile: only threaded
 * non-plain instructions (CR3, INVLPG, a map change) could, and coverage
 * ends before any threaded instruction.  A check that fails leaves at once
 * (nothing has run yet) with cpu.bt_nocache naming the block and
 * cpu.bt_nocache_reg the register: when that keeps happening, bt_run drops
 * the block and translates a variant that does not cache that register's
 * page, for good (the others' still are).
 */

int native_base_operand(const struct insn *in, int32_t *disp, bool *write)
{
    if (!in->has_modrm || in->mod == 3 || in->ea_index >= 0 || !native_supported(in) || high_byte_regs(in))
        return -1;
    if (in->ea_base < 0)
        return -1;
    if (in->ea_seg != SEG_DS && in->ea_seg != SEG_SS && in->ea_seg != SEG_ES)
        return -1;
    if (in->op == 0x8d)
        return -1;                             /* LEA does not access memory */
    if (in->op == 0x1c7 || in->op == 0x1a3 || in->op == 0x1ab || in->op == 0x1b3 || in->op == 0x1bb)
        return -1;                             /* 8 bytes, or an address the bit offset moves */
    *disp = in->disp;
    *write = writes_rm(in);
    return in->ea_base;
}

void native_emit_base_check(struct block_emit *be, int base, int32_t dmin, int32_t dmax, bool write)
{
    struct emitter *e = be->e;
    emit_lea_eax(e, base, dmin, true);
    emit_mov_rr32(e, H_RDX, H_RAX);
    emit_alu_rr64(e, ALU_CMP, H_RDX, H_RAX);   /* the range wraps at 4 GiB */
    be->base_miss_reg[be->nbase_miss] = base;
    be->base_miss[be->nbase_miss++] = emit_jcc32(e, CC_NE);
    emit_tlb_index_edx(e);
    emit_lea_r32_m(e, H_RSI, mem_d32(H_RAX, dmax - dmin));
    emit_alu_r32_imm32(e, ALU_AND, H_RSI, PAGE_MASK);
    emit_alu_r32_m(e, ALU_CMP, H_RSI, mem_sib(H_RBX, H_RDX, 0, (uint32_t)(write ? OFF_TLB(be->user, tag_write) : OFF_TLB(be->user, tag_read)), MEM_DISP32));
    be->base_miss_reg[be->nbase_miss] = base;
    be->base_miss[be->nbase_miss++] = emit_jcc32(e, CC_NE);
    emit_mov_r64_m(e, H_RDX, mem_sib(H_RBX, H_RDX, 0, OFF_TLB(be->user, addend), MEM_DISP32));
    emit_mov_m_r64(e, cpu_field((int32_t)(offsetof(struct cpu, bt_base_addend) + 8 * base)), H_RDX);
    be->rdx_addend = base;
}

/* A two-page block's entry check: the TLB maps its second linear page
 * (lin2, a constant in flat code) to the physical page it was translated from. */
void native_emit_page2_check(struct block_emit *be, uint32_t lin2, uint32_t phys2)
{
    emit_tlb_maps_check(be, lin2, phys2, be->page2_miss);
}
