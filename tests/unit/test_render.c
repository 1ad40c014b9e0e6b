/*
 * The renderer, fed by a VGA programmed the way a BIOS/driver would (port
 * writes and memory writes through the bus), checked pixel by pixel against
 * colours the test itself programmed: text with a font in plane 2, cursor,
 * blink and character maps; 16-colour planar; CGA 4-colour banks; mode 13h
 * and unchained mode X; split screen; VBE at 8/15/16/24/32 bpp with panning;
 * dirty rows; PNG screendumps read back with libpng.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <png.h>

#include "tests/unit/vga_guest.h"
#include "ui/render.h"
#include "ui/screendump.h"

#define LFB_BASE 0xfd000000u

struct env {
    struct vga_env *v;
    struct renderer *r;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->v = vga_env_new();
    e->r = render_new(e->v->vga);
    assert_non_null(e->r);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    render_free(e->r);
    vga_env_free(e->v);
    free(e);
    return 0;
}

static uint32_t px(const struct render_frame *f, unsigned x, unsigned y)
{
    assert_true(x < f->width && y < f->height);
    return f->pixels[(size_t)y * f->width + x];
}

/* What a 6-bit DAC entry looks like on screen. */
static uint32_t rgb6(unsigned r, unsigned g, unsigned b)
{
    return (((r << 2) | (r >> 4)) << 16) | (((g << 2) | (g >> 4)) << 8) | ((b << 2) | (b >> 4));
}

static const struct render_frame *render(struct env *e, uint64_t now_ms)
{
    return render_update(e->r, now_ms);
}

/* ---- mode 13h and mode X ---- */

static void test_mode13_pixels_through_palette(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode13);
    dac(v, 0, 0, 0, 0);
    dac(v, 7, 63, 0, 0);
    dac(v, 200, 10, 20, 30);
    memb(v, 0xa0000 + 0 * 320 + 0, 7);
    memb(v, 0xa0000 + 199 * 320 + 319, 200);
    memb(v, 0xa0000 + 100 * 320 + 160, 200);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 320);
    assert_int_equal(f->height, 200);
    assert_int_equal(px(f, 0, 0), 0xff0000);
    assert_int_equal(px(f, 1, 0), 0x000000);
    assert_int_equal(px(f, 319, 199), rgb6(10, 20, 30));
    assert_int_equal(px(f, 160, 100), rgb6(10, 20, 30));
    assert_int_equal(px(f, 160, 101), 0);
    /* The PEL mask is applied to the index. */
    outb(v, 0x3c6, 0x0f);
    dac(v, 200 & 0x0f, 1, 2, 3);
    f = render(e, 0);
    assert_int_equal(px(f, 160, 100), rgb6(1, 2, 3));
}

static void test_mode_x_unchained_and_page_flip(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode13);
    seq(v, 4, 0x06);                        /* chain-4 off */
    crtc(v, 0x14, 0x00);                    /* doubleword mode off */
    crtc(v, 0x17, 0xe3);                    /* byte mode */
    dac(v, 9, 0, 63, 0);
    dac(v, 10, 0, 0, 63);
    /* Pixel (x, y) lives in plane x & 3 at offset y * 80 + x / 4. */
    seq(v, 2, 1 << (5 & 3));
    memb(v, 0xa0000 + 3 * 80 + 5 / 4, 9);
    seq(v, 2, 1 << (6 & 3));
    memb(v, 0xa0000 + 0x4000 + 0 * 80 + 6 / 4, 10);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 320);
    assert_int_equal(f->height, 200);
    assert_int_equal(px(f, 5, 3), 0x00ff00);
    assert_int_equal(px(f, 4, 3), 0);
    assert_int_equal(px(f, 6, 0), 0);
    /* Show the second page. */
    crtc(v, 0x0c, 0x40);
    crtc(v, 0x0d, 0x00);
    f = render(e, 0);
    assert_int_equal(px(f, 6, 0), 0x0000ff);
    assert_int_equal(px(f, 5, 3), 0);
    /* 240 lines (mode X proper): vertical display end 479, double scanned by CR9. */
    crtc(v, 0x11, 0x00);
    crtc(v, 0x12, 0xdf);
    crtc(v, 0x07, 0x3e);
    f = render(e, 0);
    assert_int_equal(f->height, 240);
}

