/*
 * Multiboot v1 loader (the GNU Multiboot Specification 0.6.96), for ELF32
 * images and a.out-kludge images (header flag 16: load addresses in the
 * header).  The kernel is entered as the specification describes:
 * EAX = 0x2BADB002, EBX = physical address of the information structure,
 * flat 4 GiB code and data segments, CR0.PE set, paging off, IF clear.
 */
#include "monitor/loader.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "hosted-driver/readfile.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MB_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_SEARCH 8192
#define MB_FLAG_PAGE_ALIGN 0x00000001u
#define MB_FLAG_MEMINFO    0x00000002u
#define MB_FLAG_VIDEO      0x00000004u
#define MB_FLAG_AOUT       0x00010000u
#define MB_AOUT_HEADER_LEN 32     /* magic .. entry_addr */

/* Information-structure flags we provide. */
#define MBI_MEM     0x001u
#define MBI_CMDLINE 0x004u
#define MBI_MODS    0x008u
#define MBI_MMAP    0x040u
#define MBI_LOADER  0x200u

/* The information structure, its strings and tables go in free memory after
 * the kernel and its modules (as QEMU's loader places them), never at a
 * fixed address that a kernel may be linked over: kvm-unit-tests'
 * realmode.flat lies below 0x9F000. */
#define MBI_INFO_SIZE 128
#define MB_MAX_MODULES 64

int memory_map(uint32_t ram_size, struct mem_region *out, int max)
{
    struct mem_region map[] = {
        { 0, 0x9fc00, E820_RAM },
        { 0x9fc00, 0x400, E820_RESERVED },       /* EBDA */
        { 0xf0000, 0x10000, E820_RESERVED },     /* BIOS */
        { 0x100000, ram_size - 0x100000, E820_RAM },
        { 0xfffc0000u, 0x40000, E820_RESERVED }, /* BIOS ROM at the top of 4 GiB */
    };
    int n = sizeof(map) / sizeof(map[0]);
    if (n > max)
        n = max;
    memcpy(out, map, n * sizeof(map[0]));
    return n;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return p[0] | p[1] << 8; }

static long find_header(const uint8_t *img, size_t len)
{
    size_t end = len < MB_SEARCH ? len : MB_SEARCH;
    for (size_t off = 0; off + 12 <= end; off += 4) {
        uint32_t magic = le32(img + off), flags = le32(img + off + 4), sum = le32(img + off + 8);
        if (magic == MB_MAGIC && magic + flags + sum == 0)
            return off;
    }
    return -1;
}

bool multiboot_detect(const uint8_t *img, size_t len)
{
    return find_header(img, len) >= 0;
}

/* A bump allocator over the information area. */
struct mbi_area {
    struct physmem *pm;
    uint32_t next;
    uint32_t limit;
};

static bool area_put(struct mbi_area *a, const void *data, uint32_t len, uint32_t *addr)
{
    uint32_t at = (a->next + 3) & ~3u;
    if (at > a->limit || len > a->limit - at)
        return false;
    if (!physmem_copy_to(a->pm, at, data, len))
        return false;
    *addr = at;
    a->next = at + len;
    return true;
}

static bool load_elf(struct physmem *pm, const uint8_t *img, size_t len, uint32_t *entry, uint32_t *end,
                     char *err, size_t errlen)
{
    if (len < 52 || memcmp(img, "\x7f" "ELF", 4) || img[4] != 1 || img[5] != 1 || le16(img + 18) != 3) {
        snprintf(err, errlen, "not a little-endian ELF32 i386 image and no a.out-kludge addresses in its header");
        return false;
    }
    uint32_t phoff = le32(img + 28);
    uint16_t phentsize = le16(img + 42), phnum = le16(img + 44);
    *entry = le32(img + 24);
    *end = 0;
    if (phoff > len || (uint64_t)phnum * phentsize > len - phoff || phentsize < 32) {
        snprintf(err, errlen, "ELF program headers lie outside the file");
        return false;
    }
    for (int k = 0; k < phnum; k++) {
        const uint8_t *ph = img + phoff + k * phentsize;
        if (le32(ph) != 1)      /* PT_LOAD */
            continue;
        uint32_t off = le32(ph + 4), paddr = le32(ph + 12), filesz = le32(ph + 16), memsz = le32(ph + 20);
        if (off > len || filesz > len - off || filesz > memsz) {
            snprintf(err, errlen, "ELF segment %d lies outside the file", k);
            return false;
        }
        if ((uint64_t)paddr + memsz > pm->ram_size) {
            snprintf(err, errlen, "ELF segment %d (0x%x, %u bytes) does not fit in guest RAM", k, paddr, memsz);
            return false;
        }
        if (!physmem_copy_to(pm, paddr, img + off, filesz)) {
            snprintf(err, errlen, "ELF segment %d (0x%x, %u bytes) does not fit in guest RAM", k, paddr, memsz);
            return false;
        }
        uint8_t *zeros = xcalloc(1, memsz - filesz + 1);
        bool ok = physmem_copy_to(pm, (uint64_t)paddr + filesz, zeros, memsz - filesz);
        free(zeros);
        if (!ok) {
            snprintf(err, errlen, "ELF segment %d (0x%x, %u bytes) does not fit in guest RAM", k, paddr, memsz);
            return false;
        }
        if (paddr + memsz > *end)
            *end = paddr + memsz;
    }
    if (*entry >= pm->ram_size) {
        snprintf(err, errlen, "ELF entry point 0x%x is outside guest RAM", *entry);
        return false;
    }
    return true;
}

