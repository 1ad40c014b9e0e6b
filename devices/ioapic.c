/*
 * I/O APIC (see ioapic.h).
 *
 * Modelling choices (QEMU's where the datasheet leaves room):
 *  - An edge seen while its pin is masked is latched and delivered when
 *    the pin is unmasked.
 *  - Polarity is stored, not applied: the bus's lines are active high
 *    whatever the firmware tables told the guest (the MP table marks PCI
 *    lines active low).
 *  - A level-triggered pin sends again after the EOI that clears its
 *    remote IRR if the line is still high.
 */
#include "devices/ioapic.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

#define REG_ID 0x00
#define REG_VERSION 0x01
#define REG_ARB 0x02
#define REG_REDIR 0x10

#define RTE_MASKED (1ull << 16)
#define RTE_LEVEL (1ull << 15)
#define RTE_REMOTE_IRR (1ull << 14)
#define RTE_DELIVERY_STATUS (1ull << 12)
#define RTE_DEST_LOGICAL (1ull << 11)
/* What software can write: vector, delivery and destination modes,
 * polarity, trigger, mask, destination. */
#define RTE_WRITABLE (0xff00000000000000ull | RTE_MASKED | RTE_LEVEL | (1ull << 13) | RTE_DEST_LOGICAL | 0x7ffull)

struct ioapic {
    struct bus *bus;
    uint32_t base;
    uint8_t id;
    uint8_t regsel;
    uint64_t rte[IOAPIC_PINS];
    uint32_t level;              /* input levels */
    uint32_t irr;                /* requests not yet sent */
};

static bool pin_is_level(const struct ioapic *io, int pin)
{
    return io->rte[pin] & RTE_LEVEL;
}

static void send(struct ioapic *io, int pin)
{
    uint64_t e = io->rte[pin];
    struct apic_msg msg = {
        .vector = e & 0xff,
        .delivery = (e >> 8) & 7,
        .dest = e >> 56,
        .logical = e & RTE_DEST_LOGICAL,
        .level = pin_is_level(io, pin),
    };
    bus_apic_send(io->bus, &msg);
}

/* Sends every request an unmasked pin has, once per edge, once per level
 * until its EOI. */
static void service(struct ioapic *io)
{
    for (int pin = 0; pin < IOAPIC_PINS; pin++) {
        uint32_t bit = 1u << pin;
        if (!(io->irr & bit) || (io->rte[pin] & RTE_MASKED))
            continue;
        if (pin_is_level(io, pin)) {
            if (io->rte[pin] & RTE_REMOTE_IRR)
                continue;
            io->rte[pin] |= RTE_REMOTE_IRR;
        } else {
            io->irr &= ~bit;
        }
        send(io, pin);
    }
}

static int line_to_pin(int line)
{
    if (line == 0)
        return 2;
    if (line == 2)
        return 9;        /* ISA has no IRQ2: its pin is IRQ9, as on the 8259 */
    return line;
}

static void ioapic_irq(void *opaque, int line, int level)
{
    struct ioapic *io = opaque;
    if (line < 0 || line >= IOAPIC_PINS)
        return;
    int pin = line_to_pin(line);
    uint32_t bit = 1u << pin;
    bool was = io->level & bit;
    if (level)
        io->level |= bit;
    else
        io->level &= ~bit;
    if (pin_is_level(io, pin)) {
        if (level)
            io->irr |= bit;
        else
            io->irr &= ~bit;
    } else if (level && !was) {
        io->irr |= bit;
    }
    service(io);
}

static void ioapic_eoi(void *opaque, uint8_t vector)
{
    struct ioapic *io = opaque;
    for (int pin = 0; pin < IOAPIC_PINS; pin++)
        if ((io->rte[pin] & 0xff) == vector && (io->rte[pin] & RTE_REMOTE_IRR))
            io->rte[pin] &= ~RTE_REMOTE_IRR;
    service(io);
}

/* The ISA line behind a pin, for irq_acked (pins 16-23 have none). */
static int pin_to_line(int pin)
{
    return pin == 2 ? 0 : pin;
}

/* The CPU took `vector`: the devices behind edge pins that send it hear of
 * it, as they do from the 8259's INTA (after the update, as there: the
 * PIT may raise its line again at once). */