/* ---- 16 colours ---- */

static void test_mode12_write_mode2_pixel(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode12);
    dac(v, 0x3c, 50, 40, 30);
    gfx(v, 5, 0x02);                        /* write mode 2 */
    gfx(v, 8, 0x80 >> 3);                   /* pixel 3 of the byte */
    rdmemb(v, 0xa0000 + 10 * 80);           /* latch what is there */
    memb(v, 0xa0000 + 10 * 80, 0x0c);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 640);
    assert_int_equal(f->height, 480);
    assert_int_equal(px(f, 3, 10), rgb6(50, 40, 30));   /* AR[0xc] = 0x3c */
    assert_int_equal(px(f, 2, 10), 0);
    assert_int_equal(px(f, 4, 10), 0);
    assert_int_equal(px(f, 3, 9), 0);
    /* The attribute palette sits between the pixel and the DAC. */
    attr(v, 0x0c, 0x01);
    dac(v, 0x01, 1, 2, 3);
    f = render(e, 0);
    assert_int_equal(px(f, 3, 10), rgb6(1, 2, 3));
    /* Colour plane enable masks planes out: colour 0x0c loses plane 2 -> 0x08. */
    attr(v, 0x08, 0x05);
    dac(v, 0x05, 7, 7, 7);
    attr(v, 0x12, 0x0b);
    f = render(e, 0);
    assert_int_equal(px(f, 3, 10), rgb6(7, 7, 7));
    /* AR10 bit 7: AR14 bits 0-1 replace palette bits 4-5; AR14 bits 2-3 are always bits 6-7. */
    attr(v, 0x08, 0x35);
    attr(v, 0x10, 0x81);
    attr(v, 0x14, 0x06);
    dac(v, 0x40 | 0x20 | 0x05, 9, 10, 11);
    f = render(e, 0);
    assert_int_equal(px(f, 3, 10), rgb6(9, 10, 11));
}

static void test_mode12_pel_panning(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode12);
    dac(v, 0x3f, 63, 63, 63);
    gfx(v, 5, 0x02);
    gfx(v, 8, 0x01);                        /* pixel 7 */
    rdmemb(v, 0xa0000);
    memb(v, 0xa0000, 0x0f);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(px(f, 7, 0), 0xffffff);
    attr(v, 0x13, 3);                       /* scroll left by 3 pixels */
    f = render(e, 0);
    assert_int_equal(px(f, 4, 0), 0xffffff);
    assert_int_equal(px(f, 7, 0), 0);
}

static void test_split_screen(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode12);
    dac(v, 0x3f, 63, 63, 63);
    dac(v, 0x3a, 0, 63, 0);
    /* Row 0 of memory is white, the row at 0x1000 is colour 0x0a. */
    gfx(v, 5, 0x02);
    gfx(v, 8, 0xff);
    memb(v, 0xa0000, 0x0f);
    memb(v, 0xa0000 + 0x1000, 0x0a);
    crtc(v, 0x11, 0x00);
    crtc(v, 0x0c, 0x10);                    /* start at 0x1000 */
    crtc(v, 0x0d, 0x00);
    crtc(v, 0x18, 100);                     /* line compare 100 */
    crtc(v, 0x07, 0x2e);                    /* clear line compare bit 8 */
    crtc(v, 0x09, 0x00);                    /* and bit 9 */
    const struct render_frame *f = render(e, 0);
    assert_int_equal(px(f, 0, 0), 0x00ff00);
    assert_int_equal(px(f, 0, 99), 0);
    assert_int_equal(px(f, 0, 100), 0xffffff);
    assert_int_equal(px(f, 0, 101), 0);
}

