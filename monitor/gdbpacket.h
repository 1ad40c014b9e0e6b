/*
 * The GDB remote serial protocol's framing, apart from any machine:
 * "$payload#cs" packets with a two-digit modulo-256 checksum, '}' escapes
 * (the next byte XOR 0x20) and run-length encoding ("X*n": n - 29 more
 * copies of X) in what the client sends, the lone 0x03 that interrupts,
 * and '+'/'-' acknowledgements.  The stub (monitor/gdbstub.c) feeds it
 * bytes and frames its replies with it; the unit test drives it alone.
 */
#ifndef RV_GDBPACKET_H
#define RV_GDBPACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest payload accepted (and announced as PacketSize). */
#define GDB_MAX_PACKET 4096

enum gdb_rx_event {
    GDB_RX_NONE,          /* nothing complete yet */
    GDB_RX_PACKET,        /* a packet with a good checksum: rx->buf, rx->len */
    GDB_RX_BAD_CHECKSUM,  /* a complete packet whose checksum does not match: answer '-' */
    GDB_RX_OVERLONG,      /* a complete packet longer than GDB_MAX_PACKET: answer an E reply */
    GDB_RX_INTERRUPT,     /* 0x03 outside a packet: Ctrl-C */
    GDB_RX_ACK,           /* '+' */
    GDB_RX_NAK,           /* '-': send the last reply again */
};

struct gdb_rx {
    int state;
    uint8_t sum;          /* running checksum of the bytes as sent */
    uint8_t given;        /* the checksum the client sent */
    bool overflow;
    size_t len;
    char buf[GDB_MAX_PACKET + 1];   /* the unescaped payload, NUL-terminated (binary data may hold NULs) */
};

void gdb_rx_init(struct gdb_rx *rx);
/* Feed one received byte; returns what it completed. */
enum gdb_rx_event gdb_rx_byte(struct gdb_rx *rx, uint8_t byte);

/* Frame payload[0..len) as "$...#cs" into out, escaping '$', '#', '}' and
 * '*'.  Returns the framed length, or 0 when it would not fit in outsz. */
size_t gdb_frame(const void *payload, size_t len, char *out, size_t outsz);

/* Hex helpers: the value of one hex digit or -1; bytes as lowercase hex
 * (out holds 2 * n + 1); hex text to bytes (false on a bad digit or odd length). */
int gdb_hexval(char c);
void gdb_to_hex(const uint8_t *bytes, size_t n, char *out);
bool gdb_from_hex(const char *hex, size_t hexlen, uint8_t *out);
/* Parse a hex number at *p up to a character not a hex digit, moving *p past
 * it; false when there is no digit or it exceeds 32 bits. */
bool gdb_parse_hex32(const char **p, uint32_t *out);

#endif
