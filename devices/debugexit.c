/* isa-debug-exit (see debugexit.h). */
#include "devices/debugexit.h"

#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

struct debugexit {
    struct bus *bus;
};

static void debugexit_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct debugexit *d = opaque;
    /* The value is taken at the width the guest wrote it, as QEMU does;
     * an exit status only keeps the low 8 bits anyway. */
    bus_request(d->bus, BUS_REQ_EXIT, (int)((val << 1) | 1));
}

/* Write-only, and a write ends the run: nothing to keep. */
static const struct state_table debugexit_state = { "isa-debug-exit", 1, NULL, 0, NULL };

struct debugexit *debugexit_new_sized(struct bus *b, uint16_t iobase, uint16_t iosize)
{
    struct debugexit *d = xcalloc(1, sizeof(*d));
    d->bus = b;
    /* Write-only: reads fall through to "unclaimed" (all ones). */
    bus_register_pio(b, iobase, iosize ? iosize : 1, d, NULL, debugexit_write);
    bus_add_device(b, &(struct device){ .name = "isa-debug-exit", .opaque = d, .state = &debugexit_state });
    return d;
}

struct debugexit *debugexit_new(struct bus *b, uint16_t iobase)
{
    return debugexit_new_sized(b, iobase, DEBUGEXIT_DEFAULT_SIZE);
}

void debugexit_free(struct debugexit *d)
{
    free(d);
}
