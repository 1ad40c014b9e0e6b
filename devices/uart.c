/*
 * 16550A UART (see uart.h).
 *
 * The transmitter is infinitely fast: a byte written to THR is handed to
 * the chardev (or, in loopback, to the receiver) before the write returns,
 * so THR and the shift register always read empty and a THRE interrupt is
 * pending again right after every write.  The receiver is modelled
 * faithfully: 1- or 16-byte FIFO, trigger levels, overrun, and the
 * character-timeout interrupt after four character times of silence.
 */
#include "devices/uart.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/chardev.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08

#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO 0xc0

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTAS 0x0f

/* A chardev is an always-ready null modem: carrier, DSR and CTS asserted. */
#define MSR_LINES_CONNECTED (MSR_DCD | MSR_DSR | MSR_CTS)

#define UART_CLOCK_DIV16 115200   /* 1.8432 MHz / 16 */

struct uart {
    struct bus *bus;
    struct vclock *clock;
    struct chardev *cd;
    uint16_t base;
    int irq;

    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint16_t div;
    bool fifo;
    int trigger;
    bool thri;              /* THR-empty interrupt condition latched */
    bool timeout;           /* character timeout condition */
    bool irq_level;

    uint8_t rx[16];
    int rx_head, rx_len;
    uint8_t rbr_last;
    struct vtimer *rx_timer;
    char name[16];          /* serial0 for COM1, serial1 for COM2 */
};

static int rx_capacity(const struct uart *u)
{
    return u->fifo ? 16 : 1;
}

static uint8_t iir_id(const struct uart *u)
{
    if ((u->ier & IER_RLSI) && (u->lsr & LSR_ERRORS))
        return IIR_RLSI;
    if ((u->ier & IER_RDI) && u->rx_len >= (u->fifo ? u->trigger : 1))
        return IIR_RDI;
    if ((u->ier & IER_RDI) && u->timeout)
        return IIR_TIMEOUT;
    if ((u->ier & IER_THRI) && u->thri)
        return IIR_THRI;
    if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NONE;
}

static void update_irq(struct uart *u)
{
    bool level = iir_id(u) != IIR_NONE && (u->mcr & MCR_OUT2);
    if (level != u->irq_level) {
        u->irq_level = level;
        irq_set(u->bus, u->irq, level);
    }
}

/* Four character times at the programmed rate and frame format. */
static int64_t timeout_ns(const struct uart *u)
{
    int bits = 1 + 5 + (u->lcr & 3) + ((u->lcr & 0x08) ? 1 : 0) + ((u->lcr & 0x04) ? 2 : 1);
    int64_t div = u->div ? u->div : 65536;
    return 4 * bits * NS_PER_SEC * div / UART_CLOCK_DIV16;
}

/* (Re)start the four-character-time silence timer behind the timeout IRQ. */
static void restart_timeout(struct uart *u)
{
    if (u->fifo && u->rx_len)
        vtimer_mod(u->rx_timer, vclock_now(u->clock) + timeout_ns(u));
    else
        vtimer_del(u->rx_timer);
}

static void rx_timeout(void *opaque)
{
    struct uart *u = opaque;
    if (u->fifo && u->rx_len) {
        u->timeout = true;
        update_irq(u);
    }
}

static void rx_clear(struct uart *u)
{
    u->rx_head = u->rx_len = 0;
    u->lsr &= ~LSR_DR;
    u->timeout = false;
    vtimer_del(u->rx_timer);
}

static void rx_push(struct uart *u, uint8_t b)
{
    if (u->rx_len >= rx_capacity(u)) {
        u->lsr |= LSR_OE;
        /* Without FIFO the new character overwrites RBR; with one, the
         * character in the shift register is the one lost. */
        if (!u->fifo)
            u->rx[u->rx_head] = b;
    } else {
        u->rx[(u->rx_head + u->rx_len) % 16] = b;
        u->rx_len++;
    }
    u->lsr |= LSR_DR;
    u->timeout = false;
    restart_timeout(u);
}

static uint8_t rx_pop(struct uart *u)
{
    if (u->rx_len) {
        u->rbr_last = u->rx[u->rx_head];
        u->rx_head = (u->rx_head + 1) % 16;
        u->rx_len--;
    }
    if (!u->rx_len)
        u->lsr &= ~LSR_DR;
    u->timeout = false;
    restart_timeout(u);
    return u->rbr_last;
}

static void set_modem_inputs(struct uart *u, uint8_t lines)
{
    uint8_t old = u->msr & 0xf0, ch = old ^ lines;
    if (ch & MSR_CTS)
        u->msr |= MSR_DCTS;
    if (ch & MSR_DSR)
        u->msr |= MSR_DDSR;
    if ((old & MSR_RI) && !(lines & MSR_RI))
        u->msr |= MSR_TERI;         /* trailing edge only */
    if (ch & MSR_DCD)
        u->msr |= MSR_DDCD;
    u->msr = (u->msr & MSR_DELTAS) | lines;
}

static uint8_t loopback_lines(uint8_t mcr)
{
    return (mcr & MCR_RTS ? MSR_CTS : 0) | (mcr & MCR_DTR ? MSR_DSR : 0) |
           (mcr & MCR_OUT1 ? MSR_RI : 0) | (mcr & MCR_OUT2 ? MSR_DCD : 0);
}

static void transmit(struct uart *u, uint8_t b)
{
    if (u->mcr & MCR_LOOP)
        rx_push(u, b);
    else if (u->cd)
        chardev_write(u->cd, &b, 1);
}

