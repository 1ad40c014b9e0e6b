/*
 * 8042 keyboard controller, PS/2 keyboard and mouse, port 0x92 (see kbc.h).
 *
 * The controller has one output buffer.  Bytes wait in three queues: the
 * controller's own replies, the keyboard's and the mouse's; whenever the
 * output buffer is empty the next byte moves in (controller first) and the
 * matching IRQ line is raised.  Reading port 0x60 empties the buffer and
 * lowers the line; the next keyboard/mouse byte arrives KBD_BYTE_NS later,
 * as it would over the PS/2 wire.  That gap matters: DOS programs hook
 * INT 9, read port 0x60 and chain to the BIOS handler, which reads it
 * again and must see the same byte.  Controller replies need no wire and
 * come at once.
 *
 * The keyboard always produces scan code set 2 (or set 1 if the guest asks
 * for it); the controller translates to set 1 when command byte bit 6 is
 * set, like the real part, including the F0 break prefix.
 */
#include "devices/kbc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

/* One byte over the PS/2 wire: 11 bits at 10-16.7 kHz is about 1 ms; this
 * is shorter to keep multi-byte sequences snappy, and still far longer than
 * any interrupt handler's double read of port 0x60. */
#define KBD_BYTE_NS 250000

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_A2 0x08
#define ST_UNLOCKED 0x10
#define ST_AUXB 0x20

#define CB_KBD_INT 0x01
#define CB_AUX_INT 0x02
#define CB_SYS 0x04
#define CB_KBD_OFF 0x10
#define CB_AUX_OFF 0x20
#define CB_XLAT 0x40

#define ACK 0xfa
#define RESEND 0xfe

#define QSIZE 64
#define AUX_TAG 0x100

struct queue {
    uint16_t buf[QSIZE];    /* bit 8 tags controller bytes bound for the aux side */
    int head, len;
};

struct keyboard {
    struct queue q;
    bool scanning;
    int set;
    uint8_t leds;
    uint8_t param_cmd;      /* command waiting for its parameter byte */
    uint8_t last;
};

struct mouse {
    struct queue q;
    bool enabled, remote, wrap, scale21;
    uint8_t rate, res;
    uint8_t param_cmd;
    uint8_t id;
    uint8_t rate_hist[3];
    int buttons, sent_buttons;
    int dx, dy, dz;
    uint8_t last;
};

struct kbc {
    struct bus *bus;
    uint8_t status, cmd, obuf;
    uint8_t outport;
    uint8_t ram[32];        /* controller RAM; byte 0 is the command byte */
    uint8_t pending;        /* controller command waiting for a data byte */
    bool xlat_break;
    bool irq1, irq12;
    bool wire_busy;         /* next device byte still "on the wire" */
    struct vtimer *wire;
    struct queue ctl;
    struct keyboard kbd;
    struct mouse ms;
    uint8_t port92;
    bool a20;               /* the gate as last driven through 0x64 or 0x92 */
};

/* The 8042's set 2 -> set 1 translation for 0x00-0x7f (a hardware fact;
 * 0x83 -> 0x41 and 0x84 -> 0x54 are the only other bytes it changes). */
static const uint8_t xlat_table[128] = {
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
};

static uint8_t xlat(uint8_t b)
{
    if (b < 0x80)
        return xlat_table[b];
    if (b == 0x83)
        return 0x41;
    if (b == 0x84)
        return 0x54;
    return b;
}

/* Set 1 make code -> set 2, by inverting the table; 0 = no such key. */
static uint8_t set1_to_set2(uint8_t code)
{
    if (code == 0x41)
        return 0x83;    /* F7: set 2 0x02 also maps there but is no key */
    if (code == 0x54)
        return 0x84;    /* SysRq */
    for (int i = 1; i < 128; i++)
        if (xlat_table[i] == code)
            return (uint8_t)i;
    return 0;
}

/* ---- queues ---- */

static void q_clear(struct queue *q)
{
    q->head = q->len = 0;
}

static int q_room(const struct queue *q)
{
    return QSIZE - q->len;
}