static bool load_aout(struct physmem *pm, const uint8_t *img, size_t len, long hdr, uint32_t *entry,
                      uint32_t *end, char *err, size_t errlen)
{
    if ((size_t)hdr + MB_AOUT_HEADER_LEN > len) {
        snprintf(err, errlen, "the file ends inside its Multiboot header's a.out-kludge addresses");
        return false;
    }
    const uint8_t *h = img + hdr;
    uint32_t header_addr = le32(h + 12), load_addr = le32(h + 16), load_end = le32(h + 20);
    uint32_t bss_end = le32(h + 24);
    *entry = le32(h + 28);
    if (header_addr < load_addr || header_addr - load_addr > (uint32_t)hdr) {
        snprintf(err, errlen, "Multiboot header addresses are inconsistent (header_addr below load_addr)");
        return false;
    }
    uint32_t file_off = hdr - (header_addr - load_addr);
    uint32_t size = load_end ? load_end - load_addr : (uint32_t)(len - file_off);
    if (load_end && load_end < load_addr) {
        snprintf(err, errlen, "Multiboot load_end_addr is below load_addr");
        return false;
    }
    if (file_off > len || size > len - file_off) {
        snprintf(err, errlen, "Multiboot load range is larger than the file");
        return false;
    }
    if (!physmem_copy_to(pm, load_addr, img + file_off, size)) {
        snprintf(err, errlen, "kernel (0x%x, %u bytes) does not fit in guest RAM", load_addr, size);
        return false;
    }
    *end = load_addr + size;
    if (bss_end > pm->ram_size) {
        snprintf(err, errlen, "kernel bss up to 0x%x does not fit in guest RAM", bss_end);
        return false;
    }
    if (*entry < load_addr || *entry >= (bss_end > *end ? bss_end : *end)) {
        snprintf(err, errlen, "Multiboot entry_addr 0x%x is outside the loaded kernel (0x%x-0x%x)", *entry,
                 load_addr, bss_end > *end ? bss_end : *end);
        return false;
    }
    if (bss_end > *end) {
        uint8_t *zeros = xcalloc(1, bss_end - *end);
        bool ok = physmem_copy_to(pm, *end, zeros, bss_end - *end);
        free(zeros);
        if (!ok) {
            snprintf(err, errlen, "kernel bss up to 0x%x does not fit in guest RAM", bss_end);
            return false;
        }
        *end = bss_end;
    }
    return true;
}

struct mb_module {
    uint32_t start, end;
    char *line;                  /* "path args", as given */
};

/* Load each "path args" module after `*next`, page aligned; *next ends up
 * past the last one. */
static bool load_modules(struct machine *m, const char *spec, uint32_t *next, struct mb_module *mods,
                         int *count, char *err, size_t errlen)
{
    int n = 0;
    char *copy = strdup(spec);
    for (char *save, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char path[4096];
        snprintf(path, sizeof(path), "%s", item);
        char *space = strchr(path, ' ');
        if (space)
            *space = 0;
        if (n == MB_MAX_MODULES) {
            snprintf(err, errlen, "-initrd: more than %d modules", MB_MAX_MODULES);
            free(copy);
            return false;
        }
        size_t len;
        char why[256];
        uint8_t *data = read_regular_file(path, m->pm->ram_size, "a module must fit in guest RAM", &len, why,
                                          sizeof(why));
        if (!data) {
            snprintf(err, errlen, "-initrd %s", why);
            free(copy);
            return false;
        }
        uint32_t start = (*next + 0xfff) & ~0xfffu;
        bool ok = start >= *next && physmem_copy_to(m->pm, start, data, len);
        free(data);
        if (!ok) {
            snprintf(err, errlen, "-initrd %s: module (%zu bytes at 0x%x) does not fit in guest RAM", path, len, start);
            free(copy);
            return false;
        }
        mods[n] = (struct mb_module){ start, start + (uint32_t)len, strdup(item) };
        n++;
        *next = start + len;
    }
    free(copy);
    *count = n;
    return true;
}

