/*
 * The VGA device driven through its ports and memory window, as a BIOS or
 * driver would: PCI identity and BARs, the attribute flip-flop, the DAC,
 * port address select, CRTC protection, retrace from the virtual clock,
 * the graphics controller's read and write modes against a bit-by-bit
 * reference, chain-4 / odd-even / memory map decoding, and Bochs VBE.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/vga_guest.h"

#define DEVFN VGA_PCI_DEVFN
#define LFB_BASE 0xfd000000u
#define MMIO_BASE 0xfebf0000u
#define ROM_BASE 0xfebc0000u

static int setup(void **state)
{
    *state = vga_env_new();
    return 0;
}

static int teardown(void **state)
{
    vga_env_free(*state);
    return 0;
}

static const struct vga_state *st(struct vga_env *e)
{
    return vga_state(e->vga);
}

/* ---- construction ---- */

static void test_missing_rom_is_one_clear_line(void **state)
{
    struct vga_env *e = *state;
    char err[256] = "";
    struct vga *v = vga_new(e->b, NULL, DEVFN, "/nonexistent/vgabios.bin", err, sizeof(err));
    assert_null(v);
    assert_non_null(strstr(err, "/nonexistent/vgabios.bin"));
    assert_null(strchr(err, '\n'));
}

static void test_non_rom_file_refused(void **state)
{
    struct vga_env *e = *state;
    char path[64], err[256] = "";
    snprintf(path, sizeof(path), "/tmp/rv-test-notrom-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    fputs("hello", f);
    fclose(f);
    assert_null(vga_new(e->b, NULL, DEVFN, path, err, sizeof(err)));
    assert_non_null(strstr(err, "not an option ROM"));
    unlink(path);
}

/* ---- PCI ---- */

static void test_pci_identity(void **state)
{
    struct vga_env *e = *state;
    assert_int_equal(pci_config_read(e->pb, DEVFN, 0x00, 2), 0x1234);
    assert_int_equal(pci_config_read(e->pb, DEVFN, 0x02, 2), 0x1111);
    assert_int_equal(pci_config_read(e->pb, DEVFN, 0x08, 1), 2);
    assert_int_equal(pci_config_read(e->pb, DEVFN, 0x09, 4) & 0xffffff, 0x030000);
}

static uint32_t bar_size_mask(struct vga_env *e, int off)
{
    pci_config_write(e->pb, DEVFN, off, 0xffffffff, 4);
    uint32_t v = pci_config_read(e->pb, DEVFN, off, 4);
    pci_config_write(e->pb, DEVFN, off, 0, 4);
    return v;
}

static void test_pci_bar_sizes(void **state)
{
    struct vga_env *e = *state;
    assert_int_equal(bar_size_mask(e, 0x10), 0xff000008u);     /* 16 MiB, prefetchable memory */
    assert_int_equal(bar_size_mask(e, 0x18), 0xfffff000u);     /* 4 KiB registers */
    assert_int_equal(bar_size_mask(e, 0x14), 0);
    assert_int_equal(bar_size_mask(e, 0x30), 0xffff0001u);     /* 36 KiB image -> 64 KiB ROM */
}

struct map_log {
    int calls;
    uint32_t base, len;
    uint8_t *host;
};

static void log_mapping(void *opaque, uint32_t base, uint32_t len, uint8_t *host)
{
    struct map_log *l = opaque;
    l->calls++;
    l->base = base;
    l->len = len;
    l->host = host;
}

static void test_lfb_mapper_follows_bar0(void **state)
{
    struct vga_env *e = *state;
    struct map_log log = { 0 };
    vga_set_lfb_mapper(e->vga, log_mapping, &log);
    assert_int_equal(log.calls, 0);
    pci_config_write(e->pb, DEVFN, 0x10, LFB_BASE, 4);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0003, 2);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.base, LFB_BASE);
    assert_int_equal(log.len, VGA_VRAM_SIZE);
    assert_ptr_equal(log.host, st(e)->vram);
    assert_int_equal(vga_lfb_base(e->vga), LFB_BASE);

    /* Moving the BAR unmaps the old place first, then maps the new one. */
    pci_config_write(e->pb, DEVFN, 0x10, 0xe0000000u, 4);
    assert_int_equal(log.calls, 3);
    assert_int_equal(log.base, 0xe0000000u);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0000, 2);
    assert_int_equal(log.calls, 4);
    assert_int_equal(log.base, PCI_BAR_UNMAPPED);
    assert_null(log.host);
}

