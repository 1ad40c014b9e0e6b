/*
 * QEMU's firmware configuration interface (fw_cfg), I/O-port flavour:
 * selector at 0x510 (16-bit write), data at 0x511 (byte reads, auto
 * increment), and the DMA interface at 0x514/0x518 (a big-endian pointer to
 * an FWCfgDmaAccess descriptor) when the machine supplies a guest-memory
 * accessor.  SeaBIOS's QEMU build reads RAM size, CPU count and the e820
 * map from here.
 *
 * Items are copied when added.  Named files get selectors from 0x20 on in
 * name order, as in QEMU; the directory (selector 0x19) is rebuilt whenever
 * a file is added.
 */
#ifndef RV_FWCFG_H
#define RV_FWCFG_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct fwcfg;

#ifndef RV_GUEST_PHYS_RW_FN
#define RV_GUEST_PHYS_RW_FN
/* Bounds-checked guest-physical access for DMA; false when the range is not RAM. */
typedef bool (*guest_phys_rw_fn)(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write);
#endif

#define FW_CFG_SIGNATURE   0x00
#define FW_CFG_ID          0x01
#define FW_CFG_RAM_SIZE    0x03
#define FW_CFG_NB_CPUS     0x05
/* -kernel through the BIOS: what an option ROM reads (QEMU's keys). */
#define FW_CFG_KERNEL_ADDR    0x07
#define FW_CFG_KERNEL_SIZE    0x08
#define FW_CFG_INITRD_ADDR    0x0a
#define FW_CFG_INITRD_SIZE    0x0b
#define FW_CFG_KERNEL_DATA    0x11
#define FW_CFG_INITRD_DATA    0x12
#define FW_CFG_CMDLINE_ADDR   0x13
#define FW_CFG_CMDLINE_SIZE   0x14
#define FW_CFG_CMDLINE_DATA   0x15
#define FW_CFG_SETUP_ADDR     0x16
#define FW_CFG_SETUP_SIZE     0x17
#define FW_CFG_SETUP_DATA     0x18
#define FW_CFG_NUMA        0x0d
#define FW_CFG_BOOT_MENU   0x0e
#define FW_CFG_MAX_CPUS    0x0f
#define FW_CFG_FILE_DIR    0x19
#define FW_CFG_FILE_FIRST  0x20
/* x86-specific keys (QEMU's FW_CFG_ARCH_LOCAL): SeaBIOS reads IRQ0_OVERRIDE
 * as etc/irq0-override, and then its MP table routes ISA IRQ 0 to I/O APIC pin 2. */
#define FW_CFG_ARCH_LOCAL     0x8000
#define FW_CFG_IRQ0_OVERRIDE  (FW_CFG_ARCH_LOCAL + 2)

#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2

struct fwcfg *fwcfg_new(struct bus *b, guest_phys_rw_fn rw, void *rw_opaque);
void fwcfg_free(struct fwcfg *f);
void fwcfg_add_bytes(struct fwcfg *f, uint16_t key, const void *data, uint32_t len);
void fwcfg_add_i16(struct fwcfg *f, uint16_t key, uint16_t v);
void fwcfg_add_i32(struct fwcfg *f, uint16_t key, uint32_t v);
void fwcfg_add_i64(struct fwcfg *f, uint16_t key, uint64_t v);
void fwcfg_add_file(struct fwcfg *f, const char *name, const void *data, uint32_t len);
/* Append one entry {u64 address, u64 length, u32 type} to the "etc/e820" file. */
void fwcfg_add_e820(struct fwcfg *f, uint64_t addr, uint64_t len, uint32_t type);

#endif