/* ---- CGA ---- */

static void test_cga_mode4_banks(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode04);
    /* CGA colours 0-3 through the attribute palette (AR0-3) to DAC entries. */
    attr(v, 0, 0x20);
    attr(v, 1, 0x21);
    attr(v, 2, 0x22);
    attr(v, 3, 0x23);
    dac(v, 0x20, 0, 0, 0);
    dac(v, 0x21, 63, 0, 0);
    dac(v, 0x22, 0, 63, 0);
    dac(v, 0x23, 0, 0, 63);
    memb(v, 0xb8000, 0x1b);                 /* row 0, pixels 0-3: colours 0 1 2 3 */
    memb(v, 0xb8001, 0xc0);                 /* row 0, pixel 4: colour 3 */
    memb(v, 0xb8000 + 0x2000, 0x10);        /* row 1, pixel 1: colour 1 */
    memb(v, 0xb8000 + 80, 0x03);            /* row 2, pixel 3: colour 3 */
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 320);
    assert_int_equal(f->height, 200);
    assert_int_equal(px(f, 0, 0), 0x000000);
    assert_int_equal(px(f, 1, 0), 0xff0000);
    assert_int_equal(px(f, 2, 0), 0x00ff00);
    assert_int_equal(px(f, 3, 0), 0x0000ff);
    assert_int_equal(px(f, 4, 0), 0x0000ff);
    assert_int_equal(px(f, 5, 0), 0x000000);
    assert_int_equal(px(f, 1, 1), 0xff0000);
    assert_int_equal(px(f, 0, 1), 0x000000);
    assert_int_equal(px(f, 3, 2), 0x0000ff);
    assert_int_equal(px(f, 3, 3), 0x000000);
}

/* ---- text ---- */

static const uint8_t glyph_a[16] = { 0x00, 0x00, 0x10, 0x38, 0x6c, 0xc6, 0xc6, 0xfe,
                                     0xc6, 0xc6, 0xc6, 0xc6, 0x00, 0x00, 0x00, 0x00 };
static const uint8_t glyph_bar[16] = { 0xff, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81,
                                       0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0xff };

/* Load glyphs into plane 2 the way the BIOS does: planar access to plane 2 only. */
static void load_glyph(struct vga_env *v, uint32_t font_offset, uint8_t ch, const uint8_t rows[16])
{
    seq(v, 2, 0x04);
    seq(v, 4, 0x06);
    gfx(v, 4, 0x02);
    gfx(v, 5, 0x00);
    gfx(v, 6, 0x04);
    for (int i = 0; i < 16; i++)
        memb(v, 0xa0000 + font_offset + ch * 32 + i, rows[i]);
    seq(v, 2, 0x03);
    seq(v, 4, 0x02);
    gfx(v, 4, 0x00);
    gfx(v, 5, 0x10);
    gfx(v, 6, 0x0e);
}

static void put_char(struct vga_env *v, int row, int col, uint8_t ch, uint8_t attribute)
{
    memb(v, 0xb8000 + (row * 80 + col) * 2, ch);
    memb(v, 0xb8000 + (row * 80 + col) * 2 + 1, attribute);
}

static void text_colours(struct vga_env *v)
{
    dac(v, 0x01, 0, 0, 42);                 /* AR1 = 0x01: blue */
    dac(v, 0x3e, 63, 63, 21);               /* AR14 = 0x3e: yellow */
}

/* Checks one character cell: foreground where the glyph (9 dots wide) has
 * ink, background elsewhere. */