static void test_lfb_mmio_fallback(void **state)
{
    struct vga_env *e = *state;
    pci_config_write(e->pb, DEVFN, 0x10, LFB_BASE, 4);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0002, 2);
    assert_true(bus_mmio_write(e->b, LFB_BASE + 0x123456, 0xdeadbeef, 4));
    assert_int_equal(st(e)->vram[0x123456], 0xef);
    assert_int_equal(st(e)->vram[0x123459], 0xde);
    uint32_t v = 0;
    assert_true(bus_mmio_read(e->b, LFB_BASE + 0x123457, 2, &v));
    assert_int_equal(v, 0xadbe);
    /* The last bytes are reachable; nothing past the end is claimed by the LFB. */
    assert_true(bus_mmio_write(e->b, LFB_BASE + VGA_VRAM_SIZE - 1, 0x5a, 1));
    assert_int_equal(st(e)->vram[VGA_VRAM_SIZE - 1], 0x5a);
    assert_false(bus_mmio_write(e->b, LFB_BASE + VGA_VRAM_SIZE, 0x5a, 1));
}

static void test_rom_bar_serves_the_image(void **state)
{
    struct vga_env *e = *state;
    uint32_t v = 0;
    pci_config_write(e->pb, DEVFN, 0x30, ROM_BASE | 1, 4);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0002, 2);
    assert_true(bus_mmio_read(e->b, ROM_BASE, 2, &v));
    assert_int_equal(v, 0xaa55);
    assert_true(bus_mmio_read(e->b, ROM_BASE + 2, 1, &v));
    assert_int_equal(v, 36 * 1024 / 512);
    assert_true(bus_mmio_read(e->b, ROM_BASE + 0x1234, 1, &v));
    assert_int_equal(v, 0x34);
    /* Padding up to the power-of-two size reads as zeros; writes are dropped. */
    assert_true(bus_mmio_read(e->b, ROM_BASE + 40 * 1024, 1, &v));
    assert_int_equal(v, 0);
    bus_mmio_write(e->b, ROM_BASE, 0, 2);
    assert_true(bus_mmio_read(e->b, ROM_BASE, 2, &v));
    assert_int_equal(v, 0xaa55);
    /* Disabling the ROM BAR removes it. */
    pci_config_write(e->pb, DEVFN, 0x30, ROM_BASE, 4);
    assert_false(bus_mmio_read(e->b, ROM_BASE, 2, &v));
}

static void test_mmio_bar_registers(void **state)
{
    struct vga_env *e = *state;
    uint32_t v = 0;
    pci_config_write(e->pb, DEVFN, 0x18, MMIO_BASE, 4);
    pci_config_write(e->pb, DEVFN, 0x04, 0x0002, 2);
    /* DISPI registers at 0x500 + index * 2. */
    assert_true(bus_mmio_read(e->b, MMIO_BASE + 0x500, 2, &v));
    assert_int_equal(v, 0xb0c5);
    assert_true(bus_mmio_write(e->b, MMIO_BASE + 0x500 + 2 * VBE_INDEX_XRES, 800, 2));
    assert_int_equal(dispi_read(e, VBE_INDEX_XRES), 800);
    /* VGA ports 0x3C0-0x3DF at 0x400: a word write sets index and data. */
    assert_true(bus_mmio_write(e->b, MMIO_BASE + 0x400 + 4, 0x0702, 2));
    assert_int_equal(st(e)->sr[2], 0x07);
    assert_true(bus_mmio_read(e->b, MMIO_BASE + 0x600, 4, &v));
    assert_int_equal(v, 8);
    assert_true(bus_mmio_read(e->b, MMIO_BASE + 0x604, 4, &v));
    assert_int_equal(v, 0x1e1e1e1eu);
}

