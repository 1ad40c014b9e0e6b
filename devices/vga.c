/*
 * Standard VGA + Bochs VBE (see vga.h).
 *
 * The register file is kept exactly as the guest wrote it (masked to the
 * implemented bits) in struct vga_state, which the renderer reads; nothing
 * here draws.  CPU accesses to the legacy window go through the sequencer
 * and graphics controller the way the hardware does: chain-4 and odd/even
 * store bytes directly, planar accesses go through the latches, the four
 * write modes, rotate, logical operation and bit mask.
 *
 * Video memory is one 16 MiB host buffer.  The VGA's four 64 KiB planes are
 * its first 256 KiB, interleaved (vram[offset * 4 + plane]), so that chain-4
 * and VBE banked/linear accesses are plain byte addresses into the same
 * buffer, as on the real Bochs/QEMU adapter.
 *
 * Vertical retrace is derived from virtual time (a 60 Hz, 525-line frame),
 * so a guest polling 0x3DA sees the bit toggle at a steady rate and its
 * waits end; the device needs no timer.
 */
#include "devices/vga.h"
#include "hosted-driver/readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "devices/pci.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#define LEGACY_BASE 0xa0000u
#define LEGACY_SIZE 0x20000u
#define MMIO_BAR_SIZE 4096u
#define ROM_MAX_SIZE (1u << 20)

#define VBE_ID0 0xb0c0
#define VBE_ID5 0xb0c5

/* Sequencer */
#define SR_CLOCK 1
#define SR_MAP_MASK 2
#define SR_MEM_MODE 4
#define SR4_ODD_EVEN_OFF 0x04
#define SR4_CHAIN4 0x08

/* Graphics controller */
#define GR_SET_RESET 0
#define GR_ENABLE_SR 1
#define GR_COLOR_CMP 2
#define GR_ROTATE 3
#define GR_READ_MAP 4
#define GR_MODE 5
#define GR_MISC 6
#define GR_DONT_CARE 7
#define GR_BIT_MASK 8
#define GR5_READ_MODE1 0x08
#define GR5_ODD_EVEN 0x10

/* CRTC */
#define CR_PROTECT 0x11
#define CR11_PROTECT 0x80
#define CR_OVERFLOW 0x07

/* Attribute controller */
#define AR_COUNT 0x15

/* Misc output / input status 1 */
#define MISC_COLOR 0x01
#define ST1_NOT_DISPLAY 0x01
#define ST1_VRETRACE 0x08

/* One 60 Hz frame of a 640x480 raster: 525 lines, 480 shown, retrace in the blank. */
#define FRAME_NS (NS_PER_SEC / 60)
#define FRAME_LINES 525
#define ACTIVE_LINES 480
#define VRETRACE_FIRST 489
#define VRETRACE_LINES 26
#define HBLANK_PERCENT 20

/* Bits of each register the hardware implements (others read back 0). */
static const uint8_t sr_mask[8] = { 0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0x00 };
static const uint8_t gr_mask[16] = { 0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff };

/* Mode 3 (80x25 colour text), the state the adapter comes up in. */
static const uint8_t mode3_sr[5] = { 0x03, 0x00, 0x03, 0x00, 0x02 };
static const uint8_t mode3_cr[25] = {
    0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00,
    0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff,
};
static const uint8_t mode3_ar[AR_COUNT] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a,
    0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x0c, 0x00, 0x0f, 0x08, 0x00,
};
static const uint8_t mode3_gr[9] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff };

struct vga {
    struct vga_state s;
    struct bus *bus;
    struct pci_dev pci;

    uint8_t sr_index, gr_index, cr_index;
    bool ar_data_next;          /* attribute flip-flop: the next 0x3C0 write is data */
    uint8_t feature;
    uint8_t latch[4];

    uint8_t dac_read_index, dac_write_index, dac_sub, dac_state;
    uint8_t dac_pending[3];

    uint16_t vbe_index;
    uint32_t bank_offset;

    uint8_t *rom;
    uint32_t rom_size;          /* power of two, what the ROM BAR decodes */
    uint32_t rom_len;           /* bytes of the image */
    uint32_t rom_base, mmio_base, lfb_base;
    vga_lfb_map_fn lfb_map;
    void *lfb_opaque;
};

static bool vbe_enabled(const struct vga *v)
{
    return v->s.vbe[VBE_INDEX_ENABLE] & VBE_ENABLED;
}

/* ---- input status and retrace ---- */

static uint8_t input_status1(struct vga *v)
{
    struct vclock *clk = bus_clock(v->bus);
    int64_t t = clk ? vclock_now(clk) : 0;
    int64_t line_ns = FRAME_NS / FRAME_LINES;
    int64_t pos = t % FRAME_NS;
    int64_t line = pos / line_ns;
    int64_t in_line = pos % line_ns;
    uint8_t st = 0;
    if (line >= ACTIVE_LINES || in_line >= line_ns * (100 - HBLANK_PERCENT) / 100)
        st |= ST1_NOT_DISPLAY;
    if (line >= VRETRACE_FIRST && line < VRETRACE_FIRST + VRETRACE_LINES)
        st |= ST1_VRETRACE;
    return st;
}