static uint32_t uart_read(void *opaque, uint16_t port, int size)
{
    struct uart *u = opaque;
    uint8_t v;
    switch (port - u->base) {
    case 0:
        if (u->lcr & LCR_DLAB)
            return u->div & 0xff;
        v = rx_pop(u);
        break;
    case 1:
        return (u->lcr & LCR_DLAB) ? u->div >> 8 : u->ier;
    case 2: {
        uint8_t id = iir_id(u);
        /* Reading IIR while it reports THRE is what acknowledges THRE. */
        if (id == IIR_THRI)
            u->thri = false;
        v = id | (u->fifo ? IIR_FIFO : 0);
        break;
    }
    case 3:
        return u->lcr;
    case 4:
        return u->mcr;
    case 5:
        v = u->lsr | LSR_THRE | LSR_TEMT;
        u->lsr &= ~LSR_ERRORS;
        break;
    case 6:
        v = u->msr;
        u->msr &= ~MSR_DELTAS;
        break;
    default:
        return u->scr;
    }
    update_irq(u);
    return v;
}

static void uart_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct uart *u = opaque;
    uint8_t v = val;
    switch (port - u->base) {
    case 0:
        if (u->lcr & LCR_DLAB) {
            u->div = (u->div & 0xff00) | v;
            return;
        }
        u->thri = false;
        transmit(u, v);
        u->thri = true;     /* sent already: THR is empty again */
        break;
    case 1:
        if (u->lcr & LCR_DLAB) {
            u->div = (u->div & 0x00ff) | v << 8;
            return;
        }
        /* Enabling ETBEI while THR is empty raises THRE at once (the
         * 8250 driver's THRE test and many polled drivers rely on it). */
        if ((v & IER_THRI) && !(u->ier & IER_THRI))
            u->thri = true;
        u->ier = v & 0x0f;
        break;
    case 2: {
        bool en = v & 0x01;
        if (en != u->fifo)
            rx_clear(u);
        u->fifo = en;
        if (v & 0x02)
            rx_clear(u);
        static const int trig[4] = { 1, 4, 8, 14 };
        u->trigger = trig[v >> 6];
        u->fcr = v;
        break;
    }
    case 3:
        u->lcr = v;
        return;
    case 4: {
        u->mcr = v & 0x1f;
        set_modem_inputs(u, (u->mcr & MCR_LOOP) ? loopback_lines(u->mcr) : MSR_LINES_CONNECTED);
        break;
    }
    case 7:
        u->scr = v;
        return;
    default:
        return;             /* LSR/MSR writes are factory-test only */
    }
    update_irq(u);
}

static int uart_can_receive(void *opaque)
{
    struct uart *u = opaque;
    /* In loopback the serial input pin is disconnected. */
    if (u->mcr & MCR_LOOP)
        return 0;
    return rx_capacity(u) - u->rx_len;
}

static void uart_receive(void *opaque, const unsigned char *buf, int len)
{
    struct uart *u = opaque;
    for (int i = 0; i < len; i++)
        rx_push(u, buf[i]);
    update_irq(u);
}

static void uart_reset(void *opaque)
{
    struct uart *u = opaque;
    u->ier = 0;
    u->lcr = 0;
    u->mcr = 0;
    u->lsr = LSR_THRE | LSR_TEMT;
    u->msr = MSR_LINES_CONNECTED;
    u->fcr = 0;
    u->fifo = false;
    u->trigger = 1;
    u->thri = false;
    rx_clear(u);
    update_irq(u);
}

static void uart_post_load(void *opaque)
{
    struct uart *u = opaque;
    irq_set(u->bus, u->irq, u->irq_level);
}

static const struct state_field uart_fields[] = {
    STATE_FIELD(struct uart, ier), STATE_FIELD(struct uart, lcr), STATE_FIELD(struct uart, mcr),
    STATE_FIELD(struct uart, lsr), STATE_FIELD(struct uart, msr), STATE_FIELD(struct uart, scr),
    STATE_FIELD(struct uart, fcr), STATE_FIELD(struct uart, div), STATE_FIELD(struct uart, fifo),
    STATE_FIELD(struct uart, trigger), STATE_FIELD(struct uart, thri), STATE_FIELD(struct uart, timeout),
    STATE_FIELD(struct uart, irq_level), STATE_FIELD(struct uart, rx), STATE_FIELD(struct uart, rx_head),
    STATE_FIELD(struct uart, rx_len), STATE_FIELD(struct uart, rbr_last), STATE_TIMER(struct uart, rx_timer),
};
static const struct state_table uart_state = { "serial", 1, uart_fields, STATE_COUNT(uart_fields), uart_post_load };

struct uart *uart_new(struct bus *b, uint16_t base, int irq, struct chardev *cd)
{
    struct uart *u = xcalloc(1, sizeof(*u));
    u->bus = b;
    u->clock = bus_clock(b);
    u->cd = cd;
    u->base = base;
    u->irq = irq;
    u->div = 12;            /* 9600 baud until the guest says otherwise */
    u->rx_timer = vtimer_new(u->clock, rx_timeout, u);
    uart_reset(u);
    if (cd)
        chardev_set_handlers(cd, uart_can_receive, uart_receive, u);
    bus_register_pio(b, base, 8, u, uart_read, uart_write);
    if (base == UART_COM1_BASE || base == UART_COM2_BASE)
        snprintf(u->name, sizeof(u->name), "serial%d", base == UART_COM1_BASE ? 0 : 1);
    else
        snprintf(u->name, sizeof(u->name), "serial-%x", base);
    bus_add_device(b, &(struct device){ .name = u->name, .opaque = u, .reset = uart_reset, .state = &uart_state });
    return u;
}

void uart_free(struct uart *u)
{
    if (!u)
        return;
    if (u->cd)
        chardev_set_handlers(u->cd, NULL, NULL, NULL);
    vtimer_free(u->rx_timer);
    free(u);
}