/* ---- registers ---- */

static void test_attribute_flip_flop(void **state)
{
    struct vga_env *e = *state;
    inb(e, 0x3da);                          /* flip-flop to "index" */
    outb(e, 0x3c0, 0x05);
    outb(e, 0x3c0, 0x2a);                   /* data */
    outb(e, 0x3c0, 0x06);                   /* index again */
    outb(e, 0x3c0, 0x15);
    assert_int_equal(st(e)->ar[5], 0x2a);
    assert_int_equal(st(e)->ar[6], 0x15);
    /* Reading 0x3C1 reads the indexed register without touching the flip-flop. */
    inb(e, 0x3da);
    outb(e, 0x3c0, 0x05);
    assert_int_equal(inb(e, 0x3c1), 0x2a);
    outb(e, 0x3c0, 0x3f);                   /* data write: palette registers keep 6 bits */
    assert_int_equal(st(e)->ar[5], 0x3f);
    /* A write that is data leaves the flip-flop at index; reading 0x3DA resets it mid-pair. */
    outb(e, 0x3c0, 0x07);                   /* index */
    inb(e, 0x3da);
    outb(e, 0x3c0, 0x28);                   /* index again, not data for 7 */
    assert_int_equal(st(e)->ar[7], 0x07);
    assert_int_equal(inb(e, 0x3c0), 0x28);
    assert_int_equal(st(e)->ar_index & 0x20, 0x20);
}

static void test_dac_auto_increment(void **state)
{
    struct vga_env *e = *state;
    outb(e, 0x3c8, 5);
    const uint8_t vals[6] = { 1, 2, 3, 0x3f, 0x7f, 0xff };
    for (int i = 0; i < 6; i++)
        outb(e, 0x3c9, vals[i]);
    assert_int_equal(inb(e, 0x3c8), 7);
    assert_int_equal(inb(e, 0x3c7), 0);     /* DAC state: write mode */
    outb(e, 0x3c7, 5);
    assert_int_equal(inb(e, 0x3c7), 3);     /* read mode */
    const uint8_t expect[6] = { 1, 2, 3, 0x3f, 0x3f, 0x3f };  /* 6-bit DAC */
    for (int i = 0; i < 6; i++)
        assert_int_equal(inb(e, 0x3c9), expect[i]);
    /* Writes wrap from entry 255 to 0. */
    dac(e, 255, 10, 11, 12);
    outb(e, 0x3c9, 20);
    outb(e, 0x3c9, 21);
    outb(e, 0x3c9, 22);
    assert_int_equal(st(e)->palette[255 * 3], 10);
    assert_int_equal(st(e)->palette[0], 20);
    assert_int_equal(st(e)->palette[2], 22);
    /* A partial triple is dropped when the index is rewritten. */
    outb(e, 0x3c8, 9);
    outb(e, 0x3c9, 33);
    outb(e, 0x3c8, 9);
    outb(e, 0x3c9, 1);
    outb(e, 0x3c9, 2);
    outb(e, 0x3c9, 3);
    assert_int_equal(st(e)->palette[9 * 3], 1);
}

static void test_misc_selects_mono_or_colour_ports(void **state)
{
    struct vga_env *e = *state;
    outb(e, 0x3c2, 0x67);                   /* colour: CRTC at 0x3D4 */
    crtc(e, 0x0e, 0x12);
    assert_int_equal(st(e)->cr[0x0e], 0x12);
    outb(e, 0x3b4, 0x0e);
    outb(e, 0x3b5, 0x99);                   /* ignored */
    assert_int_equal(st(e)->cr[0x0e], 0x12);
    assert_int_equal(inb(e, 0x3ba), 0xff);

    outb(e, 0x3c2, 0x66);                   /* mono: CRTC at 0x3B4 */
    assert_int_equal(inb(e, 0x3cc), 0x66);
    outb(e, 0x3b4, 0x0e);
    outb(e, 0x3b5, 0x34);
    assert_int_equal(st(e)->cr[0x0e], 0x34);
    assert_int_equal(inb(e, 0x3d5), 0xff);
    /* Input status 1 at 0x3BA now resets the attribute flip-flop. */
    outb(e, 0x3c0, 0x01);                   /* index */
    inb(e, 0x3ba);
    outb(e, 0x3c0, 0x02);                   /* index, not data */
    assert_int_equal(inb(e, 0x3c0) & 0x1f, 0x02);
}

