/*
 * Raw images: the file is the disk.  A size that is not a multiple of 512
 * keeps working (the tail is ignored, with a warning).
 *
 * A raw image whose format was detected, not named, must stay raw: a guest
 * that writes a qcow2, VMDK or VHD header into its first or last sector would
 * otherwise make the next run read host files through a "backing file" it
 * chose.  Such writes fail as a disk error (QEMU has the same rule).
 */
#include "hosted-driver/blk_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int raw_open(struct blk *b, char *err, size_t errlen)
{
    if (b->file_size < 512) {
        blk_set_err(err, errlen, "%s: image is %llu bytes, smaller than one 512-byte sector", b->path,
                    (unsigned long long)b->file_size);
        return -1;
    }
    if (b->file_size % 512)
        fprintf(stderr, "retrovisor: warning: %s: size %llu is not a multiple of 512; the last %u bytes are ignored\n",
                b->path, (unsigned long long)b->file_size, (unsigned)(b->file_size % 512));
    b->size = b->file_size - b->file_size % 512;
    return 0;
}

static void raw_close(struct blk *b) { (void)b; }

static int raw_read(struct blk *b, uint64_t off, void *buf, size_t len)
{
    return blk_pread(b->fd, buf, len, off);
}

/* Would the image, with these bytes at `off`, be detected as another format? */
static bool changes_format(struct blk *b, uint64_t off, const uint8_t *buf, size_t len)
{
    static const struct blk_format *const others[] = { &blk_fmt_qcow2, &blk_fmt_vmdk, &blk_fmt_vpc };
    uint8_t head[512], tail[512];
    bool touches_head = off < 512, touches_tail = off + len > b->file_size - 512;
    if (!touches_head && !touches_tail)
        return false;
    if (blk_pread(b->fd, head, 512, 0) < 0 || blk_pread(b->fd, tail, 512, b->file_size - 512) < 0)
        return true;
    for (size_t i = 0; i < len; i++) {
        uint64_t at = off + i;
        if (at < 512)
            head[at] = buf[i];
        if (at >= b->file_size - 512)
            tail[at - (b->file_size - 512)] = buf[i];
    }
    for (size_t i = 0; i < 3; i++)
        if (others[i]->probe(head, 512, tail, b->file_size))
            return true;
    return false;
}

static int raw_write(struct blk *b, uint64_t off, const void *buf, size_t len)
{
    if (b->format_probed && changes_format(b, off, buf, len)) {
        if (b->warned)
            return -EPERM;
        b->warned = true;
        fprintf(stderr, "retrovisor: %s: refused a guest write that would make this raw image look like "
                        "another format (name the format: -drive format=raw)\n", b->path);
        return -EPERM;
    }
    return blk_pwrite(b->fd, buf, len, off);
}

static int raw_create(const char *path, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen)
{
    if (o->backing) {
        blk_set_err(err, errlen, "%s: raw images have no backing file", path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        blk_set_err(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

const struct blk_format blk_fmt_raw = {
    .name = "raw",
    .open = raw_open,
    .close = raw_close,
    .read = raw_read,
    .write = raw_write,
    .create = raw_create,
};
