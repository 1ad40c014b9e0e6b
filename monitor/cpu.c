/* CPU power-on / RESET# state (Intel SDM vol. 3, "Processor State After Reset"). */
#include "monitor/interp.h"

#include <stddef.h>
#include <string.h>

void cpu_reset(struct cpu *c)
{
    struct machine *m = c->m;
    unsigned trace = c->trace;
    uint64_t icount = cpu_icount(c);   /* the virtual clock counts across resets */
    void *ras_none = c->bt_ras_none;   /* set once by the translator */
    memset(c, 0, offsetof(struct cpu, fault_jmp));
    memset(&c->exc_vector, 0, sizeof(*c) - offsetof(struct cpu, exc_vector));
    c->m = m;
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
