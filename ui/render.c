/*
 * The renderer (see render.h): reads the VGA's registers and video memory
 * and draws what a monitor attached to it would show, one logical pixel per
 * guest pixel (mode 13h is 320x200, not the 640x400 the DAC really scans).
 *
 * The CRTC is followed scanline by scanline: start address, offset, maximum
 * scan line, double scan, line compare (split screen) and the CGA/Hercules
 * address substitution, so text pages, smooth scrolling, mode X page flips
 * and the interleaved CGA banks all come out right.  Video memory addresses
 * are plane offsets (vga.h), wrapped at 64 KiB as on the real part.
 *
 * Dirty rows come from comparing each new frame with the previous one: the
 * guest writes the framebuffer behind the device's back (the LFB is mapped
 * like RAM), so nothing cheaper would be reliable.
 */
#include "ui/render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vga.h"
#include "hosted-driver/xalloc.h"

#define PLANE_MASK 0xffffu
#define MAX_CHAR_CLOCKS 257       /* CR1 + 1, plus one for pel panning */

enum layout { LAYOUT_TEXT, LAYOUT_PLANAR, LAYOUT_CGA, LAYOUT_256, LAYOUT_VBE };

/* Where the CRTC fetches one logical row: the plane offset of its first
 * character clock, and the scan line within the character row. */
struct row_start {
    uint32_t ma;
    unsigned sc;
};

struct renderer {
    struct vga *vga;
    uint32_t *shown, *back;       /* last returned frame, and the one being drawn */
    size_t cap;                   /* pixels in each buffer */
    unsigned shown_w, shown_h;
    bool have_shown;
    struct row_start *rows;
    size_t rows_cap;
    uint32_t dac[256];            /* DAC colours as XRGB */
    uint32_t attr[16];            /* attribute palette (4-bit value) -> XRGB */
    uint8_t line[MAX_CHAR_CLOCKS * 8];
    struct render_frame frame;
};

/* ---- colours ---- */

static uint32_t rgb(unsigned r, unsigned g, unsigned b)
{
    return (r << 16) | (g << 8) | b;
}

static unsigned expand6(unsigned v)
{
    v &= 0x3f;
    return (v << 2) | (v >> 4);
}

static unsigned expand5(unsigned v)
{
    v &= 0x1f;
    return (v << 3) | (v >> 2);
}

static void update_palettes(struct renderer *r, const struct vga_state *s)
{
    for (int i = 0; i < 256; i++) {
        const uint8_t *c = &s->palette[i * 3];
        r->dac[i] = s->dac_8bit ? rgb(c[0], c[1], c[2])
                                : rgb(expand6(c[0]), expand6(c[1]), expand6(c[2]));
    }
    /* The attribute controller turns a 4-bit pixel into a DAC index: plane
     * enable, the palette registers, then AR14 supplies the top bits. */
    for (int i = 0; i < 16; i++) {
        unsigned v = s->ar[i & s->ar[0x12] & 0x0f];
        if (s->ar[0x10] & 0x80)
            v = (v & 0x0f) | ((s->ar[0x14] & 3) << 4);
        v = (v & 0x3f) | ((s->ar[0x14] & 0x0c) << 4);
        r->attr[i] = r->dac[v & s->pel_mask];
    }
}

/* ---- CRTC geometry ---- */

static unsigned char_clocks(const struct vga_state *s)
{
    return s->cr[0x01] + 1u;
}

static unsigned display_scanlines(const struct vga_state *s)
{
    return (s->cr[0x12] | ((s->cr[0x07] & 0x02) << 7) | ((s->cr[0x07] & 0x40) << 3)) + 1u;
}

static unsigned max_scan(const struct vga_state *s)
{
    return s->cr[0x09] & 0x1f;
}

static bool double_scan(const struct vga_state *s)
{
    return s->cr[0x09] & 0x80;
}

static unsigned line_compare(const struct vga_state *s)
{
    return s->cr[0x18] | ((s->cr[0x07] & 0x10) << 4) | ((s->cr[0x09] & 0x40) << 3);
}

static bool cga_banks(const struct vga_state *s)
{
    return (s->cr[0x17] & 3) != 3;
}