/* ---- attribute controller ---- */

static void attr_write(struct vga *v, uint8_t val)
{
    if (!v->ar_data_next) {
        v->s.ar_index = val & 0x3f;
    } else {
        int i = v->s.ar_index & 0x1f;
        static const uint8_t ar_mask[AR_COUNT] = {
            0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
            0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0xef, 0xff, 0x3f, 0x0f, 0x0f,
        };
        if (i < AR_COUNT)
            v->s.ar[i] = val & ar_mask[i];
    }
    v->ar_data_next = !v->ar_data_next;
}

static uint8_t attr_read_data(struct vga *v)
{
    int i = v->s.ar_index & 0x1f;
    return i < AR_COUNT ? v->s.ar[i] : 0;
}

/* ---- DAC ---- */

static uint8_t dac_value_mask(const struct vga *v)
{
    return v->s.dac_8bit ? 0xff : 0x3f;
}

static void dac_write_data(struct vga *v, uint8_t val)
{
    v->dac_pending[v->dac_sub++] = val & dac_value_mask(v);
    if (v->dac_sub == 3) {
        memcpy(&v->s.palette[v->dac_write_index * 3], v->dac_pending, 3);
        v->dac_write_index++;     /* wraps at 256 like the hardware's 8-bit index */
        v->dac_sub = 0;
    }
}

static uint8_t dac_read_data(struct vga *v)
{
    uint8_t val = v->s.palette[v->dac_read_index * 3 + v->dac_sub++];
    if (v->dac_sub == 3) {
        v->dac_read_index++;
        v->dac_sub = 0;
    }
    return val;
}

/* ---- CRTC ---- */

static void crtc_write(struct vga *v, uint8_t val)
{
    uint8_t i = v->cr_index;
    /* CR11 bit 7 write-protects CR0-CR7, except the line compare bit 8 in CR7. */
    if ((v->s.cr[CR_PROTECT] & CR11_PROTECT) && i <= CR_OVERFLOW) {
        if (i == CR_OVERFLOW)
            v->s.cr[i] = (v->s.cr[i] & ~0x10) | (val & 0x10);
        return;
    }
    v->s.cr[i] = val;
}

/* ---- legacy port I/O ---- */

/* The mono (0x3Bx) or colour (0x3Dx) group that misc output bit 0 does not select. */
static bool port_deselected(const struct vga *v, uint16_t port)
{
    if (v->s.misc & MISC_COLOR)
        return port >= 0x3b0 && port <= 0x3bf;
    return port >= 0x3d0 && port <= 0x3df;
}

static uint8_t port_readb(struct vga *v, uint16_t port)
{
    if (port_deselected(v, port))
        return 0xff;
    switch (port) {
    case 0x3c0: return v->s.ar_index;
    case 0x3c1: return attr_read_data(v);
    case 0x3c2: return 0x00;                  /* input status 0: no switch sense, no IRQ */
    case 0x3c3: return 0x01;                  /* VGA enable */
    case 0x3c4: return v->sr_index;
    case 0x3c5: return v->s.sr[v->sr_index];
    case 0x3c6: return v->s.pel_mask;
    case 0x3c7: return v->dac_state;
    case 0x3c8: return v->dac_write_index;
    case 0x3c9: return dac_read_data(v);
    case 0x3ca: return v->feature;
    case 0x3cc: return v->s.misc;
    case 0x3ce: return v->gr_index;
    case 0x3cf: return v->s.gr[v->gr_index];
    case 0x3b4: case 0x3d4: return v->cr_index;
    case 0x3b5: case 0x3d5: return v->s.cr[v->cr_index];
    case 0x3ba: case 0x3da:
        v->ar_data_next = false;
        return input_status1(v);
    default: return 0xff;
    }
}

static void port_writeb(struct vga *v, uint16_t port, uint8_t val)
{
    if (port_deselected(v, port))
        return;
    switch (port) {
    case 0x3c0: attr_write(v, val); break;
    case 0x3c2: v->s.misc = val & ~0x10; break;
    case 0x3c4: v->sr_index = val & 7; break;
    case 0x3c5: v->s.sr[v->sr_index] = val & sr_mask[v->sr_index]; break;
    case 0x3c6: v->s.pel_mask = val; break;
    case 0x3c7:
        v->dac_read_index = val;
        v->dac_sub = 0;
        v->dac_state = 3;
        break;
    case 0x3c8:
        v->dac_write_index = val;
        v->dac_sub = 0;
        v->dac_state = 0;
        break;
    case 0x3c9: dac_write_data(v, val); break;
    case 0x3ce: v->gr_index = val & 0x0f; break;
    case 0x3cf: v->s.gr[v->gr_index] = val & gr_mask[v->gr_index]; break;
    case 0x3b4: case 0x3d4: v->cr_index = val; break;
    case 0x3b5: case 0x3d5: crtc_write(v, val); break;
    case 0x3ba: case 0x3da: v->feature = val & 0x0b; break;
    default: break;
    }
}

