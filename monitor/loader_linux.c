/*
 * Linux/x86 boot protocol loader for -kernel bzImage (Documentation/arch/x86/
 * boot.rst): the protected-mode kernel is loaded at 1 MiB and entered through
 * the 32-bit boot protocol with a filled "zero page" (struct boot_params):
 * the setup header copied from the image, the e820 map, command line and
 * initrd.  No BIOS code runs on this path, so the machine's devices are as
 * after reset; the kernel programs them itself.
 */
#include "monitor/loader.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "hosted-driver/readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Physical layout of what the loader places below 1 MiB. */
#define GDT_ADDR         0x8000u
#define BOOT_PARAMS_ADDR 0x10000u
#define CMDLINE_ADDR     0x20000u
#define CMDLINE_MAX      0x10000u
#define KERNEL_ADDR      0x100000u

/* struct boot_params offsets. */
#define BP_EXT_MEM_K      0x002
#define BP_VIDEO_MODE     0x006
#define BP_VIDEO_COLS     0x007
#define BP_VIDEO_LINES    0x00e
#define BP_VIDEO_ISVGA    0x00f
#define BP_VIDEO_POINTS   0x010
#define BP_ALT_MEM_K      0x1e0
#define BP_E820_ENTRIES   0x1e8
#define BP_SETUP_SECTS    0x1f1
#define BP_HEADER_MAGIC   0x202
#define BP_VERSION        0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS      0x211
#define BP_RAMDISK_IMAGE  0x218
#define BP_RAMDISK_SIZE   0x21c
#define BP_CMD_LINE_PTR   0x228
#define BP_INITRD_MAX     0x22c
#define BP_CMDLINE_SIZE   0x238
#define BP_E820_TABLE     0x2d0
#define E820_MAX_ENTRIES  128

#define LOADED_HIGH 0x01

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return p[0] | p[1] << 8; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }

bool linux_detect(const uint8_t *img, size_t len)
{
    return len > 0x260 && !memcmp(img + BP_HEADER_MAGIC, "HdrS", 4) && rd16(img + 0x1fe) == 0xaa55;
}

/* A GDT with the selectors the boot protocol promises: 0x10 code, 0x18 data. */
static void install_boot_gdt(struct machine *m)
{
    static const uint32_t gdt[8] = {
        0, 0, 0, 0,
        0x0000ffff, 0x00cf9b00,     /* 0x10: flat 32-bit code */
        0x0000ffff, 0x00cf9300,     /* 0x18: flat 32-bit data */
    };
    physmem_copy_to(m->pm, GDT_ADDR, gdt, sizeof(gdt));
    struct cpu *c = &m->cpu;
    c->gdtr.base = GDT_ADDR;
    c->gdtr.limit = sizeof(gdt) - 1;
    const uint16_t flat = SEG_ATTR_P | SEG_ATTR_S | SEG_ATTR_DB | SEG_ATTR_G;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = (struct seg){ 0x18, flat | 0x3, 0, 0xffffffffu };
    c->seg[SEG_CS] = (struct seg){ 0x10, flat | 0xb, 0, 0xffffffffu };
    c->cr0 |= CR0_PE;
    c->cr0 &= ~CR0_PG;
    c->cpl = 0;
    c->eflags = 0x2;
    tlb_flush_all(c);
}

static void fill_e820(uint8_t *bp, uint32_t ram)
{
    struct mem_region map[E820_MAX_ENTRIES];
    int n = memory_map(ram, map, E820_MAX_ENTRIES);
    for (int k = 0; k < n; k++) {
        uint8_t *e = bp + BP_E820_TABLE + 20 * k;
        memcpy(e, &map[k].base, 8);
        memcpy(e + 8, &map[k].length, 8);
        wr32(e + 16, map[k].type);
    }
    bp[BP_E820_ENTRIES] = n;
}

/* Text-mode screen the kernel's VGA console may take over. */
static void fill_screen_info(uint8_t *bp)
{
    bp[BP_VIDEO_MODE] = 3;
    bp[BP_VIDEO_COLS] = 80;
    bp[BP_VIDEO_LINES] = 25;
    bp[BP_VIDEO_ISVGA] = 1;
    wr16(bp + BP_VIDEO_POINTS, 16);
}

