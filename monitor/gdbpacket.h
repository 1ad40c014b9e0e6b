/*
 * The GDB remote serial protocol's framing, apart from any machine:
 * "$payload#cs" packets with a two-digit modulo-256 checksum, '}' escapes
 * (the next byte XOR 0x20) and run-length encoding ("X*n": n - 29 more
 * copies of X) in what the client sends, the lone 0x03 that interrupts,
 * and '+'/'-' acknowledgements; also the Z/z packets' fields and the stop
 * replies' text.  The stub (monitor/gdbstub.c) feeds it bytes and frames
 * its replies with it; the unit test drives it alone.
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
/* "ADDR,LEN" (m, M, X, and the tail of Z/z), *p left after LEN. */
bool gdb_parse_addr_len(const char **p, uint32_t *addr, uint32_t *len);

/* Z and z packets' TYPE: what the stop reply of a watchpoint names it. */
enum {
    GDB_POINT_SW_BREAK = 0, GDB_POINT_HW_BREAK = 1,
    GDB_POINT_WATCH_WRITE = 2, GDB_POINT_WATCH_READ = 3, GDB_POINT_WATCH_ACCESS = 4,
};
struct gdb_point {
    uint32_t type, addr, kind;      /* kind: a watchpoint's length in bytes */
};
/* The body of a Z or z packet after its letter, "TYPE,ADDR,KIND", with an
 * optional ";..." tail (target-side conditions, which the stub does not
 * announce and ignores); false when malformed. */
bool gdb_parse_point(const char *s, struct gdb_point *pt);
/* A stop reply for signal sig: "T05thread:01;", or, when watch_type is a
 * watchpoint's TYPE, "T05watch:ADDR;thread:01;" (rwatch, awatch) naming the
 * data address gdb matches against its watchpoints.  snprintf's return. */
int gdb_format_stop(char *out, size_t cap, int sig, uint32_t watch_type, uint32_t addr);

#endif