/* Word and dword accesses reach consecutive ports, low byte first
 * (outw 0x3C4 writes the index, then the data). */
static uint32_t vga_pio_read(void *opaque, uint16_t port, int size)
{
    uint32_t val = 0;
    for (int k = 0; k < size; k++)
        val |= (uint32_t)port_readb(opaque, port + k) << (8 * k);
    return val;
}

static void vga_pio_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    for (int k = 0; k < size; k++)
        port_writeb(opaque, port + k, val >> (8 * k));
}

/* ---- video memory through the legacy window ---- */

enum access_kind { ACCESS_CHAIN4, ACCESS_ODD_EVEN, ACCESS_PLANAR };

static enum access_kind write_access_kind(const struct vga *v)
{
    if (v->s.sr[SR_MEM_MODE] & SR4_CHAIN4)
        return ACCESS_CHAIN4;
    return (v->s.sr[SR_MEM_MODE] & SR4_ODD_EVEN_OFF) ? ACCESS_PLANAR : ACCESS_ODD_EVEN;
}

static enum access_kind read_access_kind(const struct vga *v)
{
    if (v->s.sr[SR_MEM_MODE] & SR4_CHAIN4)
        return ACCESS_CHAIN4;
    return (v->s.gr[GR_MODE] & GR5_ODD_EVEN) ? ACCESS_ODD_EVEN : ACCESS_PLANAR;
}

/* Turns an offset in the 128 KiB window into an address in the adapter's
 * CPU address space (GR6 memory map select, plus the VBE bank); false when
 * the current map does not decode it. */
static bool window_address(const struct vga *v, uint32_t addr, uint32_t *a)
{
    switch ((v->s.gr[GR_MISC] >> 2) & 3) {
    case 0:
        *a = addr;
        return true;
    case 1:
        if (addr >= 0x10000)
            return false;
        *a = addr + (vbe_enabled(v) ? v->bank_offset : 0);
        return true;
    case 2:
        if (addr < 0x10000 || addr >= 0x18000)
            return false;
        *a = addr - 0x10000;
        return true;
    default:
        if (addr < 0x18000)
            return false;
        *a = addr - 0x18000;
        return true;
    }
}

/* Plain VGA has 64 KiB per plane and wraps; with VBE on, a bank can reach
 * all of video memory.  Returns false when the offset is past the end. */
static bool plane_offset(const struct vga *v, uint32_t off, uint32_t *out)
{
    if (!vbe_enabled(v)) {
        *out = off & 0xffff;
        return true;
    }
    if (off >= v->s.vram_size / 4)
        return false;
    *out = off;
    return true;
}

static void load_latches(struct vga *v, uint32_t off)
{
    memcpy(v->latch, &v->s.vram[off * 4], 4);
}

/* Read mode 1: a 1 bit for each pixel whose colour matches the compare
 * value in every plane not masked out by "colour don't care". */
static uint8_t color_compare(const struct vga *v)
{
    uint8_t result = 0xff;
    for (int p = 0; p < 4; p++) {
        if (!(v->s.gr[GR_DONT_CARE] & (1 << p)))
            continue;
        uint8_t want = (v->s.gr[GR_COLOR_CMP] & (1 << p)) ? 0xff : 0x00;
        result &= ~(v->latch[p] ^ want);
    }
    return result;
}

static uint8_t mem_readb(struct vga *v, uint32_t addr)
{
    uint32_t a, off;
    if (!window_address(v, addr, &a))
        return 0xff;
    switch (read_access_kind(v)) {
    case ACCESS_CHAIN4:
        if (!vbe_enabled(v))
            a &= VGA_PLANAR_SIZE - 1;
        return a < v->s.vram_size ? v->s.vram[a] : 0xff;
    case ACCESS_ODD_EVEN:
        if (!plane_offset(v, a >> 1, &off))
            return 0xff;
        load_latches(v, off);
        return v->latch[(v->s.gr[GR_READ_MAP] & 2) | (a & 1)];
    default:
        if (!plane_offset(v, a, &off))
            return 0xff;
        load_latches(v, off);
        if (v->s.gr[GR_MODE] & GR5_READ_MODE1)
            return color_compare(v);
        return v->latch[v->s.gr[GR_READ_MAP] & 3];
    }
}

static uint8_t rotate_right(uint8_t val, int n)
{
    n &= 7;
    return n ? (uint8_t)((val >> n) | (val << (8 - n))) : val;
}

static uint8_t logical_op(int func, uint8_t data, uint8_t latch)
{
    switch (func) {
    case 1: return data & latch;
    case 2: return data | latch;
    case 3: return data ^ latch;
    default: return data;
    }
}