static bool place_initrd(struct machine *m, uint8_t *bp, const char *path, uint16_t version, char *err,
                         size_t errlen)
{
    size_t len;
    uint32_t ram = m->cfg.ram_mb << 20;
    char why[256];
    /* Checked against RAM before a byte is read: a 4 GiB file is refused at once. */
    uint8_t *data = read_regular_file(path, ram - KERNEL_ADDR, "an initrd must fit in guest RAM above 1 MiB", &len,
                                      why, sizeof(why));
    if (!data) {
        snprintf(err, errlen, "-initrd %s", why);
        return false;
    }
    uint32_t max = version >= 0x203 ? rd32(bp + BP_INITRD_MAX) : 0x37ffffffu;
    uint32_t top = ram - 1 < max ? ram : max + 1;
    if (len > top || (top - len) & 0x80000000u || top - len < KERNEL_ADDR + 0x400000) {
        snprintf(err, errlen, "-initrd %s: %zu bytes do not fit in guest RAM above the kernel (try a larger -m)",
                 path, len);
        free(data);
        return false;
    }
    uint32_t addr = (top - len) & ~0xfffu;
    bool ok = physmem_copy_to(m->pm, addr, data, len);
    free(data);
    if (!ok) {
        snprintf(err, errlen, "-initrd %s: does not fit in guest RAM", path);
        return false;
    }
    wr32(bp + BP_RAMDISK_IMAGE, addr);
    wr32(bp + BP_RAMDISK_SIZE, len);
    return true;
}

bool linux_load(struct machine *m, const char *kernel_path, const uint8_t *img, size_t len, const char *initrd,
                const char *cmdline, char *err, size_t errlen)
{
    uint16_t version = rd16(img + BP_VERSION);
    if (version < 0x0202) {
        snprintf(err, errlen, "-kernel %s: boot protocol %x.%02x is too old (2.02 or later needed)", kernel_path,
                 version >> 8, version & 0xff);
        return false;
    }
    if (!(img[BP_LOADFLAGS] & LOADED_HIGH)) {
        snprintf(err, errlen, "-kernel %s: a zImage (loaded low) is not supported; use a bzImage", kernel_path);
        return false;
    }
    int setup_sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
    size_t setup_len = (size_t)(setup_sects + 1) * 512;
    if (setup_len >= len) {
        snprintf(err, errlen, "-kernel %s: truncated image (setup of %zu bytes, file of %zu)", kernel_path,
                 setup_len, len);
        return false;
    }
    if (!physmem_copy_to(m->pm, KERNEL_ADDR, img + setup_len, len - setup_len)) {
        snprintf(err, errlen, "-kernel %s: kernel of %zu bytes does not fit in guest RAM", kernel_path,
                 len - setup_len);
        return false;
    }

    uint8_t bp[4096] = { 0 };
    /* The setup header runs from 0x1f1 to 0x202 + the byte at 0x201. */
    size_t hdr_end = 0x202 + img[0x201];
    if (hdr_end > setup_len)
        hdr_end = setup_len;
    memcpy(bp + BP_SETUP_SECTS, img + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);
    bp[BP_TYPE_OF_LOADER] = 0xff;
    bp[BP_LOADFLAGS] &= ~0x40;   /* KEEP_SEGMENTS off: the kernel reloads them */

    uint32_t ram = m->cfg.ram_mb << 20;
    uint32_t ext_k = (ram - 0x100000) / 1024;
    wr16(bp + BP_EXT_MEM_K, ext_k > 0xffff ? 0xffff : ext_k);
    wr32(bp + BP_ALT_MEM_K, ext_k);
    fill_e820(bp, ram);
    fill_screen_info(bp);

    const char *line = cmdline ? cmdline : "";
    uint32_t max_cmd = version >= 0x206 ? rd32(bp + BP_CMDLINE_SIZE) : 255;
    if (strlen(line) > max_cmd || strlen(line) >= CMDLINE_MAX) {
        snprintf(err, errlen, "-append: command line of %zu bytes exceeds the kernel's limit of %u", strlen(line),
                 max_cmd);
        return false;
    }
    physmem_copy_to(m->pm, CMDLINE_ADDR, line, strlen(line) + 1);
    wr32(bp + BP_CMD_LINE_PTR, CMDLINE_ADDR);

    if (initrd && *initrd && !place_initrd(m, bp, initrd, version, err, errlen))
        return false;
    physmem_copy_to(m->pm, BOOT_PARAMS_ADDR, bp, sizeof(bp));

    install_boot_gdt(m);
    struct cpu *c = &m->cpu;
    c->eip = KERNEL_ADDR;
    c->r[R_ESI] = BOOT_PARAMS_ADDR;
    c->r[R_EBP] = c->r[R_EDI] = c->r[R_EBX] = 0;
    return true;
}
