/*
 * Integer ALU semantics: the one definition of every arithmetic/logic result
 * and its flags, used by the interpreter and by the translator's helpers.
 *
 * Every function takes the guest EFLAGS word by pointer, reads the input
 * flags it needs (CF for ADC/SBB/RCL/RCR, AF/CF for BCD) and rewrites only
 * the arithmetic flags (CF PF AF ZF SF OF); all other bits are preserved.
 * `size` is the operand size in bytes: 1, 2 or 4.  Values are passed
 * zero-extended and results are returned truncated to `size`.
 *
 * Flags the SDM calls "undefined" are set as an Intel P6-family CPU sets
 * them where that is known, otherwise left as documented in alu.c; tests
 * compare only defined flags against the host.
 */
#ifndef RV_ALU_H
#define RV_ALU_H

#include <stdbool.h>
#include <stdint.h>

/* Group-1 order (the ModRM reg field of opcodes 0x80-0x83). */
enum alu_op { ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP };
/* Group-2 order (the ModRM reg field of opcodes 0xC0/0xC1/0xD0-0xD3). */
enum shift_op { SH_ROL, SH_ROR, SH_RCL, SH_RCR, SH_SHL, SH_SHR, SH_SAL, SH_SAR };

/* dst OP src.  ALU_CMP returns dst unchanged (only flags); TEST is ALU_AND with the result dropped. */
uint32_t alu_binop(uint32_t *fl, int op, uint32_t dst, uint32_t src, int size);
uint32_t alu_inc(uint32_t *fl, uint32_t v, int size);   /* CF preserved */
uint32_t alu_dec(uint32_t *fl, uint32_t v, int size);   /* CF preserved */
uint32_t alu_neg(uint32_t *fl, uint32_t v, int size);

/* Shifts and rotates; `count` is the raw operand, masked to 5 bits here
 * (RCL/RCR of 8/16-bit then take it modulo 9/17).  A masked count of 0
 * changes nothing, flags included. */
uint32_t alu_shift(uint32_t *fl, int op, uint32_t v, uint32_t count, int size);
/* SHLD/SHRD (size 2 or 4). */
uint32_t alu_shld(uint32_t *fl, uint32_t dst, uint32_t src, uint32_t count, int size);
uint32_t alu_shrd(uint32_t *fl, uint32_t dst, uint32_t src, uint32_t count, int size);

/* One-operand MUL/IMUL: (hi:lo) = a * b, CF=OF=(upper half significant). */
void alu_mul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi);
void alu_imul(uint32_t *fl, uint32_t a, uint32_t b, int size, uint32_t *lo, uint32_t *hi);
/* Two/three-operand IMUL: truncated product, CF=OF=(truncation lost information). */
uint32_t alu_imul_trunc(uint32_t *fl, uint32_t a, uint32_t b, int size);
/* DIV/IDIV of (hi:lo) by divisor: false means #DE (divide by zero or quotient overflow). */
bool alu_div(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem);
bool alu_idiv(uint32_t *fl, uint32_t lo, uint32_t hi, uint32_t divisor, int size, uint32_t *quot, uint32_t *rem);

/* BSF/BSR: src == 0 sets ZF and returns dst unchanged; else clears ZF. */
uint32_t alu_bsf(uint32_t *fl, uint32_t dst, uint32_t src, int size);
uint32_t alu_bsr(uint32_t *fl, uint32_t dst, uint32_t src, int size);
/* BT/BTS/BTR/BTC on v with an already-reduced bit index: CF = old bit;
 * returns the new value (v for BT).  op: 0=BT 1=BTS 2=BTR 3=BTC. */
uint32_t alu_bit(uint32_t *fl, int op, uint32_t v, uint32_t bit, int size);

/* BCD adjust.  al/ax are in-out. AAM returns false for a zero immediate (#DE). */
void alu_daa(uint32_t *fl, uint8_t *al);
void alu_das(uint32_t *fl, uint8_t *al);
void alu_aaa(uint32_t *fl, uint16_t *ax);
void alu_aas(uint32_t *fl, uint16_t *ax);
bool alu_aam(uint32_t *fl, uint16_t *ax, uint8_t imm);
void alu_aad(uint32_t *fl, uint16_t *ax, uint8_t imm);

/* Set PF/ZF/SF from a result (and clear CF/OF/AF): used by logic ops and SETcc-free paths. */
void alu_flags_logic(uint32_t *fl, uint32_t result, int size);
/* Evaluate condition code cc (0-15, the low nibble of Jcc/SETcc/CMOVcc). */
bool alu_cond(uint32_t fl, int cc);

#endif