/* The graphics controller's data path for one planar write: what each of
 * the four planes would receive, before the map mask picks the planes. */
static void planar_write_data(const struct vga *v, uint8_t val, uint8_t out[4])
{
    const uint8_t *gr = v->s.gr;
    int mode = gr[GR_MODE] & 3;
    int func = (gr[GR_ROTATE] >> 3) & 3;
    uint8_t rotated = rotate_right(val, gr[GR_ROTATE]);
    uint8_t bit_mask = gr[GR_BIT_MASK];

    if (mode == 1) {              /* copy the latches (screen-to-screen moves) */
        memcpy(out, v->latch, 4);
        return;
    }
    if (mode == 3)
        bit_mask &= rotated;
    for (int p = 0; p < 4; p++) {
        uint8_t data;
        uint8_t set_reset = (gr[GR_SET_RESET] & (1 << p)) ? 0xff : 0x00;
        if (mode == 0)
            data = (gr[GR_ENABLE_SR] & (1 << p)) ? set_reset : rotated;
        else if (mode == 2)
            data = (val & (1 << p)) ? 0xff : 0x00;
        else
            data = set_reset;
        data = logical_op(func, data, v->latch[p]);
        out[p] = (data & bit_mask) | (v->latch[p] & ~bit_mask);
    }
}

static void mem_writeb(struct vga *v, uint32_t addr, uint8_t val)
{
    uint32_t a, off;
    uint8_t map_mask = v->s.sr[SR_MAP_MASK];
    if (!window_address(v, addr, &a))
        return;
    switch (write_access_kind(v)) {
    case ACCESS_CHAIN4:
        if (!vbe_enabled(v))
            a &= VGA_PLANAR_SIZE - 1;
        if (a < v->s.vram_size && (map_mask & (1 << (a & 3))))
            v->s.vram[a] = val;
        return;
    case ACCESS_ODD_EVEN:
        /* Even addresses reach planes 0 and 2, odd ones 1 and 3, as enabled. */
        if (!plane_offset(v, a >> 1, &off))
            return;
        map_mask &= (a & 1) ? 0x0a : 0x05;
        for (int p = 0; p < 4; p++)
            if (map_mask & (1 << p))
                v->s.vram[off * 4 + p] = val;
        return;
    default: {
        uint8_t data[4];
        if (!plane_offset(v, a, &off))
            return;
        planar_write_data(v, val, data);
        for (int p = 0; p < 4; p++)
            if (map_mask & (1 << p))
                v->s.vram[off * 4 + p] = data[p];
        return;
    }
    }
}

static uint32_t legacy_mem_read(void *opaque, uint32_t addr, int size)
{
    uint32_t val = 0;
    for (int k = 0; k < size; k++)
        if (addr + k < LEGACY_SIZE)
            val |= (uint32_t)mem_readb(opaque, addr + k) << (8 * k);
    return val;
}

static void legacy_mem_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    for (int k = 0; k < size; k++)
        if (addr + k < LEGACY_SIZE)
            mem_writeb(opaque, addr + k, val >> (8 * k));
}

/* ---- Bochs VBE (DISPI) ---- */

static unsigned vbe_bits_per_pixel(uint16_t bpp)
{
    return bpp == 15 ? 16 : bpp;
}

/*
 * The DISPI interface cannot report errors, so impossible values are moved
 * to the nearest valid ones, as the Bochs adapter does: a supported depth,
 * widths that are multiples of 8, and a visible window inside video memory.
 */
static void vbe_fixup(struct vga *v)
{
    uint16_t *r = v->s.vbe;
    if (!vbe_enabled(v))
        return;
    switch (r[VBE_INDEX_BPP]) {
    case 4: case 8: case 15: case 16: case 24: case 32: break;
    default: r[VBE_INDEX_BPP] = 8; break;
    }
    unsigned bits = vbe_bits_per_pixel(r[VBE_INDEX_BPP]);

    r[VBE_INDEX_XRES] &= ~7u;
    if (r[VBE_INDEX_XRES] == 0)
        r[VBE_INDEX_XRES] = 8;
    if (r[VBE_INDEX_XRES] > VBE_MAX_XRES)
        r[VBE_INDEX_XRES] = VBE_MAX_XRES;
    r[VBE_INDEX_VIRT_WIDTH] &= ~7u;
    if (r[VBE_INDEX_VIRT_WIDTH] > VBE_MAX_XRES)
        r[VBE_INDEX_VIRT_WIDTH] = VBE_MAX_XRES;
    if (r[VBE_INDEX_VIRT_WIDTH] < r[VBE_INDEX_XRES])
        r[VBE_INDEX_VIRT_WIDTH] = r[VBE_INDEX_XRES];

    uint32_t line = (uint32_t)r[VBE_INDEX_VIRT_WIDTH] * bits / 8;
    uint32_t max_lines = v->s.vram_size / line;
    if (r[VBE_INDEX_YRES] == 0)
        r[VBE_INDEX_YRES] = 1;
    if (r[VBE_INDEX_YRES] > VBE_MAX_YRES)
        r[VBE_INDEX_YRES] = VBE_MAX_YRES;
    if (r[VBE_INDEX_YRES] > max_lines)
        r[VBE_INDEX_YRES] = max_lines;

    if (r[VBE_INDEX_X_OFFSET] > VBE_MAX_XRES)
        r[VBE_INDEX_X_OFFSET] = VBE_MAX_XRES;
    uint64_t shown = (uint64_t)r[VBE_INDEX_YRES] * line;
    uint64_t start = (uint64_t)r[VBE_INDEX_X_OFFSET] * bits / 8 + (uint64_t)r[VBE_INDEX_Y_OFFSET] * line;
    if (start + shown > v->s.vram_size) {
        r[VBE_INDEX_Y_OFFSET] = 0;
        start = (uint64_t)r[VBE_INDEX_X_OFFSET] * bits / 8;
        if (start + shown > v->s.vram_size) {
            r[VBE_INDEX_X_OFFSET] = 0;
            start = 0;
        }
    }
    r[VBE_INDEX_VIRT_HEIGHT] = max_lines > 0xffff ? 0xffff : max_lines;
    v->s.vbe_line_bytes = line;
    v->s.vbe_start_bytes = (uint32_t)start;
}