static void check_cell(const struct render_frame *f, int row, int col, const uint8_t rows[16], bool ninth_ink,
                       uint32_t fg, uint32_t bg)
{
    for (int y = 0; y < 16; y++) {
        for (int x = 0; x < 9; x++) {
            bool ink = x < 8 ? (rows[y] >> (7 - x)) & 1 : ninth_ink && (rows[y] & 1);
            uint32_t got = px(f, col * 9 + x, row * 16 + y);
            if (got != (ink ? fg : bg))
                fail_msg("cell %d,%d dot %d,%d: got %06x want %06x", row, col, x, y, got, ink ? fg : bg);
        }
    }
}

static void test_text_glyphs_and_attributes(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode03);
    text_colours(v);
    load_glyph(v, 0, 'A', glyph_a);
    load_glyph(v, 0, 0xc4, glyph_bar);
    put_char(v, 2, 5, 'A', 0x1e);           /* yellow on blue */
    put_char(v, 2, 6, 0xc4, 0x1e);          /* box drawing: ninth column repeats the eighth */
    put_char(v, 2, 7, 'A', 0xe1);           /* blue on yellow */
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 720);
    assert_int_equal(f->height, 400);
    check_cell(f, 2, 5, glyph_a, false, rgb6(63, 63, 21), rgb6(0, 0, 42));
    check_cell(f, 2, 6, glyph_bar, true, rgb6(63, 63, 21), rgb6(0, 0, 42));
    /* With blink enabled (AR10 bit 3) bit 7 is blink, so the background is 6, not 0x0e. */
    dac(v, 0x14, 1, 2, 3);                  /* AR6 = 0x14 */
    check_cell(render(e, 0), 2, 7, glyph_a, false, rgb6(0, 0, 42), rgb6(1, 2, 3));
    /* Line graphics off: the ninth column is background. */
    attr(v, 0x10, 0x08);
    check_cell(render(e, 0), 2, 6, glyph_bar, false, rgb6(63, 63, 21), rgb6(0, 0, 42));
    /* 8-dot characters: 640 wide. */
    seq(v, 1, 0x01);
    assert_int_equal(render(e, 0)->width, 640);
}

static void test_text_blink(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode03);
    text_colours(v);
    load_glyph(v, 0, 'A', glyph_a);
    crtc(v, 0x0a, 0x20);                    /* cursor off */
    put_char(v, 0, 0, 'A', 0x9e);           /* blinking yellow on blue */
    check_cell(render(e, 0), 0, 0, glyph_a, false, rgb6(63, 63, 21), rgb6(0, 0, 42));
    /* 32 frames later (at 60 Hz) the character is hidden. */
    const struct render_frame *f = render(e, 600);
    static const uint8_t blank[16];
    check_cell(f, 0, 0, blank, false, 0, rgb6(0, 0, 42));
    /* With blink disabled, bit 7 is background intensity instead. */
    attr(v, 0x10, 0x04);
    dac(v, 0x39, 5, 6, 7);                  /* AR9 = 0x39 */
    check_cell(render(e, 600), 0, 0, glyph_a, false, rgb6(63, 63, 21), rgb6(5, 6, 7));
}

static void test_text_cursor(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode03);
    text_colours(v);
    put_char(v, 3, 10, ' ', 0x1e);
    crtc(v, 0x0e, 0x00);
    crtc(v, 0x0f, 3 * 80 + 10);
    crtc(v, 0x0a, 0x0d);
    crtc(v, 0x0b, 0x0e);
    const struct render_frame *f = render(e, 0);
    uint32_t fg = rgb6(63, 63, 21), bg = rgb6(0, 0, 42);
    assert_int_equal(px(f, 10 * 9 + 4, 3 * 16 + 12), bg);
    assert_int_equal(px(f, 10 * 9 + 0, 3 * 16 + 13), fg);
    assert_int_equal(px(f, 10 * 9 + 8, 3 * 16 + 14), fg);
    assert_int_equal(px(f, 10 * 9 + 4, 3 * 16 + 15), bg);
    /* Off for the next 16 frames. */
    f = render(e, 300);
    assert_int_equal(px(f, 10 * 9 + 0, 3 * 16 + 13), bg);
    /* Disabled by CR0A bit 5. */
    crtc(v, 0x0a, 0x2d);
    f = render(e, 0);
    assert_int_equal(px(f, 10 * 9 + 0, 3 * 16 + 13), bg);
}

