/*
 * -kernel with a Linux bzImage, the way QEMU does it: the BIOS runs first,
 * then an option ROM of ours (monitor/linuxboot.asm, fw_cfg file
 * genroms/linuxboot.bin, first in "bootorder") copies the pieces this file
 * puts in fw_cfg to their places and enters the kernel's real-mode setup
 * (Documentation/arch/x86/boot.rst, protocol 2.02 or later):
 *   setup (real-mode part, header filled in here)  at 0x10000
 *   command line                                   at 0x20000
 *   protected-mode kernel                          at 1 MiB
 *   initrd                                         high in RAM
 * So SeaBIOS and SeaVGABIOS set the machine up (the VGA font, e820, ACPI)
 * before the kernel runs.
 */
#include "monitor/loader.h"
#include "monitor/machine.h"
#include "devices/fwcfg.h"
#include "hosted-driver/xalloc.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "hosted-driver/readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the option ROM puts the pieces (QEMU's choice for protocol >= 2.02). */
#define SETUP_ADDR       0x10000u
#define CMDLINE_ADDR     0x20000u
#define CMDLINE_MAX      0x10000u
#define KERNEL_ADDR      0x100000u
/* SeaBIOS keeps its high tables (the ACPI tables among them) at the top of
 * RAM; the initrd and the kernel stay below this much of it. */
#define FIRMWARE_HIGH_RESERVE 0x100000u

/* Setup header offsets (struct boot_params). */
#define BP_SETUP_SECTS    0x1f1
#define BP_HEADER_MAGIC   0x202
#define BP_VERSION        0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS      0x211
#define BP_RAMDISK_IMAGE  0x218
#define BP_RAMDISK_SIZE   0x21c
#define BP_HEAP_END_PTR   0x224
#define BP_CMD_LINE_PTR   0x228
#define BP_INITRD_MAX     0x22c
#define BP_CMDLINE_SIZE   0x238

#define CAN_USE_HEAP 0x80

/* monitor/linuxboot.asm, assembled by nasm and turned into C by the GNUmakefile. */
extern const unsigned char linuxboot_rom[];
extern const unsigned int linuxboot_rom_len;

#define LOADED_HIGH 0x01

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return p[0] | p[1] << 8; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }

bool linux_detect(const uint8_t *img, size_t len)
{
    return len > 0x260 && !memcmp(img + BP_HEADER_MAGIC, "HdrS", 4) && rd16(img + 0x1fe) == 0xaa55;
}

/* The setup header runs from 0x1f1 to 0x202 + the byte at 0x201. */
static void fill_setup_header(uint8_t *setup, uint32_t initrd_addr, uint32_t initrd_len)
{
    setup[BP_TYPE_OF_LOADER] = 0xff;
    setup[BP_LOADFLAGS] |= CAN_USE_HEAP;
    wr16(setup + BP_HEAP_END_PTR, CMDLINE_ADDR - SETUP_ADDR - 0x200);
    wr32(setup + BP_CMD_LINE_PTR, CMDLINE_ADDR);
    wr32(setup + BP_RAMDISK_IMAGE, initrd_addr);
    wr32(setup + BP_RAMDISK_SIZE, initrd_len);
}

/* The initrd goes as high as the kernel allows, below what SeaBIOS keeps at
 * the top of RAM (its tables, the ACPI tables). */
static bool place_initrd(struct machine *m, const uint8_t *img, const char *path, uint16_t version,
                         uint32_t *addr_out, uint32_t *len_out, char *err, size_t errlen)
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
    uint32_t max = version >= 0x203 ? rd32(img + BP_INITRD_MAX) : 0x37ffffffu;
    uint32_t top = ram - FIRMWARE_HIGH_RESERVE - 1 < max ? ram - FIRMWARE_HIGH_RESERVE : max + 1;
    if (len > top || (top - len) & 0x80000000u || top - len < KERNEL_ADDR + 0x400000) {
        snprintf(err, errlen, "-initrd %s: %zu bytes do not fit in guest RAM above the kernel (try a larger -m)",
                 path, len);
        free(data);
        return false;
    }
    *addr_out = (top - len) & ~0xfffu;
    *len_out = len;
    fwcfg_add_i32(m->fwcfg, FW_CFG_INITRD_ADDR, *addr_out);
    fwcfg_add_i32(m->fwcfg, FW_CFG_INITRD_SIZE, len);
    fwcfg_add_bytes(m->fwcfg, FW_CFG_INITRD_DATA, data, len);
    free(data);
    return true;
}