/* Put the VGA side into the state a linear VBE mode needs, so that
 * software reading the VGA registers (BIOS state save) sees graphics. */
static void vbe_program_vga(struct vga *v)
{
    uint8_t *cr = v->s.cr, *gr = v->s.gr, *sr = v->s.sr;
    unsigned h = v->s.vbe[VBE_INDEX_YRES] - 1;
    gr[GR_MISC] = (gr[GR_MISC] & ~0x0c) | 0x04 | 0x01;     /* graphics, A0000 64 KiB */
    cr[0x17] |= 3;                                          /* no CGA/Hercules addressing */
    cr[0x13] = v->s.vbe_line_bytes >> 3;
    cr[0x01] = (v->s.vbe[VBE_INDEX_XRES] >> 3) - 1;
    cr[0x12] = h;
    cr[CR_OVERFLOW] = (cr[CR_OVERFLOW] & ~0x42) | ((h >> 7) & 0x02) | ((h >> 3) & 0x40);
    cr[0x18] = 0xff;                                        /* no split screen */
    cr[CR_OVERFLOW] |= 0x10;
    cr[0x09] = (cr[0x09] | 0x40) & ~0x9f;                   /* no double scan */
    int shift;
    if (v->s.vbe[VBE_INDEX_BPP] == 4) {
        shift = 0;
        sr[SR_CLOCK] &= ~0x08;
    } else {
        shift = 2;
        sr[SR_MEM_MODE] |= SR4_CHAIN4;
        sr[SR_MAP_MASK] |= 0x0f;
    }
    gr[GR_MODE] = (gr[GR_MODE] & ~0x60) | (shift << 5);
}

static void vbe_write_enable(struct vga *v, uint16_t val)
{
    uint16_t *r = v->s.vbe;
    bool turning_on = (val & VBE_ENABLED) && !vbe_enabled(v);
    if (turning_on) {
        r[VBE_INDEX_VIRT_WIDTH] = 0;
        r[VBE_INDEX_X_OFFSET] = 0;
        r[VBE_INDEX_Y_OFFSET] = 0;
        r[VBE_INDEX_ENABLE] |= VBE_ENABLED;
        vbe_fixup(v);
        if (!(val & VBE_NOCLEARMEM))
            memset(v->s.vram, 0, (size_t)r[VBE_INDEX_YRES] * v->s.vbe_line_bytes);
        vbe_program_vga(v);
    }
    v->s.dac_8bit = (val & VBE_8BIT_DAC) != 0;
    r[VBE_INDEX_ENABLE] = val;
}

static uint32_t vbe_bank_mask(const struct vga *v)
{
    uint32_t banks = v->s.vram_size >> 16;
    if (v->s.vbe[VBE_INDEX_BPP] == 4)
        banks /= 4;               /* planar: a bank is 64 KiB of each plane */
    return banks - 1;
}

static void vbe_write(struct vga *v, uint16_t index, uint16_t val)
{
    uint16_t *r = v->s.vbe;
    switch (index) {
    case VBE_INDEX_ID:
        if (val >= VBE_ID0 && val <= VBE_ID5)
            r[index] = val;
        break;
    case VBE_INDEX_XRES: case VBE_INDEX_YRES: case VBE_INDEX_BPP:
    case VBE_INDEX_VIRT_WIDTH: case VBE_INDEX_X_OFFSET: case VBE_INDEX_Y_OFFSET:
        r[index] = val;
        vbe_fixup(v);
        break;
    case VBE_INDEX_BANK:
        r[index] = val & vbe_bank_mask(v);
        v->bank_offset = (uint32_t)r[index] << 16;
        break;
    case VBE_INDEX_ENABLE:
        vbe_write_enable(v, val);
        break;
    default:                      /* VIRT_HEIGHT and VIDEO_MEMORY_64K are read-only */
        break;
    }
}