static void ioapic_ack(void *opaque, uint8_t vector)
{
    struct ioapic *io = opaque;
    for (int pin = 0; pin < 16; pin++)
        if ((io->rte[pin] & 0xff) == vector && !(io->rte[pin] & RTE_MASKED) && !pin_is_level(io, pin))
            irq_acked(io->bus, pin_to_line(pin));
}

static uint32_t read_register(struct ioapic *io)
{
    uint8_t r = io->regsel;
    switch (r) {
    case REG_ID:
    case REG_ARB:
        return (uint32_t)(io->id & 0xf) << 24;
    case REG_VERSION:
        return IOAPIC_VERSION;
    }
    if (r >= REG_REDIR && r < REG_REDIR + 2 * IOAPIC_PINS) {
        int pin = (r - REG_REDIR) / 2;
        uint64_t e = io->rte[pin];
        return (r & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
    }
    return 0xffffffffu;     /* an unimplemented index floats */
}

static void write_register(struct ioapic *io, uint32_t val)
{
    uint8_t r = io->regsel;
    if (r == REG_ID) {
        io->id = (val >> 24) & 0xf;
        return;
    }
    if (r < REG_REDIR || r >= REG_REDIR + 2 * IOAPIC_PINS)
        return;                    /* version, arbitration and holes are read-only */
    int pin = (r - REG_REDIR) / 2;
    uint64_t e = io->rte[pin];
    uint64_t w = (r & 1) ? (uint64_t)val << 32 | (uint32_t)e : (e & 0xffffffff00000000ull) | val;
    io->rte[pin] = (e & ~RTE_WRITABLE) | (w & RTE_WRITABLE);
    /* An edge pin has no remote IRR; a pin made level again takes the line's level. */
    if (!pin_is_level(io, pin))
        io->rte[pin] &= ~RTE_REMOTE_IRR;
    else if (io->level & (1u << pin))
        io->irr |= 1u << pin;
    else
        io->irr &= ~(1u << pin);
    service(io);
}

static uint32_t mmio_read(void *opaque, uint32_t addr, int size)
{
    struct ioapic *io = opaque;
    switch (addr & 0xff0) {
    case 0x00: return io->regsel >> (8 * (addr & 3));
    case 0x10: return read_register(io) >> (8 * (addr & 3));
    }
    return 0;
}

static void mmio_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct ioapic *io = opaque;
    switch (addr & 0xfff) {
    case 0x00: io->regsel = val & 0xff; break;
    case 0x10:
        if (size == 4)
            write_register(io, val);
        break;
    }
}

static void ioapic_reset(void *opaque)
{
    struct ioapic *io = opaque;
    io->id = 0;
    io->regsel = 0;
    for (int pin = 0; pin < IOAPIC_PINS; pin++)
        io->rte[pin] = RTE_MASKED;
    io->irr = 0;
}

/* Input levels, pending requests and Remote IRR are all in the fields:
 * nothing follows from them that is not already there. */
static const struct state_field ioapic_fields[] = {
    STATE_FIELD(struct ioapic, id), STATE_FIELD(struct ioapic, regsel), STATE_FIELD(struct ioapic, rte),
    STATE_FIELD(struct ioapic, level), STATE_FIELD(struct ioapic, irr),
};
static const struct state_table ioapic_state = { "ioapic", 1, ioapic_fields, STATE_COUNT(ioapic_fields), NULL };

struct ioapic *ioapic_new(struct bus *b, uint32_t base)
{
    struct ioapic *io = xcalloc(1, sizeof(*io));
    io->bus = b;
    io->base = base;
    bus_register_mmio(b, base, 0x1000, io, mmio_read, mmio_write);
    bus_add_irq_listener(b, ioapic_irq, io);
    bus_set_apic_eoi_listener(b, ioapic_eoi, io);
    bus_set_apic_ack_listener(b, ioapic_ack, io);
    bus_add_device(b, &(struct device){ .name = "ioapic", .opaque = io, .reset = ioapic_reset, .state = &ioapic_state });
    ioapic_reset(io);
    return io;
}

void ioapic_free(struct ioapic *io)
{
    free(io);
}

uint64_t ioapic_redirection(const struct ioapic *io, int pin)
{
    return pin >= 0 && pin < IOAPIC_PINS ? io->rte[pin] : 0;
}
