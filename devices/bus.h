/*
 * The machine bus: port I/O and MMIO dispatch by range, IRQ lines, and the
 * registry of devices.  Devices register handlers here at machine assembly,
 * raise interrupts only through irq_set(), and never call into the CPU.
 */
#ifndef RV_BUS_H
#define RV_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct vclock;

/* size is 1, 2 or 4 bytes.  Reads of unclaimed ports return all ones. */
typedef uint32_t (*pio_read_fn)(void *opaque, uint16_t port, int size);
typedef void (*pio_write_fn)(void *opaque, uint16_t port, uint32_t val, int size);
/* addr is relative to the start of the region. */
typedef uint32_t (*mmio_read_fn)(void *opaque, uint32_t addr, int size);
typedef void (*mmio_write_fn)(void *opaque, uint32_t addr, uint32_t val, int size);

struct state_table;

/* A device: the registry calls reset on machine reset (and power-on).
 * state describes what a snapshot keeps of it (devices/state.h); NULL when
 * the device has no state.  name is unique within the machine: snapshots
 * find a device's record by it. */
struct device {
    const char *name;
    void *opaque;
    void (*reset)(void *opaque);
    const struct state_table *state;
};

struct bus *bus_new(struct vclock *clock);
void bus_free(struct bus *b);
struct vclock *bus_clock(struct bus *b);

void bus_add_device(struct bus *b, const struct device *d);
void bus_reset_devices(struct bus *b);
/* The registered devices, in registration order (snapshots walk them). */
int bus_device_count(const struct bus *b);
const struct device *bus_device(const struct bus *b, int i);

/*
 * Who decodes an address when claims overlap, as on the PIIX: a positive
 * decoder (a PCI BAR) beats the subtractive ISA devices; within a class the
 * later registration wins.  Registrations are made subtractive unless the
 * caller switched the class: PCI does so around each BAR map callback.
 * Removing a claim exposes whatever it covered again.
 */
enum bus_decode {
    BUS_DECODE_SUBTRACTIVE = 0,
    BUS_DECODE_POSITIVE = 1,
    /* Inside the CPU (a local APIC): no bus cycle, so no BAR can hide it. */
    BUS_DECODE_PROCESSOR = 2,
};
/* Returns the previous class. */
enum bus_decode bus_set_decode(struct bus *b, enum bus_decode decode);

/* Claim ports [base, base+len).  Claiming the same range with the same
 * handlers again replaces the old claim in place. */
void bus_register_pio(struct bus *b, uint16_t base, uint16_t len, void *opaque,
                      pio_read_fn rd, pio_write_fn wr);
/* Remove the claim of exactly [base, base+len): the current class's newest. */
void bus_unregister_pio(struct bus *b, uint16_t base, uint16_t len);
bool bus_pio_claimed(struct bus *b, uint16_t port);
/* Table sizes (slots in use, including free ones): for tests of boundedness. */
int bus_pio_slots(const struct bus *b);
int bus_mmio_regions(const struct bus *b);
uint32_t bus_pio_read(struct bus *b, uint16_t port, int size);
void bus_pio_write(struct bus *b, uint16_t port, uint32_t val, int size);

/* MMIO regions: guest-physical [base, base+len), page granular. */
void bus_register_mmio(struct bus *b, uint32_t base, uint32_t len, void *opaque,
                       mmio_read_fn rd, mmio_write_fn wr);
void bus_unregister_mmio(struct bus *b, uint32_t base, uint32_t len);
/* Returns false when no region claims addr. */
bool bus_mmio_read(struct bus *b, uint32_t addr, int size, uint32_t *val);
bool bus_mmio_write(struct bus *b, uint32_t addr, uint32_t val, int size);

/*
 * Interrupt lines.  Lines 0-15 are the ISA IRQs wired to the PIC pair (and
 * to the I/O APIC, a listener), 16-23 the I/O APIC's PCI pins.
 * irq_set drives the line's level; an edge-triggered input latches on 0->1.
 * The interrupt controller installs itself as the sink.
 */
void irq_set(struct bus *b, int line, int level);
typedef void (*irq_sink_fn)(void *opaque, int line, int level);
void bus_set_irq_sink(struct bus *b, irq_sink_fn fn, void *opaque);
/* The interrupt controller says when the CPU took a line's interrupt
 * (INTA); a device may listen, one per line: the PIT re-sends the ticks
 * that fell behind the host's clock, one per ack. */
