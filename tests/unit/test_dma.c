/* 8237 DMA controllers through their ports: modes, both widths, page wrap, auto-init, TC. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/dma.h"
#include "hosted-driver/vclock.h"
#include "device_bench.h"

#define RAM_SIZE 0x38000     /* not a whole number of 64 KiB pages */

struct env {
    struct bench hw;
    struct dma *d;
    int services;
    int last_channel;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    bench_init(&e->hw, RAM_SIZE, false);
    e->d = dma_new(e->hw.b, bench_ram_rw, &e->hw);
    bus_reset_devices(e->hw.b);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    dma_free(e->d);
    bench_free(&e->hw);
    free(e);
    return 0;
}

static void outb(struct env *e, uint16_t port, uint8_t v)
{
    bus_pio_write(e->hw.b, port, v, 1);
}

static uint8_t inb(struct env *e, uint16_t port)
{
    return bus_pio_read(e->hw.b, port, 1);
}

/* Register of channel ch's controller: DMA1's ports are 1 apart, DMA2's 2. */
static uint16_t reg(int ch, int r)
{
    return ch < 4 ? r : 0xc0 + 2 * r;
}

static const uint16_t page_ports[8] = { 0x87, 0x83, 0x81, 0x82, 0x8f, 0x8b, 0x89, 0x8a };

/* Programs a channel as firmware does: mask, address, count, mode, page, unmask. */
static void program(struct env *e, int ch, uint8_t page, uint16_t addr, uint16_t count, uint8_t mode)
{
    int c = ch & 3;
    outb(e, reg(ch, 10), 4 | c);
    outb(e, reg(ch, 12), 0);
    outb(e, reg(ch, 2 * c), addr & 0xff);
    outb(e, reg(ch, 2 * c), addr >> 8);
    outb(e, reg(ch, 12), 0);
    outb(e, reg(ch, 2 * c + 1), count & 0xff);
    outb(e, reg(ch, 2 * c + 1), count >> 8);
    outb(e, reg(ch, 11), mode | c);
    outb(e, page_ports[ch], page);
    outb(e, reg(ch, 10), c);
}

static uint16_t read_word(struct env *e, int ch, int r)
{
    outb(e, reg(ch, 12), 0);
    uint8_t lo = inb(e, reg(ch, r));
    return lo | (inb(e, reg(ch, r)) << 8);
}

#define MODE_DEMAND 0x00
#define MODE_SINGLE 0x40
#define MODE_BLOCK 0x80
#define MODE_CASCADE 0xc0
#define TO_MEMORY 0x04
#define FROM_MEMORY 0x08
#define AUTOINIT 0x10
#define DECREMENT 0x20

static void fill(uint8_t *buf, int n, uint8_t seed)
{
    for (int i = 0; i < n; i++)
        buf[i] = (uint8_t)(seed + i * 7);
}

static void to_memory_stops_at_terminal_count(void **state)
{
    struct env *e = *state;
    uint8_t modes[3] = { MODE_SINGLE, MODE_BLOCK, MODE_DEMAND };
    for (int k = 0; k < 3; k++) {
        memset(e->hw.ram, 0, RAM_SIZE);
        program(e, 2, 0x01, 0x1234, 9, modes[k] | TO_MEMORY);
        uint8_t src[16];
        fill(src, 16, 0x40 + k);
        bool tc = false;
        assert_int_equal(dma_to_memory(e->d, 2, src, 16, &tc), 10);
        assert_true(tc);
        assert_memory_equal(e->hw.ram + 0x11234, src, 10);
        assert_int_equal(e->hw.ram[0x11234 + 10], 0);
        /* TC bit of channel 2 in the status, cleared by reading it; the channel masks itself. */
        assert_int_equal(inb(e, 0x08) & 0x0f, 0x04);
        assert_int_equal(inb(e, 0x08) & 0x0f, 0);
        assert_int_equal(inb(e, 0x0f) & 0x04, 0x04);
        assert_int_equal(read_word(e, 2, 4), 0x1234 + 10);
        assert_int_equal(read_word(e, 2, 5), 0xffff);
    }
}

