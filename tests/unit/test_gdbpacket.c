/* The gdb stub's packet layer (monitor/gdbpacket.c): framing, checksums,
 * escapes and run-length encoding, Ctrl-C, acknowledgements, overlong and
 * malformed packets, the hex helpers, Z/z fields and stop replies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "monitor/gdbpacket.h"

/* The checksum as the protocol defines it, computed independently of the code under test. */
static unsigned sum_of(const char *s, size_t n)
{
    unsigned sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += (uint8_t)s[k];
    return sum & 0xff;
}

/* Feed bytes; returns the last event that was not GDB_RX_NONE (NONE if none), and how many there were. */
static enum gdb_rx_event feed(struct gdb_rx *rx, const char *bytes, size_t n, int *events)
{
    enum gdb_rx_event last = GDB_RX_NONE;
    *events = 0;
    for (size_t k = 0; k < n; k++) {
        enum gdb_rx_event e = gdb_rx_byte(rx, (uint8_t)bytes[k]);
        if (e != GDB_RX_NONE) {
            last = e;
            ++*events;
        }
    }
    return last;
}

static enum gdb_rx_event feed_framed(struct gdb_rx *rx, const char *raw_payload, unsigned checksum)
{
    char buf[GDB_MAX_PACKET * 2 + 16];
    int n = snprintf(buf, sizeof(buf), "$%s#%02x", raw_payload, checksum);
    int events;
    return feed(rx, buf, (size_t)n, &events);
}

static void test_good_packet(void **state)
{
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    const char *p = "qSupported:multiprocess+;swbreak+";
    assert_int_equal(feed_framed(&rx, p, sum_of(p, strlen(p))), GDB_RX_PACKET);
    assert_int_equal(rx.len, strlen(p));
    assert_string_equal(rx.buf, p);
    /* Upper-case checksum digits are accepted too. */
    char upper[64];
    snprintf(upper, sizeof(upper), "$g#%02X", sum_of("g", 1));
    int events;
    assert_int_equal(feed(&rx, upper, strlen(upper), &events), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "g");
}

static void test_bad_checksum(void **state)
{
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    assert_int_equal(feed_framed(&rx, "g", (sum_of("g", 1) + 1) & 0xff), GDB_RX_BAD_CHECKSUM);
    int events;
    assert_int_equal(feed(&rx, "$g#zz", 5, &events), GDB_RX_BAD_CHECKSUM);
    assert_int_equal(events, 1);
    /* The next good packet is received whole after a bad one. */
    assert_int_equal(feed_framed(&rx, "?", sum_of("?", 1)), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "?");
}

static void test_escapes_and_rle(void **state)
{
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    /* X data with '}' escapes: '}' 0x5d -> '}', '}' 0x03 -> '#', '}' 0x04 -> '$', '}' 0x0a -> '*'. */
    const char raw[] = "X0,4:}]}\x03}\x04}\x0a";
    assert_int_equal(feed_framed(&rx, raw, sum_of(raw, strlen(raw))), GDB_RX_PACKET);
    assert_int_equal(rx.len, 9);
    assert_memory_equal(rx.buf, "X0,4:}#$*", 9);
    /* Run-length: "0* " is '0' and 32 - 29 = 3 more. */
    const char rle[] = "m0* ";
    assert_int_equal(feed_framed(&rx, rle, sum_of(rle, strlen(rle))), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "m0000");
    /* A repeat with nothing before it is malformed. */
    const char bad_rle[] = "* ";
    assert_int_equal(feed_framed(&rx, bad_rle, sum_of(bad_rle, strlen(bad_rle))), GDB_RX_OVERLONG);
}

static void test_interrupt_and_acks(void **state)
{
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    assert_int_equal(gdb_rx_byte(&rx, 0x03), GDB_RX_INTERRUPT);
    assert_int_equal(gdb_rx_byte(&rx, '+'), GDB_RX_ACK);
    assert_int_equal(gdb_rx_byte(&rx, '-'), GDB_RX_NAK);
    assert_int_equal(gdb_rx_byte(&rx, 'x'), GDB_RX_NONE);     /* noise between packets */
    /* Inside a packet 0x03 is data, not an interrupt. */
    const char p[] = "M0,1:\x03";
    int events;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "$%s#%02x", p, sum_of(p, strlen(p)));
    assert_int_equal(feed(&rx, buf, (size_t)n, &events), GDB_RX_PACKET);
    assert_int_equal(events, 1);
}

static void test_overlong(void **state)
{
    static char big[GDB_MAX_PACKET + 200];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    assert_int_equal(feed_framed(&rx, big, sum_of(big, strlen(big))), GDB_RX_OVERLONG);
    /* Exactly the maximum fits. */
    big[GDB_MAX_PACKET] = 0;
    assert_int_equal(feed_framed(&rx, big, sum_of(big, GDB_MAX_PACKET)), GDB_RX_PACKET);
    assert_int_equal(rx.len, GDB_MAX_PACKET);
    /* An RLE run that would pass the end is refused as well. */
    big[GDB_MAX_PACKET - 1] = 0;
    char rle[GDB_MAX_PACKET + 4];
    snprintf(rle, sizeof(rle), "%s*~", big);
    assert_int_equal(feed_framed(&rx, rle, sum_of(rle, strlen(rle))), GDB_RX_OVERLONG);
}