static void test_text_character_maps_and_start_address(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode03);
    text_colours(v);
    load_glyph(v, 0, 'A', glyph_a);
    load_glyph(v, 0x4000, 'A', glyph_bar);  /* map 1 */
    seq(v, 3, 0x04);                        /* map A (attr bit 3 set) = 1, map B = 0 */
    crtc(v, 0x0a, 0x20);                    /* cursor off */
    put_char(v, 0, 0, 'A', 0x1e);
    put_char(v, 0, 1, 'A', 0x16);
    dac(v, 0x14, 1, 2, 3);                  /* AR6 = 0x14 */
    const struct render_frame *f = render(e, 0);
    check_cell(f, 0, 0, glyph_bar, false, rgb6(63, 63, 21), rgb6(0, 0, 42));
    check_cell(f, 0, 1, glyph_a, false, rgb6(1, 2, 3), rgb6(0, 0, 42));
    /* Scrolling by one row through the start address (in characters). */
    crtc(v, 0x0c, 0x00);
    crtc(v, 0x0d, 80);
    put_char(v, 1, 0, 'A', 0x1e);
    check_cell(render(e, 0), 0, 0, glyph_bar, false, rgb6(63, 63, 21), rgb6(0, 0, 42));
}

static void test_forty_columns_double_width(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode03);
    seq(v, 1, 0x08);                        /* half dot clock */
    crtc(v, 0x11, 0x00);
    crtc(v, 0x01, 39);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 720);
    assert_int_equal(f->height, 400);
}

static void test_blanked_screen_is_black(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode13);
    dac(v, 1, 63, 63, 63);
    memb(v, 0xa0000, 1);
    assert_int_equal(px(render(e, 0), 0, 0), 0xffffff);
    inb(v, 0x3da);
    outb(v, 0x3c0, 0x00);                   /* palette address source off */
    assert_int_equal(px(render(e, 0), 0, 0), 0);
    outb(v, 0x3c0, 0x00);
    outb(v, 0x3c0, 0x20);
    seq(v, 1, 0x21);                        /* sequencer screen off */
    assert_int_equal(px(render(e, 0), 0, 0), 0);
}

/* ---- VBE ---- */

static void map_lfb(struct vga_env *v)
{
    pci_config_write(v->pb, VGA_PCI_DEVFN, 0x10, LFB_BASE, 4);
    pci_config_write(v->pb, VGA_PCI_DEVFN, 0x04, 0x0003, 2);
}

static void set_vbe(struct vga_env *v, int w, int h, int bpp, uint16_t flags)
{
    dispi(v, VBE_INDEX_ENABLE, 0);
    dispi(v, VBE_INDEX_BPP, bpp);
    dispi(v, VBE_INDEX_XRES, w);
    dispi(v, VBE_INDEX_YRES, h);
    dispi(v, VBE_INDEX_BANK, 0);
    dispi(v, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED | flags);
}

static void lfb_write(struct vga_env *v, uint32_t off, uint32_t val, int size)
{
    assert_true(bus_mmio_write(v->b, LFB_BASE + off, val, size));
}

static void test_vbe_32bpp(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    map_lfb(v);
    set_vbe(v, 640, 480, 32, 0);
    lfb_write(v, (0 * 640 + 0) * 4, 0x00123456, 4);
    lfb_write(v, (479 * 640 + 639) * 4, 0xff0000ff, 4);
    lfb_write(v, (240 * 640 + 320) * 4, 0x00abcdef, 4);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->width, 640);
    assert_int_equal(f->height, 480);
    assert_int_equal(px(f, 0, 0), 0x123456);
    assert_int_equal(px(f, 639, 479), 0x0000ff);
    assert_int_equal(px(f, 320, 240), 0xabcdef);
    assert_int_equal(px(f, 321, 240), 0);
}