static enum layout current_layout(const struct vga_state *s)
{
    if (s->vbe[VBE_INDEX_ENABLE] & VBE_ENABLED)
        return LAYOUT_VBE;
    if (!(s->gr[6] & 1))
        return LAYOUT_TEXT;
    if (s->gr[5] & 0x40)
        return LAYOUT_256;
    if (s->gr[5] & 0x20)
        return LAYOUT_CGA;
    return LAYOUT_PLANAR;
}

/* Physical scanlines per logical row.  Text shows every scanline; graphics
 * rows repeated by the maximum scan line are one row, except in the CGA
 * modes, where successive scan lines come from different banks. */
static unsigned scanlines_per_row(const struct vga_state *s, enum layout l)
{
    unsigned n = double_scan(s) ? 2 : 1;
    if (l != LAYOUT_TEXT && !cga_banks(s))
        n *= max_scan(s) + 1;
    return n;
}

/* The plane offset the CRTC fetches for a row: its memory address counter,
 * with bit 13 (and 14) replaced by the scan line in the CGA (Hercules)
 * addressing modes.  The substitution is on the output address, which word
 * and doubleword modes shift left of the counter. */
static uint32_t substitute_bank_bits(const struct vga_state *s, uint32_t ma, unsigned sc)
{
    unsigned shift = (s->cr[0x14] & 0x40) ? 2 : (s->cr[0x17] & 0x40) ? 0 : 1;
    uint32_t a = ma << shift;
    if (!(s->cr[0x17] & 1))
        a = (a & ~(1u << 13)) | ((sc & 1u) << 13);
    if (!(s->cr[0x17] & 2))
        a = (a & ~(1u << 14)) | ((sc & 2u) << 13);
    return a >> shift;
}

/* Runs the CRTC's row counters over the displayed scanlines and records
 * where each logical row starts. */
static void trace_rows(struct renderer *r, const struct vga_state *s, enum layout l, unsigned nrows)
{
    unsigned per_row = scanlines_per_row(s, l);
    unsigned lines = display_scanlines(s);
    unsigned split = line_compare(s);
    unsigned offset = s->cr[0x13] * 2u;
    unsigned repeat = double_scan(s) ? 2 : 1;
    uint32_t ma = (s->cr[0x0c] << 8) | s->cr[0x0d];
    unsigned sc = 0, sub = 0;

    for (unsigned pl = 0; pl < lines; pl++) {
        if (pl == split) {
            ma = 0;
            sc = 0;
            sub = 0;
        }
        if (pl % per_row == 0 && pl / per_row < nrows)
            r->rows[pl / per_row] = (struct row_start){ substitute_bank_bits(s, ma, sc), sc };
        if (++sub < repeat)
            continue;
        sub = 0;
        if (sc >= max_scan(s)) {
            sc = 0;
            ma += offset;
        } else {
            sc++;
        }
    }
}

static uint8_t plane_byte(const struct vga_state *s, uint32_t off, int plane)
{
    return s->vram[(off & PLANE_MASK) * 4 + plane];
}

/* ---- text ---- */

struct text_geometry {
    unsigned cols, char_width, dot_repeat;
    uint32_t font_a, font_b;      /* plane-2 offsets of the two character maps */
    bool line_graphics, blink_enabled;
    bool cursor_phase, blink_phase;
};

static uint32_t font_offset(unsigned select)
{
    return ((select & 3) << 14) | ((select & 4) << 11);
}

static struct text_geometry text_geometry(const struct vga_state *s, uint64_t now_ms)
{
    struct text_geometry g;
    uint8_t sr3 = s->sr[3];
    uint64_t frame = now_ms * 60 / 1000;
    g.cols = char_clocks(s);
    g.char_width = (s->sr[1] & 1) ? 8 : 9;
    g.dot_repeat = (s->sr[1] & 0x08) ? 2 : 1;
    g.font_a = font_offset(((sr3 >> 2) & 3) | ((sr3 >> 3) & 4));
    g.font_b = font_offset((sr3 & 3) | ((sr3 >> 2) & 4));
    g.line_graphics = s->ar[0x10] & 0x04;
    g.blink_enabled = s->ar[0x10] & 0x08;
    /* The VGA toggles the cursor every 16 frames and blinking text every 32. */
    g.cursor_phase = !(frame & 16);
    g.blink_phase = !(frame & 32);
    return g;
}

