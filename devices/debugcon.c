/* Debug console port (see debugcon.h). */
#include "devices/debugcon.h"

#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/chardev.h"
#include "hosted-driver/xalloc.h"

struct debugcon {
    struct chardev *cd;
    char name[24];
};

/* A port that only prints holds no state; the empty table says so. */
static const struct state_table debugcon_state = { "debugcon", 1, NULL, 0, NULL };

static uint32_t debugcon_read(void *opaque, uint16_t port, int size)
{
    return 0xe9;
}

static void debugcon_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct debugcon *d = opaque;
    /* Only the low byte is a character, whatever the access size. */
    unsigned char c = val & 0xff;
    if (d->cd)
        chardev_write(d->cd, &c, 1);
}

struct debugcon *debugcon_new(struct bus *b, uint16_t port, struct chardev *cd)
{
    struct debugcon *d = xcalloc(1, sizeof(*d));
    d->cd = cd;
    bus_register_pio(b, port, 1, d, debugcon_read, debugcon_write);
    /* Two instances in one machine (0x402 and 0xE9): the port tells them apart. */
    snprintf(d->name, sizeof(d->name), "debugcon-%x", port);
    bus_add_device(b, &(struct device){ .name = d->name, .opaque = d, .state = &debugcon_state });
    return d;
}

void debugcon_free(struct debugcon *d)
{
    free(d);
}
