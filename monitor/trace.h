/*
 * -d tracing: instruction trace disassembled with capstone, interrupts,
 * exceptions, unimplemented instructions (logged once per address).
 */
#ifndef RV_TRACE_H
#define RV_TRACE_H

#include <stdio.h>
#include "monitor/cpu.h"
#include "monitor/decode.h"

/* Parse "-d" flags ("in_asm,int,unimp,post,cpu,ioport"); returns false and names the bad one. */
bool trace_parse(const char *spec, unsigned *flags, char *err, size_t errlen);
const char *trace_flag_help(void);
void trace_set_output(FILE *f);
FILE *trace_output(void);

void trace_insn(struct cpu *c, const struct insn *in);
void trace_exception(struct cpu *c, int vector, uint32_t err);
void trace_interrupt(struct cpu *c, int vector);
void trace_unimplemented(struct cpu *c, const struct insn *in, const char *what);
/* -d out_asm: a translated block's heading, each of its guest instructions
 * in block order, then the host code made for them. */
void trace_block_head(bool code32, uint32_t eip, uint32_t phys);
void trace_block_insn(bool code32, uint32_t eip, const uint8_t *bytes, int len);
void trace_block_host(const uint8_t *host, size_t host_len);
/* Disassemble one instruction into buf with capstone (16 or 32-bit); returns its length or 0. */
int disasm_one(const uint8_t *code, int len, bool code32, uint32_t addr, char *buf, size_t buflen);

#endif
