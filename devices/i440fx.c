#include "devices/i440fx.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/pci_internal.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>

#define PAM0 0x59
#define SMRAM 0x72
#define SMRAM_DEFAULT 0x02     /* C_BASE_SEG: compatible SMRAM at 0xA0000, closed */

struct i440fx {
    struct pci_dev pci;
    pam_update_fn pam_update;
    void *opaque;
};

/* PAM register `reg` (0-6), nibble `hi`: the region it controls. */
static void pam_region(int reg, int hi, uint32_t *base, uint32_t *len)
{
    if (reg == 0) {
        *base = 0xf0000;
        *len = 0x10000;
    } else {
        *base = 0xc0000 + (reg - 1) * 0x8000 + (hi ? 0x4000 : 0);
        *len = 0x4000;
    }
}

static void apply_pam(struct i440fx *h)
{
    for (int reg = 0; reg < 7; reg++) {
        uint8_t v = h->pci.config[PAM0 + reg];
        for (int hi = reg == 0 ? 1 : 0; hi < 2; hi++) {
            uint8_t bits = hi ? v >> 4 : v & 0xf;
            uint32_t base, len;
            pam_region(reg, hi, &base, &len);
            h->pam_update(h->opaque, base, len, bits & 1, bits & 2);
        }
    }
}

static void config_write(struct pci_dev *d, int offset, uint32_t val, int size)
{
    struct i440fx *h = d->opaque;
    if (offset < PAM0 + 7 && offset + size > PAM0)
        apply_pam(h);
}

static void bridge_reset(struct pci_dev *d)
{
    struct i440fx *h = d->opaque;
    for (int k = 0; k < 7; k++)
        d->config[PAM0 + k] = 0;
    d->config[SMRAM] = SMRAM_DEFAULT;
    apply_pam(h);
}

/* PAM and SMRAM live in config space; the memory routing they choose is
 * the machine's, so it is applied again. */
static void i440fx_post_load(void *opaque)
{
    struct i440fx *h = opaque;
    pci_dev_post_load(&h->pci);
    apply_pam(h);
}

static const struct state_field i440fx_fields[] = {
    STATE_FIELD(struct i440fx, pci.config), STATE_FIELD(struct i440fx, pci.irq_level),
};
static const struct state_table i440fx_state = { "i440fx", 1, i440fx_fields, STATE_COUNT(i440fx_fields),
                                                 i440fx_post_load };

struct i440fx *i440fx_new(struct pci_bus *pb, pam_update_fn fn, void *opaque)
{
    struct i440fx *h = xcalloc(1, sizeof(*h));
    h->pam_update = fn;
    h->opaque = opaque;
    pci_dev_init(&h->pci, "i440fx", 0, 0x8086, 0x1237, 0x060000, 0x02);
    h->pci.opaque = h;
    h->pci.config_write = config_write;
    h->pci.reset = bridge_reset;
    h->pci.config[0x0e] = 0x00;
    for (int k = 0; k < 7; k++)
        h->pci.wmask[PAM0 + k] = 0x33;
    /* SMRAM: D_OPEN, D_CLS, D_LCK and G_SMRAME are writable; no SMM is emulated. */
    h->pci.wmask[SMRAM] = 0x78;
    pci_register(pb, &h->pci);
    bridge_reset(&h->pci);
    /* Reset comes through the PCI bus's; the registry entry is for snapshots. */
    bus_add_device(pci_bus_isa(pb), &(struct device){ .name = "i440fx", .opaque = h, .state = &i440fx_state });
    return h;
}
