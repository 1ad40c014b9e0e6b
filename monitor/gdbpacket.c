/* GDB remote protocol framing (see gdbpacket.h). */
#include "monitor/gdbpacket.h"

#include <stdio.h>
#include <string.h>

enum { RX_IDLE, RX_DATA, RX_ESCAPE, RX_RLE, RX_CSUM_HI, RX_CSUM_LO };

void gdb_rx_init(struct gdb_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
}

int gdb_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Past the buffer the packet is still read to its checksum, then refused whole. */
static void rx_put(struct gdb_rx *rx, char c)
{
    if (rx->len >= GDB_MAX_PACKET) {
        rx->overflow = true;
        return;
    }
    rx->buf[rx->len++] = c;
}

static void rx_repeat(struct gdb_rx *rx, uint8_t count_char)
{
    /* "X*n" stands for X followed by n - 29 more copies; n is printable, 32..126. */
    if (rx->len == 0 || count_char < 32 || count_char > 126) {
        rx->overflow = true;      /* malformed: refused like an overlong packet */
        return;
    }
    char prev = rx->buf[rx->len - 1];
    for (int k = 0; k < count_char - 29; k++)
        rx_put(rx, prev);
}

enum gdb_rx_event gdb_rx_byte(struct gdb_rx *rx, uint8_t b)
{
    switch (rx->state) {
    case RX_IDLE:
        if (b == '$') {
            rx->state = RX_DATA;
            rx->sum = 0;
            rx->len = 0;
            rx->overflow = false;
        } else if (b == 0x03) {
            return GDB_RX_INTERRUPT;
        } else if (b == '+') {
            return GDB_RX_ACK;
        } else if (b == '-') {
            return GDB_RX_NAK;
        }
        return GDB_RX_NONE;          /* noise between packets is ignored */
    case RX_DATA:
        if (b == '#') {
            rx->state = RX_CSUM_HI;
            return GDB_RX_NONE;
        }
        if (b == '$') {              /* a new packet starts: the unfinished one is dropped */
            rx->sum = 0;
            rx->len = 0;
            rx->overflow = false;
            return GDB_RX_NONE;
        }
        rx->sum += b;
        if (b == '}')
            rx->state = RX_ESCAPE;
        else if (b == '*')
            rx->state = RX_RLE;
        else
            rx_put(rx, (char)b);
        return GDB_RX_NONE;
    case RX_ESCAPE:
        rx->sum += b;
        rx_put(rx, (char)(b ^ 0x20));
        rx->state = RX_DATA;
        return GDB_RX_NONE;
    case RX_RLE:
        rx->sum += b;
        rx_repeat(rx, b);
        rx->state = RX_DATA;
        return GDB_RX_NONE;
    case RX_CSUM_HI:
        rx->given = (uint8_t)((gdb_hexval((char)b) & 0xf) << 4);
        rx->state = gdb_hexval((char)b) < 0 ? RX_IDLE : RX_CSUM_LO;
        return rx->state == RX_IDLE ? GDB_RX_BAD_CHECKSUM : GDB_RX_NONE;
    case RX_CSUM_LO:
        rx->state = RX_IDLE;
        if (gdb_hexval((char)b) < 0 || (uint8_t)(rx->given | gdb_hexval((char)b)) != rx->sum)
            return GDB_RX_BAD_CHECKSUM;
        if (rx->overflow)
            return GDB_RX_OVERLONG;
        rx->buf[rx->len] = 0;
        return GDB_RX_PACKET;
    }
    rx->state = RX_IDLE;
    return GDB_RX_NONE;
}

size_t gdb_frame(const void *payload, size_t len, char *out, size_t outsz)
{
    const uint8_t *p = payload;
    size_t n = 0;
    uint8_t sum = 0;
    if (outsz < 4)
        return 0;
    out[n++] = '$';
    for (size_t k = 0; k < len; k++) {
        uint8_t c = p[k];
        bool esc = c == '$' || c == '#' || c == '}' || c == '*';
        if (n + (esc ? 2 : 1) + 3 > outsz)
            return 0;
        if (esc) {
            out[n++] = '}';
            sum += '}';
            c ^= 0x20;
        }
        out[n++] = (char)c;
        sum += c;
    }
    static const char digits[] = "0123456789abcdef";
    out[n++] = '#';
    out[n++] = digits[sum >> 4];
    out[n++] = digits[sum & 15];
    return n;
}

void gdb_to_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t k = 0; k < n; k++) {
        out[2 * k] = digits[bytes[k] >> 4];
        out[2 * k + 1] = digits[bytes[k] & 15];
    }
    out[2 * n] = 0;
}

bool gdb_from_hex(const char *hex, size_t hexlen, uint8_t *out)
{
    if (hexlen & 1)
        return false;
    for (size_t k = 0; k < hexlen / 2; k++) {
        int hi = gdb_hexval(hex[2 * k]), lo = gdb_hexval(hex[2 * k + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[k] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool gdb_parse_hex32(const char **p, uint32_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    while (gdb_hexval(*s) >= 0) {
        v = v << 4 | (uint64_t)gdb_hexval(*s++);
        if (v > 0xffffffffu)
            return false;
        n++;
    }
    if (!n)
        return false;
    *out = (uint32_t)v;
    *p = s;
    return true;
}

bool gdb_parse_addr_len(const char **p, uint32_t *addr, uint32_t *len)
{
    return gdb_parse_hex32(p, addr) && *(*p)++ == ',' && gdb_parse_hex32(p, len);
}

bool gdb_parse_point(const char *s, struct gdb_point *pt)
{
    struct gdb_point p;
    if (!gdb_parse_hex32(&s, &p.type) || *s++ != ',' || !gdb_parse_addr_len(&s, &p.addr, &p.kind) ||
        (*s && *s != ';'))
        return false;
    *pt = p;
    return true;
}

static const char *watch_word(uint32_t type)
{
    switch (type) {
    case GDB_POINT_WATCH_WRITE: return "watch";
    case GDB_POINT_WATCH_READ: return "rwatch";
    case GDB_POINT_WATCH_ACCESS: return "awatch";
    default: return NULL;
    }
}

int gdb_format_stop(char *out, size_t cap, int sig, uint32_t watch_type, uint32_t addr)
{
    const char *word = watch_word(watch_type);
    if (word)
        return snprintf(out, cap, "T%02x%s:%x;thread:01;", sig & 0xff, word, addr);
    return snprintf(out, cap, "T%02xthread:01;", sig & 0xff);
}