static void q_push(struct queue *q, uint16_t v)
{
    if (q->len >= QSIZE)
        return;     /* a real device overruns too; the guest was not reading */
    q->buf[(q->head + q->len) % QSIZE] = v;
    q->len++;
}

static uint16_t q_pop(struct queue *q)
{
    uint16_t v = q->buf[q->head];
    q->head = (q->head + 1) % QSIZE;
    q->len--;
    return v;
}

/* ---- controller core ---- */

static void update_irq(struct kbc *k)
{
    bool full = k->status & ST_OBF, aux = k->status & ST_AUXB;
    bool i1 = full && !aux && (k->cmd & CB_KBD_INT);
    bool i12 = full && aux && (k->cmd & CB_AUX_INT);
    if (i1 != k->irq1) {
        k->irq1 = i1;
        irq_set(k->bus, 1, i1);
    }
    if (i12 != k->irq12) {
        k->irq12 = i12;
        irq_set(k->bus, 12, i12);
    }
}

static void fill(struct kbc *k, uint8_t v, bool aux)
{
    k->obuf = v;
    k->status |= ST_OBF;
    if (aux)
        k->status |= ST_AUXB;
    else
        k->status &= ~ST_AUXB;
}

static void refill(struct kbc *k)
{
    if (!(k->status & ST_OBF)) {
        if (k->ctl.len) {
            uint16_t v = q_pop(&k->ctl);
            fill(k, v & 0xff, v & AUX_TAG);
        } else if (k->wire_busy) {
            /* device bytes wait for the wire timer */
        } else if (k->kbd.q.len && !(k->cmd & CB_KBD_OFF)) {
            uint8_t b = q_pop(&k->kbd.q);
            if (k->cmd & CB_XLAT) {
                while (b == 0xf0) {
                    k->xlat_break = true;
                    if (!k->kbd.q.len)
                        goto out;
                    b = q_pop(&k->kbd.q);
                }
                b = xlat(b) | (k->xlat_break ? 0x80 : 0);
                k->xlat_break = false;
            }
            fill(k, b, false);
        } else if (k->ms.q.len && !(k->cmd & CB_AUX_OFF)) {
            fill(k, q_pop(&k->ms.q), true);
        }
    }
out:
    update_irq(k);
}

static void reply(struct kbc *k, uint8_t v)
{
    q_push(&k->ctl, v);
}

static void set_a20(struct kbc *k, bool on)
{
    k->a20 = on;
    bus_set_a20(k->bus, on);
}

static uint8_t outport_value(struct kbc *k)
{
    bool full = k->status & ST_OBF, aux = k->status & ST_AUXB;
    return (k->outport & 0xcc) | 0x01 | (bus_a20(k->bus) ? 0x02 : 0) |
           (full && !aux ? 0x10 : 0) | (full && aux ? 0x20 : 0);
}

static void write_outport(struct kbc *k, uint8_t v)
{
    k->outport = v;
    set_a20(k, v & 0x02);
    /* Bit 0 drives the CPU's reset line, active low. */
    if (!(v & 0x01))
        bus_request(k->bus, BUS_REQ_RESET, 0);
}

static void set_cmd_byte(struct kbc *k, uint8_t v)
{
    k->cmd = v;
    k->ram[0] = v;
    if (v & CB_SYS)
        k->status |= ST_SYS;
    else
        k->status &= ~ST_SYS;
}

/* ---- keyboard ---- */

static void kbd_push(struct kbc *k, uint8_t v)
{
    k->kbd.last = v;
    q_push(&k->kbd.q, v);
}

static void kbd_defaults(struct keyboard *kb)
{
    kb->set = 2;
    kb->param_cmd = 0;
}

