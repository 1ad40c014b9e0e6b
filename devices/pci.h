/*
 * PCI: configuration mechanism #1 (ports 0xCF8/0xCFC-0xCFF) on bus 0 and the
 * per-function configuration space.  A device fills config[] (ids, class,
 * header type, BARs' initial values), sets wmask[] for guest-writable bits,
 * and describes its BARs; BAR sizing (write all ones, read back the mask) and
 * remapping are handled here, calling bar.map when the guest moves a BAR or
 * toggles the decode enables in COMMAND.
 */
#ifndef RV_PCI_H
#define RV_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct pci_bus;
struct pci_dev;

#define PCI_BAR_COUNT 6
#define PCI_BAR_UNMAPPED 0xffffffffu

struct pci_bar {
    uint32_t size;           /* power of two; 0 = BAR not implemented */
    bool io;                 /* I/O space (else memory space) */
    bool prefetch;
    /* Called with the new base address, or PCI_BAR_UNMAPPED when decode is off. */
    void (*map)(struct pci_dev *d, int bar, uint32_t base);
    uint32_t mapped;         /* current mapping (PCI_BAR_UNMAPPED if none) */
};

struct pci_dev {
    const char *name;
    int devfn;               /* device << 3 | function */
    uint8_t config[256];
    uint8_t wmask[256];      /* 1 bits: writable by the guest */
    struct pci_bar bar[PCI_BAR_COUNT];
    struct pci_bar rom;      /* expansion ROM BAR (config 0x30); map gets bar = PCI_BAR_COUNT */
    void *opaque;
    struct pci_bus *bus;     /* set by pci_register */
    int irq_level;           /* current level of the INTx pin */
    /* Optional hooks, called after the generic handling of a config access. */
    void (*config_write)(struct pci_dev *d, int offset, uint32_t val, int size);
    uint32_t (*config_read)(struct pci_dev *d, int offset, int size, uint32_t generic_val);
    void (*reset)(struct pci_dev *d);   /* restore device-specific config defaults */
    uint8_t *rom_image;      /* set by pci_set_rom_image: the ROM BAR's contents */
    uint32_t rom_image_base; /* where rom_image is registered on the bus */
};

struct pci_bus *pci_bus_new(struct bus *b);
void pci_bus_free(struct pci_bus *pb);
/* Fill the standard header: vendor/device ids, class (base<<16|sub<<8|progif), revision, header type 0. */
void pci_dev_init(struct pci_dev *d, const char *name, int devfn, uint16_t vendor, uint16_t device,
                  uint32_t class_code, uint8_t revision);
void pci_register(struct pci_bus *pb, struct pci_dev *d);
void pci_set_bar(struct pci_dev *d, int bar, uint32_t size, bool io,
                 void (*map)(struct pci_dev *, int, uint32_t));
/* Give the device an expansion ROM of `size` bytes (a power of two, >= 2 KiB). */
void pci_set_rom(struct pci_dev *d, uint32_t size, void (*map)(struct pci_dev *, int, uint32_t));
/* An expansion ROM with these contents (copied, padded to a power of two),
 * mapped read-only on the bus wherever the guest places the ROM BAR; for
 * devices whose ROM is only data, such as a network card's boot ROM. */
void pci_set_rom_image(struct pci_dev *d, const uint8_t *img, uint32_t len);
struct pci_dev *pci_find(struct pci_bus *pb, int devfn);
/* After a snapshot put config[] and irq_level back: each BAR and the ROM
 * decode where config now says (map callbacks replace the old claims), and
 * the INTx pin drives its PIRQ again.  A device's post_load calls it. */
void pci_dev_post_load(struct pci_dev *d);

/* Config-space access used by the 0xCF8/0xCFC handler and by tests. */
uint32_t pci_config_read(struct pci_bus *pb, int devfn, int offset, int size);
void pci_config_write(struct pci_bus *pb, int devfn, int offset, uint32_t val, int size);
/* PCI INTx routing through the PIIX3 PIRQ registers: device raises its INTx pin. */
void pci_set_irq(struct pci_dev *d, int level);

static inline uint16_t pci_get16(const struct pci_dev *d, int off)
{ return d->config[off] | (d->config[off + 1] << 8); }
static inline uint32_t pci_get32(const struct pci_dev *d, int off)
{ return pci_get16(d, off) | ((uint32_t)pci_get16(d, off + 2) << 16); }
static inline void pci_set16(struct pci_dev *d, int off, uint16_t v)
{ d->config[off] = v; d->config[off + 1] = v >> 8; }
static inline void pci_set32(struct pci_dev *d, int off, uint32_t v)
{ pci_set16(d, off, v); pci_set16(d, off + 2, v >> 16); }

#endif