static uint16_t vbe_read(const struct vga *v, uint16_t index)
{
    const uint16_t *r = v->s.vbe;
    if (index >= VBE_INDEX_COUNT)
        return 0;
    if (r[VBE_INDEX_ENABLE] & VBE_GETCAPS) {
        if (index == VBE_INDEX_XRES)
            return VBE_MAX_XRES;
        if (index == VBE_INDEX_YRES)
            return VBE_MAX_YRES;
        if (index == VBE_INDEX_BPP)
            return VBE_MAX_BPP;
    }
    if (index == VBE_INDEX_VIDEO_MEMORY_64K)
        return v->s.vram_size >> 16;
    return r[index];
}

static uint32_t dispi_pio_read(void *opaque, uint16_t port, int size)
{
    struct vga *v = opaque;
    return port == 0x1ce ? v->vbe_index : vbe_read(v, v->vbe_index);
}

static void dispi_pio_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct vga *v = opaque;
    if (port == 0x1ce)
        v->vbe_index = val;
    else
        vbe_write(v, v->vbe_index, val);
}

/* ---- PCI: BAR0 linear framebuffer, BAR2 register MMIO, ROM ---- */

static uint32_t lfb_read(void *opaque, uint32_t addr, int size)
{
    struct vga *v = opaque;
    uint32_t val = 0;
    if (addr < v->s.vram_size && size <= (int)(v->s.vram_size - addr))
        memcpy(&val, &v->s.vram[addr], size);
    return val;
}

static void lfb_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct vga *v = opaque;
    if (addr < v->s.vram_size && size <= (int)(v->s.vram_size - addr))
        memcpy(&v->s.vram[addr], &val, size);
}

static void lfb_bar_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct vga *v = d->opaque;
    if (v->lfb_base != PCI_BAR_UNMAPPED) {
        bus_unregister_mmio(v->bus, v->lfb_base, v->s.vram_size);
        if (v->lfb_map)
            v->lfb_map(v->lfb_opaque, PCI_BAR_UNMAPPED, v->s.vram_size, NULL);
    }
    v->lfb_base = base;
    if (base == PCI_BAR_UNMAPPED)
        return;
    bus_register_mmio(v->bus, base, v->s.vram_size, v, lfb_read, lfb_write);
    if (v->lfb_map)
        v->lfb_map(v->lfb_opaque, base, v->s.vram_size, v->s.vram);
}

/* BAR2, QEMU's layout: 0x400 VGA ports 0x3C0-0x3DF, 0x500 DISPI registers
 * (index << 1), 0x600 "qemu extended" registers (size, framebuffer byte order). */
#define MMIO_VGA 0x400
#define MMIO_DISPI 0x500
#define MMIO_QEXT 0x600
#define QEXT_SIZE 8
#define QEXT_LITTLE_ENDIAN 0x1e1e1e1eu

static uint32_t regs_mmio_read(void *opaque, uint32_t addr, int size)
{
    struct vga *v = opaque;
    if (addr >= MMIO_VGA && addr + size <= MMIO_VGA + 0x20)
        return vga_pio_read(v, 0x3c0 + (addr - MMIO_VGA), size);
    if (addr >= MMIO_DISPI && addr < MMIO_DISPI + 2 * VBE_INDEX_COUNT) {
        uint32_t val = 0;
        for (int k = 0; k < size; k++) {
            uint32_t a = addr + k - MMIO_DISPI;
            val |= (uint32_t)((vbe_read(v, a >> 1) >> (8 * (a & 1))) & 0xff) << (8 * k);
        }
        return val;
    }
    if (addr == MMIO_QEXT)
        return QEXT_SIZE;
    if (addr == MMIO_QEXT + 4)
        return QEXT_LITTLE_ENDIAN;
    return 0;     /* includes the EDID blob at 0: none */
}

static void regs_mmio_write(void *opaque, uint32_t addr, uint32_t val, int size)
{
    struct vga *v = opaque;
    if (addr >= MMIO_VGA && addr + size <= MMIO_VGA + 0x20) {
        vga_pio_write(v, 0x3c0 + (addr - MMIO_VGA), val, size);
        return;
    }
    if (addr >= MMIO_DISPI && addr < MMIO_DISPI + 2 * VBE_INDEX_COUNT && !(addr & 1)) {
        vbe_write(v, (addr - MMIO_DISPI) >> 1, size == 1 ? (val & 0xff) : (val & 0xffff));
        if (size == 4 && addr + 2 < MMIO_DISPI + 2 * VBE_INDEX_COUNT)
            vbe_write(v, (addr + 2 - MMIO_DISPI) >> 1, val >> 16);
    }
}