static void kbd_write(struct kbc *k, uint8_t b)
{
    struct keyboard *kb = &k->kbd;
    if (kb->param_cmd) {
        uint8_t c = kb->param_cmd;
        kb->param_cmd = 0;
        switch (c) {
        case 0xed:
            kb->leds = b & 7;
            kbd_push(k, ACK);
            return;
        case 0xf0:
            if (b == 0) {
                kbd_push(k, ACK);
                kbd_push(k, (uint8_t)kb->set);
            } else if (b <= 3) {
                kb->set = b;
                kbd_push(k, ACK);
            } else {
                kbd_push(k, RESEND);
            }
            return;
        default:                                /* 0xf3 typematic */
            kbd_push(k, ACK);
            return;
        }
    }
    /* A keyboard throws away its pending output when given a command. */
    q_clear(&kb->q);
    switch (b) {
    case 0xed: case 0xf0: case 0xf3:
        kbd_push(k, ACK);
        kb->param_cmd = b;
        break;
    case 0xee:
        kbd_push(k, 0xee);
        break;
    case 0xf2:
        kbd_push(k, ACK);
        kbd_push(k, 0xab);
        kbd_push(k, 0x83);
        break;
    case 0xf4:
        kb->scanning = true;
        kbd_push(k, ACK);
        break;
    case 0xf5:
        kbd_defaults(kb);
        kb->scanning = false;
        kbd_push(k, ACK);
        break;
    case 0xf6:
        kbd_defaults(kb);
        kbd_push(k, ACK);
        break;
    case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        kbd_push(k, ACK);       /* set-3 key types: accepted, no effect */
        break;
    case 0xfe:
        q_push(&kb->q, kb->last);
        break;
    case 0xff:
        kbd_defaults(kb);
        kb->scanning = true;
        kb->leds = 0;
        kbd_push(k, ACK);
        kbd_push(k, 0xaa);      /* basic assurance test passed */
        break;
    default:
        kbd_push(k, RESEND);
        break;
    }
}

void kbc_key_event(struct kbc *k, int code, bool e0, bool down)
{
    struct keyboard *kb = &k->kbd;
    if (!kb->scanning || code <= 0 || code > 0x7f)
        return;
    uint8_t seq[8];
    int n = 0;
    bool set1 = kb->set == 1;
    if (e0 && code == 0x45) {                   /* Pause */
        if (!down)
            return;
        static const uint8_t p1[] = { 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5 };
        static const uint8_t p2[] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
        if (set1) {
            memcpy(seq, p1, sizeof(p1));
            n = sizeof(p1);
        } else {
            memcpy(seq, p2, sizeof(p2));
            n = sizeof(p2);
        }
    } else if (e0 && code == 0x37) {            /* Print Screen: fake shift + key */
        if (set1) {
            const uint8_t d[] = { 0xe0, 0x2a, 0xe0, 0x37 }, u[] = { 0xe0, 0xb7, 0xe0, 0xaa };
            memcpy(seq, down ? d : u, 4);
            n = 4;
        } else if (down) {
            const uint8_t d[] = { 0xe0, 0x12, 0xe0, 0x7c };
            memcpy(seq, d, 4);
            n = 4;
        } else {
            const uint8_t u[] = { 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12 };
            memcpy(seq, u, 6);
            n = 6;
        }
    } else if (set1) {
        if (e0)
            seq[n++] = 0xe0;
        seq[n++] = (uint8_t)(code | (down ? 0 : 0x80));
    } else {
        /* Set 3 is answered like set 2: good enough for the rare guest. */
        uint8_t c2 = set1_to_set2((uint8_t)code);
        if (!c2)
            return;
        if (e0)
            seq[n++] = 0xe0;
        if (!down)
            seq[n++] = 0xf0;
        seq[n++] = c2;
    }
    if (q_room(&kb->q) < n)
        return;     /* drop whole keystrokes, never half a sequence */
    for (int i = 0; i < n; i++)
        kbd_push(k, seq[i]);
    refill(k);
}

/* ---- mouse ---- */

static void ms_push(struct kbc *k, uint8_t v)
{
    k->ms.last = v;
    q_push(&k->ms.q, v);
}

