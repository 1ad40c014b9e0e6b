#include "monitor/physmem.h"
#include "devices/bus.h"
#include "hosted-driver/guest_ram.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHADOW_BASE 0xc0000u
#define SHADOW_SIZE 0x40000u

static bool in_shadow(uint32_t addr) { return addr >= SHADOW_BASE && addr < SHADOW_BASE + SHADOW_SIZE; }

struct physmem *physmem_new(uint32_t ram_size, struct bus *bus)
{
    struct physmem *pm = xcalloc(1, sizeof(*pm));
    pm->ram_size = ram_size;
    pm->ram = guest_ram_alloc(ram_size);
    pm->bus = bus;
    pm->rd = xcalloc(PHYS_PAGES, sizeof(uint8_t *));
    pm->wr = xcalloc(PHYS_PAGES, sizeof(uint8_t *));
    pm->rom_shadow = xcalloc(1, SHADOW_SIZE);
    pm->code_bits = xcalloc(PHYS_PAGES / 8, 1);
    memset(pm->rom_shadow, 0xff, SHADOW_SIZE);
    for (uint32_t a = 0; a < ram_size; a += PAGE_SIZE) {
        pm->rd[a >> 12] = pm->ram + a;
        pm->wr[a >> 12] = pm->ram + a;
    }
    /* Legacy VGA window: MMIO until a display device claims it. */
    physmem_set_mmio(pm, 0xa0000, 0x20000);
    /* Power-on PAM state: the whole 0xC0000-0xFFFFF window reads ROM. */
    physmem_set_pam(pm, SHADOW_BASE, SHADOW_SIZE, false, false);
    return pm;
}

void physmem_free(struct physmem *pm)
{
    if (!pm)
        return;
    guest_ram_free(pm->ram, pm->ram_size);
    free(pm->rd);
    free(pm->wr);
    free(pm->rom_shadow);
    free(pm->code_bits);
    free(pm->bios);
    free(pm);
}

void physmem_set_bios(struct physmem *pm, const uint8_t *img, uint32_t size)
{
    free(pm->bios);
    pm->bios = xcalloc(1, size);
    memcpy(pm->bios, img, size);
    pm->bios_size = size;
    uint32_t top = (uint32_t)(0x100000000ull - size);
    for (uint32_t off = 0; off < size; off += PAGE_SIZE) {
        pm->rd[(top + off) >> 12] = pm->bios + off;
        pm->wr[(top + off) >> 12] = NULL;
    }
    /* The low alias is the image's last 128 KiB ending at 1 MiB. */
    uint32_t alias = size < 0x20000 ? size : 0x20000;
    memcpy(pm->rom_shadow + SHADOW_SIZE - alias, img + size - alias, alias);
    pm->generation++;
    pm->rom_generation++;
}

void physmem_set_option_rom(struct physmem *pm, uint32_t addr, const uint8_t *img, uint32_t size)
{
    if (!in_shadow(addr) || size > SHADOW_BASE + SHADOW_SIZE - addr)
        return;
    memcpy(pm->rom_shadow + (addr - SHADOW_BASE), img, size);
    pm->generation++;
    pm->rom_generation++;
}

void physmem_set_pam(struct physmem *pm, uint32_t base, uint32_t len, bool read_ram, bool write_ram)
{
    for (uint32_t a = base; a < base + len; a += PAGE_SIZE) {
        if (!in_shadow(a))
            continue;
        uint8_t *ram = a < pm->ram_size ? pm->ram + a : NULL;
        pm->rd[a >> 12] = read_ram ? ram : pm->rom_shadow + (a - SHADOW_BASE);
        pm->wr[a >> 12] = write_ram ? ram : NULL;
    }
    pm->generation++;
}

void physmem_set_mmio(struct physmem *pm, uint32_t base, uint32_t len)
{
    for (uint64_t a = base; a < (uint64_t)base + len; a += PAGE_SIZE) {
        pm->rd[a >> 12] = NULL;
        pm->wr[a >> 12] = NULL;
    }
    pm->generation++;
}

