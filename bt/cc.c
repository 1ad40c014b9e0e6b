/*
 * Condition codes: which guest flags a condition tests, and setting the
 * host flags from wherever the guest flags are (host EFLAGS, R11, struct
 * cpu) so that a host Jcc/SETcc/CMOVcc can test them.
 */
#include "bt/native_internal.h"

/* The guest flags condition code cc tests. */
uint32_t cond_flags(int cc)
{
    static const uint32_t need[8] = { 0x800, 0x1, 0x40, 0x41, 0x80, 0x4, 0x880, 0x8c0 };   /* O B Z BE S P L LE */
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
        if (r11) {
            emit_u8(e, 0x41); emit_u8(e, 0xf7); emit_u8(e, 0xc3);   /* test r11d, imm32 */
        } else {
            emit_u8(e, 0xf7);                  /* test dword [rbx+eflags], imm32 */
            modrm_rbx(e, 0, OFF_FLAGS);
        }
        emit_u32(e, cond_flags(cc));
        return;
    }
    if (r11) {
        emit_mov_rr32(e, H_RAX, H_R11);
    } else {
        emit_u8(e, 0x8b);                      /* mov eax, [rbx+eflags] */
        modrm_rbx(e, H_RAX, OFF_FLAGS);
    }
    emit_u8(e, 0x89); emit_u8(e, 0xc1);        /* mov ecx, eax */
    emit_u8(e, 0xc1); emit_u8(e, 0xe9); emit_u8(e, 4);   /* shr ecx, 4: OF onto SF's bit */
    emit_u8(e, 0x31); emit_u8(e, 0xc1);        /* xor ecx, eax */
    emit_u8(e, 0x81); emit_u8(e, 0xe1); emit_u32(e, 0x80);   /* and ecx, 0x80: SF != OF */
    if (base == 7) {
        emit_u8(e, 0x83); emit_u8(e, 0xe0); emit_u8(e, 0x40);   /* and eax, 0x40 (ZF) */
        emit_u8(e, 0x09); emit_u8(e, 0xc1);    /* or ecx, eax */
    }
}

/* The host condition code (jnz/jz family) that means "guest cc holds". */
uint8_t host_cc(int cc)
{
    return (cc & 1) ? CC_E : CC_NE;
}