static void test_crtc_protect_and_word_writes(void **state)
{
    struct vga_env *e = *state;
    outw(e, 0x3d4, 0x0011);                 /* unprotect */
    outw(e, 0x3d4, 0x5501);
    assert_int_equal(st(e)->cr[1], 0x55);
    outw(e, 0x3d4, 0x8011);                 /* protect CR0-7 */
    outw(e, 0x3d4, 0x6601);
    assert_int_equal(st(e)->cr[1], 0x55);
    outb(e, 0x3d4, 0x07);
    uint8_t before = inb(e, 0x3d5);
    outb(e, 0x3d5, 0xff);                   /* only the line compare bit 8 changes */
    assert_int_equal(st(e)->cr[7], before | 0x10);
    outw(e, 0x3d4, 0x330c);                 /* CR8 and up stay writable */
    assert_int_equal(st(e)->cr[0x0c], 0x33);
    outw(e, 0x3c4, 0x0f02);
    assert_int_equal(st(e)->sr[2], 0x0f);
    outw(e, 0x3c4, 0xff04);                 /* unimplemented bits read 0 */
    assert_int_equal(st(e)->sr[4], 0x0e);
    outw(e, 0x3ce, 0xff05);
    assert_int_equal(st(e)->gr[5], 0x7b);
}

static void advance_ns(struct vga_env *e, int64_t ns)
{
    vclock_account_insns(e->clk, ns);      /* 1 ns per instruction in this clock */
}

static void test_retrace_toggles_with_virtual_time(void **state)
{
    struct vga_env *e = *state;
    int retrace_edges = 0, samples_in_retrace = 0, blank = 0;
    uint8_t prev = inb(e, 0x3da);
    /* Two frames at 10 us steps. */
    for (int i = 0; i < 3334; i++) {
        advance_ns(e, 10000);
        uint8_t s = inb(e, 0x3da);
        if ((s & 8) && !(prev & 8))
            retrace_edges++;
        if (s & 8)
            samples_in_retrace++;
        if (s & 1)
            blank++;
        if (s & 8)
            assert_true(s & 1);             /* retrace is inside blanking */
        prev = s;
    }
    assert_int_equal(retrace_edges, 2);
    assert_in_range(samples_in_retrace, 100, 250);
    assert_in_range(blank, 400, 1500);
    /* Without time passing the bit holds still. */
    uint8_t a = inb(e, 0x3da), b = inb(e, 0x3da);
    assert_int_equal(a & 8, b & 8);
}

/* ---- memory: decoding ---- */

static void test_memory_map_select(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode03);                   /* B8000, odd/even */
    memb(e, 0xb8000, 'A');
    memb(e, 0xb8001, 0x1e);
    assert_int_equal(st(e)->vram[0 * 4 + 0], 'A');
    assert_int_equal(st(e)->vram[0 * 4 + 1], 0x1e);
    memb(e, 0xb8002, 'B');
    assert_int_equal(st(e)->vram[1 * 4 + 0], 'B');
    assert_int_equal(rdmemb(e, 0xb8002), 'B');
    /* A0000 and B0000 are not decoded in this map. */
    assert_int_equal(rdmemb(e, 0xa0000), 0xff);
    memb(e, 0xb0000, 0x77);
    assert_int_equal(st(e)->vram[0], 'A');
    /* Map 2: B0000-B7FFF. */
    gfx(e, 6, 0x0a);
    memb(e, 0xb0004, 'C');
    assert_int_equal(st(e)->vram[2 * 4 + 0], 'C');
    assert_int_equal(rdmemb(e, 0xb8000), 0xff);
}

