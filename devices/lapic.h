/*
 * Local APIC (xAPIC, version 0x50014: a P6-era part with six LVT entries)
 * of the one CPU, APIC ID 0, its 4 KiB register page at IA32_APIC_BASE
 * (0xFEE00000 after reset).
 *
 * lapic_new stacks the APIC on the bus's interrupt controller (the 8259
 * pair, which must exist already): from then on the CPU asks the APIC.
 * While the APIC is enabled in IA32_APIC_BASE it delivers its own vectors
 * (IRR/ISR, TPR/PPR by the SDM's rules) and, through LINT0 programmed as
 * ExtINT (virtual-wire mode, the reset value on the BSP as in QEMU), the
 * 8259's; disabled in the MSR, the 8259's INTR is the CPU's again.  The
 * flag it offers with bus_set_intr_line is "an interrupt is deliverable",
 * kept exact on every change.  I/O APIC messages arrive over the bus's
 * APIC channel; an EOI of a level-triggered vector goes back over it.
 */
#ifndef RV_LAPIC_H
#define RV_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct lapic;

#define LAPIC_DEFAULT_BASE 0xfee00000u
#define LAPIC_VERSION 0x00050014u
#define MSR_APIC_BASE_BSP (1u << 8)
#define MSR_APIC_BASE_ENABLE (1u << 11)

/* map_page is told where the register page is (or ~0u: nowhere), so the
 * machine can take that page away from RAM or a BAR while the APIC sits
 * over it, as the CPU's own decode does. */
typedef void (*lapic_map_fn)(void *opaque, uint32_t old_base, uint32_t new_base);
struct lapic *lapic_new(struct bus *b, lapic_map_fn map_page, void *map_opaque);
void lapic_free(struct lapic *a);

/* IA32_APIC_BASE.  lapic_set_base returns false (the CPU raises #GP) for
 * reserved bits: above the 36-bit physical address, x2APIC enable, 0-7, 9. */
uint64_t lapic_get_base(const struct lapic *a);
bool lapic_set_base(struct lapic *a, uint64_t val);
bool lapic_enabled(const struct lapic *a);

/* NMI: a flag the run loop polls (self-NMI, LVT or I/O APIC NMI delivery),
 * cleared when the CPU takes it. */
const bool *lapic_nmi_line(const struct lapic *a);
void lapic_nmi_ack(struct lapic *a);

/* Register access for tests and the monitor console (offset in the page). */
uint32_t lapic_reg_read(struct lapic *a, uint32_t offset);
void lapic_reg_write(struct lapic *a, uint32_t offset, uint32_t val);

#endif