static void ms_defaults(struct mouse *m)
{
    m->rate = 100;
    m->res = 2;
    m->scale21 = false;
    m->enabled = false;
    m->remote = false;
    m->param_cmd = 0;
    m->dx = m->dy = m->dz = 0;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void ms_packet(struct kbc *k)
{
    struct mouse *m = &k->ms;
    int dx = clamp(m->dx, -256, 255), dy = clamp(m->dy, -256, 255);
    int dz = clamp(m->dz, -8, 7);
    uint8_t b0 = 0x08 | (m->buttons & 1) | (m->buttons & 2) | (m->buttons & 4);
    if (dx < 0)
        b0 |= 0x10;
    if (dy < 0)
        b0 |= 0x20;
    ms_push(k, b0);
    ms_push(k, (uint8_t)dx);
    ms_push(k, (uint8_t)dy);
    if (m->id == 3 || m->id == 4)
        ms_push(k, (uint8_t)(dz & (m->id == 4 ? 0x0f : 0xff)));
    m->dx -= dx;
    m->dy -= dy;
    m->dz -= dz;
    m->sent_buttons = m->buttons;
}

static int packet_size(const struct mouse *m)
{
    return (m->id == 3 || m->id == 4) ? 4 : 3;
}

static void ms_stream(struct kbc *k)
{
    struct mouse *m = &k->ms;
    if (!m->enabled || m->remote || m->wrap)
        return;
    /* Large motions go out as several packets while there is room; the
     * rest stays accumulated for the next event. */
    for (int i = 0; i < 8; i++) {
        if (!m->dx && !m->dy && !m->dz && m->buttons == m->sent_buttons)
            break;
        if (q_room(&m->q) < packet_size(m))
            break;
        ms_packet(k);
    }
}

static void ms_write(struct kbc *k, uint8_t b)
{
    struct mouse *m = &k->ms;
    if (m->wrap && b != 0xec && b != 0xff) {
        ms_push(k, b);              /* wrap mode echoes */
        return;
    }
    if (m->param_cmd) {
        uint8_t c = m->param_cmd;
        m->param_cmd = 0;
        if (c == 0xf3) {
            m->rate = b;
            m->rate_hist[0] = m->rate_hist[1];
            m->rate_hist[1] = m->rate_hist[2];
            m->rate_hist[2] = b;
            /* IntelliMouse knocks: 200,100,80 -> wheel; then 200,200,80 -> 5 buttons. */
            if (m->rate_hist[0] == 200 && m->rate_hist[1] == 100 && m->rate_hist[2] == 80 && m->id == 0)
                m->id = 3;
            else if (m->rate_hist[0] == 200 && m->rate_hist[1] == 200 && m->rate_hist[2] == 80 && m->id == 3)
                m->id = 4;
        } else {                                /* 0xe8 */
            m->res = b & 3;
        }
        ms_push(k, ACK);
        return;
    }
    q_clear(&m->q);
    switch (b) {
    case 0xe6:
        m->scale21 = false;
        ms_push(k, ACK);
        break;
    case 0xe7:
        m->scale21 = true;
        ms_push(k, ACK);
        break;
    case 0xe8: case 0xf3:
        m->param_cmd = b;
        ms_push(k, ACK);
        break;
    case 0xe9:
        ms_push(k, ACK);
        ms_push(k, (uint8_t)((m->remote ? 0x40 : 0) | (m->enabled ? 0x20 : 0) | (m->scale21 ? 0x10 : 0) |
                             ((m->buttons & 1) << 2) | ((m->buttons & 4) >> 1) | ((m->buttons & 2) >> 1)));
        ms_push(k, m->res);
        ms_push(k, m->rate);
        break;
    case 0xea:
        m->remote = false;
        ms_push(k, ACK);
        break;
    case 0xeb:
        ms_push(k, ACK);
        ms_packet(k);
        break;
    case 0xec:
        m->wrap = false;
        ms_push(k, ACK);
        break;
    case 0xee:
        m->wrap = true;
        ms_push(k, ACK);
        break;
    case 0xf0:
        m->remote = true;
        ms_push(k, ACK);
        break;
    case 0xf2:
        ms_push(k, ACK);
        ms_push(k, m->id);
        break;
    case 0xf4:
        m->enabled = true;
        ms_push(k, ACK);
        break;
    case 0xf5:
        m->enabled = false;
        ms_push(k, ACK);
        break;
    case 0xf6:
        ms_defaults(m);
        ms_push(k, ACK);
        break;
    case 0xfe:
        q_push(&m->q, m->last);
        break;
    case 0xff:
        ms_defaults(m);
        m->wrap = false;
        m->id = 0;
        ms_push(k, ACK);
        ms_push(k, 0xaa);
        ms_push(k, 0x00);
        break;
    default:
        ms_push(k, RESEND);
        break;
    }
}

void kbc_mouse_event(struct kbc *k, int dx, int dy, int dz, int buttons)
{
    struct mouse *m = &k->ms;
    /* Accumulate even when not streaming, for remote-mode reads (0xEB). */
    m->dx = clamp(m->dx + dx, -4096, 4096);
    m->dy = clamp(m->dy - dy, -4096, 4096);    /* PS/2 counts up as positive */
    m->dz = clamp(m->dz + dz, -64, 64);
    m->buttons = buttons & 7;
    if (!m->enabled || m->remote) {
        if (!m->enabled)
            m->dx = m->dy = m->dz = 0;
        return;
    }
    ms_stream(k);
    refill(k);
}

bool kbc_mouse_enabled(struct kbc *k)
{
    return k->ms.enabled;
}

uint8_t kbc_leds(struct kbc *k)
{
    return k->kbd.leds;
}

/* ---- ports ---- */

static void controller_command(struct kbc *k, uint8_t c)
{
    if (c >= 0x20 && c <= 0x3f) {
        reply(k, k->ram[c & 0x1f]);
        return;
    }
    if (c >= 0x60 && c <= 0x7f) {
        k->pending = c;
        return;
    }
    if (c >= 0xf0) {
        /* Pulse output port bits 0-3 that are 0 in the command; bit 0 is reset. */
        if (!(c & 0x01))
            bus_request(k->bus, BUS_REQ_RESET, 0);
        return;
    }
    switch (c) {
    case 0xa4:
        reply(k, 0xf1);         /* no password installed */
        break;
    case 0xa7:
        set_cmd_byte(k, k->cmd | CB_AUX_OFF);
        break;
    case 0xa8:
        set_cmd_byte(k, k->cmd & ~CB_AUX_OFF);
        break;
    case 0xa9:
    case 0xab:
        reply(k, 0x00);         /* interface test passed */
        break;
    case 0xaa:
        k->status |= ST_SYS;
        reply(k, 0x55);
        break;
    case 0xad:
        set_cmd_byte(k, k->cmd | CB_KBD_OFF);
        break;
    case 0xae:
        set_cmd_byte(k, k->cmd & ~CB_KBD_OFF);
        break;
    case 0xc0:
        reply(k, 0x80);         /* input port: keyboard not inhibited */
        break;
    case 0xd0:
        reply(k, outport_value(k));
        break;
    case 0xd1: case 0xd2: case 0xd3: case 0xd4:
        k->pending = c;
        break;
    case 0xdd:
        set_a20(k, false);
        break;
    case 0xdf:
        set_a20(k, true);
        break;
    case 0xe0:
        reply(k, 0x00);         /* test inputs */
        break;
    default:
        break;                  /* vendor commands: ignored */
    }
}

static void data_write(struct kbc *k, uint8_t v)
{
    uint8_t c = k->pending;
    k->pending = 0;
    if (c >= 0x60 && c <= 0x7f) {
        if (c == 0x60)
            set_cmd_byte(k, v);
        else
            k->ram[c & 0x1f] = v;
        return;
    }
    switch (c) {
    case 0xd1:
        write_outport(k, v);
        break;
    case 0xd2:
        q_push(&k->ctl, v);
        break;
    case 0xd3:
        q_push(&k->ctl, AUX_TAG | v);
        break;
    case 0xd4:
        /* Talking to a device re-enables its clock line, as QEMU's 8042 does. */
        set_cmd_byte(k, k->cmd & ~CB_AUX_OFF);
        ms_write(k, v);
        break;
    default:
        set_cmd_byte(k, k->cmd & ~CB_KBD_OFF);
        kbd_write(k, v);
        break;
    }
}

static uint32_t kbc_read(void *opaque, uint16_t port, int size)
{
    struct kbc *k = opaque;
    if (port == 0x64)
        return k->status;
    uint8_t v = k->obuf;
    if (!(k->status & ST_OBF))
        return v;   /* re-reading an empty buffer gives the stale byte */
    k->status &= ~(ST_OBF | ST_AUXB);
    update_irq(k);
    if (!k->ctl.len && (k->kbd.q.len || k->ms.q.len) && !k->wire_busy) {
        k->wire_busy = true;
        vtimer_mod(k->wire, vclock_now(bus_clock(k->bus)) + KBD_BYTE_NS);
    }
    refill(k);
    return v;
}

static void kbc_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct kbc *k = opaque;
    if (port == 0x64) {
        k->status |= ST_A2;
        controller_command(k, val);
    } else {
        k->status &= ~ST_A2;
        data_write(k, val);
    }
    refill(k);
}

