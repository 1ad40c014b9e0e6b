/*
 * Kernel boot (-kernel/-initrd/-append): Multiboot v1 images are loaded
 * directly, without running the BIOS (loader_multiboot.c); Linux bzImages go
 * through the BIOS and an option ROM that fw_cfg hands them to (loader_linux.c).
 */
#ifndef RV_LOADER_H
#define RV_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct machine;

/* One region of the physical memory map as given to guests (e820 types). */
struct mem_region {
    uint64_t base, length;
    uint32_t type;              /* 1 = RAM, 2 = reserved */
};
#define E820_RAM 1
#define E820_RESERVED 2

/* The machine's memory map for a RAM size, as e820 / Multiboot report it. */
int memory_map(uint32_t ram_size, struct mem_region *out, int max);

/* Does this image carry a Multiboot v1 header in its first 8 KiB? */
bool multiboot_detect(const uint8_t *img, size_t len);

/*
 * Load a Multiboot kernel with its modules ("file args,file2 args2", may be
 * NULL) and command line, and set the CPU to the kernel's entry state.
 * On failure writes one line into err and returns false.
 */
bool multiboot_load(struct machine *m, const char *kernel_path, const uint8_t *img, size_t len,
                    const char *modules, const char *cmdline, char *err, size_t errlen);

/* Is this a Linux bzImage (boot protocol header "HdrS")? */
bool linux_detect(const uint8_t *img, size_t len);
/* Offer a bzImage, its command line and initrd through fw_cfg with the
 * option ROM that boots them (genroms/linuxboot.bin, first in bootorder). */
bool linux_load(struct machine *m, const char *kernel_path, const uint8_t *img, size_t len, const char *initrd,
                const char *cmdline, char *err, size_t errlen);

#endif
