/* The snapshot file's framing, checksum and memory images (see snapshot_file.h). */
#include "monitor/snapshot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "hosted-driver/xalloc.h"

static const char MAGIC[8] = "RVSNAP1\n";
#define MEM_PAGE 4096u

void snapfile_begin(struct snapfile_writer *w)
{
    *w = (struct snapfile_writer){0};
    uint32_t zero = 0;
    state_buf_put(&w->b, MAGIC, sizeof(MAGIC));
    state_buf_put(&w->b, &zero, 4);
}

size_t snapfile_section_begin(struct snapfile_writer *w, const char *name)
{
    uint16_t n = (uint16_t)strlen(name);
    uint64_t len = 0;
    state_buf_put(&w->b, &n, 2);
    state_buf_put(&w->b, name, n);
    size_t mark = w->b.len;
    state_buf_put(&w->b, &len, 8);
    w->nsec++;
    return mark;
}

void snapfile_section_end(struct snapfile_writer *w, size_t mark)
{
    uint64_t len = w->b.len - mark - 8;
    memcpy(w->b.data + mark, &len, 8);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int snapfile_commit(struct snapfile_writer *w, const char *path, char *err, size_t errlen)
{
    memcpy(w->b.data + sizeof(MAGIC), &w->nsec, 4);
    uint32_t crc = (uint32_t)crc32(0, w->b.data, (uInt)0);
    for (size_t off = 0; off < w->b.len;) {
        size_t n = w->b.len - off > (1u << 30) ? (1u << 30) : w->b.len - off;
        crc = (uint32_t)crc32(crc, w->b.data + off, (uInt)n);
        off += n;
    }
    state_buf_put(&w->b, &crc, 4);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    if (write_all(fd, w->b.data, w->b.len) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void snapfile_writer_free(struct snapfile_writer *w)
{
    state_buf_free(&w->b);
}

/* ---- reading ---- */

static int read_whole(const char *path, uint64_t max_size, struct snapfile *f, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_size) {
        snprintf(err, errlen, "%s: not a snapshot file of this machine's size", path);
        close(fd);
        return -1;
    }
    f->len = (size_t)st.st_size;
    f->buf = xmalloc(f->len);
    size_t got = 0;
    while (got < f->len) {
        ssize_t k = read(fd, f->buf + got, f->len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (got != f->len) {
        snprintf(err, errlen, "%s: short read", path);
        return -1;
    }
    return 0;
}

static int parse_sections(struct snapfile *f, const char *path, char *err, size_t errlen)
{
    const uint8_t *p = f->buf + sizeof(MAGIC), *end = f->buf + f->len - 4;
    uint32_t n;
    memcpy(&n, p, 4);
    p += 4;
    if (n > 4096) {
        snprintf(err, errlen, "%s: %u sections is not a snapshot", path, n);
        return -1;
    }
    f->sec = xcalloc(n ? n : 1, sizeof(*f->sec));
    for (uint32_t i = 0; i < n; i++) {
        struct snapfile_section *s = &f->sec[i];
        uint16_t nl;
        uint64_t len;
        if (end - p < 2 || (memcpy(&nl, p, 2), p += 2, nl >= sizeof(s->name)) || end - p < (long)nl + 8) {
            snprintf(err, errlen, "%s: section %u is truncated", path, i);
            return -1;
        }
        memcpy(s->name, p, nl);
        s->name[nl] = 0;
        p += nl;
        memcpy(&len, p, 8);
        p += 8;
        if ((uint64_t)(end - p) < len) {
            snprintf(err, errlen, "%s: section '%s' runs past the end of the file", path, s->name);
            return -1;
        }
        s->data = p;
        s->len = (size_t)len;
        p += len;
        f->nsec++;
    }
    if (p != end) {
        snprintf(err, errlen, "%s: %zu bytes after the last section", path, (size_t)(end - p));
        return -1;
    }
    return 0;
}

int snapfile_read(const char *path, uint64_t max_size, struct snapfile *f, char *err, size_t errlen)
{
    *f = (struct snapfile){0};
    if (read_whole(path, max_size, f, err, errlen) < 0)
        goto fail;
    if (f->len < sizeof(MAGIC) + 8 || memcmp(f->buf, MAGIC, sizeof(MAGIC))) {
        snprintf(err, errlen, "%s: not a retrovisor snapshot (bad magic or version)", path);
        goto fail;
    }
    uint32_t want, crc = (uint32_t)crc32(0, NULL, 0);
    memcpy(&want, f->buf + f->len - 4, 4);
    for (size_t off = 0; off < f->len - 4;) {
        size_t n = f->len - 4 - off > (1u << 30) ? (1u << 30) : f->len - 4 - off;
        crc = (uint32_t)crc32(crc, f->buf + off, (uInt)n);
        off += n;
    }
    if (crc != want) {
        snprintf(err, errlen, "%s: checksum mismatch (the file is corrupt or truncated)", path);
        goto fail;
    }
    if (parse_sections(f, path, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    snapfile_free(f);
    return -1;
}

const struct snapfile_section *snapfile_find(const struct snapfile *f, const char *name)
{
    for (int i = 0; i < f->nsec; i++)
        if (!strcmp(f->sec[i].name, name))
            return &f->sec[i];
    return NULL;
}

void snapfile_free(struct snapfile *f)
{
    free(f->buf);
    free(f->sec);
    *f = (struct snapfile){0};
}

/* ---- memory images ---- */

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[MEM_PAGE];
    return !memcmp(p, zero, MEM_PAGE);
}

/* Feed `in` to the compressor, appending what it produces to b. */
static void compress_feed(ZSTD_CCtx *cz, struct state_buf *b, const void *in, size_t n, ZSTD_EndDirective end)
{
    ZSTD_inBuffer ib = { in, n, 0 };
    uint8_t out[1 << 17];
    size_t left;
    do {
        ZSTD_outBuffer ob = { out, sizeof(out), 0 };
        left = ZSTD_compressStream2(cz, &ob, &ib, end);
        if (ZSTD_isError(left)) {
            fprintf(stderr, "retrovisor: zstd: %s\n", ZSTD_getErrorName(left));
            exit(1);
        }
        state_buf_put(b, out, ob.pos);
    } while (end == ZSTD_e_end ? left != 0 : ib.pos < ib.size);
}

void snapfile_put_memory(struct state_buf *b, const uint8_t *mem, uint64_t size)
{
    uint32_t page = MEM_PAGE;
    state_buf_put(b, &size, 8);
    state_buf_put(b, &page, 4);
    uint64_t npages = size / MEM_PAGE;
    size_t bmlen = (size_t)((npages + 7) / 8);
    uint8_t *bitmap = xcalloc(bmlen ? bmlen : 1, 1);
    for (uint64_t i = 0; i < npages; i++)
        if (!page_is_zero(mem + i * MEM_PAGE))
            bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
    ZSTD_CCtx *cz = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cz, ZSTD_c_compressionLevel, 1);
    /* Two host threads compress while the machine waits (ignored by a
     * libzstd built without threads). */
    ZSTD_CCtx_setParameter(cz, ZSTD_c_nbWorkers, 2);
    compress_feed(cz, b, bitmap, bmlen, ZSTD_e_continue);
    for (uint64_t i = 0; i < npages; i++)
        if (bitmap[i / 8] & (1u << (i % 8)))
            compress_feed(cz, b, mem + i * MEM_PAGE, MEM_PAGE, ZSTD_e_continue);
    compress_feed(cz, b, NULL, 0, ZSTD_e_end);
    ZSTD_freeCCtx(cz);
    free(bitmap);
}

struct decoder {
    ZSTD_DCtx *dz;
    ZSTD_inBuffer in;
    size_t last;        /* the last call's result: 0 once the frame is complete */
};

/* Exactly n bytes of decompressed output into dst; false when the stream ends first or is corrupt. */
static bool decode_exact(struct decoder *d, void *dst, size_t n)
{
    ZSTD_outBuffer ob = { dst, n, 0 };
    while (ob.pos < ob.size) {
        size_t in_before = d->in.pos, out_before = ob.pos;
        size_t rc = ZSTD_decompressStream(d->dz, &ob, &d->in);
        if (ZSTD_isError(rc))
            return false;
        d->last = rc;
        if (d->in.pos == in_before && ob.pos == out_before)
            return false;       /* no progress: the stream ended early */
    }
    return true;
}

int snapfile_get_memory(const uint8_t *data, size_t len, uint8_t *dst, uint64_t size, char *err, size_t errlen)
{
    uint64_t saved;
    uint32_t page;
    if (len < 12) {
        snprintf(err, errlen, "the memory image is truncated");
        return -1;
    }
    memcpy(&saved, data, 8);
    memcpy(&page, data + 8, 4);
    if (saved != size || page != MEM_PAGE) {
        snprintf(err, errlen, "the memory image holds %llu bytes in %u-byte pages, this machine has %llu",
                 (unsigned long long)saved, page, (unsigned long long)size);
        return -1;
    }
    uint64_t npages = size / MEM_PAGE;
    size_t bmlen = (size_t)((npages + 7) / 8);
    uint8_t *bitmap = xcalloc(bmlen ? bmlen : 1, 1);
    struct decoder d = { ZSTD_createDCtx(), { data + 12, len - 12, 0 }, 1 };
    bool ok = decode_exact(&d, bitmap, bmlen);
    static uint8_t scratch[MEM_PAGE];      /* where a check-only pass decodes */
    for (uint64_t i = 0; ok && i < npages; i++) {
        uint8_t *p = dst ? dst + i * MEM_PAGE : scratch;
        if (bitmap[i / 8] & (1u << (i % 8)))
            ok = decode_exact(&d, p, MEM_PAGE);
        else if (dst && !page_is_zero(p))
            memset(p, 0, MEM_PAGE);     /* reading first leaves untouched RAM unmapped */
    }
    if (ok && d.last != 0) {
        /* The frame's end may still be unread: read it, and nothing more. */
        uint8_t extra;
        ZSTD_outBuffer ob = { &extra, 1, 0 };
        size_t rc = ZSTD_decompressStream(d.dz, &ob, &d.in);
        ok = !ZSTD_isError(rc) && rc == 0 && ob.pos == 0;
    }
    ok = ok && d.in.pos == d.in.size;
    ZSTD_freeDCtx(d.dz);
    free(bitmap);
    if (!ok) {
        snprintf(err, errlen, "the memory image is corrupt or truncated");
        return -1;
    }
    return 0;
}

/* ---- comparing two files ---- */

static bool is_memory_section(const char *name)
{
    return !strcmp(name, "ram") || !strcmp(name, "rom-shadow");
}

struct diff_ctx {
    FILE *out;
};

static void print_field_diff(const char *record, const char *field, const char *why, void *opaque)
{
    struct diff_ctx *c = opaque;
    fprintf(c->out, "%s.%s: %s\n", record, field, why);
}

/* Differing pages of two memory sections; each side must decode. */
static int diff_memory(const char *name, const struct snapfile_section *a, const struct snapfile_section *b,
                       FILE *out)
{
    uint64_t sa, sb;
    if (a->len < 8 || b->len < 8) {
        fprintf(out, "%s: truncated\n", name);
        return 1;
    }
    memcpy(&sa, a->data, 8);
    memcpy(&sb, b->data, 8);
    if (sa != sb || sa > (1ull << 32)) {
        fprintf(out, "%s: sizes differ (%llu, %llu)\n", name, (unsigned long long)sa, (unsigned long long)sb);
        return 1;
    }
    uint8_t *ma = xmalloc(sa), *mb = xmalloc(sa);
    char err[256];
    int diffs = 0;
    if (snapfile_get_memory(a->data, a->len, ma, sa, err, sizeof(err)) < 0 ||
        snapfile_get_memory(b->data, b->len, mb, sa, err, sizeof(err)) < 0) {
        fprintf(out, "%s: %s\n", name, err);
        diffs = 1;
    } else {
        for (uint64_t off = 0; off < sa; off += MEM_PAGE)
            if (memcmp(ma + off, mb + off, MEM_PAGE)) {
                if (diffs < 8)
                    fprintf(out, "%s: page at 0x%llx differs\n", name, (unsigned long long)off);
                diffs++;
            }
        if (diffs > 8)
            fprintf(out, "%s: %d pages differ in all\n", name, diffs);
    }
    free(ma);
    free(mb);
    return diffs;
}

int snapfile_diff(const char *path_a, const char *path_b, uint64_t max_size, FILE *out, char *err, size_t errlen)
{
    struct snapfile a, b;
    if (snapfile_read(path_a, max_size, &a, err, errlen) < 0)
        return -1;
    if (snapfile_read(path_b, max_size, &b, err, errlen) < 0) {
        snapfile_free(&a);
        return -1;
    }
    struct diff_ctx ctx = { out };
    int diffs = 0;
    for (int i = 0; i < a.nsec; i++) {
        const struct snapfile_section *sa = &a.sec[i], *sb = snapfile_find(&b, sa->name);
        if (!sb) {
            fprintf(out, "%s: only in %s\n", sa->name, path_a);
            diffs++;
        } else if (is_memory_section(sa->name)) {
            diffs += diff_memory(sa->name, sa, sb, out);
        } else {
            diffs += state_compare_records(sa->data, sa->len, sb->data, sb->len, print_field_diff, &ctx);
        }
    }
    for (int i = 0; i < b.nsec; i++)
        if (!snapfile_find(&a, b.sec[i].name)) {
            fprintf(out, "%s: only in %s\n", b.sec[i].name, path_b);
            diffs++;
        }
    snapfile_free(&a);
    snapfile_free(&b);
    return diffs;
}