static void wire_done(void *opaque)
{
    struct kbc *k = opaque;
    k->wire_busy = false;
    refill(k);
}

static uint32_t port92_read(void *opaque, uint16_t port, int size)
{
    struct kbc *k = opaque;
    return (k->port92 & ~0x02) | (bus_a20(k->bus) ? 0x02 : 0);
}

static void port92_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct kbc *k = opaque;
    uint8_t old = k->port92;
    k->port92 = val;
    set_a20(k, val & 0x02);
    if ((val & 0x01) && !(old & 0x01))
        bus_request(k->bus, BUS_REQ_RESET, 0);
}

static void kbc_reset(void *opaque)
{
    struct kbc *k = opaque;
    memset(k->ram, 0, sizeof(k->ram));
    k->status = ST_A2 | ST_UNLOCKED;
    set_cmd_byte(k, CB_XLAT | CB_AUX_OFF | CB_KBD_INT);
    k->pending = 0;
    k->xlat_break = false;
    k->wire_busy = false;
    vtimer_del(k->wire);
    k->outport = 0xcf;
    k->port92 = 0;
    q_clear(&k->ctl);
    q_clear(&k->kbd.q);
    q_clear(&k->ms.q);
    kbd_defaults(&k->kbd);
    k->kbd.scanning = true;
    k->kbd.leds = 0;
    ms_defaults(&k->ms);
    k->ms.wrap = false;
    k->ms.id = 0;
    k->ms.buttons = k->ms.sent_buttons = 0;
    set_a20(k, true);
    update_irq(k);
}

