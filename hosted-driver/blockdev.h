/*
 * Disk image backend for the device models: an image of any format the
 * block-driver layer knows (hosted-driver/blk.h: raw, qcow2, vmdk, vpc),
 * seen as an array of 512-byte sectors.
 *
 * Modes:
 *   read-write  the image is opened O_RDWR and locked as a writer with
 *               QEMU's byte-range lock scheme, so two VMs (retrovisor or
 *               QEMU) can never write one image, nor a parent of an image
 *               in use;
 *   read-only   requested, or forced when the file is not writable (a
 *               warning says so); locked as a reader; writes fail with -EROFS;
 *   snapshot    (-snapshot) the image is opened read-only and guest writes
 *               land in an unlinked temporary qcow2 file whose backing is
 *               the image; the image is never written, host memory stays
 *               bounded, and the overlay vanishes on close.
 *
 * A raw image whose size is not a multiple of 512 is accepted: the tail is
 * ignored (the guest sees the size rounded down) and a warning is printed.
 * An image smaller than one sector is refused.
 *
 * Errors from blockdev_open are one line naming the file and why.  I/O
 * functions return 0 or a negative errno; the device model turns those into
 * guest-visible errors.  A range outside the disk is -EINVAL.
 */
#ifndef RV_BLOCKDEV_H
#define RV_BLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCKDEV_SECTOR_SIZE 512

struct blockdev;

struct blockdev *blockdev_open(const char *path, bool readonly, bool snapshot, char *err, size_t errlen);
/* The same with the format named (NULL: detected from the header). */
struct blockdev *blockdev_open_format(const char *path, const char *format, bool readonly, bool snapshot,
                                      char *err, size_t errlen);
void blockdev_close(struct blockdev *bd);

const char *blockdev_path(const struct blockdev *bd);
uint64_t blockdev_sectors(const struct blockdev *bd);
uint64_t blockdev_size(const struct blockdev *bd);     /* bytes, a multiple of 512 */
/* True when guest writes are refused (snapshot images are writable). */
bool blockdev_readonly(const struct blockdev *bd);
bool blockdev_snapshot(const struct blockdev *bd);

int blockdev_read(struct blockdev *bd, uint64_t offset, void *buf, size_t len);
int blockdev_write(struct blockdev *bd, uint64_t offset, const void *buf, size_t len);
/* Make every completed write and its metadata durable (fsync); a no-op in snapshot/read-only mode. */
int blockdev_flush(struct blockdev *bd);

/* The image under the snapshot overlay (or the image itself): its path and
 * its block driver (snapshots export and freeze layers with these). */
const char *blockdev_layer_path(const struct blockdev *bd);
struct blk *blockdev_top(struct blockdev *bd);
/* Switch the disk to another image in the same mode (snapshot disks get a
 * fresh overlay over it): the old chain is flushed and closed first, as
 * the new one may name it as a parent.  On failure the old image is opened
 * again and -1 returned with one line in err. */
int blockdev_reopen(struct blockdev *bd, const char *path, char *err, size_t errlen);

#endif