/* The 8 or 9 dots of one character's scan line, bit 8 leftmost. */
static unsigned glyph_dots(const struct vga_state *s, const struct text_geometry *g,
                           uint8_t ch, uint8_t attr, unsigned sc)
{
    uint32_t font = (attr & 0x08) ? g->font_a : g->font_b;
    unsigned bits = plane_byte(s, font + ch * 32u + sc, 2);
    unsigned dots = bits << 1;
    /* Box-drawing characters extend into the ninth column. */
    if (g->char_width == 9 && g->line_graphics && ch >= 0xc0 && ch <= 0xdf)
        dots |= bits & 1;
    return g->char_width == 9 ? dots : dots >> 1;
}

static void draw_text_row(struct renderer *r, const struct vga_state *s, const struct text_geometry *g,
                          struct row_start row, uint32_t *out)
{
    uint32_t cursor = (s->cr[0x0e] << 8) | s->cr[0x0f];
    unsigned cur_start = s->cr[0x0a] & 0x1f, cur_end = s->cr[0x0b] & 0x1f;
    bool cursor_row = !(s->cr[0x0a] & 0x20) && g->cursor_phase && row.sc >= cur_start && row.sc <= cur_end;
    unsigned underline = s->cr[0x14] & 0x1f;

    for (unsigned c = 0; c < g->cols; c++) {
        uint32_t ma = (row.ma + c) & PLANE_MASK;
        uint8_t ch = plane_byte(s, ma, 0), attr = plane_byte(s, ma, 1);
        unsigned fg = attr & 0x0f, bg = attr >> 4;
        unsigned dots = glyph_dots(s, g, ch, attr, row.sc);
        if ((attr & 0x77) == 0x01 && row.sc == underline)
            dots = 0x1ff;
        if (g->blink_enabled) {
            bg &= 7;
            if ((attr & 0x80) && !g->blink_phase)
                dots = 0;
        }
        if (cursor_row && ma == (cursor & PLANE_MASK))
            dots = 0x1ff;
        for (int b = g->char_width - 1; b >= 0; b--) {
            uint32_t px = r->attr[(dots >> b) & 1 ? fg : bg];
            for (unsigned k = 0; k < g->dot_repeat; k++)
                *out++ = px;
        }
    }
}

/* ---- graphics rows (into r->line as palette indexes) ---- */

/* 16 colours: each character clock gives 8 pixels, one bit from each plane. */
static void fetch_planar(struct renderer *r, const struct vga_state *s, uint32_t ma, unsigned clocks)
{
    uint8_t *out = r->line;
    for (unsigned c = 0; c < clocks; c++, ma++) {
        uint8_t p[4];
        for (int k = 0; k < 4; k++)
            p[k] = plane_byte(s, ma, k);
        for (int b = 7; b >= 0; b--)
            *out++ = ((p[0] >> b) & 1) | (((p[1] >> b) & 1) << 1) |
                     (((p[2] >> b) & 1) << 2) | (((p[3] >> b) & 1) << 3);
    }
}

/* CGA 4 colours (shift register interleave): pixels 0-3 come two bits at a
 * time from planes 0 and 2, pixels 4-7 from planes 1 and 3 — the even and
 * odd bytes of the CGA's memory. */
static void fetch_cga(struct renderer *r, const struct vga_state *s, uint32_t ma, unsigned clocks)
{
    uint8_t *out = r->line;
    for (unsigned c = 0; c < clocks; c++, ma++) {
        for (int half = 0; half < 2; half++) {
            uint8_t lo = plane_byte(s, ma, half), hi = plane_byte(s, ma, half + 2);
            for (int i = 3; i >= 0; i--)
                *out++ = ((lo >> (2 * i)) & 3) | (((hi >> (2 * i)) & 3) << 2);
        }
    }
}

/* 256 colours: each character clock gives 4 pixels, one byte per plane. */
static void fetch_256(struct renderer *r, const struct vga_state *s, uint32_t ma, unsigned clocks)
{
    uint8_t *out = r->line;
    for (unsigned c = 0; c < clocks; c++, ma++)
        for (int k = 0; k < 4; k++)
            *out++ = plane_byte(s, ma, k);
}