static void kbc_post_load(void *opaque)
{
    struct kbc *k = opaque;
    bus_set_a20(k->bus, k->a20);
    irq_set(k->bus, 1, k->irq1);
    irq_set(k->bus, 12, k->irq12);
}

static const struct state_field kbc_fields[] = {
    STATE_FIELD(struct kbc, status), STATE_FIELD(struct kbc, cmd), STATE_FIELD(struct kbc, obuf),
    STATE_FIELD(struct kbc, outport), STATE_FIELD(struct kbc, ram), STATE_FIELD(struct kbc, pending),
    STATE_FIELD(struct kbc, xlat_break), STATE_FIELD(struct kbc, irq1), STATE_FIELD(struct kbc, irq12),
    STATE_FIELD(struct kbc, wire_busy), STATE_TIMER(struct kbc, wire), STATE_FIELD(struct kbc, ctl),
    STATE_FIELD(struct kbc, kbd), STATE_FIELD(struct kbc, ms), STATE_FIELD(struct kbc, port92),
    STATE_FIELD(struct kbc, a20),
};
static const struct state_table kbc_state = { "kbc", 1, kbc_fields, STATE_COUNT(kbc_fields), kbc_post_load };

struct kbc *kbc_new(struct bus *b)
{
    struct kbc *k = xcalloc(1, sizeof(*k));
    k->bus = b;
    k->wire = vtimer_new(bus_clock(b), wire_done, k);
    bus_register_pio(b, 0x60, 1, k, kbc_read, kbc_write);
    bus_register_pio(b, 0x64, 1, k, kbc_read, kbc_write);
    bus_register_pio(b, 0x92, 1, k, port92_read, port92_write);
    kbc_reset(k);
    bus_add_device(b, &(struct device){ .name = "kbc", .opaque = k, .reset = kbc_reset, .state = &kbc_state });
    return k;
}

void kbc_free(struct kbc *k)
{
    if (!k)
        return;
    vtimer_free(k->wire);
    free(k);
}
