/*
 * Encoding helpers of the native translator: the ModRM forms it uses
 * ([rbx + disp] for struct cpu, [rdx] and [rdx + index + disp] for guest
 * memory, registers), sized opcodes and immediates, the guest-to-host
 * register map (hreg), moving guest registers between struct cpu and their
 * host registers, the block frame (prologue, epilogue) and instruction
 * counting.  The named one-instruction emitters are in bt/emit.h.
 */
#include "bt/native_internal.h"

void modrm_rbx(struct emitter *e, int reg, int32_t disp)
{
    emit_modrm_mem(e, reg, cpu_field(disp));
}

void modrm_rdx(struct emitter *e, int reg)
{
    emit_modrm_mem(e, reg, mem_ind(H_RDX));
}

/* Opcode of the 8-bit form, or of the 16/32-bit form one above it. */
uint8_t sized_op(uint8_t op8, int size)
{
    return size == 1 ? op8 : op8 + 1;
}

void emit_imm(struct emitter *e, uint32_t v, int size)
{
    if (size == 1)
        emit_u8(e, v);
    else if (size == 2) {
        emit_u8(e, v);
        emit_u8(e, v >> 8);
    } else
        emit_u32(e, v);
}

/* The host register holding guest register `guest` (0-7) inside a block. */
int hreg(int guest)
{
    static const int8_t map[8] = { H_R8, H_R9, H_R10, H_R12, H_R13, H_R14, H_R15, H_RBP };
    return map[guest & 7];
}

/* The host register of a guest register operand of `size`: AH..BH
 * (byte registers 4-7) are the rotated EAX..EBX (see high_byte_regs). */
int byte_or_hreg(int guest, int size)
{
    return hreg(size == 1 ? guest & 3 : guest);
}


/* ModRM, SIB and displacement of [rdx + e->mem_index + e->mem_disp] (the
 * index register's REX.X bit is the caller's). */
void modrm_covered(struct emitter *e, int reg)
{
    emit_modrm_mem(e, reg, mem_sib(H_RDX, e->mem_index, 0, e->mem_disp, MEM_AUTO));
}

/*
 * Prefixes, opcode (one byte, or 0x0fXX) and ModRM of `op reg, rm` at
 * `size`: reg is a host register or EXT(n); rm is a host register, MEM_RDX
 * or MEM_COVERED.  A byte operand in SPL..DIL needs a REX prefix to not
 * mean AH..BH.
 */
void emit_op(struct emitter *e, int size, unsigned opcode, int reg, int rm)
{
    bool reg_is_reg = !(reg & 0x100);
    int r = reg & 0xf;
    if (size == 2)
        emit_u8(e, 0x66);
    uint8_t rex = 0x40;
    if (reg_is_reg && (r & 8))
        rex |= 4;
    if (rm >= 0 && (rm & 8))
        rex |= 1;
    if (rm == MEM_COVERED && (e->mem_index & 8))
        rex |= 2;
    bool low_byte = size == 1 && ((reg_is_reg && r >= 4 && r < 8) || (rm >= 4 && rm < 8));
    if (rex != 0x40 || low_byte)
        emit_u8(e, rex);
    if (opcode > 0xff)
        emit_u8(e, opcode >> 8);
    emit_u8(e, opcode & 0xff);
    if (rm == MEM_RDX) {
        modrm_rdx(e, r);
    } else if (rm == MEM_COVERED) {
        modrm_covered(e, r);
    } else {
        emit_u8(e, 0xc0 | (r & 7) << 3 | (rm & 7));
    }
}

/* mov host, [rbx + disp] / mov [rbx + disp], host (32-bit) */
void emit_load_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_mov_r32_m(e, host, cpu_field(disp));
}

static void emit_store_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_mov_m_r32(e, cpu_field(disp), host);
}

/* The guest registers in `mask` from struct cpu into their host registers, and back. */
void emit_regs_load(struct emitter *e, unsigned mask)
{
    for (int r = 0; r < 8; r++)
        if (mask & 1u << r)
            emit_load_rbx(e, hreg(r), OFF_R(r));
}

void emit_regs_store(struct emitter *e, unsigned mask)
{
    for (int r = 0; r < 8; r++)
        if (mask & 1u << r)
            emit_store_rbx(e, hreg(r), OFF_R(r));
}

/* Before a path out of the block or into C: struct cpu gets the registers
 * written since they were loaded. */
void emit_spill(struct block_emit *be)
{
    emit_regs_store(be->e, be->regs_dirty);
}

/*
 * Every block has the same frame, so chained blocks jump into each other's
 * bodies: the callee-saved registers the guest registers live in, RBX = the
 * cpu, and an RSP aligned for calls into C.
 */
static const int saved_regs[6] = { H_RBX, H_RBP, H_R12, H_R13, H_R14, H_R15 };


void native_emit_prologue(struct emitter *e)
{
    for (int k = 0; k < 6; k++)
        emit_push(e, saved_regs[k]);
    emit_push(e, H_RAX);                       /* alignment */
    emit_mov_rr64(e, H_RBX, H_RDI);
    emit_mov_m_r64(e, cpu_field(OFF_HOST_RSP), H_RSP);
    emit_lea_r64_m(e, H_RAX, mem_d32(H_RSP, -(HOST_FRAMES_MAX * 16)));
    emit_mov_m_r64(e, cpu_field(OFF_HOST_RSP_FLOOR), H_RAX);
}

void native_emit_load_all(struct block_emit *be)
{
    emit_regs_load(be->e, NATIVE_ALL_REGS);
    be->regs_used = be->regs_valid = be->regs_dirty = NATIVE_ALL_REGS;
}

/* Back to bt_run, dropping the host CALL frames translated code left. */
/* The way back to bt_run: one copy per code buffer (native_emit_epilogue_routine), jumped to. */
void emit_epilogue(struct emitter *e)
{
    if (e->epilogue) {
        emit_patch_rel32(emit_jmp32(e), e->epilogue);
        return;
    }
    emit_mov_r64_m(e, H_RSP, cpu_field(OFF_HOST_RSP));
    emit_pop(e, H_RCX);
    for (int k = 5; k >= 0; k--)
        emit_pop(e, saved_regs[k]);
    emit_ret(e);
}

uint8_t *native_emit_epilogue_routine(struct emitter *e)
{
    uint8_t *start = e->p;
    e->epilogue = NULL;
    emit_epilogue(e);
    return start;
}

uint8_t *emit_jcc32(struct emitter *e, uint8_t cc)
{
    return emit_jcc_rel32(e, cc);
}


/* add/sub qword [rbx + disp], imm32 */
static void emit_add_q(struct emitter *e, int32_t disp, int32_t v)
{
    emit_alu_m64_imm32(e, ALU_ADD, cpu_field(disp), (uint32_t)v);
}

/* Retire n instructions: the budget alone counts them (cpu_icount).  The
 * host flags then say whether it is spent (jle). */
void emit_count(struct emitter *e, int n)
{
    if (n)
        emit_add_q(e, OFF_BUDGET, -n);
}

void emit_store_eip(struct emitter *e, uint32_t eip)
{
    emit_mov_m32_imm32(e, cpu_field(OFF_EIP), eip);
}
