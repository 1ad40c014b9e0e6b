/*
 * What crosses the files of the native translator (bt/native.c and the files
 * it was cut into); bt/native.h is its interface to bt.c.  Files, each
 * owning one part:
 *   encode.c          ModRM forms, sized ops, guest-host register map, frame
 *   emit.h            one-instruction x86-64 emitters (named)
 *   flags.c           deferred guest flags: host EFLAGS, R11, struct cpu
 *   stubs.c           slow-path stubs, exits, chaining, calls into C
 *   operands.c        effective addresses, memory probes, base caching
 *   cc.c              condition codes
 *   select.c          which instructions, registers and flags (liveness)
 *   bodies_alu.c      data instructions
 *   bodies_control.c  stack and control transfer
 *   bodies_string.c   string instructions
 *   native.c          native_emit: one guest instruction, and threaded ones
 */
#ifndef RV_NATIVE_INTERNAL_H
#define RV_NATIVE_INTERNAL_H

#include "bt/bt.h"
#include "bt/native.h"
#include "monitor/cpu.h"
#include "monitor/physmem.h"
#include "monitor/interp.h"
#include "monitor/alu.h"

#include <cpuid.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define OFF_R(i)       ((int32_t)(offsetof(struct cpu, r) + 4 * (i)))
#define OFF_EIP        ((int32_t)offsetof(struct cpu, eip))
#define OFF_FLAGS      ((int32_t)offsetof(struct cpu, eflags))
#define OFF_BUDGET     ((int32_t)offsetof(struct cpu, budget))
#define OFF_RAS_TOP    ((int32_t)offsetof(struct cpu, bt_ras_top))
#define OFF_RAS_EIP    ((int32_t)offsetof(struct cpu, bt_ras[0].eip))
#define OFF_RAS_SLOT   ((int32_t)offsetof(struct cpu, bt_ras[0].slot))
_Static_assert(sizeof(((struct cpu *)0)->bt_ras) == 256, "the return stack's byte offset wraps in a byte register");
#define OFF_SEG(s, f)  ((int32_t)(offsetof(struct cpu, seg) + (s) * sizeof(struct seg) + offsetof(struct seg, f)))
#define OFF_TLB(u, f)  ((int32_t)(offsetof(struct cpu, tlb) + (u) * TLB_SIZE * sizeof(struct tlb_entry) + \
                                  offsetof(struct tlb_entry, f)))

#define FLAGS_ARITH FL_ARITH                /* OF SF ZF AF PF CF */
#define FLAGS_INCDEC (FL_ARITH & ~FL_CF)    /* CF preserved */
#define FLAGS_LOGIC (FL_ARITH & ~FL_AF)     /* AF is cleared, as the shared ALU semantics do */

/* [rbx + off]: a field of struct cpu (RBX holds the cpu inside a block). */
static inline struct mem cpu_field(int32_t off) { return mem_at(H_RBX, off); }

/* encode.c */
void modrm_rbx(struct emitter *e, int reg, int32_t disp);
void modrm_rdx(struct emitter *e, int reg);
uint8_t sized_op(uint8_t op8, int size);
void emit_imm(struct emitter *e, uint32_t v, int size);
int hreg(int guest);
int byte_or_hreg(int guest, int size);
void modrm_covered(struct emitter *e, int reg);
void emit_op(struct emitter *e, int size, unsigned opcode, int reg, int rm);
void emit_load_rbx(struct emitter *e, int host, int32_t disp);
void emit_regs_load(struct emitter *e, unsigned mask);
void emit_regs_store(struct emitter *e, unsigned mask);
void emit_spill(struct block_emit *be);
void emit_epilogue(struct emitter *e);
uint8_t *emit_jcc32(struct emitter *e, uint8_t cc);
void emit_count(struct emitter *e, int n);
void emit_store_eip(struct emitter *e, uint32_t eip);

/* flags.c */
void emit_flags_layout_from_ax(struct emitter *e, int dst);
void emit_combine_eax(struct block_emit *be, uint32_t keep, uint32_t clear);
void emit_host_into_r11(struct emitter *e, uint32_t hkeep, uint32_t hclear, uint32_t *keep, uint32_t *clear);
void emit_capture(struct block_emit *be);
void host_flags_clobbered(struct block_emit *be, uint32_t mask);
void emit_flags_kc(struct block_emit *be, uint32_t keep, uint32_t clear);
void emit_flags(struct block_emit *be, uint32_t mask);
void note_logic_result(struct block_emit *be, int guest, int size);
void emit_redo_logic_flags(struct emitter *e, int guest, int size);
void emit_merge_r11(struct emitter *e, uint32_t keep, uint32_t clear);
void emit_materialize(struct block_emit *be);
bool host_flags_whole(const struct block_emit *be);
void emit_flags_to_ax(struct block_emit *be);
void emit_merge_ax(struct emitter *e, uint32_t keep);
void emit_ax_from_eflags(struct emitter *e);
void emit_entry_flags_out(struct block_emit *be);
void emit_materialize_on_exit(struct block_emit *be);
bool emit_flags_for_handover(struct block_emit *be);
bool flags_in_r11(const struct block_emit *be, uint32_t need);
void emit_load_cf(struct block_emit *be);
bool cs_covers_all(const struct block_emit *be);

