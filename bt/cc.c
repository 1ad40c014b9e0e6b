/*
 * Condition codes: which guest flags a condition tests, and setting the
 * host flags from wherever the guest flags are (host EFLAGS, R11, struct
 * cpu) so that a host Jcc/SETcc/CMOVcc can test them.
 */
#include "bt/native_internal.h"

/* The guest flags condition code cc tests. */
uint32_t cond_flags(int cc)
{
    static const uint32_t need[8] = { FL_OF, FL_CF, FL_ZF, FL_ZF | FL_CF, FL_SF, FL_PF, FL_OF | FL_SF, FL_OF | FL_SF | FL_ZF };   /* O B Z BE S P L LE */
    return need[(cc & 0xe) >> 1];
}

/* Host ZF clear <=> guest condition (cc & ~1) holds, tested on R11 or on
 * EFLAGS in memory (flags_in_r11).  Clobbers eax, ecx. */
void emit_cond_base(struct block_emit *be, int cc)
{
    struct emitter *e = be->e;
    int base = (cc & 0xe) >> 1;
    bool r11 = flags_in_r11(be, cond_flags(cc));
    if (base < 6) {
        if (r11)
            emit_test_r32_imm32(e, H_R11, cond_flags(cc));
        else
            emit_test_m32_imm32(e, cpu_field(OFF_FLAGS), cond_flags(cc));
        return;
    }
    if (r11) {
        emit_mov_rr32(e, H_RAX, H_R11);
    } else {
        emit_mov_r32_m(e, H_RAX, cpu_field(OFF_FLAGS));
    }
    emit_mov_rr32(e, H_RCX, H_RAX);
    emit_shift_r32_imm8(e, SH_SHR, H_RCX, 4);  /* OF onto SF's bit */
    emit_alu_rr32(e, ALU_XOR, H_RCX, H_RAX);
    emit_alu_r32_imm32(e, ALU_AND, H_RCX, FL_SF);   /* SF != OF */
    if (base == 7) {
        emit_alu_r32_imm8(e, ALU_AND, H_RAX, FL_ZF);
        emit_alu_rr32(e, ALU_OR, H_RCX, H_RAX);
    }
}

/* The host condition code (jnz/jz family) that means "guest cc holds". */
uint8_t host_cc(int cc)
{
    return (cc & 1) ? CC_E : CC_NE;
}
