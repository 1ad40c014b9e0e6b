/*
 * PNG screendumps of a rendered frame (8-bit RGB, libpng), for the monitor
 * console's "screendump" command and for tests that compare guest screens.
 */
#ifndef RV_SCREENDUMP_H
#define RV_SCREENDUMP_H

#include <stdbool.h>
#include <stddef.h>

struct render_frame;

/* Writes f to path as a PNG.  False with one line in err (naming the file
 * and why) when the file cannot be created or written. */
bool screendump_png(const struct render_frame *f, const char *path, char *err, size_t errlen);

#endif
