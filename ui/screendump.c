/*
 * PNG screendumps (see screendump.h).  libpng reports errors by longjmp
 * back into screendump_png, which then releases what it allocated; nothing
 * it allocates is reassigned after the setjmp, so no volatile is needed.
 */
#include "ui/screendump.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/render.h"
#include "hosted-driver/xalloc.h"

struct png_error_text {
    char msg[160];
};

static void on_png_error(png_structp png, png_const_charp msg)
{
    struct png_error_text *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
}

static void xrgb_to_rgb(const uint32_t *src, unsigned n, uint8_t *dst)
{
    for (unsigned x = 0; x < n; x++) {
        dst[3 * x + 0] = src[x] >> 16;
        dst[3 * x + 1] = src[x] >> 8;
        dst[3 * x + 2] = src[x];
    }
}

bool screendump_png(const struct render_frame *f, const char *path, char *err, size_t errlen)
{
    if (!f || !f->pixels || !f->width || !f->height) {
        snprintf(err, errlen, "screendump %s: no frame to write", path);
        return false;
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        snprintf(err, errlen, "screendump %s: %s", path, strerror(errno));
        return false;
    }
    struct png_error_text e = { "" };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = xmalloc((size_t)f->width * 3);
    if (!png || !info || !row) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(row);
        fclose(fp);
        snprintf(err, errlen, "screendump %s: out of memory", path);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        fclose(fp);
        snprintf(err, errlen, "screendump %s: %s", path, e.msg[0] ? e.msg : "PNG write failed");
        return false;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, f->width, f->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (unsigned y = 0; y < f->height; y++) {
        xrgb_to_rgb(f->pixels + (size_t)y * f->width, f->width, row);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    /* A full disk shows up here, when the buffered data is flushed. */
    if (fclose(fp) != 0) {
        snprintf(err, errlen, "screendump %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}