static void test_restart_mid_packet(void **state)
{
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "$mdead$g#%02x", sum_of("g", 1));
    int events;
    assert_int_equal(feed(&rx, buf, (size_t)n, &events), GDB_RX_PACKET);
    assert_string_equal(rx.buf, "g");
}

static void test_frame_round_trip(void **state)
{
    const char payload[] = "T05thread:01;#$}*";
    char out[64];
    size_t n = gdb_frame(payload, strlen(payload), out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(out[0], '$');
    assert_int_equal(out[n - 3], '#');
    /* The four special characters are escaped... */
    assert_null(memchr(out + 1, '#', n - 4));
    assert_null(memchr(out + 1, '*', n - 4));
    /* ...the checksum covers the bytes as sent, and the receiver gets the payload back. */
    char cs[3];
    snprintf(cs, sizeof(cs), "%02x", sum_of(out + 1, n - 4));
    assert_memory_equal(out + n - 2, cs, 2);
    struct gdb_rx rx;
    gdb_rx_init(&rx);
    int events;
    assert_int_equal(feed(&rx, out, n, &events), GDB_RX_PACKET);
    assert_int_equal(rx.len, strlen(payload));
    assert_memory_equal(rx.buf, payload, strlen(payload));
    /* Too small an output buffer: 0, never an overflow. */
    assert_int_equal(gdb_frame(payload, strlen(payload), out, 10), 0);
    assert_int_equal(gdb_frame("", 0, out, 3), 0);
    assert_int_equal(gdb_frame("", 0, out, 4), 4);
    assert_memory_equal(out, "$#00", 4);
}

static void test_hex(void **state)
{
    const uint8_t bytes[] = { 0x00, 0x7f, 0xa5, 0xff };
    char hex[9];
    gdb_to_hex(bytes, 4, hex);
    assert_string_equal(hex, "007fa5ff");
    uint8_t back[4];
    assert_true(gdb_from_hex("007FA5ff", 8, back));
    assert_memory_equal(back, bytes, 4);
    assert_false(gdb_from_hex("0", 1, back));
    assert_false(gdb_from_hex("0g", 2, back));
    const char *p = "c1d929c1,10";
    uint32_t v;
    assert_true(gdb_parse_hex32(&p, &v));
    assert_int_equal(v, 0xc1d929c1u);
    assert_int_equal(*p, ',');
    p = "100000000";
    assert_false(gdb_parse_hex32(&p, &v));      /* over 32 bits */
    p = "0000000000ffffffff";
    assert_true(gdb_parse_hex32(&p, &v));       /* leading zeros are no overflow */
    assert_int_equal(v, 0xffffffffu);
    p = ",1";
    assert_false(gdb_parse_hex32(&p, &v));
}

/* Z and z bodies: TYPE,ADDR,KIND, an optional ';' tail, nothing else. */
static void test_point(void **state)
{
    struct gdb_point pt = { 99, 99, 99 };
    assert_true(gdb_parse_point("3,c1d929c0,4", &pt));
    assert_int_equal(pt.type, GDB_POINT_WATCH_READ);
    assert_int_equal(pt.addr, 0xc1d929c0u);
    assert_int_equal(pt.kind, 4);
    assert_true(gdb_parse_point("4,5000,8;X1,0", &pt));
    assert_int_equal(pt.type, GDB_POINT_WATCH_ACCESS);
    assert_int_equal(pt.kind, 8);
    assert_true(gdb_parse_point("2,0,0", &pt));        /* a bad length is the stub's to refuse */
    assert_int_equal(pt.kind, 0);
    pt.type = 77;
    static const char *const bad[] = { "", "3", "3,", "3,5000", "3,5000,", "3,zz,4", "3,5000,4x", "3;5000,4",
                                       "3,5000,100000000", "-1,5000,4" };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_false(gdb_parse_point(bad[k], &pt));
    assert_int_equal(pt.type, 77);                      /* untouched by a failed parse */
}

static void test_stop_reply(void **state)
{
    char out[64];
    assert_int_equal(gdb_format_stop(out, sizeof out, 5, 0, 0x1234), (int)strlen("T05thread:01;"));
    assert_string_equal(out, "T05thread:01;");
    gdb_format_stop(out, sizeof out, 2, GDB_POINT_SW_BREAK, 0x1234);
    assert_string_equal(out, "T02thread:01;");
    gdb_format_stop(out, sizeof out, 5, GDB_POINT_WATCH_WRITE, 0x413);
    assert_string_equal(out, "T05watch:413;thread:01;");
    gdb_format_stop(out, sizeof out, 5, GDB_POINT_WATCH_READ, 0xc1d929c0u);
    assert_string_equal(out, "T05rwatch:c1d929c0;thread:01;");
    gdb_format_stop(out, sizeof out, 5, GDB_POINT_WATCH_ACCESS, 0);
    assert_string_equal(out, "T05awatch:0;thread:01;");
    char small[8];
    gdb_format_stop(small, sizeof small, 5, GDB_POINT_WATCH_ACCESS, 0xffffffffu);
    assert_string_equal(small, "T05awat");                /* truncated, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_packet),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_escapes_and_rle),
        cmocka_unit_test(test_interrupt_and_acks),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_restart_mid_packet),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_point),
        cmocka_unit_test(test_stop_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