static void regs_bar_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct vga *v = d->opaque;
    if (v->mmio_base != PCI_BAR_UNMAPPED)
        bus_unregister_mmio(v->bus, v->mmio_base, MMIO_BAR_SIZE);
    v->mmio_base = base;
    if (base != PCI_BAR_UNMAPPED)
        bus_register_mmio(v->bus, base, MMIO_BAR_SIZE, v, regs_mmio_read, regs_mmio_write);
}

static uint32_t rom_read(void *opaque, uint32_t addr, int size)
{
    struct vga *v = opaque;
    uint32_t val = 0;
    for (int k = 0; k < size; k++)
        if (addr + k < v->rom_size)
            val |= (uint32_t)v->rom[addr + k] << (8 * k);
    return val;
}

static void rom_bar_map(struct pci_dev *d, int bar, uint32_t base)
{
    struct vga *v = d->opaque;
    if (v->rom_base != PCI_BAR_UNMAPPED)
        bus_unregister_mmio(v->bus, v->rom_base, v->rom_size);
    v->rom_base = base;
    if (base != PCI_BAR_UNMAPPED)
        bus_register_mmio(v->bus, base, v->rom_size, v, rom_read, NULL);
}

static void setup_pci(struct vga *v, struct pci_bus *pci, int devfn)
{
    struct pci_dev *d = &v->pci;
    pci_dev_init(d, "vga", devfn, 0x1234, 0x1111, 0x030000, 2);
    d->opaque = v;
    d->bar[0].prefetch = true;
    pci_set_bar(d, 0, v->s.vram_size, false, lfb_bar_map);
    pci_set_bar(d, 2, MMIO_BAR_SIZE, false, regs_bar_map);
    pci_set_rom(d, v->rom_size, rom_bar_map);
    pci_register(pci, d);
}

/* ---- the VGA BIOS image ---- */

static uint32_t round_up_pow2(uint32_t n)
{
    uint32_t p = 2048;
    while (p < n)
        p <<= 1;
    return p;
}

static bool load_rom(struct vga *v, const char *path, char *err, size_t errlen)
{
    char why[512];
    size_t n = 0;
    uint8_t *buf = read_regular_file(path, ROM_MAX_SIZE, "an option ROM is at most 1 MiB", &n, why, sizeof(why));
    if (!buf) {
        snprintf(err, errlen, "VGA BIOS %s", why);
        return false;
    }
    if (n < 3 || buf[0] != 0x55 || buf[1] != 0xaa) {
        snprintf(err, errlen, "VGA BIOS %s: not an option ROM (no 55 AA signature)", path);
        free(buf);
        return false;
    }
    v->rom_len = n;
    v->rom_size = round_up_pow2(n);
    v->rom = realloc(buf, v->rom_size);
    if (!v->rom)
        v->rom = buf;
    memset(v->rom + n, 0, v->rom_size - n);
    return true;
}

/* ---- reset and lifetime ---- */

/* The EGA/VGA default colours: index bits 0-2 are blue, green, red at 2/3
 * intensity, bits 3-5 add 1/3 of blue, green, red. */
static void default_palette(struct vga *v)
{
    memset(v->s.palette, 0, sizeof(v->s.palette));
    for (int i = 0; i < 64; i++) {
        uint8_t *rgb = &v->s.palette[i * 3];
        rgb[0] = ((i >> 2) & 1) * 0x2a + ((i >> 5) & 1) * 0x15;
        rgb[1] = ((i >> 1) & 1) * 0x2a + ((i >> 4) & 1) * 0x15;
        rgb[2] = (i & 1) * 0x2a + ((i >> 3) & 1) * 0x15;
    }
}

static void vga_reset(void *opaque)
{
    struct vga *v = opaque;
    struct vga_state *s = &v->s;
    s->misc = 0x67;
    memset(s->sr, 0, sizeof(s->sr));
    memset(s->gr, 0, sizeof(s->gr));
    memset(s->cr, 0, sizeof(s->cr));
    memset(s->ar, 0, sizeof(s->ar));
    memcpy(s->sr, mode3_sr, sizeof(mode3_sr));
    memcpy(s->gr, mode3_gr, sizeof(mode3_gr));
    memcpy(s->cr, mode3_cr, sizeof(mode3_cr));
    memcpy(s->ar, mode3_ar, sizeof(mode3_ar));
    s->ar_index = 0x20;
    s->pel_mask = 0xff;
    s->dac_8bit = false;
    default_palette(v);
    memset(s->vbe, 0, sizeof(s->vbe));
    s->vbe[VBE_INDEX_ID] = VBE_ID5;
    s->vbe_line_bytes = 0;
    s->vbe_start_bytes = 0;
    /* Zero by giving the pages back (an anonymous mapping reads as zeros):
     * touching all of VRAM cost a boot 4000 page faults. */
    if (madvise(s->vram, s->vram_size, MADV_DONTNEED) != 0)
        memset(s->vram, 0, s->vram_size);

    v->sr_index = v->gr_index = v->cr_index = 0;
    v->ar_data_next = false;
    v->feature = 0;
    memset(v->latch, 0, sizeof(v->latch));
    v->dac_read_index = v->dac_write_index = v->dac_sub = v->dac_state = 0;
    v->vbe_index = 0;
    v->bank_offset = 0;
}