static void draw_graphics_rows(struct renderer *r, const struct vga_state *s, enum layout l,
                               unsigned w, unsigned h)
{
    unsigned clocks = char_clocks(s) + 1;       /* one more for pel panning */
    unsigned pan = s->ar[0x13] & 7;
    if (l == LAYOUT_256)
        pan >>= 1;
    for (unsigned y = 0; y < h; y++) {
        uint32_t *out = r->back + (size_t)y * w;
        uint32_t ma = r->rows[y].ma;
        if (l == LAYOUT_256)
            fetch_256(r, s, ma, clocks);
        else if (l == LAYOUT_CGA)
            fetch_cga(r, s, ma, clocks);
        else
            fetch_planar(r, s, ma, clocks);
        const uint8_t *idx = r->line + pan;
        if (l == LAYOUT_256) {
            for (unsigned x = 0; x < w; x++)
                out[x] = r->dac[idx[x] & s->pel_mask];
        } else {
            for (unsigned x = 0; x < w; x++)
                out[x] = r->attr[idx[x] & 0x0f];
        }
    }
}

/* ---- VBE linear modes ---- */

static uint32_t vbe_pixel(const struct renderer *r, const uint8_t *p, unsigned bpp)
{
    switch (bpp) {
    case 8: return r->dac[p[0]];
    case 15: {
        unsigned v = p[0] | (p[1] << 8);
        return rgb(expand5(v >> 10), expand5(v >> 5), expand5(v));
    }
    case 16: {
        unsigned v = p[0] | (p[1] << 8);
        unsigned g = (v >> 5) & 0x3f;
        return rgb(expand5(v >> 11), (g << 2) | (g >> 4), expand5(v));
    }
    default:                      /* 24 and 32: B, G, R in memory order */
        return rgb(p[2], p[1], p[0]);
    }
}

static void draw_vbe_planar(struct renderer *r, const struct vga_state *s, unsigned w, unsigned h)
{
    for (unsigned y = 0; y < h; y++) {
        uint32_t *out = r->back + (size_t)y * w;
        uint64_t byte = s->vbe_start_bytes + (uint64_t)y * s->vbe_line_bytes;
        uint32_t off = (uint32_t)(byte / 4);
        unsigned clocks = w / 8;
        if ((uint64_t)(off + clocks) * 4 > s->vram_size) {
            memset(out, 0, w * sizeof(*out));
            continue;
        }
        for (unsigned c = 0; c < clocks; c++) {
            const uint8_t *p = &s->vram[(size_t)(off + c) * 4];
            for (int b = 7; b >= 0; b--)
                *out++ = r->attr[((p[0] >> b) & 1) | (((p[1] >> b) & 1) << 1) |
                                 (((p[2] >> b) & 1) << 2) | (((p[3] >> b) & 1) << 3)];
        }
    }
}

static void draw_vbe(struct renderer *r, const struct vga_state *s, unsigned w, unsigned h)
{
    unsigned bpp = s->vbe[VBE_INDEX_BPP];
    if (bpp == 4) {
        draw_vbe_planar(r, s, w, h);
        return;
    }
    unsigned bytes = (bpp + 7) / 8;
    for (unsigned y = 0; y < h; y++) {
        uint32_t *out = r->back + (size_t)y * w;
        uint64_t off = s->vbe_start_bytes + (uint64_t)y * s->vbe_line_bytes;
        unsigned x = 0;
        if (bpp == 32) {          /* the common case: a straight copy, without the pad byte */
            for (; x < w && off + 4 <= s->vram_size; x++, off += 4) {
                uint32_t v;
                memcpy(&v, &s->vram[off], 4);
                out[x] = v & 0xffffff;
            }
        }
        for (; x < w && off + bytes <= s->vram_size; x++, off += bytes)
            out[x] = vbe_pixel(r, &s->vram[off], bpp);
        for (; x < w; x++)
            out[x] = 0;
    }
}

/* ---- frame management ---- */