static void test_vbe_16_15_24_bpp(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    map_lfb(v);
    set_vbe(v, 320, 200, 16, 0);
    lfb_write(v, 0, 0xf800, 2);
    lfb_write(v, 2, 0x07e0, 2);
    lfb_write(v, 4, 0x001f, 2);
    lfb_write(v, 6, 0x8410, 2);
    lfb_write(v, 199 * 640 + 2 * 10, 0xffff, 2);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(px(f, 0, 0), 0xff0000);
    assert_int_equal(px(f, 1, 0), 0x00ff00);
    assert_int_equal(px(f, 2, 0), 0x0000ff);
    assert_int_equal(px(f, 3, 0), 0x848284);
    assert_int_equal(px(f, 10, 199), 0xffffff);

    set_vbe(v, 320, 200, 15, 0);
    lfb_write(v, 0, 0x7c00, 2);
    lfb_write(v, 2, 0x03e0, 2);
    lfb_write(v, 4, 0x8010, 2);             /* top bit ignored */
    f = render(e, 0);
    assert_int_equal(px(f, 0, 0), 0xff0000);
    assert_int_equal(px(f, 1, 0), 0x00ff00);
    assert_int_equal(px(f, 2, 0), 0x000084);

    set_vbe(v, 320, 200, 24, 0);
    lfb_write(v, 0, 0x33, 1);               /* B */
    lfb_write(v, 1, 0x22, 1);               /* G */
    lfb_write(v, 2, 0x11, 1);               /* R */
    lfb_write(v, 3 * 320 * 2 + 3, 0x445566, 4);   /* row 2, pixel 1 */
    f = render(e, 0);
    assert_int_equal(px(f, 0, 0), 0x112233);
    assert_int_equal(px(f, 1, 2), 0x445566);
}

static void test_vbe_8bpp_with_8bit_dac_and_banks(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_vbe(v, 640, 480, 8, VBE_8BIT_DAC);
    dac(v, 3, 0x80, 0x81, 0x82);
    dispi(v, VBE_INDEX_BANK, 2);            /* banked window: bytes 128K.. */
    memb(v, 0xa0000 + 5, 3);                /* offset 0x20005: row 204, x 485 */
    const struct render_frame *f = render(e, 0);
    assert_int_equal(px(f, 0x20005 % 640, 0x20005 / 640), 0x808182);
    dispi(v, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_NOCLEARMEM);   /* back to a 6-bit DAC */
    dac(v, 3, 63, 0, 0);
    f = render(e, 0);
    assert_int_equal(px(f, 0x20005 % 640, 0x20005 / 640), 0xff0000);
}

static void test_vbe_virtual_width_and_offsets(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    map_lfb(v);
    set_vbe(v, 640, 480, 32, 0);
    dispi(v, VBE_INDEX_VIRT_WIDTH, 1024);
    lfb_write(v, (10 * 1024 + 20) * 4, 0x00aa00, 4);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(px(f, 20, 10), 0x00aa00);
    dispi(v, VBE_INDEX_Y_OFFSET, 10);
    dispi(v, VBE_INDEX_X_OFFSET, 16);
    f = render(e, 0);
    assert_int_equal(px(f, 4, 0), 0x00aa00);
    assert_int_equal(f->width, 640);
}

/* ---- dirty rows ---- */