static void test_odd_even_planes(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode03);
    seq(e, 2, 0x0f);                        /* all planes enabled: even bytes go to 0 and 2 */
    memb(e, 0xb8010, 0x41);
    memb(e, 0xb8011, 0x07);
    assert_int_equal(st(e)->vram[8 * 4 + 0], 0x41);
    assert_int_equal(st(e)->vram[8 * 4 + 2], 0x41);
    assert_int_equal(st(e)->vram[8 * 4 + 1], 0x07);
    assert_int_equal(st(e)->vram[8 * 4 + 3], 0x07);
    /* Reads pick plane (A & 1) | (GR4 & 2). */
    st(e)->vram[8 * 4 + 2] = 0x99;
    gfx(e, 4, 2);
    assert_int_equal(rdmemb(e, 0xb8010), 0x99);
}

static void test_chain4_is_linear(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode13);
    for (int i = 0; i < 16; i++)
        memb(e, 0xa0000 + 1000 + i, 0x80 + i);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(st(e)->vram[1000 + i], 0x80 + i);
        assert_int_equal(rdmemb(e, 0xa0000 + 1000 + i), 0x80 + i);
    }
    /* The map mask still selects planes (A & 3). */
    seq(e, 2, 0x01);
    memb(e, 0xa0000 + 2000, 1);
    memb(e, 0xa0000 + 2001, 1);
    assert_int_equal(st(e)->vram[2000], 1);
    assert_int_equal(st(e)->vram[2001], 0);
}

/* ---- graphics controller: planar read and write modes ---- */

static uint8_t read_plane(struct vga_env *e, uint32_t addr, int plane)
{
    gfx(e, 5, 0x00);
    gfx(e, 4, plane);
    return rdmemb(e, addr);
}

static void fill_planes(struct vga_env *e, uint32_t addr, const uint8_t v[4])
{
    gfx(e, 5, 0x00);
    gfx(e, 1, 0x00);
    gfx(e, 3, 0x00);
    gfx(e, 8, 0xff);
    for (int p = 0; p < 4; p++) {
        seq(e, 2, 1 << p);
        memb(e, addr, v[p]);
    }
    seq(e, 2, 0x0f);
}

/* What the VGA reference manual says one write does, bit by bit. */
static void reference_write(int mode, const uint8_t gr[9], const uint8_t latch[4], uint8_t val, uint8_t out[4])
{
    int rot = gr[3] & 7, func = (gr[3] >> 3) & 3;
    uint8_t r = (uint8_t)((val >> rot) | (val << ((8 - rot) & 7)));
    if (rot == 0)
        r = val;
    for (int p = 0; p < 4; p++) {
        out[p] = 0;
        for (int b = 0; b < 8; b++) {
            int l = (latch[p] >> b) & 1;
            int src, mask = (gr[8] >> b) & 1;
            int sr = (gr[0] >> p) & 1;
            if (mode == 1) {
                out[p] |= l << b;
                continue;
            }
            if (mode == 0)
                src = ((gr[1] >> p) & 1) ? sr : (r >> b) & 1;
            else if (mode == 2)
                src = (val >> p) & 1;
            else {
                src = sr;
                mask &= (r >> b) & 1;
            }
            int res = func == 0 ? src : func == 1 ? (src & l) : func == 2 ? (src | l) : (src ^ l);
            out[p] |= (mask ? res : l) << b;
        }
    }
}

