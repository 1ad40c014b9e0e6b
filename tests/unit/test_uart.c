/* 16550A UART via its ports, plus the chardev backends it talks to. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/uart.h"
#include "hosted-driver/chardev.h"
#include "hosted-driver/vclock.h"

#define COM1 0x3f8

struct env {
    struct vclock *clk;
    struct bus *b;
    struct uart *u;
    struct chardev *cd;
    char path[64];
    int level4, edges4;
};

static void sink(void *opaque, int line, int level)
{
    struct env *e = opaque;
    if (line != 4)
        return;
    if (level && !e->level4)
        e->edges4++;
    e->level4 = level;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char err[256];
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    bus_set_irq_sink(e->b, sink, e);
    snprintf(e->path, sizeof(e->path), "/tmp/rv_test_uart_%d", (int)getpid());
    char spec[80];
    snprintf(spec, sizeof(spec), "file:%s", e->path);
    e->cd = chardev_open(spec, err, sizeof(err));
    assert_non_null(e->cd);
    e->u = uart_new(e->b, COM1, 4, e->cd);
    bus_reset_devices(e->b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    bus_free(e->b);
    uart_free(e->u);
    chardev_close(e->cd);
    unlink(e->path);
    vclock_free(e->clk);
    free(e);
    return 0;
}

static uint8_t in(struct env *e, int reg) { return bus_pio_read(e->b, COM1 + reg, 1); }
static void out(struct env *e, int reg, uint8_t v) { bus_pio_write(e->b, COM1 + reg, v, 1); }

static void test_registers(void **state)
{
    struct env *e = *state;
    assert_int_equal(in(e, 2), 0x01);     /* no interrupt, no FIFO */
    assert_int_equal(in(e, 5), 0x60);     /* THRE | TEMT */
    out(e, 7, 0x5a);
    assert_int_equal(in(e, 7), 0x5a);
    out(e, 3, 0x80);                      /* DLAB */
    out(e, 0, 0x01);
    out(e, 1, 0x00);
    assert_int_equal(in(e, 0), 0x01);
    assert_int_equal(in(e, 1), 0x00);
    out(e, 3, 0x03);                      /* 8N1 */
    assert_int_equal(in(e, 3), 0x03);
    out(e, 1, 0xff);
    assert_int_equal(in(e, 1), 0x0f);     /* upper IER bits do not exist */
    assert_int_equal(in(e, 6) & 0xb0, 0xb0); /* connected: DCD, DSR, CTS */
}

