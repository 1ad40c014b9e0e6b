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
    if (disp >= -128 && disp <= 127) {
        emit_u8(e, 0x40 | (reg & 7) << 3 | 3); /* [rbx + disp8]: the registers, EIP and EFLAGS */
        emit_u8(e, (uint8_t)disp);
        return;
    }
    emit_u8(e, 0x80 | (reg & 7) << 3 | 3);     /* [rbx + disp32] */
    emit_u32(e, (uint32_t)disp);
}

void modrm_rdx(struct emitter *e, int reg)
{
    emit_u8(e, (reg & 7) << 3 | 2);            /* [rdx] */
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
    bool d8 = e->mem_disp >= -128 && e->mem_disp <= 127;
    emit_u8(e, (d8 ? 0x40 : 0x80) | (reg & 7) << 3 | 4);
    emit_u8(e, (e->mem_index & 7) << 3 | H_RDX);
    if (d8)
        emit_u8(e, (uint8_t)e->mem_disp);
    else
        emit_u32(e, (uint32_t)e->mem_disp);
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
        emit_u8(e, (r & 7) << 3 | 2);
    } else if (rm == MEM_COVERED) {
        modrm_covered(e, r);
    } else {
        emit_u8(e, 0xc0 | (r & 7) << 3 | (rm & 7));
    }
}

/* mov host, [rbx + disp] / mov [rbx + disp], host (32-bit) */
void emit_load_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_rex(e, 0, host, 0);
    emit_u8(e, 0x8b);
    modrm_rbx(e, host, disp);
}

static void emit_store_rbx(struct emitter *e, int host, int32_t disp)
{
    emit_rex(e, 0, host, 0);
    emit_u8(e, 0x89);
    modrm_rbx(e, host, disp);
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
    emit_u8(e, 0x48); emit_u8(e, 0x89);        /* mov [rbx+host_rsp], rsp */
    modrm_rbx(e, 4, OFF_HOST_RSP);
    emit_u8(e, 0x48); emit_u8(e, 0x8d); emit_u8(e, 0x84); emit_u8(e, 0x24);   /* lea rax, [rsp - frames] */
    emit_u32(e, (uint32_t)-(HOST_FRAMES_MAX * 16));
    emit_u8(e, 0x48); emit_u8(e, 0x89);        /* mov [rbx+host_rsp_floor], rax */
    modrm_rbx(e, H_RAX, OFF_HOST_RSP_FLOOR);
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
    emit_u8(e, 0x48); emit_u8(e, 0x8b);        /* mov rsp, [rbx+host_rsp] */
    modrm_rbx(e, 4, OFF_HOST_RSP);
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
    emit_u8(e, 0x0f);
    emit_u8(e, 0x80 | cc);
    uint8_t *field = e->p;
    emit_u32(e, 0);
    return field;
}


/* add/sub qword [rbx + disp], imm32 */
static void emit_add_q(struct emitter *e, int32_t disp, int32_t v)
{
    emit_u8(e, 0x48);
    emit_u8(e, 0x81);
    modrm_rbx(e, 0, disp);
    emit_u32(e, (uint32_t)v);
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
    emit_u8(e, 0xc7);
    modrm_rbx(e, 0, OFF_EIP);
    emit_u32(e, eip);
}