static void test_write_modes_match_reference(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode12);
    srand(12345);
    for (int iter = 0; iter < 400; iter++) {
        uint8_t latch[4], gr[9] = { 0 }, out[4];
        for (int p = 0; p < 4; p++)
            latch[p] = rand();
        int mode = iter % 4;
        gr[0] = rand() & 0x0f;
        gr[1] = rand() & 0x0f;
        gr[3] = rand() & 0x1f;
        gr[8] = rand();
        uint8_t val = rand();
        uint8_t map_mask = (iter % 7 == 0) ? (rand() & 0x0f) : 0x0f;
        reference_write(mode, gr, latch, val, out);

        uint8_t before[4] = { 0x11, 0x22, 0x33, 0x44 };
        fill_planes(e, 0xa0100, latch);
        fill_planes(e, 0xa0200, before);
        rdmemb(e, 0xa0100);                 /* load the latches */
        gfx(e, 0, gr[0]);
        gfx(e, 1, gr[1]);
        gfx(e, 3, gr[3]);
        gfx(e, 8, gr[8]);
        seq(e, 2, map_mask);
        gfx(e, 5, mode);
        memb(e, 0xa0200, val);
        seq(e, 2, 0x0f);
        gfx(e, 1, 0);
        gfx(e, 3, 0);
        for (int p = 0; p < 4; p++) {
            uint8_t want = (map_mask & (1 << p)) ? out[p] : before[p];
            uint8_t got = read_plane(e, 0xa0200, p);
            if (got != want)
                fail_msg("iter %d mode %d plane %d: got %02x want %02x (gr0 %02x gr1 %02x gr3 %02x gr8 %02x val %02x)",
                         iter, mode, p, got, want, gr[0], gr[1], gr[3], gr[8], val);
        }
    }
}

static void test_read_mode1_color_compare(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode12);
    /* Pixel colours, left to right: 0..7 via four planes. */
    const uint8_t planes[4] = { 0x55, 0x33, 0x0f, 0x00 };
    fill_planes(e, 0xa0040, planes);
    gfx(e, 5, 0x08);                        /* read mode 1 */
    gfx(e, 7, 0x0f);                        /* compare all planes */
    gfx(e, 2, 0x05);                        /* colour 5: plane bits 1,0,1,0 */
    uint8_t got = rdmemb(e, 0xa0040);
    uint8_t want = 0;
    for (int b = 0; b < 8; b++) {
        int c = ((planes[0] >> b) & 1) | (((planes[1] >> b) & 1) << 1) | (((planes[2] >> b) & 1) << 2) |
                (((planes[3] >> b) & 1) << 3);
        if (c == 5)
            want |= 1 << b;
    }
    assert_int_equal(got, want);
    gfx(e, 7, 0x01);                        /* only plane 0 matters: bits of plane 0 equal 1 */
    assert_int_equal(rdmemb(e, 0xa0040), 0x55);
    gfx(e, 7, 0x00);                        /* nothing compared: all match */
    assert_int_equal(rdmemb(e, 0xa0040), 0xff);
}

static void test_write_mode1_copies_latches(void **state)
{
    struct vga_env *e = *state;
    set_mode(e, &mode12);
    const uint8_t src[4] = { 0xde, 0xad, 0xbe, 0xef };
    fill_planes(e, 0xa1000, src);
    gfx(e, 5, 0x01);
    rdmemb(e, 0xa1000);
    memb(e, 0xa2000, 0x00);
    for (int p = 0; p < 4; p++)
        assert_int_equal(read_plane(e, 0xa2000, p), src[p]);
}

/* ---- Bochs VBE ---- */

static void test_dispi_identification(void **state)
{
    struct vga_env *e = *state;
    assert_int_equal(dispi_read(e, VBE_INDEX_ID), 0xb0c5);
    dispi(e, VBE_INDEX_ID, 0xb0c0);
    assert_int_equal(dispi_read(e, VBE_INDEX_ID), 0xb0c0);
    dispi(e, VBE_INDEX_ID, 0xb0c6);         /* unknown versions are refused */
    assert_int_equal(dispi_read(e, VBE_INDEX_ID), 0xb0c0);
    dispi(e, VBE_INDEX_ID, 0xb0c5);
    assert_int_equal(dispi_read(e, VBE_INDEX_ID), 0xb0c5);
    assert_int_equal(dispi_read(e, VBE_INDEX_VIDEO_MEMORY_64K), 256);
    assert_int_equal(inw(e, 0x1ce), VBE_INDEX_VIDEO_MEMORY_64K);
    /* GETCAPS: XRES/YRES/BPP read the maxima while the bit is set. */
    dispi(e, VBE_INDEX_XRES, 640);
    dispi(e, VBE_INDEX_ENABLE, VBE_GETCAPS);
    assert_int_equal(dispi_read(e, VBE_INDEX_XRES), VBE_MAX_XRES);
    assert_int_equal(dispi_read(e, VBE_INDEX_YRES), VBE_MAX_YRES);
    assert_int_equal(dispi_read(e, VBE_INDEX_BPP), 32);
    dispi(e, VBE_INDEX_ENABLE, 0);
    assert_int_equal(dispi_read(e, VBE_INDEX_XRES), 640);
    assert_int_equal(dispi_read(e, 0x40), 0);
}