static void test_transmit_to_chardev(void **state)
{
    struct env *e = *state;
    const char *msg = "hello, world\n";
    for (const char *p = msg; *p; p++) {
        while (!(in(e, 5) & 0x20))
            ;
        out(e, 0, *p);
    }
    char buf[64] = { 0 };
    chardev_flush(e->cd);
    FILE *f = fopen(e->path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    assert_int_equal(n, strlen(msg));
    assert_string_equal(buf, msg);
}

static void test_loopback_round_trip(void **state)
{
    struct env *e = *state;
    out(e, 4, 0x1f);                      /* loop, OUT2, OUT1, RTS, DTR */
    /* Lines follow MCR; only RI changed, and its leading edge is no event. */
    assert_int_equal(in(e, 6), 0xf0);
    out(e, 4, 0x1d);                      /* drop RTS: CTS falls */
    assert_int_equal(in(e, 6), 0xe1);
    assert_int_equal(in(e, 6), 0xe0);     /* deltas cleared by the read */
    out(e, 4, 0x1f);
    in(e, 6);
    out(e, 0, 'Q');
    assert_int_equal(in(e, 5) & 0x01, 0x01);
    assert_int_equal(in(e, 0), 'Q');
    assert_int_equal(in(e, 5) & 0x01, 0x00);
    /* Non-FIFO overrun: second byte overwrites, OE reported once. */
    out(e, 0, '1');
    out(e, 0, '2');
    assert_int_equal(in(e, 5) & 0x03, 0x03);
    assert_int_equal(in(e, 5) & 0x02, 0x00);
    assert_int_equal(in(e, 0), '2');
    /* Nothing reached the chardev. */
    chardev_flush(e->cd);
    FILE *f = fopen(e->path, "r");
    fseek(f, 0, SEEK_END);
    assert_int_equal(ftell(f), 0);
    fclose(f);
    /* RI trailing edge sets TERI. */
    out(e, 4, 0x1b);
    assert_int_equal(in(e, 6) & 0x0f, 0x04);
}

static void test_thre_interrupt(void **state)
{
    struct env *e = *state;
    out(e, 1, 0x02);                      /* ETBEI, OUT2 still off */
    assert_int_equal(in(e, 2), 0x02);     /* pending, and this read acks it */
    assert_int_equal(e->level4, 0);       /* gated by OUT2 */
    assert_int_equal(in(e, 2), 0x01);
    out(e, 4, 0x08);                      /* OUT2 */
    out(e, 0, 'x');                       /* THR empties again at once */
    assert_int_equal(e->level4, 1);
    assert_int_equal(in(e, 2), 0x02);
    assert_int_equal(e->level4, 0);
    /* Re-enabling ETBEI with THR empty re-raises THRE. */
    out(e, 1, 0x00);
    out(e, 1, 0x02);
    assert_int_equal(e->level4, 1);
    assert_int_equal(e->edges4, 2);
    /* Writing THR also clears the condition before re-raising it. */
    out(e, 1, 0x00);
    assert_int_equal(e->level4, 0);
}

static void test_iir_priorities_and_fifo(void **state)
{
    struct env *e = *state;
    out(e, 3, 0x80);
    out(e, 0, 0x01);                      /* 115200 baud */
    out(e, 1, 0x00);
    out(e, 3, 0x03);
    out(e, 2, 0x47);                      /* FIFO on, clear both, trigger 4 */
    assert_int_equal(in(e, 2), 0xc1);
    out(e, 4, 0x18);                      /* loopback + OUT2 */
    in(e, 6);                             /* drop modem deltas from entering loopback */
    out(e, 1, 0x0f);                      /* all sources */
    assert_int_equal(in(e, 2), 0xc2);     /* THRE (acked by this read) */
    for (int i = 0; i < 17; i++)          /* one more than the FIFO holds */
        out(e, 0, 'a' + i);
    assert_int_equal(e->level4, 1);
    assert_int_equal(in(e, 2), 0xc6);     /* line status first */
    assert_int_equal(in(e, 5) & 0x03, 0x03);
    assert_int_equal(in(e, 2), 0xc4);     /* then received data */
    for (int i = 0; i < 14; i++)
        assert_int_equal(in(e, 0), 'a' + i);
    /* 2 left, below the trigger: THRE from the writes shows next. */
    assert_int_equal(in(e, 2), 0xc2);
    /* Then modem status: drop RTS in loopback -> DCTS. */
    out(e, 4, 0x1a);
    out(e, 4, 0x18);
    assert_int_equal(in(e, 2), 0xc0);
    in(e, 6);
    assert_int_equal(in(e, 2), 0xc1);
    assert_int_equal(e->level4, 0);
    /* Four character times (4 * 10 bits at 115200) of silence: timeout. */
    int64_t t = vclock_now(e->clk) + 4 * 10 * NS_PER_SEC / 115200;
    vclock_advance_to(e->clk, t - 1);
    vclock_run_timers(e->clk);
    assert_int_equal(in(e, 2), 0xc1);
    vclock_advance_to(e->clk, t);
    vclock_run_timers(e->clk);
    assert_int_equal(e->level4, 1);
    assert_int_equal(in(e, 2), 0xcc);
    assert_int_equal(in(e, 0), 'a' + 14);  /* reading clears the timeout */
    assert_int_equal(in(e, 2), 0xc1);
    assert_int_equal(in(e, 0), 'a' + 15);
    assert_int_equal(in(e, 5) & 0x01, 0);
    /* Clear-RX via FCR. */
    out(e, 0, 'z');
    out(e, 2, 0x03);
    assert_int_equal(in(e, 5) & 0x01, 0);
    /* FIFO off: IIR top bits clear. */
    out(e, 2, 0x00);
    assert_int_equal(in(e, 2) & 0xc0, 0);
}

static void test_receive_from_stdio(void **state)
{
    struct env *e = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    int saved = dup(STDIN_FILENO);
    dup2(pfd[0], STDIN_FILENO);
    close(pfd[0]);
    char err[128];
    struct chardev *cd = chardev_open("stdio", err, sizeof(err));
    assert_non_null(cd);
    struct uart *u2 = uart_new(e->b, 0x2f8, 3, cd);
    bus_reset_devices(e->b);
    /* Ctrl-A a is a literal 0x01; the 16-byte FIFO takes all 7 bytes. */
    bus_pio_write(e->b, 0x2f8 + 2, 0x01, 1);
    assert_int_equal(write(pfd[1], "abc\001adef", 8), 8);
    assert_false(chardev_poll_all());
    const char want[] = "abc\001def";
    for (int i = 0; i < 7; i++) {
        assert_int_equal(bus_pio_read(e->b, 0x2fd, 1) & 1, 1);
        assert_int_equal(bus_pio_read(e->b, 0x2f8, 1), (uint8_t)want[i]);
    }
    assert_int_equal(bus_pio_read(e->b, 0x2fd, 1) & 1, 0);
    /* Without FIFO, one byte per poll: nothing is lost while the guest is slow. */
    bus_pio_write(e->b, 0x2fa, 0x00, 1);
    assert_int_equal(write(pfd[1], "XY", 2), 2);
    chardev_poll_all();
    chardev_poll_all();
    assert_int_equal(bus_pio_read(e->b, 0x2f8, 1), 'X');
    assert_int_equal(bus_pio_read(e->b, 0x2fd, 1) & 3, 0);
    chardev_poll_all();
    assert_int_equal(bus_pio_read(e->b, 0x2f8, 1), 'Y');
    /* Ctrl-A x asks to quit. */
    assert_int_equal(write(pfd[1], "\001x", 2), 2);
    assert_true(chardev_poll_all());
    uart_free(u2);
    chardev_close(cd);
    close(pfd[1]);
    dup2(saved, STDIN_FILENO);
    close(saved);
}

static void test_chardev_errors(void **state)
{
    char err[256];
    assert_null(chardev_open("file:/nonexistent-dir/x", err, sizeof(err)));
    assert_string_equal(err, "file:/nonexistent-dir/x: No such file or directory");
    assert_null(chardev_open("tcp:1234", err, sizeof(err)));
    assert_non_null(strstr(err, "tcp:1234"));
    assert_non_null(strstr(err, "stdio"));
    assert_non_null(strstr(err, "file:"));
    struct chardev *n = chardev_open("none", err, sizeof(err));
    assert_non_null(n);
    chardev_write(n, "x", 1);
    chardev_close(n);
    n = chardev_open("null", err, sizeof(err));
    assert_non_null(n);
    chardev_close(n);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_registers),
        T(test_transmit_to_chardev),
        T(test_loopback_round_trip),
        T(test_thre_interrupt),
        T(test_iir_priorities_and_fifo),
        T(test_receive_from_stdio),
        cmocka_unit_test(test_chardev_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
