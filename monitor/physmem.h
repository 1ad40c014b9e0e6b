/*
 * Guest-physical address space: RAM, the BIOS ROM and its low alias,
 * the PAM-controlled 0xC0000-0xFFFFF window, and MMIO through the bus.
 * A per-page table gives a host pointer for reads and for writes, or NULL
 * when the access must take the slow path (MMIO, ROM writes, nothing there).
 */
#ifndef RV_PHYSMEM_H
#define RV_PHYSMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;

#define PAGE_SIZE 4096u
#define PAGE_MASK 0xfffff000u
#define PHYS_PAGES (1u << 20)     /* 4 GiB of 4 KiB pages */

struct physmem {
    uint8_t *ram;
    uint32_t ram_size;
    uint8_t *bios;                /* BIOS image, mapped at 4 GiB - bios_size */
    uint32_t bios_size;
    uint8_t *vga_rom;             /* option ROM at 0xC0000 (copied into the shadow area) */
    uint32_t vga_rom_size;
    uint8_t **rd;                 /* [PHYS_PAGES] host page for reads, or NULL */
    uint8_t **wr;                 /* [PHYS_PAGES] host page for writes, or NULL */
    uint8_t *rom_shadow;          /* 0xC0000-0xFFFFF as seen when PAM says "ROM" */
    struct bus *bus;
    uint64_t generation;          /* bumped whenever a mapping changes (TLBs must flush) */
    uint64_t rom_generation;      /* bumped when ROM bytes change in place (all translations go) */
    /* Pages holding translated code: one bit per page.  Writes to them must
     * reach code_write(code_write_opaque, addr, len, by_cpu) before they land,
     * one call per page with the bytes written there; by_cpu is false for
     * bulk copies (DMA, loaders). */
    uint8_t *code_bits;
    void (*code_write)(void *opaque, uint32_t addr, uint32_t len, bool by_cpu);
    void *code_write_opaque;
};

static inline bool physmem_is_code(const struct physmem *pm, uint32_t addr)
{
    uint32_t page = addr >> 12;
    return pm->code_bits[page >> 3] & (1u << (page & 7));
}
static inline void physmem_set_code(struct physmem *pm, uint32_t addr, bool on)
{
    uint32_t page = addr >> 12;
    if (on)
        pm->code_bits[page >> 3] |= 1u << (page & 7);
    else
        pm->code_bits[page >> 3] &= ~(1u << (page & 7));
}

struct physmem *physmem_new(uint32_t ram_size, struct bus *bus);
void physmem_free(struct physmem *pm);
/* Install the BIOS image (64, 128 or 256 KiB) at the top of 4 GiB, its last
 * 128 KiB (or all of it when smaller) aliased below 1 MiB. */
void physmem_set_bios(struct physmem *pm, const uint8_t *img, uint32_t size);
/* Place an option ROM image in the ROM side of 0xC0000. */
void physmem_set_option_rom(struct physmem *pm, uint32_t addr, const uint8_t *img, uint32_t size);
/* PAM: route reads/writes of [base, base+len) inside 0xC0000-0xFFFFF to RAM or ROM. */
void physmem_set_pam(struct physmem *pm, uint32_t base, uint32_t len, bool read_ram, bool write_ram);
/* Mark [base, base+len) as MMIO-only (e.g. the VGA window). */
void physmem_set_mmio(struct physmem *pm, uint32_t base, uint32_t len);
/* Map [base, base+len) straight onto host memory (readable and writable), e.g.
 * a PCI framebuffer BAR onto the video memory; host must hold len bytes and
 * stay valid until the range is unmapped with physmem_set_mmio.  base and len
 * are page-aligned; a range that would reach past 4 GiB is cut there. */
void physmem_map_host(struct physmem *pm, uint32_t base, uint32_t len, uint8_t *host);

/* Slow-path accesses (any address, any size up to 8, may cross pages). */
uint64_t physmem_read(struct physmem *pm, uint32_t addr, int size);
void physmem_write(struct physmem *pm, uint32_t addr, uint64_t val, int size);
/* A CPU write of len bytes at addr is about to land: invalidate translations there. */
void physmem_note_write(struct physmem *pm, uint64_t addr, size_t len);
/* Bounds-checked bulk copies for DMA and loaders: false if any byte is outside RAM. */
bool physmem_copy_to(struct physmem *pm, uint64_t addr, const void *src, size_t len);
bool physmem_copy_from(struct physmem *pm, uint64_t addr, void *dst, size_t len);

#endif