typedef void (*irq_ack_fn)(void *opaque);
void bus_set_irq_ack_notifier(struct bus *b, int line, irq_ack_fn fn, void *opaque);
void irq_acked(struct bus *b, int line);

/*
 * Interrupt acknowledge path for the CPU (only the machine/run loop calls these):
 * intr_pending tells whether INTR is asserted; intr_ack returns the vector.
 */
typedef bool (*intr_pending_fn)(void *opaque);
typedef int (*intr_ack_fn)(void *opaque);
void bus_set_intr_controller(struct bus *b, intr_pending_fn pending, intr_ack_fn ack, void *opaque);
bool bus_intr_pending(struct bus *b);
int bus_intr_ack(struct bus *b);
/* The controller's INTR output as a flag that code may poll without a
 * call (translated STI does), kept equal to what intr_pending returns; NULL
 * until a controller offers one. */
void bus_set_intr_line(struct bus *b, const bool *line);
const bool *bus_intr_line(const struct bus *b);
/* Stacking: a controller that takes the current one's INTR as an input
 * (the local APIC's LINT0 over the 8259) reads what is installed, then
 * installs itself.  The one below calls bus_intr_output_changed whenever
 * its output flag changes; the one above listens. */
void bus_get_intr_controller(struct bus *b, intr_pending_fn *pending, intr_ack_fn *ack, void **opaque);
typedef void (*intr_change_fn)(void *opaque);
void bus_set_intr_output_listener(struct bus *b, intr_change_fn fn, void *opaque);
void bus_intr_output_changed(struct bus *b);

/* More receivers of irq_set beyond the sink (the I/O APIC beside the 8259).
 * Lines 16-23 reach only these: the I/O APIC's pins 16-23, where the board
 * wires PIRQA-D (pci.c drives 16-19). */
#define BUS_IRQ_LINES 24
#define BUS_IRQ_PIRQ_BASE 16
void bus_add_irq_listener(struct bus *b, irq_sink_fn fn, void *opaque);

/*
 * The APIC bus: interrupt messages to the local APIC (from the I/O APIC)
 * and the local APIC's EOI broadcast back to I/O APICs.
 */
enum apic_delivery {
    APIC_DM_FIXED = 0, APIC_DM_LOWEST = 1, APIC_DM_SMI = 2, APIC_DM_NMI = 4,
    APIC_DM_INIT = 5, APIC_DM_STARTUP = 6, APIC_DM_EXTINT = 7
};
struct apic_msg {
    uint8_t vector;
    uint8_t delivery;        /* enum apic_delivery */
    uint8_t dest;            /* APIC ID, or logical destination bits */
    bool logical;            /* destination mode */
    bool level;              /* level-triggered: the receiver sets TMR and broadcasts its EOI */
};
typedef void (*apic_msg_fn)(void *opaque, const struct apic_msg *msg);
void bus_set_apic_receiver(struct bus *b, apic_msg_fn fn, void *opaque);
void bus_apic_send(struct bus *b, const struct apic_msg *msg);
typedef void (*apic_eoi_fn)(void *opaque, uint8_t vector);
void bus_set_apic_eoi_listener(struct bus *b, apic_eoi_fn fn, void *opaque);
void bus_apic_eoi(struct bus *b, uint8_t vector);
/* The CPU took a vector from the local APIC (its INTA): the I/O APIC
 * passes it on as irq_acked for the line behind it (the PIT's owed ticks). */
void bus_set_apic_ack_listener(struct bus *b, apic_eoi_fn fn, void *opaque);
void bus_apic_ack(struct bus *b, uint8_t vector);

/* Machine-level requests a device can make (reset line, A20 gate, power off). */
enum bus_request { BUS_REQ_NONE = 0, BUS_REQ_RESET = 1, BUS_REQ_POWEROFF = 2, BUS_REQ_EXIT = 3 };
void bus_request(struct bus *b, enum bus_request req, int status);
enum bus_request bus_pending_request(struct bus *b, int *status);
void bus_clear_request(struct bus *b);
void bus_set_a20(struct bus *b, bool enabled);
bool bus_a20(struct bus *b);
typedef void (*a20_change_fn)(void *opaque, bool enabled);
void bus_set_a20_listener(struct bus *b, a20_change_fn fn, void *opaque);

#endif
