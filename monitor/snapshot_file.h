/*
 * The snapshot file: named sections, checksummed as a whole.
 *
 *   "RVSNAP1\n", u32 section count,
 *   per section: u16 name length, name, u64 length, bytes,
 *   u32 CRC-32 of everything before it.
 *
 * A file is read whole (up to a bound the caller gives), its checksum and
 * framing verified, before any section is looked at.  Guest RAM is one
 * section: a bitmap of the pages that are not all zero, then those pages,
 * the lot compressed with zstd.
 */
#ifndef RV_SNAPSHOT_FILE_H
#define RV_SNAPSHOT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "devices/state.h"

struct snapfile_writer {
    struct state_buf b;
    uint32_t nsec;
};
void snapfile_begin(struct snapfile_writer *w);
/* Start a section: append its payload to w->b, then end it with the returned mark. */
size_t snapfile_section_begin(struct snapfile_writer *w, const char *name);
void snapfile_section_end(struct snapfile_writer *w, size_t mark);
/* Write to path atomically (a temporary file renamed over it, fsynced). */
int snapfile_commit(struct snapfile_writer *w, const char *path, char *err, size_t errlen);
void snapfile_writer_free(struct snapfile_writer *w);

struct snapfile_section {
    char name[64];
    const uint8_t *data;
    size_t len;
};
struct snapfile {
    uint8_t *buf;
    size_t len;
    struct snapfile_section *sec;
    int nsec;
};
int snapfile_read(const char *path, uint64_t max_size, struct snapfile *f, char *err, size_t errlen);
const struct snapfile_section *snapfile_find(const struct snapfile *f, const char *name);
void snapfile_free(struct snapfile *f);

/* Memory images (guest RAM, the ROM shadow). */
void snapfile_put_memory(struct state_buf *b, const uint8_t *mem, uint64_t size);
/* Decode into dst (size bytes, which must be the saved size); -1 with err
 * when it does not fit.  dst NULL: only check that it would decode. */
int snapfile_get_memory(const uint8_t *data, size_t len, uint8_t *dst, uint64_t size, char *err, size_t errlen);

/* Compare two snapshot files field by field and page by page, one line on
 * out per difference; returns how many, or -1 (err) when one cannot be read. */
#include <stdio.h>
int snapfile_diff(const char *path_a, const char *path_b, uint64_t max_size, FILE *out, char *err, size_t errlen);

#endif
