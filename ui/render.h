/*
 * The renderer: turns the VGA device's state (text modes with the guest's
 * font, planar 16-colour modes, mode 13h, VBE linear modes at 8/15/16/24/32
 * bpp) into one XRGB8888 frame that every front end shows as is — the SDL
 * window, VNC clients and PNG screendumps all see the same pixels.
 */
#ifndef RV_RENDER_H
#define RV_RENDER_H

#include <stdbool.h>
#include <stdint.h>

struct vga;
struct renderer;

struct render_frame {
    unsigned width, height;      /* visible size of the guest's current mode */
    const uint32_t *pixels;      /* width * height pixels, 0x00RRGGBB, row-major */
    /* Rows [dirty_y0, dirty_y1) changed since the previous render_update;
     * empty (y0 == y1) when nothing changed.  A size change marks all rows. */
    unsigned dirty_y0, dirty_y1;
};

struct renderer *render_new(struct vga *vga);
void render_free(struct renderer *r);
/* Redraw from the device state.  The frame stays valid until the next call.
 * now_ms drives the text cursor and character blink. */
const struct render_frame *render_update(struct renderer *r, uint64_t now_ms);

#endif