static void set_vbe(struct vga_env *e, int w, int h, int bpp, uint16_t flags)
{
    dispi(e, VBE_INDEX_ENABLE, 0);
    dispi(e, VBE_INDEX_BPP, bpp);
    dispi(e, VBE_INDEX_XRES, w);
    dispi(e, VBE_INDEX_YRES, h);
    dispi(e, VBE_INDEX_BANK, 0);
    dispi(e, VBE_INDEX_ENABLE, VBE_ENABLED | flags);
}

static void test_vbe_enable_clears_and_sets_geometry(void **state)
{
    struct vga_env *e = *state;
    st(e)->vram[100] = 0x42;
    set_vbe(e, 640, 480, 32, VBE_LFB_ENABLED);
    assert_int_equal(st(e)->vram[100], 0);
    assert_int_equal(st(e)->vbe_line_bytes, 640 * 4);
    assert_int_equal(dispi_read(e, VBE_INDEX_VIRT_WIDTH), 640);
    assert_int_equal(dispi_read(e, VBE_INDEX_VIRT_HEIGHT), VGA_VRAM_SIZE / (640 * 4));
    /* Chain-4 and the 64 KiB window at A0000 for banked access. */
    assert_int_equal(st(e)->sr[4] & 0x08, 0x08);
    assert_int_equal((st(e)->gr[6] >> 2) & 3, 1);

    st(e)->vram[100] = 0x42;
    set_vbe(e, 800, 600, 16, VBE_NOCLEARMEM);
    assert_int_equal(st(e)->vram[100], 0x42);
    assert_int_equal(st(e)->vbe_line_bytes, 1600);
}

static void test_vbe_fixups(void **state)
{
    struct vga_env *e = *state;
    set_vbe(e, 643, 480, 7, 0);             /* odd width, bad depth */
    assert_int_equal(dispi_read(e, VBE_INDEX_XRES), 640);
    assert_int_equal(dispi_read(e, VBE_INDEX_BPP), 8);
    dispi(e, VBE_INDEX_XRES, 60000);
    assert_int_equal(dispi_read(e, VBE_INDEX_XRES), VBE_MAX_XRES);
    dispi(e, VBE_INDEX_XRES, 1024);
    dispi(e, VBE_INDEX_VIRT_WIDTH, 100);    /* narrower than the screen */
    assert_int_equal(dispi_read(e, VBE_INDEX_VIRT_WIDTH), 1024);
    dispi(e, VBE_INDEX_BPP, 32);
    dispi(e, VBE_INDEX_YRES, 1600);
    dispi(e, VBE_INDEX_XRES, 2560);         /* 2560*4*1600 = 16000 KiB: still fits */
    assert_int_equal(dispi_read(e, VBE_INDEX_YRES), 1600);
    dispi(e, VBE_INDEX_Y_OFFSET, 1000);     /* would run past video memory */
    assert_int_equal(dispi_read(e, VBE_INDEX_Y_OFFSET), 0);
    dispi(e, VBE_INDEX_XRES, 640);
    dispi(e, VBE_INDEX_YRES, 480);
    dispi(e, VBE_INDEX_VIRT_WIDTH, 1024);
    dispi(e, VBE_INDEX_X_OFFSET, 16);
    dispi(e, VBE_INDEX_Y_OFFSET, 100);
    assert_int_equal(st(e)->vbe_start_bytes, 100 * 1024 * 4 + 16 * 4);
}

