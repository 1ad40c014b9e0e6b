/* CPU power-on / RESET# state (Intel SDM vol. 3, "Processor State After Reset"). */
#include "monitor/interp.h"
#include "devices/state.h"

#include <stddef.h>
#include <string.h>

void cpu_reset(struct cpu *c)
{
    struct machine *m = c->m;
    unsigned trace = c->trace;
    uint64_t icount = cpu_icount(c);   /* the virtual clock counts across resets */
    void *ras_none = c->bt_ras_none;   /* set once by the translator */
    struct databp_set *databp = c->databp;
    memset(c, 0, offsetof(struct cpu, fault_jmp));
    memset(&c->exc_vector, 0, sizeof(*c) - offsetof(struct cpu, exc_vector));
    c->m = m;
    c->databp = databp;
    c->trace = trace;
    c->budget = 0;
    c->icount_end = icount;
    c->bt_ras_none = ras_none;
    cpu_forget_returns(c);

    c->eflags = 0x2;
    c->eip = 0xfff0;
    c->cr0 = CR0_ET | CR0_CD | CR0_NW;
    c->r[R_EDX] = (CPU_FAMILY << 8) | (CPU_MODEL << 4) | CPU_STEPPING;
    const uint16_t data_attr = SEG_ATTR_P | SEG_ATTR_S | 0x3;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = (struct seg){ 0, data_attr, 0, 0xffff };
    c->seg[SEG_CS] = (struct seg){ 0xf000, SEG_ATTR_P | SEG_ATTR_S | 0xb, 0xffff0000u, 0xffff };
    c->gdtr.limit = c->idtr.limit = 0xffff;
    c->ldtr = (struct seg){ 0, SEG_ATTR_P | 0x2, 0, 0xffff };
    c->tr = (struct seg){ 0, SEG_ATTR_P | 0xb, 0, 0xffff };
    c->dr[6] = 0xffff0ff0u;
    c->dr[7] = 0x400;
    c->a20 = true;
    c->pat = 0x0007040600070406ull;      /* WB, WT, UC-, UC, twice */
    fpu_reset(c);
    for (int u = 0; u < 2; u++)
        for (unsigned i = 0; i < TLB_SIZE; i++)
            c->tlb[u][i].tag_read = c->tlb[u][i].tag_write = TLB_INVALID;
}

/* What a snapshot keeps of the CPU: the architectural state and the
 * execution state between instructions.  The TLB, the translator's fields
 * and an exception in delivery are not state: a snapshot is taken between
 * slices, and the loader flushes the TLB and the translation cache. */
static const struct state_field cpu_fields[] = {
    STATE_FIELD(struct cpu, r),
    STATE_FIELD(struct cpu, eip),
    STATE_FIELD(struct cpu, eflags),
    STATE_FIELD(struct cpu, seg),
    STATE_FIELD(struct cpu, ldtr),
    STATE_FIELD(struct cpu, tr),
    STATE_FIELD(struct cpu, gdtr.base),
    STATE_FIELD(struct cpu, gdtr.limit),
    STATE_FIELD(struct cpu, idtr.base),
    STATE_FIELD(struct cpu, idtr.limit),
    STATE_FIELD(struct cpu, cr0),
    STATE_FIELD(struct cpu, cr2),
    STATE_FIELD(struct cpu, cr3),
    STATE_FIELD(struct cpu, cr4),
    STATE_FIELD(struct cpu, dr),
    STATE_FIELD(struct cpu, cpl),
    STATE_FIELD(struct cpu, tsc_offset),
    STATE_FIELD(struct cpu, sysenter_cs),
    STATE_FIELD(struct cpu, sysenter_esp),
    STATE_FIELD(struct cpu, sysenter_eip),
    STATE_FIELD(struct cpu, apic_base),
    STATE_FIELD(struct cpu, mtrr_def_type),
    STATE_FIELD(struct cpu, mtrr_fixed),
    STATE_FIELD(struct cpu, mtrr_var),
    STATE_FIELD(struct cpu, pat),
    STATE_FIELD(struct cpu, misc_enable),
    STATE_FIELD(struct cpu, tsc_aux),
    STATE_FIELD(struct cpu, tsc_adjust),
    STATE_FIELD(struct cpu, efer),
    STATE_X87(struct cpu, fpu.st),
    STATE_FIELD(struct cpu, fpu.cw),
    STATE_FIELD(struct cpu, fpu.sw),
    STATE_FIELD(struct cpu, fpu.tw),
    STATE_FIELD(struct cpu, fpu.fop),
    STATE_FIELD(struct cpu, fpu.fip),
    STATE_FIELD(struct cpu, fpu.fdp),
    STATE_FIELD(struct cpu, fpu.fcs),
    STATE_FIELD(struct cpu, fpu.fds),
    STATE_FIELD(struct cpu, fpu.top),
    STATE_FIELD(struct cpu, sse.xmm),
    STATE_FIELD(struct cpu, sse.mxcsr),
    STATE_FIELD(struct cpu, halted),
    STATE_FIELD(struct cpu, intr_shadow),
    STATE_FIELD(struct cpu, nmi_blocked),
    STATE_FIELD(struct cpu, a20),
    STATE_FIELD(struct cpu, repeat_vector),
    STATE_FIELD(struct cpu, repeat_addr),
    STATE_FIELD(struct cpu, repeat_count),
    STATE_FIELD(struct cpu, livelock_reported),
};

const struct state_table cpu_state_table = {
    .name = "cpu", .version = 1, .fields = cpu_fields, .nfields = STATE_COUNT(cpu_fields),
};
