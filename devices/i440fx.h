/*
 * Intel 82441FX (i440FX) host bridge, PCI 00:00.0.  Its PAM registers route
 * reads and writes of 0xC0000-0xFFFFF to RAM or to the ROM side; SeaBIOS
 * copies itself into RAM ("shadowing") through them.
 */
#ifndef RV_I440FX_H
#define RV_I440FX_H

#include <stdbool.h>
#include <stdint.h>

struct pci_bus;
struct i440fx;

/* Called for each PAM region whose routing may have changed. */
typedef void (*pam_update_fn)(void *opaque, uint32_t base, uint32_t len, bool read_ram, bool write_ram);

struct i440fx *i440fx_new(struct pci_bus *pb, pam_update_fn fn, void *opaque);

#endif