/* genroms/linuxboot.bin with its checksum byte set, run first ("bootorder"). */
static void add_boot_rom(struct machine *m)
{
    uint8_t *rom = xmalloc(linuxboot_rom_len);
    memcpy(rom, linuxboot_rom, linuxboot_rom_len);
    uint8_t sum = 0;
    for (unsigned k = 0; k + 1 < linuxboot_rom_len; k++)
        sum += rom[k];
    rom[linuxboot_rom_len - 1] = -sum;
    fwcfg_add_file(m->fwcfg, "genroms/linuxboot.bin", rom, linuxboot_rom_len);
    free(rom);
    static const char order[] = "/rom@genroms/linuxboot.bin\n";
    fwcfg_add_file(m->fwcfg, "bootorder", order, sizeof(order) - 1);
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
    if (setup_len >= len || setup_len > CMDLINE_ADDR - SETUP_ADDR - 0x1000) {
        snprintf(err, errlen, "-kernel %s: truncated image or oversized setup (setup of %zu bytes, file of %zu)",
                 kernel_path, setup_len, len);
        return false;
    }
    uint32_t ram = m->cfg.ram_mb << 20;
    if (len - setup_len > ram - KERNEL_ADDR - FIRMWARE_HIGH_RESERVE) {
        snprintf(err, errlen, "-kernel %s: kernel of %zu bytes does not fit in guest RAM", kernel_path,
                 len - setup_len);
        return false;
    }
    const char *line = cmdline ? cmdline : "";
    uint32_t max_cmd = version >= 0x206 ? rd32(img + BP_CMDLINE_SIZE) : 255;
    if (strlen(line) > max_cmd || strlen(line) >= CMDLINE_MAX) {
        snprintf(err, errlen, "-append: command line of %zu bytes exceeds the kernel's limit of %u", strlen(line),
                 max_cmd);
        return false;
    }
    uint32_t initrd_addr = 0, initrd_len = 0;
    if (initrd && *initrd && !place_initrd(m, img, initrd, version, &initrd_addr, &initrd_len, err, errlen))
        return false;

    uint8_t *setup = xmalloc(setup_len);
    memcpy(setup, img, setup_len);
    fill_setup_header(setup, initrd_addr, initrd_len);
    fwcfg_add_i32(m->fwcfg, FW_CFG_SETUP_ADDR, SETUP_ADDR);
    fwcfg_add_i32(m->fwcfg, FW_CFG_SETUP_SIZE, setup_len);
    fwcfg_add_bytes(m->fwcfg, FW_CFG_SETUP_DATA, setup, setup_len);
    free(setup);
    fwcfg_add_i32(m->fwcfg, FW_CFG_KERNEL_ADDR, KERNEL_ADDR);
    fwcfg_add_i32(m->fwcfg, FW_CFG_KERNEL_SIZE, len - setup_len);
    fwcfg_add_bytes(m->fwcfg, FW_CFG_KERNEL_DATA, img + setup_len, len - setup_len);
    fwcfg_add_i32(m->fwcfg, FW_CFG_CMDLINE_ADDR, CMDLINE_ADDR);
    fwcfg_add_i32(m->fwcfg, FW_CFG_CMDLINE_SIZE, strlen(line) + 1);
    fwcfg_add_bytes(m->fwcfg, FW_CFG_CMDLINE_DATA, line, strlen(line) + 1);
    add_boot_rom(m);
    return true;
}