static void frame_size(const struct vga_state *s, enum layout l, unsigned *w, unsigned *h)
{
    if (l == LAYOUT_VBE) {
        *w = s->vbe[VBE_INDEX_XRES];
        *h = s->vbe[VBE_INDEX_YRES];
    } else if (l == LAYOUT_TEXT) {
        unsigned cw = (s->sr[1] & 1) ? 8 : 9;
        *w = char_clocks(s) * cw * ((s->sr[1] & 0x08) ? 2 : 1);
        *h = display_scanlines(s) / scanlines_per_row(s, l);
    } else {
        *w = char_clocks(s) * (l == LAYOUT_256 ? 4 : 8);
        *h = display_scanlines(s) / scanlines_per_row(s, l);
    }
    if (*w == 0)
        *w = 1;
    if (*h == 0)
        *h = 1;
}

static void reserve(struct renderer *r, unsigned w, unsigned h)
{
    size_t need = (size_t)w * h;
    if (need > r->cap) {
        r->shown = xrealloc(r->shown, need * sizeof(uint32_t));
        r->back = xrealloc(r->back, need * sizeof(uint32_t));
        r->cap = need;
        r->have_shown = false;    /* contents lost: the next frame is all dirty */
    }
    if (h > r->rows_cap) {
        r->rows = xrealloc(r->rows, h * sizeof(*r->rows));
        r->rows_cap = h;
    }
}

/* A blanked screen (attribute palette source off, or sequencer screen off). */
static bool screen_blanked(const struct vga_state *s, enum layout l)
{
    if (l == LAYOUT_VBE)
        return false;
    return !(s->ar_index & 0x20) || (s->sr[1] & 0x20);
}

static void draw(struct renderer *r, const struct vga_state *s, enum layout l,
                 unsigned w, unsigned h, uint64_t now_ms)
{
    if (screen_blanked(s, l)) {
        memset(r->back, 0, (size_t)w * h * sizeof(uint32_t));
        return;
    }
    if (l == LAYOUT_VBE) {
        draw_vbe(r, s, w, h);
        return;
    }
    trace_rows(r, s, l, h);
    if (l == LAYOUT_TEXT) {
        struct text_geometry g = text_geometry(s, now_ms);
        for (unsigned y = 0; y < h; y++)
            draw_text_row(r, s, &g, r->rows[y], r->back + (size_t)y * w);
    } else {
        draw_graphics_rows(r, s, l, w, h);
    }
}

static void mark_dirty(struct renderer *r, unsigned w, unsigned h)
{
    struct render_frame *f = &r->frame;
    if (!r->have_shown || w != r->shown_w || h != r->shown_h) {
        f->dirty_y0 = 0;
        f->dirty_y1 = h;
        return;
    }
    size_t row = (size_t)w * sizeof(uint32_t);
    unsigned y0 = 0, y1 = h;
    while (y0 < h && !memcmp(r->back + (size_t)y0 * w, r->shown + (size_t)y0 * w, row))
        y0++;
    while (y1 > y0 && !memcmp(r->back + (size_t)(y1 - 1) * w, r->shown + (size_t)(y1 - 1) * w, row))
        y1--;
    f->dirty_y0 = y0 == h ? 0 : y0;
    f->dirty_y1 = y0 == h ? 0 : y1;
}

struct renderer *render_new(struct vga *vga)
{
    struct renderer *r = xcalloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->vga = vga;
    return r;
}

void render_free(struct renderer *r)
{
    if (!r)
        return;
    free(r->shown);
    free(r->back);
    free(r->rows);
    free(r);
}

const struct render_frame *render_update(struct renderer *r, uint64_t now_ms)
{
    const struct vga_state *s = vga_state(r->vga);
    enum layout l = current_layout(s);
    unsigned w, h;
    frame_size(s, l, &w, &h);
    reserve(r, w, h);
    update_palettes(r, s);
    draw(r, s, l, w, h, now_ms);
    mark_dirty(r, w, h);

    uint32_t *t = r->shown;
    r->shown = r->back;
    r->back = t;
    r->shown_w = w;
    r->shown_h = h;
    r->have_shown = true;
    r->frame.width = w;
    r->frame.height = h;
    r->frame.pixels = r->shown;
    return &r->frame;
}
