/*
 * Test helpers shared by test_vga.c and test_render.c: a machine with just
 * a bus, a PCI bus and the VGA, and guest-style accessors (port I/O and
 * memory writes through the bus, the way a BIOS or driver touches the card).
 * The mode tables are the standard IBM VGA register values for each mode.
 */
#ifndef RV_TEST_VGA_GUEST_H
#define RV_TEST_VGA_GUEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/vga.h"
#include "hosted-driver/vclock.h"

struct vga_env {
    struct vclock *clk;
    struct bus *b;
    struct pci_bus *pb;
    struct vga *vga;
    char rom_path[64];
};

/* A stand-in VGA BIOS: the option ROM signature, a length byte, filler. */
static inline void write_fake_rom(const char *path, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < len; i++)
        fputc(i == 0 ? 0x55 : i == 1 ? 0xaa : i == 2 ? (int)(len / 512) : (int)(i & 0xff), f);
    fclose(f);
}

static inline struct vga_env *vga_env_new(void)
{
    struct vga_env *e = calloc(1, sizeof(*e));
    char err[256];
    snprintf(e->rom_path, sizeof(e->rom_path), "/tmp/rv-test-vgarom-%d.bin", (int)getpid());
    write_fake_rom(e->rom_path, 36 * 1024);
    e->clk = vclock_new(true, 1);
    e->b = bus_new(e->clk);
    e->pb = pci_bus_new(e->b);
    e->vga = vga_new(e->b, e->pb, VGA_PCI_DEVFN, e->rom_path, err, sizeof(err));
    assert_non_null(e->vga);
    bus_reset_devices(e->b);
    return e;
}

static inline void vga_env_free(struct vga_env *e)
{
    vga_free(e->vga);
    pci_bus_free(e->pb);
    bus_free(e->b);
    vclock_free(e->clk);
    unlink(e->rom_path);
    free(e);
}

static inline void outb(struct vga_env *e, uint16_t port, uint8_t val)
{
    bus_pio_write(e->b, port, val, 1);
}

static inline void outw(struct vga_env *e, uint16_t port, uint16_t val)
{
    bus_pio_write(e->b, port, val, 2);
}

static inline uint8_t inb(struct vga_env *e, uint16_t port)
{
    return bus_pio_read(e->b, port, 1);
}

static inline uint16_t inw(struct vga_env *e, uint16_t port)
{
    return bus_pio_read(e->b, port, 2);
}

static inline void memb(struct vga_env *e, uint32_t addr, uint8_t val)
{
    assert_true(bus_mmio_write(e->b, addr, val, 1));
}

static inline uint8_t rdmemb(struct vga_env *e, uint32_t addr)
{
    uint32_t v = 0;
    assert_true(bus_mmio_read(e->b, addr, 1, &v));
    return v;
}

static inline void seq(struct vga_env *e, uint8_t i, uint8_t v) { outb(e, 0x3c4, i); outb(e, 0x3c5, v); }
static inline void gfx(struct vga_env *e, uint8_t i, uint8_t v) { outb(e, 0x3ce, i); outb(e, 0x3cf, v); }
static inline void crtc(struct vga_env *e, uint8_t i, uint8_t v) { outb(e, 0x3d4, i); outb(e, 0x3d5, v); }

static inline void attr(struct vga_env *e, uint8_t i, uint8_t v)
{
    inb(e, 0x3da);
    outb(e, 0x3c0, i);
    outb(e, 0x3c0, v);
    outb(e, 0x3c0, 0x20);
}

static inline void dac(struct vga_env *e, uint8_t index, uint8_t r, uint8_t g, uint8_t b)
{
    outb(e, 0x3c8, index);
    outb(e, 0x3c9, r);
    outb(e, 0x3c9, g);
    outb(e, 0x3c9, b);
}

static inline void dispi(struct vga_env *e, uint16_t index, uint16_t val)
{
    outw(e, 0x1ce, index);
    outw(e, 0x1cf, val);
}

static inline uint16_t dispi_read(struct vga_env *e, uint16_t index)
{
    outw(e, 0x1ce, index);
    return inw(e, 0x1cf);
}

struct vga_mode_regs {
    uint8_t misc;
    uint8_t sr[5];
    uint8_t cr[25];
    uint8_t ar[20];
    uint8_t gr[9];
};

static const struct vga_mode_regs mode03 = {
    0x67,
    { 0x03, 0x00, 0x03, 0x00, 0x02 },
    { 0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00,
      0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff },
    { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c,
      0x3d, 0x3e, 0x3f, 0x0c, 0x00, 0x0f, 0x08 },
    { 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x0f, 0xff },
};

static const struct vga_mode_regs mode04 = {
    0x63,
    { 0x03, 0x09, 0x03, 0x00, 0x02 },
    { 0x2d, 0x27, 0x28, 0x90, 0x2b, 0x80, 0xbf, 0x1f, 0x00, 0xc1, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x14, 0x00, 0x96, 0xb9, 0xa2, 0xff },
    { 0x00, 0x13, 0x15, 0x17, 0x02, 0x04, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14,
      0x15, 0x16, 0x17, 0x01, 0x00, 0x03, 0x00 },
    { 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x0f, 0x0f, 0xff },
};

static const struct vga_mode_regs mode12 = {
    0xe3,
    { 0x03, 0x01, 0x0f, 0x00, 0x06 },
    { 0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0x0b, 0x3e, 0x00, 0x40, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0xea, 0x8c, 0xdf, 0x28, 0x00, 0xe7, 0x04, 0xe3, 0xff },
    { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c,
      0x3d, 0x3e, 0x3f, 0x01, 0x00, 0x0f, 0x00 },
    { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0f, 0xff },
};

static const struct vga_mode_regs mode13 = {
    0x63,
    { 0x03, 0x01, 0x0f, 0x00, 0x0e },
    { 0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0xbf, 0x1f, 0x00, 0x41, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x40, 0x96, 0xb9, 0xa3, 0xff },
    { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
      0x0d, 0x0e, 0x0f, 0x41, 0x00, 0x0f, 0x00 },
    { 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0f, 0xff },
};

/* Program a mode the way a VGA BIOS does: misc, sequencer, CRTC (after
 * unlocking CR0-7), attribute controller, graphics controller, then
 * re-enable the display through the attribute index's palette source bit. */
static inline void set_mode(struct vga_env *e, const struct vga_mode_regs *m)
{
    outb(e, 0x3c2, m->misc);
    for (int i = 0; i < 5; i++)
        seq(e, i, m->sr[i]);
    crtc(e, 0x11, 0x00);
    for (int i = 0; i < 25; i++)
        crtc(e, i, m->cr[i]);
    inb(e, 0x3da);
    for (int i = 0; i < 20; i++) {
        outb(e, 0x3c0, i);
        outb(e, 0x3c0, m->ar[i]);
    }
    outb(e, 0x3c0, 0x14);
    outb(e, 0x3c0, 0x00);
    for (int i = 0; i < 9; i++)
        gfx(e, i, m->gr[i]);
    outb(e, 0x3c0, 0x20);
}

#endif
