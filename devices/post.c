/* POST code ports (see post.h). */
#include "devices/post.h"

#include <stdio.h>
#include <stdlib.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

struct post {
    uint8_t last;
    uint64_t count;
    bool trace;
};

static uint32_t post_read(void *opaque, uint16_t port, int size)
{
    struct post *p = opaque;
    return p->last;
}

static void post_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct post *p = opaque;
    p->last = val & 0xff;
    p->count++;
    if (p->trace)
        fprintf(stderr, "POST %02x\n", p->last);
}

static const struct state_field post_fields[] = {
    STATE_FIELD(struct post, last), STATE_FIELD(struct post, count),
};
static const struct state_table post_state = { "post", 1, post_fields, STATE_COUNT(post_fields), NULL };

struct post *post_new(struct bus *b, uint16_t extra_port, bool trace)
{
    struct post *p = xcalloc(1, sizeof(*p));
    p->trace = trace;
    bus_register_pio(b, 0x80, 1, p, post_read, post_write);
    if (extra_port)
        bus_register_pio(b, extra_port, 1, p, post_read, post_write);
    /* The last code survives a reset on purpose: it says where the guest died. */
    bus_add_device(b, &(struct device){ .name = "post", .opaque = p, .state = &post_state });
    return p;
}

void post_free(struct post *p)
{
    free(p);
}

uint8_t post_last(const struct post *p)
{
    return p->last;
}

uint64_t post_count(const struct post *p)
{
    return p->count;
}

void post_set_trace(struct post *p, bool on)
{
    p->trace = on;
}