void physmem_map_host(struct physmem *pm, uint32_t base, uint32_t len, uint8_t *host)
{
    for (uint64_t off = 0; off < len && (uint64_t)base + off < 0x100000000ull; off += PAGE_SIZE) {
        uint32_t page = (uint32_t)(base + off) >> 12;
        pm->rd[page] = host + off;
        pm->wr[page] = host + off;
    }
    pm->generation++;
}

static uint8_t read_byte_slow(struct physmem *pm, uint32_t addr)
{
    uint8_t *p = pm->rd[addr >> 12];
    if (p)
        return p[addr & 0xfff];
    uint32_t v;
    if (bus_mmio_read(pm->bus, addr, 1, &v))
        return v;
    return 0xff;
}

uint64_t physmem_read(struct physmem *pm, uint32_t addr, int size)
{
    uint8_t *p = pm->rd[addr >> 12];
    if (p && (addr & 0xfff) + size <= PAGE_SIZE) {
        uint64_t v = 0;
        memcpy(&v, p + (addr & 0xfff), size);
        return v;
    }
    /* MMIO regions take naturally-sized accesses when they fit in a page. */
    if (!p && size <= 4 && (addr & 0xfff) + size <= PAGE_SIZE) {
        uint32_t v;
        if (bus_mmio_read(pm->bus, addr, size, &v))
            return v;
    }
    uint64_t v = 0;
    for (int k = 0; k < size; k++)
        v |= (uint64_t)read_byte_slow(pm, addr + k) << (8 * k);
    return v;
}

static void write_byte_slow(struct physmem *pm, uint32_t addr, uint8_t v)
{
    uint8_t *p = pm->wr[addr >> 12];
    if (p) {
        p[addr & 0xfff] = v;
        return;
    }
    bus_mmio_write(pm->bus, addr, v, 1);   /* ROM and holes drop writes */
}

void physmem_write(struct physmem *pm, uint32_t addr, uint64_t val, int size)
{
    uint8_t *p = pm->wr[addr >> 12];
    if (p && (addr & 0xfff) + size <= PAGE_SIZE) {
        memcpy(p + (addr & 0xfff), &val, size);
        return;
    }
    if (!p && !pm->rd[addr >> 12] && size <= 4 && (addr & 0xfff) + size <= PAGE_SIZE &&
        bus_mmio_write(pm->bus, addr, (uint32_t)val, size))
        return;
    for (int k = 0; k < size; k++)
        write_byte_slow(pm, addr + k, val >> (8 * k));
}

/* Tell the translation cache about writes to pages it has translated. */
static void note_write(struct physmem *pm, uint64_t addr, size_t len, bool by_cpu)
{
    if (!pm->code_write || !len)
        return;
    for (uint64_t page = addr & ~0xfffull; page < addr + len && page < 0x100000000ull; page += PAGE_SIZE) {
        if (!physmem_is_code(pm, page))
            continue;
        uint64_t from = addr > page ? addr : page;
        uint64_t to = addr + len < page + PAGE_SIZE ? addr + len : page + PAGE_SIZE;
        pm->code_write(pm->code_write_opaque, (uint32_t)from, (uint32_t)(to - from), by_cpu);
    }
}

void physmem_note_write(struct physmem *pm, uint64_t addr, size_t len)
{
    note_write(pm, addr, len, true);
}

bool physmem_copy_to(struct physmem *pm, uint64_t addr, const void *src, size_t len)
{
    if (addr > pm->ram_size || len > pm->ram_size - addr)
        return false;
    note_write(pm, addr, len, false);
    memcpy(pm->ram + addr, src, len);
    return true;
}

bool physmem_copy_from(struct physmem *pm, uint64_t addr, void *dst, size_t len)
{
    if (addr > pm->ram_size || len > pm->ram_size - addr)
        return false;
    memcpy(dst, pm->ram + addr, len);
    return true;
}