/* stubs.c */
struct native_stub *cur_stub(struct block_emit *be);
void add_stub_fixup(struct block_emit *be, uint8_t *field);
void jump_to_stub(struct block_emit *be, uint8_t cc);
uint8_t *emit_leave_check(struct block_emit *be, bool counted);
struct emitter *cold_code(struct block_emit *be);
struct emitter *hot_code(struct block_emit *be);
struct chain_slot *new_chain_slot(struct block_emit *be, uint32_t eip);
uint8_t *emit_tlb_maps_check(struct block_emit *be, uint32_t lin, uint32_t phys, uint8_t **miss);
uint8_t *emit_host_call(struct block_emit *be, uint32_t ret_eip, uint8_t **out, int *n);
void emit_patched_exit(struct block_emit *be, uint32_t eip, int count, uint32_t ret_eip);
void emit_load_addend(struct emitter *e, int base);
void emit_exit_n(struct block_emit *be, uint32_t eip, int count);
void emit_call_step(struct emitter *e, uint32_t eip, const struct insn *in, bool (*step)(struct cpu *, const struct insn *));

/* operands.c */
void emit_lea_eax(struct emitter *e, int guest, int32_t d, bool wide);
void emit_ea_to(struct emitter *e, const struct insn *in, int dst);
void emit_ea(struct emitter *e, const struct insn *in);
void emit_tlb_index_edx(struct emitter *e);
void emit_tlb_lookup(struct block_emit *be, int lin, int size, bool write);
unsigned cached_operands(const struct block_emit *be);
bool probe_keeps_flags(const struct block_emit *be, int sreg);
void emit_probe(struct block_emit *be, int sreg, int size, bool write, bool stack32);
int emit_rm(struct block_emit *be, const struct insn *in, int size, bool write);

/* cc.c */
uint32_t cond_flags(int cc);
void emit_cond_base(struct block_emit *be, int cc);
uint8_t host_cc(int cc);

/* select.c */
bool alu_family(int op);
int high_byte_regs(const struct insn *in);
void emit_high_byte_rotate(struct block_emit *be, unsigned mask, bool back);
void emit_high_bytes_in(struct block_emit *be);
bool writes_rm(const struct insn *in);
uint32_t flags_read(const struct insn *in);
bool flags_merged_by_hand(const struct insn *in);

/* bodies_alu.c */
int opsize(const struct insn *in);
void emit_alu(struct block_emit *be, const struct insn *in);
void emit_group1(struct block_emit *be, const struct insn *in);
void emit_mov(struct block_emit *be, const struct insn *in);
void emit_unary(struct block_emit *be, const struct insn *in, int host_op, int ext, uint32_t mask);
void emit_shift_of(struct emitter *e, int kind, int size, int rm);
void emit_put_flags_eax(struct emitter *e, uint32_t clear);
bool shift_flags_from_host(const struct block_emit *be, const struct insn *in);
void emit_shift(struct block_emit *be, const struct insn *in);
void emit_imul(struct block_emit *be, const struct insn *in);
void emit_mul(struct block_emit *be, const struct insn *in);
void emit_div(struct block_emit *be, const struct insn *in);
void emit_mov_moffs(struct block_emit *be, const struct insn *in);
void emit_bit_reg(struct block_emit *be, const struct insn *in);
void emit_double_shift(struct block_emit *be, const struct insn *in);
void emit_cmpxchg8b(struct block_emit *be, const struct insn *in);
void emit_bit_imm(struct block_emit *be, const struct insn *in);

/* bodies_control.c */
void emit_push_value(struct block_emit *be, const struct insn *in, int src_reg, uint32_t imm);
void emit_pop_ecx(struct block_emit *be, uint32_t extra, bool check_eip);
void check_target(struct block_emit *be, uint32_t target);
bool cond_in_host(const struct block_emit *be, int cc);
bool jcc_on_host_flags(const struct block_emit *be, int cc, uint32_t target);
bool emit_jcc(struct block_emit *be, int cc, uint32_t next, uint32_t target);
void emit_load_target_edi(struct block_emit *be, const struct insn *in);
void emit_return_push(struct block_emit *be, uint32_t ret_eip);
void emit_host_return(struct block_emit *be, bool flags_in_r11);
void emit_jump_cache(struct block_emit *be, bool counted, bool flags_in_r11, bool ret);
void emit_exit_edi(struct block_emit *be, bool ret);
void emit_sti(struct block_emit *be);

/* bodies_string.c */
void emit_stos_lods(struct block_emit *be, const struct insn *in);
void emit_rep_string(struct block_emit *be, const struct insn *in);

/* operands of emit_op (encode.c), the host frame (encode.c, stubs.c), push sources (bodies_control.c) */
#define MEM_RDX (-1)               /* an r/m operand that is the memory at [rdx] */
#define MEM_COVERED (-2)           /* the memory at [rdx + e->mem_index + e->mem_disp] (64-bit) */
#define EXT(n) (0x100 | (n))       /* a ModRM reg field that is an opcode extension */
#define OFF_HOST_RSP        ((int32_t)offsetof(struct cpu, bt_host_rsp))
#define OFF_HOST_RSP_FLOOR  ((int32_t)offsetof(struct cpu, bt_host_rsp_floor))
#define HOST_FRAMES_MAX     4096       /* host CALL frames (16 bytes each) below bt_run's */
#define PUSH_EDI (-2)             /* emit_push_value: the value is in EDI */

#endif