static void test_vbe_banked_window(void **state)
{
    struct vga_env *e = *state;
    set_vbe(e, 640, 480, 8, 0);
    dispi(e, VBE_INDEX_BANK, 3);
    memb(e, 0xa0010, 0x77);
    assert_int_equal(st(e)->vram[3 * 0x10000 + 0x10], 0x77);
    assert_int_equal(rdmemb(e, 0xa0010), 0x77);
    /* The window is 64 KiB: B0000 is not decoded in this map. */
    assert_int_equal(rdmemb(e, 0xb0010), 0xff);
    dispi(e, VBE_INDEX_BANK, 0xffff);       /* masked to the 256 banks there are */
    assert_int_equal(dispi_read(e, VBE_INDEX_BANK), 255);
    memb(e, 0xaffff, 0x66);
    assert_int_equal(st(e)->vram[VGA_VRAM_SIZE - 1], 0x66);
}

static void test_8bit_dac(void **state)
{
    struct vga_env *e = *state;
    set_vbe(e, 640, 480, 8, VBE_8BIT_DAC);
    assert_true(st(e)->dac_8bit);
    dac(e, 1, 0xff, 0x80, 0x01);
    assert_int_equal(st(e)->palette[3], 0xff);
    assert_int_equal(st(e)->palette[4], 0x80);
    dispi(e, VBE_INDEX_ENABLE, VBE_ENABLED);
    assert_false(st(e)->dac_8bit);
}

static void test_reset_restores_power_on_state(void **state)
{
    struct vga_env *e = *state;
    set_vbe(e, 640, 480, 32, 0);
    dac(e, 0, 1, 2, 3);
    seq(e, 2, 0x01);
    bus_reset_devices(e->b);
    assert_int_equal(dispi_read(e, VBE_INDEX_ENABLE), 0);
    assert_int_equal(st(e)->sr[2], 0x03);
    assert_int_equal(st(e)->misc, 0x67);
    assert_int_equal(st(e)->palette[0], 0);
    assert_int_equal(st(e)->palette[7 * 3], 0x2a);          /* light grey */
    assert_int_equal(st(e)->palette[0x3f * 3 + 2], 0x3f);   /* white */
    assert_int_equal(st(e)->palette[0x14 * 3 + 1], 0x15);   /* brown */
}

/* Random guest writes anywhere in the device never crash it. */
static void test_garbage_does_not_crash(void **state)
{
    struct vga_env *e = *state;
    static const uint16_t ports[] = { 0x3b4, 0x3b5, 0x3ba, 0x3c0, 0x3c1, 0x3c2, 0x3c4, 0x3c5, 0x3c6,
                                      0x3c7, 0x3c8, 0x3c9, 0x3ce, 0x3cf, 0x3d4, 0x3d5, 0x3da, 0x1ce, 0x1cf };
    srand(777);
    for (int i = 0; i < 200000; i++) {
        uint16_t port = ports[rand() % (sizeof(ports) / sizeof(ports[0]))];
        int size = 1 << (rand() % 3);
        switch (rand() % 4) {
        case 0: bus_pio_write(e->b, port, rand() | ((uint32_t)rand() << 16), size); break;
        case 1: bus_pio_read(e->b, port, size); break;
        case 2: bus_mmio_write(e->b, 0xa0000 + rand() % 0x20000, rand(), size); break;
        default: {
            uint32_t v;
            bus_mmio_read(e->b, 0xa0000 + rand() % 0x20000, size, &v);
        }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_rom_is_one_clear_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_rom_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pci_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pci_bar_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lfb_mapper_follows_bar0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lfb_mmio_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rom_bar_serves_the_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmio_bar_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribute_flip_flop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dac_auto_increment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misc_selects_mono_or_colour_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crtc_protect_and_word_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retrace_toggles_with_virtual_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_map_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_even_planes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain4_is_linear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_modes_match_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_mode1_color_compare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_mode1_copies_latches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispi_identification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_enable_clears_and_sets_geometry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_fixups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_banked_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_8bit_dac, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_restores_power_on_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_does_not_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