static void from_memory_and_partial_transfers(void **state)
{
    struct env *e = *state;
    fill(e->hw.ram + 0x20000, 100, 3);
    program(e, 1, 0x02, 0x0000, 99, MODE_SINGLE | FROM_MEMORY);
    uint8_t got[100];
    bool tc = true;
    assert_int_equal(dma_from_memory(e->d, 1, got, 40, &tc), 40);
    assert_false(tc);
    assert_int_equal(dma_bytes_left(e->d, 1), 60);
    assert_int_equal(dma_from_memory(e->d, 1, got + 40, 100, &tc), 60);
    assert_true(tc);
    assert_memory_equal(got, e->hw.ram + 0x20000, 100);
}

static void wrong_direction_and_verify_touch_no_memory(void **state)
{
    struct env *e = *state;
    memset(e->hw.ram, 0x11, 0x100);
    program(e, 3, 0x00, 0x0000, 0x0f, MODE_SINGLE | FROM_MEMORY);
    uint8_t src[16];
    fill(src, 16, 9);
    assert_int_equal(dma_to_memory(e->d, 3, src, 16, NULL), 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(e->hw.ram[i], 0x11);
    program(e, 3, 0x00, 0x0000, 0x0f, MODE_SINGLE);    /* verify */
    uint8_t got[16];
    assert_int_equal(dma_from_memory(e->d, 3, got, 16, NULL), 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(got[i], 0xff);
}

static void autoinit_reloads_and_stays_unmasked(void **state)
{
    struct env *e = *state;
    program(e, 1, 0x00, 0x0100, 3, MODE_SINGLE | TO_MEMORY | AUTOINIT);
    uint8_t a[4] = { 1, 2, 3, 4 }, b[4] = { 5, 6, 7, 8 };
    bool tc = false;
    assert_int_equal(dma_to_memory(e->d, 1, a, 4, &tc), 4);
    assert_true(tc);
    assert_int_equal(inb(e, 0x0f) & 0x02, 0);
    assert_int_equal(read_word(e, 1, 2), 0x0100);
    assert_int_equal(read_word(e, 1, 3), 3);
    assert_int_equal(dma_to_memory(e->d, 1, b, 4, &tc), 4);
    assert_true(tc);
    assert_memory_equal(e->hw.ram + 0x100, b, 4);
}

static void decrement_mode(void **state)
{
    struct env *e = *state;
    program(e, 0, 0x00, 0x0203, 3, MODE_BLOCK | TO_MEMORY | DECREMENT);
    uint8_t src[4] = { 0xa, 0xb, 0xc, 0xd };
    assert_int_equal(dma_to_memory(e->d, 0, src, 4, NULL), 4);
    assert_int_equal(e->hw.ram[0x203], 0xa);
    assert_int_equal(e->hw.ram[0x202], 0xb);
    assert_int_equal(e->hw.ram[0x201], 0xc);
    assert_int_equal(e->hw.ram[0x200], 0xd);
}

static void word_channel_addresses_words(void **state)
{
    struct env *e = *state;
    /* Page 3 on a 16-bit channel: bit 0 is not used; word 0x8000 is byte 0x10000 of the 128 KiB page. */
    program(e, 5, 0x03, 0x8000, 3, MODE_SINGLE | TO_MEMORY);
    uint8_t src[9];
    fill(src, 9, 0x77);
    bool tc = false;
    assert_int_equal(dma_to_memory(e->d, 5, src, 9, &tc), 8);
    assert_true(tc);
    assert_memory_equal(e->hw.ram + 0x30000, src, 8);
    assert_int_equal(read_word(e, 5, 2), 0x8004);
    assert_int_equal(inb(e, 0xd0) & 0x0f, 0x02);
}

static void page_wrap_8_and_16_bit(void **state)
{
    struct env *e = *state;
    program(e, 2, 0x01, 0xfffe, 3, MODE_SINGLE | TO_MEMORY);
    uint8_t src[4] = { 1, 2, 3, 4 };
    assert_int_equal(dma_to_memory(e->d, 2, src, 4, NULL), 4);
    assert_int_equal(e->hw.ram[0x1fffe], 1);
    assert_int_equal(e->hw.ram[0x1ffff], 2);
    assert_int_equal(e->hw.ram[0x10000], 3);
    assert_int_equal(e->hw.ram[0x10001], 4);
    assert_int_equal(e->hw.ram[0x20000], 0);

    program(e, 6, 0x01, 0xffff, 1, MODE_SINGLE | TO_MEMORY);   /* page 1 is page 0 for words */
    uint8_t w[4] = { 5, 6, 7, 8 };
    assert_int_equal(dma_to_memory(e->d, 6, w, 4, NULL), 4);
    assert_int_equal(e->hw.ram[0x1fffe], 5);
    assert_int_equal(e->hw.ram[0x1ffff], 6);
    assert_int_equal(e->hw.ram[0x00000], 7);
    assert_int_equal(e->hw.ram[0x00001], 8);
}

static void beyond_ram_is_dropped(void **state)
{
    struct env *e = *state;
    /* Half in RAM, half beyond it: the RAM half is written, the rest is lost. */
    program(e, 2, 0x03, 0x7ffe, 3, MODE_SINGLE | TO_MEMORY);
    uint8_t src[4] = { 1, 2, 3, 4 };
    assert_int_equal(dma_to_memory(e->d, 2, src, 4, NULL), 4);
    assert_int_equal(e->hw.ram[0x37ffe], 1);
    assert_int_equal(e->hw.ram[0x37fff], 2);
    program(e, 2, 0xff, 0x0000, 3, MODE_SINGLE | FROM_MEMORY);
    uint8_t got[4] = { 0 };
    assert_int_equal(dma_from_memory(e->d, 2, got, 4, NULL), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(got[i], 0xff);
}

static void service(void *opaque, int channel)
{
    struct env *e = opaque;
    e->services++;
    e->last_channel = channel;
    uint8_t b[2] = { 0x5a, 0xa5 };
    dma_to_memory(e->d, channel, b, 2, NULL);
    dma_set_dreq(e->d, channel, false);
}

static void dreq_waits_for_unmask_and_enable(void **state)
{
    struct env *e = *state;
    dma_attach(e->d, 2, service, e);
    program(e, 2, 0x00, 0x0400, 1, MODE_SINGLE | TO_MEMORY);
    outb(e, 0x0a, 4 | 2);                 /* mask it again */
    dma_set_dreq(e->d, 2, true);
    assert_int_equal(e->services, 0);
    assert_int_equal(inb(e, 0x08) & 0xf0, 0x40);   /* request pending */
    outb(e, 0x08, 0x04);                  /* controller disabled */
    outb(e, 0x0a, 2);
    assert_int_equal(e->services, 0);
    outb(e, 0x08, 0x00);
    assert_int_equal(e->services, 1);
    assert_int_equal(e->last_channel, 2);
    assert_int_equal(e->hw.ram[0x400], 0x5a);
    assert_int_equal(e->hw.ram[0x401], 0xa5);
    /* A channel in cascade mode never serves a device. */
    program(e, 2, 0x00, 0x0400, 1, MODE_CASCADE);
    dma_set_dreq(e->d, 2, true);
    assert_int_equal(e->services, 1);
}

static void master_clear_masks_and_page_ports(void **state)
{
    struct env *e = *state;
    outb(e, 0x0e, 0);
    assert_int_equal(inb(e, 0x0f) & 0x0f, 0);
    outb(e, 0x0d, 0);
    assert_int_equal(inb(e, 0x0f) & 0x0f, 0x0f);
    outb(e, 0xda, 0);
    assert_int_equal(inb(e, 0xde) & 0x0f, 0x0f);
    for (uint16_t p = 0x81; p <= 0x8f; p++)
        outb(e, p, (uint8_t)(p * 3));
    for (uint16_t p = 0x81; p <= 0x8f; p++)
        assert_int_equal(inb(e, p), (uint8_t)(p * 3));
    /* Port 0x80 is the POST port's, not the DMA's: unclaimed here. */
    assert_int_equal(inb(e, 0x80), 0xff);
    /* The flip-flop: the second read is the high byte. */
    program(e, 7, 0x00, 0xbeef, 0x1234, MODE_SINGLE | TO_MEMORY);
    assert_int_equal(read_word(e, 7, 6), 0xbeef);
    assert_int_equal(read_word(e, 7, 7), 0x1234);
    assert_int_equal(dma_bytes_left(e->d, 7), 0x1235 * 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(to_memory_stops_at_terminal_count),
        T(from_memory_and_partial_transfers),
        T(wrong_direction_and_verify_touch_no_memory),
        T(autoinit_reloads_and_stays_unmasked),
        T(decrement_mode),
        T(word_channel_addresses_words),
        T(page_wrap_8_and_16_bit),
        T(beyond_ram_is_dropped),
        T(dreq_waits_for_unmask_and_enable),
        T(master_clear_masks_and_page_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