/* The module list and its command lines, in the information area. */
static bool put_module_list(struct mbi_area *a, const struct mb_module *mods, int n, uint32_t *list_addr)
{
    uint32_t list[MB_MAX_MODULES][4];
    for (int k = 0; k < n; k++) {
        uint32_t str;
        if (!area_put(a, mods[k].line, strlen(mods[k].line) + 1, &str))
            return false;
        list[k][0] = mods[k].start;
        list[k][1] = mods[k].end;
        list[k][2] = str;
        list[k][3] = 0;
    }
    return area_put(a, list, n * 16, list_addr);
}

static void enter_flat_protected_mode(struct cpu *c, uint32_t eip)
{
    const uint16_t flat = SEG_ATTR_P | SEG_ATTR_S | SEG_ATTR_DB | SEG_ATTR_G;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = (struct seg){ 0x10, flat | 0x3, 0, 0xffffffffu };
    c->seg[SEG_CS] = (struct seg){ 0x08, flat | 0xb, 0, 0xffffffffu };
    c->cr0 |= CR0_PE;
    c->cr0 &= ~CR0_PG;
    c->cpl = 0;
    c->eflags = 0x2;
    c->eip = eip;
    tlb_flush_all(c);
}

bool multiboot_load(struct machine *m, const char *kernel_path, const uint8_t *img, size_t len,
                    const char *modules, const char *cmdline, char *err, size_t errlen)
{
    long hdr = find_header(img, len);
    if (hdr < 0) {
        snprintf(err, errlen, "-kernel %s: no Multiboot header in the first 8 KiB", kernel_path);
        return false;
    }
    uint32_t flags = le32(img + hdr + 4);
    uint32_t entry, end;
    char why[256];
    bool ok = (flags & MB_FLAG_AOUT) ? load_aout(m->pm, img, len, hdr, &entry, &end, why, sizeof(why))
                                     : load_elf(m->pm, img, len, &entry, &end, why, sizeof(why));
    if (!ok) {
        snprintf(err, errlen, "-kernel %s: %s", kernel_path, why);
        return false;
    }

    struct mb_module mods[MB_MAX_MODULES];
    int nmods = 0;
    if (modules && *modules && !load_modules(m, modules, &end, mods, &nmods, err, errlen))
        return false;

    uint32_t ram = m->cfg.ram_mb << 20;
    uint32_t mbi_base = (end + 0xfff) & ~0xfffu;
    struct mbi_area a = { m->pm, mbi_base + MBI_INFO_SIZE, ram };
    uint32_t info[MBI_INFO_SIZE / 4] = { 0 };
    uint32_t mi_flags = MBI_MEM | MBI_MMAP | MBI_LOADER;
    info[1] = 639;                              /* mem_lower, KiB */
    info[2] = (ram - 0x100000) / 1024;          /* mem_upper, KiB above 1 MiB */

    char line[4096];
    snprintf(line, sizeof(line), "%s%s%s", kernel_path, cmdline && *cmdline ? " " : "", cmdline ? cmdline : "");
    bool room = mbi_base >= end && area_put(&a, line, strlen(line) + 1, &info[4]);
    mi_flags |= MBI_CMDLINE;
    if (room && nmods) {
        room = put_module_list(&a, mods, nmods, &info[6]);
        info[5] = nmods;
        mi_flags |= MBI_MODS;
    }
    for (int k = 0; k < nmods; k++)
        free(mods[k].line);

    struct mem_region map[8];
    int n = memory_map(ram, map, 8);
    uint8_t mmap[8 * 24];
    for (int k = 0; k < n; k++) {
        uint8_t *e = mmap + k * 24;
        uint32_t size = 20;
        memcpy(e, &size, 4);
        memcpy(e + 4, &map[k].base, 8);
        memcpy(e + 12, &map[k].length, 8);
        memcpy(e + 20, &map[k].type, 4);
    }
    info[11] = n * 24;
    static const char loader_name[] = "retrovisor";
    room = room && area_put(&a, mmap, n * 24, &info[12]) && area_put(&a, loader_name, sizeof(loader_name), &info[16]);
    info[0] = mi_flags;
    if (!room || !physmem_copy_to(m->pm, mbi_base, info, sizeof(info))) {
        snprintf(err, errlen, "-kernel %s: no room in guest RAM after the kernel and modules for the Multiboot information (-m is %u MiB)",
                 kernel_path, m->cfg.ram_mb);
        return false;
    }

    struct cpu *c = &m->cpu;
    enter_flat_protected_mode(c, entry);
    c->r[R_EAX] = MB_BOOT_MAGIC;
    c->r[R_EBX] = mbi_base;
    return true;
}