/* The renderer reads vga_state as it is; what follows from the registers
 * is where the BARs and the ROM decode. */
static void vga_post_load(void *opaque)
{
    struct vga *v = opaque;
    if (v->pci.bus)
        pci_dev_post_load(&v->pci);
}

static const struct state_field vga_fields[] = {
    STATE_FIELD(struct vga, s.misc), STATE_FIELD(struct vga, s.sr), STATE_FIELD(struct vga, s.gr),
    STATE_FIELD(struct vga, s.cr), STATE_FIELD(struct vga, s.ar), STATE_FIELD(struct vga, s.ar_index),
    STATE_FIELD(struct vga, s.pel_mask), STATE_FIELD(struct vga, s.palette), STATE_FIELD(struct vga, s.dac_8bit),
    STATE_FIELD(struct vga, s.vbe), STATE_FIELD(struct vga, s.vbe_line_bytes),
    STATE_FIELD(struct vga, s.vbe_start_bytes), STATE_INDIRECT(struct vga, s.vram, VGA_VRAM_SIZE),
    STATE_FIELD(struct vga, pci.config), STATE_FIELD(struct vga, pci.irq_level),
    STATE_FIELD(struct vga, sr_index), STATE_FIELD(struct vga, gr_index), STATE_FIELD(struct vga, cr_index),
    STATE_FIELD(struct vga, ar_data_next), STATE_FIELD(struct vga, feature), STATE_FIELD(struct vga, latch),
    STATE_FIELD(struct vga, dac_read_index), STATE_FIELD(struct vga, dac_write_index),
    STATE_FIELD(struct vga, dac_sub), STATE_FIELD(struct vga, dac_state), STATE_FIELD(struct vga, dac_pending),
    STATE_FIELD(struct vga, vbe_index), STATE_FIELD(struct vga, bank_offset),
};
static const struct state_table vga_state_table = { "vga", 1, vga_fields, STATE_COUNT(vga_fields), vga_post_load };

struct vga *vga_new(struct bus *b, struct pci_bus *pci, int devfn, const char *vgabios_path,
                    char *err, size_t errlen)
{
    struct vga *v = xcalloc(1, sizeof(*v));
    v->bus = b;
    v->rom_base = v->mmio_base = v->lfb_base = PCI_BAR_UNMAPPED;
    if (!load_rom(v, vgabios_path, err, errlen)) {
        free(v);
        return NULL;
    }
    /* Page-aligned so the machine can map the LFB like RAM. */
    void *vram = mmap(NULL, VGA_VRAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vram == MAP_FAILED) {
        snprintf(err, errlen, "cannot allocate %u MiB of video memory: %s", VGA_VRAM_SIZE >> 20,
                 strerror(errno));
        free(v->rom);
        free(v);
        return NULL;
    }
    v->s.vram = vram;
    v->s.vram_size = VGA_VRAM_SIZE;
    vga_reset(v);

    bus_register_pio(b, 0x3b4, 2, v, vga_pio_read, vga_pio_write);
    bus_register_pio(b, 0x3ba, 1, v, vga_pio_read, vga_pio_write);
    bus_register_pio(b, 0x3c0, 16, v, vga_pio_read, vga_pio_write);
    bus_register_pio(b, 0x3d4, 2, v, vga_pio_read, vga_pio_write);
    bus_register_pio(b, 0x3da, 1, v, vga_pio_read, vga_pio_write);
    bus_register_pio(b, 0x1ce, 2, v, dispi_pio_read, dispi_pio_write);
    bus_register_mmio(b, LEGACY_BASE, LEGACY_SIZE, v, legacy_mem_read, legacy_mem_write);
    if (pci)
        setup_pci(v, pci, devfn);
    bus_add_device(b, &(struct device){ .name = "vga", .opaque = v, .reset = vga_reset, .state = &vga_state_table });
    return v;
}

void vga_free(struct vga *v)
{
    if (!v)
        return;
    munmap(v->s.vram, v->s.vram_size);
    free(v->rom);
    free(v);
}

const struct vga_state *vga_state(const struct vga *v)
{
    return &v->s;
}

const uint8_t *vga_bios(const struct vga *v, uint32_t *size)
{
    *size = v->rom_len;
    return v->rom;
}

void vga_set_lfb_mapper(struct vga *v, vga_lfb_map_fn map, void *opaque)
{
    v->lfb_map = map;
    v->lfb_opaque = opaque;
    if (map && v->lfb_base != PCI_BAR_UNMAPPED)
        map(opaque, v->lfb_base, v->s.vram_size, v->s.vram);
}

uint32_t vga_lfb_base(const struct vga *v)
{
    return v->lfb_base;
}