static void test_dirty_rows(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode13);
    dac(v, 1, 63, 63, 63);
    const struct render_frame *f = render(e, 0);
    assert_int_equal(f->dirty_y0, 0);
    assert_int_equal(f->dirty_y1, 200);
    f = render(e, 0);
    assert_int_equal(f->dirty_y0, f->dirty_y1);
    memb(v, 0xa0000 + 57 * 320 + 10, 1);
    memb(v, 0xa0000 + 60 * 320 + 10, 1);
    f = render(e, 0);
    assert_int_equal(f->dirty_y0, 57);
    assert_int_equal(f->dirty_y1, 61);
    /* A palette change repaints every row that uses it. */
    dac(v, 1, 0, 0, 63);
    f = render(e, 0);
    assert_int_equal(f->dirty_y0, 57);
    assert_int_equal(f->dirty_y1, 61);
    /* A mode change marks the whole frame. */
    set_mode(v, &mode12);
    f = render(e, 0);
    assert_int_equal(f->dirty_y0, 0);
    assert_int_equal(f->dirty_y1, 480);
}

/* ---- robustness ---- */

static void test_garbage_registers_render_safely(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    srand(4242);
    for (int i = 0; i < 300; i++) {
        for (int k = 0; k < 40; k++) {
            switch (rand() % 5) {
            case 0: crtc(v, rand() % 0x19, rand()); break;
            case 1: seq(v, rand() % 5, rand()); break;
            case 2: gfx(v, rand() % 9, rand()); break;
            case 3: attr(v, rand() % 0x15, rand()); break;
            default: dispi(v, rand() % 10, rand() % 3 ? rand() % 2048 : rand()); break;
            }
        }
        const struct render_frame *f = render(e, i * 17);
        assert_non_null(f->pixels);
        assert_true(f->width >= 1 && f->height >= 1);
        assert_true(f->dirty_y1 <= f->height);
    }
}

/* ---- screendump ---- */

static void read_png(const char *path, unsigned *w, unsigned *h, uint8_t **rgb)
{
    png_image img;
    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_RGB;
    *w = img.width;
    *h = img.height;
    *rgb = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, *rgb, 0, NULL));
}

static void test_screendump_roundtrip(void **state)
{
    struct env *e = *state;
    struct vga_env *v = e->v;
    set_mode(v, &mode13);
    dac(v, 1, 63, 0, 0);
    dac(v, 2, 0, 40, 63);
    for (int i = 0; i < 320 * 200; i += 7)
        memb(v, 0xa0000 + i, (i / 7) % 3);
    const struct render_frame *f = render(e, 0);
    char path[64], err[256] = "";
    snprintf(path, sizeof(path), "/tmp/rv-test-dump-%d.png", (int)getpid());
    assert_true(screendump_png(f, path, err, sizeof(err)));
    unsigned w, h;
    uint8_t *rgb;
    read_png(path, &w, &h, &rgb);
    assert_int_equal(w, 320);
    assert_int_equal(h, 200);
    for (unsigned i = 0; i < w * h; i++) {
        uint32_t want = f->pixels[i];
        uint32_t got = (rgb[3 * i] << 16) | (rgb[3 * i + 1] << 8) | rgb[3 * i + 2];
        if (got != want)
            fail_msg("pixel %u: got %06x want %06x", i, got, want);
    }
    free(rgb);
    unlink(path);
}

static void test_screendump_unwritable_path(void **state)
{
    struct env *e = *state;
    const struct render_frame *f = render(e, 0);
    char err[256] = "";
    assert_false(screendump_png(f, "/nonexistent-dir/shot.png", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-dir/shot.png"));
    assert_null(strchr(err, '\n'));
    if (access("/dev/full", W_OK) == 0) {
        err[0] = 0;
        assert_false(screendump_png(f, "/dev/full", err, sizeof(err)));
        assert_non_null(strstr(err, "/dev/full"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mode13_pixels_through_palette, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_x_unchained_and_page_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode12_write_mode2_pixel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode12_pel_panning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_screen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cga_mode4_banks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_glyphs_and_attributes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_blink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_character_maps_and_start_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forty_columns_double_width, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blanked_screen_is_black, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_32bpp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_16_15_24_bpp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_8bpp_with_8bit_dac_and_banks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vbe_virtual_width_and_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_registers_render_safely, setup, teardown),
        cmocka_unit_test_setup_teardown(test_screendump_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_screendump_unwritable_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
