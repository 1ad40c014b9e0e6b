/*
 * qcow2, versions 2 and 3 (QEMU's docs/interop/qcow2.txt): a header, a
 * two-level table (L1 -> L2 -> data cluster) and reference counts for every
 * host cluster.  Read and write, with a backing file.  Compressed clusters
 * (deflate) are read, so an image that has them opens read-only (-snapshot
 * works); encryption, external data files and extended L2 entries are
 * refused at open, and an image with internal snapshots opens read-only.
 *
 * Crash ordering.  New clusters come from the end of the file (or are freed
 * ones, below), and only after their reference counts say 1 on disk:
 * `reserve` counts a batch of clusters (8 MiB) as used and syncs before any
 * of them is linked.  Then a new
 * cluster is written whole (data, or a zeroed L2 table) before the L1/L2
 * entry that points at it.  A crash at any point can therefore leave clusters
 * counted but unreferenced (leaks, which `check` reports and tolerates) but
 * never a table entry pointing at a cluster with no count or no contents.
 * Tables are written through (no dirty cache), so FLUSH is an fsync.
 *
 * Freed clusters.  `commit` empties this layer (as qemu-img commit does) and
 * a moved refcount table leaves the old one behind: their counts drop to 0
 * only after no table points at them any more (synced), and later
 * allocations take such clusters first, counting them 1 and syncing before
 * they are linked, just as at the end of the file.  So the file grows only
 * when it has no free cluster left.
 */
#define _GNU_SOURCE
#include "hosted-driver/blk_driver.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define QCOW2_MAGIC 0x514649fbu
#define OFFSET_MASK 0x00fffffffffffe00ull
#define OFLAG_COPIED (1ull << 63)
#define OFLAG_COMPRESSED (1ull << 62)
#define OFLAG_ZERO 1ull
#define INCOMPAT_DIRTY 1ull
#define INCOMPAT_CORRUPT 2ull
#define EXT_BACKING_FORMAT 0xe2792acau
#define L2_CACHE 32
#define RESERVE_BYTES (8u << 20) /* counted per sync when allocating (at least RESERVE_MIN clusters) */
#define RESERVE_MIN 64
#define MAX_L1_BYTES (32u << 20)
#define MAX_RT_BYTES (8u << 20)

struct l2_slot {
    uint64_t off;       /* host offset of the table; 0: empty */
    uint64_t used;      /* LRU stamp */
    uint8_t *tab;
};

struct qcow2 {
    uint32_t version, cluster_bits, l2_bits, refcount_order;
    uint64_t cs;
    uint32_t header_len;
    uint64_t l1_offset;
    uint32_t l1_size;
    uint64_t *l1;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint64_t rt_entries, rb_entries;
    uint64_t *rt;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    struct l2_slot l2c[L2_CACHE];
    uint64_t stamp;
    uint64_t rb_cache_off;
    uint8_t *rb_cache;
    uint64_t next_free;         /* host offset of the next cluster to hand out */
    uint64_t reserved_end;      /* [next_free, reserved_end) are counted, not yet used */
    uint64_t *pool;             /* freed clusters counted 1 again, not yet used: pool[pool_next..pool_n) */
    uint32_t pool_next, pool_n;
    bool holes;                 /* a cluster below next_free may have count 0 ... */
    uint64_t hole_scan;         /* ... none below this cluster index */
    uint8_t *cow;               /* one cluster of scratch */
    uint8_t *z_in, *z_out;      /* a compressed cluster and its inflated bytes */
    uint64_t z_entry;           /* the L2 entry z_out holds, or 0 */
};

static struct qcow2 *Q(struct blk *b) { return b->priv; }

static bool qcow2_probe(const uint8_t *h, size_t n, const uint8_t *tail, uint64_t fsize)
{
    return n >= 8 && be32(h) == QCOW2_MAGIC && (be32(h + 4) == 2 || be32(h + 4) == 3);
}

/* ---- tables ---- */

static int l2_table(struct blk *b, uint64_t off, uint8_t **tab)
{
    struct qcow2 *q = Q(b);
    struct l2_slot *victim = &q->l2c[0];
    for (int i = 0; i < L2_CACHE; i++) {
        if (q->l2c[i].off == off) {
            q->l2c[i].used = ++q->stamp;
            *tab = q->l2c[i].tab;
            return 0;
        }
        if (q->l2c[i].used < victim->used)
            victim = &q->l2c[i];
    }
    if (!victim->tab)
        victim->tab = xmalloc(q->cs);
    victim->off = 0;
    int r = blk_pread(b->fd, victim->tab, q->cs, off);
    if (r < 0)
        return r;
    victim->off = off;
    victim->used = ++q->stamp;
    *tab = victim->tab;
    return 0;
}

static bool cluster_in_file(struct blk *b, uint64_t off, uint64_t fsize)
{
    return !(off & (Q(b)->cs - 1)) && off && off < fsize;
}

static int qcow2_map(struct blk *b, uint64_t off, uint64_t len, struct blk_map *m)
{
    struct qcow2 *q = Q(b);
    uint64_t in_cluster = off & (q->cs - 1);
    uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
    uint64_t l2i = (off >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
    uint64_t l2_left = ((1ull << q->l2_bits) - l2i) * q->cs - in_cluster;
    m->fd = b->fd;
    m->len = l2_left;
    uint64_t l2off = l1i < q->l1_size ? q->l1[l1i] & OFFSET_MASK : 0;
    if (!l2off) {
        m->state = BLK_STATE_BACKING;
        return 0;
    }
    uint8_t *tab;
    int r = l2_table(b, l2off, &tab);
    if (r < 0)
        return r;
    /* Extend over following clusters with the same state (and contiguous host offsets). */
    uint64_t first = be64(tab + 8 * l2i), n = q->cs - in_cluster;
    if (first & OFLAG_COMPRESSED) {
        m->state = BLK_STATE_DATA;
        m->fd = -1;         /* qcow2_read_compressed inflates it */
        m->len = n;
        return 0;
    }
    uint64_t host = first & OFFSET_MASK;
    m->state = host && !(first & OFLAG_ZERO) ? BLK_STATE_DATA : (first & OFLAG_ZERO) ? BLK_STATE_ZERO : BLK_STATE_BACKING;
    m->host_off = host + in_cluster;
    for (uint64_t i = l2i + 1; i < (1ull << q->l2_bits) && n < len; i++) {
        uint64_t e = be64(tab + 8 * i), h = e & OFFSET_MASK;
        enum blk_state s = h && !(e & OFLAG_ZERO) ? BLK_STATE_DATA : (e & OFLAG_ZERO) ? BLK_STATE_ZERO : BLK_STATE_BACKING;
        if (s != m->state || (e & OFLAG_COMPRESSED) || (s == BLK_STATE_DATA && h != host + (i - l2i) * q->cs))
            break;
        n += q->cs;
    }
    m->len = n;
    return 0;
}

/* A compressed cluster's descriptor: where its deflate stream starts and how many bytes it may take. */
static void compressed_range(struct qcow2 *q, uint64_t e, uint64_t *start, uint64_t *bytes)
{
    unsigned x = 62 - (q->cluster_bits - 8);
    *start = e & ((1ull << x) - 1);
    uint64_t sectors = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
    *bytes = sectors * 512 - (*start & 511);
}

static int qcow2_read_compressed(struct blk *b, uint64_t off, void *buf, size_t len)
{
    struct qcow2 *q = Q(b);
    uint64_t in_cluster = off & (q->cs - 1);
    uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
    uint64_t l2i = (off >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
    uint8_t *tab;
    if (l1i >= q->l1_size || len > q->cs - in_cluster || l2_table(b, q->l1[l1i] & OFFSET_MASK, &tab) < 0)
        return -EIO;
    uint64_t e = be64(tab + 8 * l2i);
    if (!(e & OFLAG_COMPRESSED))
        return -EIO;
    if (q->z_entry != e) {
        uint64_t start, bytes;
        compressed_range(q, e, &start, &bytes);
        if (start >= b->file_size)
            return -EIO;
        if (bytes > b->file_size - start)
            bytes = b->file_size - start;     /* the last stream may end the file */
        if (!q->z_in) {
            q->z_in = xmalloc(2 * q->cs);
            q->z_out = xmalloc(q->cs);
        }
        if (bytes > 2 * q->cs || blk_pread(b->fd, q->z_in, bytes, start) < 0)
            return -EIO;
        z_stream z = { 0 };
        if (inflateInit2(&z, -12) != Z_OK)
            return -EIO;
        z.next_in = q->z_in;
        z.avail_in = (uInt)bytes;
        z.next_out = q->z_out;
        z.avail_out = (uInt)q->cs;
        int zr = inflate(&z, Z_FINISH);
        inflateEnd(&z);
        if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || z.avail_out)
            return -EIO;
        q->z_entry = e;
    }
    memcpy(buf, q->z_out + in_cluster, len);
    return 0;
}

/* ---- reference counts ---- */

static int refblock(struct blk *b, uint64_t off, uint8_t **blk)
{
    struct qcow2 *q = Q(b);
    if (q->rb_cache_off != off) {
        q->rb_cache_off = 0;
        int r = blk_pread(b->fd, q->rb_cache, q->cs, off);
        if (r < 0)
            return r;
        q->rb_cache_off = off;
    }
    *blk = q->rb_cache;
    return 0;
}

static int get_refcount(struct blk *b, uint64_t cluster, uint64_t *count)
{
    struct qcow2 *q = Q(b);
    uint64_t rti = cluster / q->rb_entries, i = cluster % q->rb_entries;
    *count = 0;
    if (rti >= q->rt_entries || !(q->rt[rti] & OFFSET_MASK))
        return 0;
    uint8_t *rb;
    int r = refblock(b, q->rt[rti] & OFFSET_MASK, &rb);
    if (r < 0)
        return r;
    uint32_t bits = 1u << q->refcount_order;
    uint64_t bit = i * bits;
    if (bits >= 8) {
        uint64_t v = 0;
        for (uint32_t k = 0; k < bits / 8; k++)
            v = v << 8 | rb[bit / 8 + k];
        *count = v;
    } else {
        *count = (rb[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
    }
    return 0;
}

/* Only 16-bit counts are written (what QEMU creates; others open read-only). */
static int set_refcount(struct blk *b, uint64_t cluster, uint16_t value)
{
    struct qcow2 *q = Q(b);
    uint64_t rti = cluster / q->rb_entries, i = cluster % q->rb_entries;
    if (rti >= q->rt_entries || !(q->rt[rti] & OFFSET_MASK))
        return -EFBIG;
    uint8_t *rb;
    uint64_t rboff = q->rt[rti] & OFFSET_MASK;
    int r = refblock(b, rboff, &rb);
    if (r < 0)
        return r;
    put_be16(rb + 2 * i, value);
    if (!value && (!q->holes || cluster < q->hole_scan)) {
        q->holes = true;
        q->hole_scan = cluster;
    }
    return blk_pwrite(b->fd, rb + 2 * i, 2, rboff + 2 * i);
}

/* Cluster `c` has no refcount block: make it the block, counting itself. */
static int new_refblock_at(struct blk *b, uint64_t c)
{
    struct qcow2 *q = Q(b);
    uint64_t rti = c / q->rb_entries;
    if (rti >= q->rt_entries)
        return -EFBIG;
    memset(q->cow, 0, q->cs);
    put_be16(q->cow + 2 * (c % q->rb_entries), 1);
    int r = blk_pwrite(b->fd, q->cow, q->cs, c * q->cs);
    if (r < 0)
        return r;
    q->rt[rti] = c * q->cs;
    uint8_t e[8];
    put_be64(e, c * q->cs);
    return blk_pwrite(b->fd, e, 8, q->rt_offset + 8 * rti);
}

/* The refcount table has no entry for cluster `c` (== next_free): move the
 * table to the end of the file, twice as large, with a new refcount block
 * at `c` that counts itself and the new table.  The header switches to the
 * new table in one write; until then the new clusters are mere leaks, and
 * afterwards the old table is. */
static int grow_reftable(struct blk *b, uint64_t c)
{
    struct qcow2 *q = Q(b);
    uint64_t rti = c / q->rb_entries;
    uint64_t entries = q->rt_entries * 2 > rti + 1 ? q->rt_entries * 2 : rti + 1;
    uint64_t clusters = (entries * 8 + q->cs - 1) / q->cs;
    entries = clusters * q->cs / 8;
    if (clusters * q->cs > MAX_RT_BYTES || (c + clusters) / q->rb_entries != rti)
        return -EFBIG;
    memset(q->cow, 0, q->cs);
    for (uint64_t k = 0; k <= clusters; k++)
        put_be16(q->cow + 2 * ((c + k) % q->rb_entries), 1);
    int r = blk_pwrite(b->fd, q->cow, q->cs, c * q->cs);
    if (r < 0)
        return r;
    uint64_t *rt = xcalloc(entries, 8);
    memcpy(rt, q->rt, q->rt_entries * 8);
    rt[rti] = c * q->cs;
    uint8_t *raw = xcalloc(clusters, q->cs);
    for (uint64_t i = 0; i < entries; i++)
        put_be64(raw + 8 * i, rt[i]);
    uint64_t new_off = (c + 1) * q->cs;
    r = blk_pwrite(b->fd, raw, clusters * q->cs, new_off);
    free(raw);
    if (r >= 0)
        r = blk_fsync_fd(b, b->fd);
    uint8_t h[12];
    put_be64(h, new_off);
    put_be32(h + 8, (uint32_t)clusters);
    if (r >= 0)
        r = blk_pwrite(b->fd, h, 12, 48);
    if (r >= 0)
        r = blk_fsync_fd(b, b->fd);
    if (r < 0) {
        free(rt);
        return r;
    }
    uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
    free(q->rt);
    q->rt = rt;
    q->rt_offset = new_off;
    q->rt_clusters = (uint32_t)clusters;
    q->rt_entries = entries;
    q->rb_cache_off = 0;
    q->next_free = q->reserved_end = (c + 1 + clusters) * q->cs;
    /* The old table is free now (a crash before this only leaks it). */
    for (uint64_t k = 0; k < old_clusters; k++)
        if ((r = set_refcount(b, old_off / q->cs + k, 0)) < 0)
            return r;
    return 0;
}

static int reserve(struct blk *b)
{
    struct qcow2 *q = Q(b);
    uint64_t c = q->reserved_end / q->cs;
    uint64_t batch = RESERVE_BYTES / q->cs > RESERVE_MIN ? RESERVE_BYTES / q->cs : RESERVE_MIN;
    for (uint64_t k = 0; k < batch; k++, c++) {
        uint64_t rti = c / q->rb_entries;
        int r;
        if (rti >= q->rt_entries) {
            if (q->next_free != c * q->cs)
                break;
            if ((r = grow_reftable(b, c)) < 0)
                return r;
            return reserve(b);
        }
        if (!(q->rt[rti] & OFFSET_MASK)) {
            /* The batch handed out must stay contiguous: a block in its
             * middle ends it, and the next batch starts with the block. */
            if (q->next_free != c * q->cs)
                break;
            if ((r = new_refblock_at(b, c)) < 0)
                return r;
            q->next_free += q->cs;
            continue;
        }
        if ((r = set_refcount(b, c, 1)) < 0)
            return r;
    }
    q->reserved_end = c * q->cs;
    /* The counts must be on disk before anything points at these clusters. */
    return blk_fsync_fd(b, b->fd);
}

/* Freed clusters below next_free, a batch at a time: counted 1 and synced
 * before any of them is linked (the same rule as `reserve`). */
static int take_freed_clusters(struct blk *b)
{
    struct qcow2 *q = Q(b);
    uint64_t batch = RESERVE_BYTES / q->cs > RESERVE_MIN ? RESERVE_BYTES / q->cs : RESERVE_MIN;
    if (batch > 1024)
        batch = 1024;
    if (!q->pool)
        q->pool = xmalloc(1024 * sizeof(*q->pool));
    q->pool_next = q->pool_n = 0;
    uint64_t c = q->hole_scan, end = q->next_free / q->cs;
    for (; c < end && q->pool_n < batch; c++) {
        uint64_t rti = c / q->rb_entries, count;
        if (rti >= q->rt_entries || !(q->rt[rti] & OFFSET_MASK)) {
            c = (rti + 1) * q->rb_entries - 1;      /* no block: nothing counted there */
            continue;
        }
        int r = get_refcount(b, c, &count);
        if (r < 0)
            return r;
        if (count)
            continue;
        if ((r = set_refcount(b, c, 1)) < 0)
            return r;
        q->pool[q->pool_n++] = c * q->cs;
    }
    q->hole_scan = c;
    if (c >= end)
        q->holes = false;
    return q->pool_n ? blk_fsync_fd(b, b->fd) : 0;
}

static int alloc_cluster(struct blk *b, uint64_t *off)
{
    struct qcow2 *q = Q(b);
    if (q->pool_next == q->pool_n && q->holes) {
        int r = take_freed_clusters(b);
        if (r < 0)
            return r;
    }
    if (q->pool_next < q->pool_n) {
        *off = q->pool[q->pool_next++];
        return 0;
    }
    if (q->next_free >= q->reserved_end) {
        int r = reserve(b);
        if (r < 0)
            return r;
    }
    *off = q->next_free;
    q->next_free += q->cs;
    return 0;
}

/* ---- writing a cluster the image does not have yet ---- */

static int ensure_l2(struct blk *b, uint64_t l1i, uint64_t *l2off)
{
    struct qcow2 *q = Q(b);
    if (l1i >= q->l1_size)
        return -EIO;
    *l2off = q->l1[l1i] & OFFSET_MASK;
    if (*l2off)
        return 0;
    uint64_t c;
    int r = alloc_cluster(b, &c);
    if (r < 0)
        return r;
    memset(q->cow, 0, q->cs);
    if ((r = blk_pwrite(b->fd, q->cow, q->cs, c)) < 0)
        return r;
    uint8_t e[8];
    put_be64(e, c | OFLAG_COPIED);
    if ((r = blk_pwrite(b->fd, e, 8, q->l1_offset + 8 * l1i)) < 0)
        return r;
    q->l1[l1i] = c | OFLAG_COPIED;
    *l2off = c;
    return 0;
}

static int64_t qcow2_write_new(struct blk *b, uint64_t off, const uint8_t *buf, uint64_t len)
{
    struct qcow2 *q = Q(b);
    uint64_t in_cluster = off & (q->cs - 1), start = off - in_cluster;
    uint64_t n = q->cs - in_cluster < len ? q->cs - in_cluster : len;
    uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
    uint64_t l2i = (off >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
    uint64_t l2off;
    int r = ensure_l2(b, l1i, &l2off);
    if (r < 0)
        return r;
    uint8_t *tab;
    if ((r = l2_table(b, l2off, &tab)) < 0)
        return r;
    uint64_t old = be64(tab + 8 * l2i), host = 0;
    if (old & OFLAG_COMPRESSED)
        return -EIO;
    if ((old & OFLAG_ZERO) && (old & OFFSET_MASK) && (old & OFLAG_COPIED))
        host = old & OFFSET_MASK;   /* a preallocated zero cluster: reuse it */
    if (!host && (r = alloc_cluster(b, &host)) < 0)
        return r;
    /* Whole cluster: what was visible before (backing or zeros) around the new bytes. */
    if (n == q->cs)
        ;   /* the write covers it all */
    else if (old & OFLAG_ZERO)
        memset(q->cow, 0, q->cs);
    else if ((r = blk_read_backing(b, start, q->cow, q->cs)) < 0)
        return r;
    memcpy(q->cow + in_cluster, buf, n);
    if ((r = blk_pwrite(b->fd, q->cow, q->cs, host)) < 0)
        return r;
    uint8_t e[8];
    put_be64(e, host | OFLAG_COPIED);
    if ((r = blk_pwrite(b->fd, e, 8, l2off + 8 * l2i)) < 0)
        return r;
    /* l2_table may have evicted and reloaded; refresh the cached copy. */
    if ((r = l2_table(b, l2off, &tab)) < 0)
        return r;
    memcpy(tab + 8 * l2i, e, 8);
    return (int64_t)n;
}

static int qcow2_flush(struct blk *b) { return 0; }

/* Drop one reference to each cluster (a count already 0 stays 0: a damaged image). */
static int unref_clusters(struct blk *b, const uint64_t *offs, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t c = offs[i] / Q(b)->cs, count;
        int r = get_refcount(b, c, &count);
        if (r >= 0 && count)
            r = set_refcount(b, c, (uint16_t)(count - 1));
        if (r < 0)
            return r;
    }
    return 0;
}

/* After a commit (qemu-img's default): every cluster of this layer reads the
 * backing's bytes again, and the L2 tables and data clusters it held are
 * freed for later writes.  The L1 entries go first and are synced; only then
 * do the counts drop, so a crash in between leaves leaks, never a table
 * pointing at a free cluster. */
static int qcow2_make_empty(struct blk *b)
{
    struct qcow2 *q = Q(b);
    uint64_t n = 0, entries = 1ull << q->l2_bits;
    uint64_t cap = entries + 1 > 65536 ? entries + 1 : 65536;
    uint64_t *freed = xmalloc(cap * sizeof(*freed));
    uint8_t *tab = xmalloc(q->cs), zero[8] = { 0 };
    int r = 0;
    for (int i = 0; i < L2_CACHE; i++)
        q->l2c[i].off = 0;
    for (uint32_t i = 0; i <= q->l1_size && r >= 0; i++) {
        uint64_t l2off = i < q->l1_size ? q->l1[i] & OFFSET_MASK : 0;
        /* Unlinked (synced), then unreferenced: a batch whenever the list is full, and at the end. */
        if (n && (i == q->l1_size || n + entries + 1 > cap)) {
            if ((r = blk_fsync_fd(b, b->fd)) < 0 || (r = unref_clusters(b, freed, n)) < 0)
                break;
            n = 0;
        }
        if (!l2off)
            continue;
        if ((r = blk_pread(b->fd, tab, q->cs, l2off)) < 0)
            break;
        for (uint64_t j = 0; j < entries; j++)
            if ((be64(tab + 8 * j) & OFFSET_MASK) && !(be64(tab + 8 * j) & OFLAG_COMPRESSED))
                freed[n++] = be64(tab + 8 * j) & OFFSET_MASK;
        freed[n++] = l2off;
        if ((r = blk_pwrite(b->fd, zero, 8, q->l1_offset + 8ull * i)) >= 0)
            q->l1[i] = 0;
    }
    if (r >= 0)
        r = blk_fsync_fd(b, b->fd);
    free(tab);
    free(freed);
    return r;
}

/* A clean close gives back what was counted but never used. */
static void release_reservation(struct blk *b)
{
    struct qcow2 *q = Q(b);
    while (q->pool_next < q->pool_n)
        if (set_refcount(b, q->pool[q->pool_next++] / q->cs, 0) < 0)
            return;
    if (q->reserved_end <= q->next_free)
        return;
    for (uint64_t c = q->next_free / q->cs; c < q->reserved_end / q->cs; c++)
        if (set_refcount(b, c, 0) < 0)
            return;
    off_t end = lseek(b->fd, 0, SEEK_END);
    if (end > (off_t)q->next_free && ftruncate(b->fd, (off_t)q->next_free) < 0)
        return;
    q->reserved_end = q->next_free;
}

static void qcow2_close(struct blk *b)
{
    struct qcow2 *q = Q(b);
    if (!q)
        return;
    if (b->writable)
        release_reservation(b);
    for (int i = 0; i < L2_CACHE; i++)
        free(q->l2c[i].tab);
    free(q->rb_cache);
    free(q->pool);
    free(q->cow);
    free(q->z_in);
    free(q->z_out);
    free(q->l1);
    free(q->rt);
    free(q);
    b->priv = NULL;
}

/* ---- open ---- */

static int fail(struct blk *b, char *err, size_t errlen, const char *fmt, const char *what, uint64_t v)
{
    char msg[200];
    snprintf(msg, sizeof(msg), fmt, what, (unsigned long long)v);
    blk_set_err(err, errlen, "%s: qcow2: %s", b->path, msg);
    return -1;
}

static int read_table(struct blk *b, uint64_t off, uint64_t entries, uint64_t **out)
{
    uint8_t *raw = xmalloc(entries * 8);
    int r = blk_pread(b->fd, raw, entries * 8, off);
    uint64_t *t = xmalloc(entries * 8);
    for (uint64_t i = 0; i < entries; i++)
        t[i] = be64(raw + 8 * i);
    free(raw);
    *out = t;
    return r;
}

static int parse_extensions(struct blk *b, const uint8_t *h, uint64_t limit, char *err, size_t errlen)
{
    struct qcow2 *q = Q(b);
    uint64_t at = q->version >= 3 ? q->header_len : 72;
    while (at + 8 <= limit) {
        uint32_t type = be32(h + at), len = be32(h + at + 4);
        if (type == 0)
            return 0;
        if (len > limit - at - 8)
            return fail(b, err, errlen, "header extension %s%llx runs past the header cluster", "0x", type);
        if (type == EXT_BACKING_FORMAT) {
            if (len == 0 || len > 16 || !blk_utf8_valid(h + at + 8, len))
                return fail(b, err, errlen, "%sbad backing format name (length %llu)", "", len);
            free(b->backing_fmt);
            b->backing_fmt = xcalloc(1, len + 1);
            memcpy(b->backing_fmt, h + at + 8, len);
        }
        at += 8 + ((len + 7ull) & ~7ull);
    }
    return 0;
}

static int validate_l2(struct blk *b, uint64_t l2off, char *err, size_t errlen);

/* Every table entry must point at a cluster inside the file; compressed ones are refused. */
static int validate_tables(struct blk *b, char *err, size_t errlen)
{
    struct qcow2 *q = Q(b);
    /* Each table once, however many L1 entries share it (a hostile image could repeat one). */
    uint64_t nclusters = b->file_size / q->cs + 1;
    uint8_t *seen = xcalloc(nclusters / 8 + 1, 1);
    int r = 0;
    for (uint32_t i = 0; i < q->l1_size && r == 0; i++) {
        uint64_t l2off = q->l1[i] & OFFSET_MASK;
        if (!l2off)
            continue;
        if (!cluster_in_file(b, l2off, b->file_size) || l2off + q->cs > b->file_size) {
            r = fail(b, err, errlen, "%s %llu points outside the file or is not cluster aligned", "L1 entry", i);
            break;
        }
        uint64_t c = l2off / q->cs;
        if (seen[c / 8] & (1u << (c % 8)))
            continue;
        seen[c / 8] |= (uint8_t)(1u << (c % 8));
        r = validate_l2(b, l2off, err, errlen);
    }
    free(seen);
    return r;
}

static int validate_l2(struct blk *b, uint64_t l2off, char *err, size_t errlen)
{
    struct qcow2 *q = Q(b);
    uint8_t *tab;
    if (l2_table(b, l2off, &tab) < 0)
        return fail(b, err, errlen, "%s at 0x%llx cannot be read", "L2 table", l2off);
    for (uint64_t j = 0; j < (1ull << q->l2_bits); j++) {
        uint64_t e = be64(tab + 8 * j), h = e & OFFSET_MASK;
        if (e & OFLAG_COMPRESSED) {
            if (b->writable) {
                blk_set_err(err, errlen, "%s: qcow2: compressed clusters are read-only here "
                            "(use -snapshot or readonly=on, or decompress: qemu-img convert -O qcow2)", b->path);
                return -1;
            }
            uint64_t start, bytes;
            compressed_range(q, e, &start, &bytes);
            if (start >= b->file_size)
                return fail(b, err, errlen, "%s points outside the file (host offset 0x%llx)",
                            "a compressed L2 entry", start);
            continue;
        }
        if (h && !cluster_in_file(b, h, b->file_size))
            return fail(b, err, errlen, "%s points outside the file (host offset 0x%llx)", "an L2 entry", h);
    }
    return 0;
}

static int validate_refcounts(struct blk *b, char *err, size_t errlen)
{
    struct qcow2 *q = Q(b);
    uint64_t highest = 0, first_free = UINT64_MAX, nclusters = b->file_size / q->cs + 1;
    uint8_t *seen = xcalloc(nclusters / 8 + 1, 1);
    for (uint64_t i = 0; i < q->rt_entries; i++) {
        uint64_t rb = q->rt[i] & OFFSET_MASK;
        if (!rb)
            continue;
        if (!cluster_in_file(b, rb, b->file_size) || rb + q->cs > b->file_size) {
            free(seen);
            return fail(b, err, errlen, "%s %llu points outside the file", "refcount table entry", i);
        }
        uint64_t rc = rb / q->cs;
        bool again = seen[rc / 8] & (1u << (rc % 8));
        seen[rc / 8] |= (uint8_t)(1u << (rc % 8));
        if (!b->writable)
            continue;
        if (again) {
            free(seen);
            return fail(b, err, errlen, "%s %llu shares its refcount block with another", "refcount table entry", i);
        }
        for (uint64_t k = 0; k < q->rb_entries; k++) {
            uint64_t c;
            if (get_refcount(b, i * q->rb_entries + k, &c) < 0) {
                free(seen);
                return fail(b, err, errlen, "%s at 0x%llx cannot be read", "refcount block", rb);
            }
            if (c)
                highest = i * q->rb_entries + k + 1;
            else if (first_free == UINT64_MAX)
                first_free = i * q->rb_entries + k;
        }
    }
    free(seen);
    uint64_t end = (b->file_size + q->cs - 1) & ~(q->cs - 1);
    q->next_free = q->reserved_end = highest * q->cs > end ? highest * q->cs : end;
    q->holes = first_free < q->next_free / q->cs;
    q->hole_scan = first_free;
    return 0;
}

static int qcow2_open(struct blk *b, char *err, size_t errlen)
{
    uint8_t h[512] = { 0 };
    if (b->file_size < 72 || blk_pread(b->fd, h, b->file_size < 512 ? b->file_size : 512, 0) < 0)
        return fail(b, err, errlen, "%sfile too short for a header (%llu bytes)", "", b->file_size);
    struct qcow2 *q = xcalloc(1, sizeof(*q));
    b->priv = q;
    q->version = be32(h + 4);
    q->cluster_bits = be32(h + 20);
    if (be32(h) != QCOW2_MAGIC || (q->version != 2 && q->version != 3))
        return fail(b, err, errlen, "%snot a qcow2 header (version %llu)", "", q->version);
    if (q->cluster_bits < 9 || q->cluster_bits > 21)
        return fail(b, err, errlen, "%scluster_bits %llu out of range 9..21", "", q->cluster_bits);
    q->cs = 1ull << q->cluster_bits;
    q->l2_bits = q->cluster_bits - 3;
    b->size = be64(h + 24);
    if (be32(h + 32)) {
        blk_set_err(err, errlen, "%s: qcow2: encrypted images are not supported", b->path);
        return -1;
    }
    q->l1_size = be32(h + 36);
    q->l1_offset = be64(h + 40);
    q->rt_offset = be64(h + 48);
    q->rt_clusters = be32(h + 56);
    q->nb_snapshots = be32(h + 60);
    q->snapshots_offset = be64(h + 64);
    q->refcount_order = 4;
    q->header_len = 72;
    uint64_t incompat = 0;
    if (q->version >= 3) {
        incompat = be64(h + 72);
        q->refcount_order = be32(h + 96);
        q->header_len = be32(h + 100);
        if (q->header_len < 104 || q->header_len > q->cs || q->header_len > 512)
            return fail(b, err, errlen, "%sheader_length %llu out of range", "", q->header_len);
        if (q->refcount_order > 6)
            return fail(b, err, errlen, "%srefcount_order %llu out of range", "", q->refcount_order);
        if (incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT))
            return fail(b, err, errlen, "%sunsupported incompatible features 0x%llx (external data file, "
                        "compression type or extended L2)", "", incompat);
        if (incompat & INCOMPAT_CORRUPT) {
            blk_set_err(err, errlen, "%s: qcow2: image is marked corrupt; repair with qemu-img check -r all", b->path);
            return -1;
        }
        if ((incompat & INCOMPAT_DIRTY) && b->writable) {
            blk_set_err(err, errlen, "%s: qcow2: image was not closed cleanly (lazy refcounts); "
                        "repair with qemu-img check -r all", b->path);
            return -1;
        }
    }
    uint64_t per_l1 = q->cs << q->l2_bits;
    uint64_t need_l1 = b->size / per_l1 + (b->size % per_l1 != 0);
    if (b->size > (1ull << 56) || need_l1 > q->l1_size)
        return fail(b, err, errlen, "%sL1 table of %llu entries too small for the disk size", "", q->l1_size);
    if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES || (q->l1_size && (q->l1_offset & (q->cs - 1) ||
        q->l1_offset > b->file_size || (uint64_t)q->l1_size * 8 > b->file_size - q->l1_offset)))
        return fail(b, err, errlen, "%sL1 table (%llu entries) outside the file or too large", "", q->l1_size);
    if (!q->rt_clusters || (uint64_t)q->rt_clusters * q->cs > MAX_RT_BYTES || q->rt_offset & (q->cs - 1) ||
        q->rt_offset > b->file_size || (uint64_t)q->rt_clusters * q->cs > b->file_size - q->rt_offset)
        return fail(b, err, errlen, "%srefcount table (%llu clusters) outside the file or too large", "",
                    q->rt_clusters);
    q->rt_entries = (uint64_t)q->rt_clusters * q->cs / 8;
    q->rb_entries = q->cs * 8 >> q->refcount_order;
    q->rb_cache = xmalloc(q->cs);
    q->cow = xmalloc(q->cs);

    uint64_t bf_off = be64(h + 8);
    uint32_t bf_len = be32(h + 16);
    uint64_t ext_limit = q->cs < 4096 ? q->cs : 4096;
    if (bf_off) {
        if (bf_len == 0 || bf_len > 1023 || bf_off > ext_limit || bf_len > ext_limit - bf_off)
            return fail(b, err, errlen, "%sbacking file name (%llu bytes) outside the header cluster", "", bf_len);
        ext_limit = bf_off;
    }
    uint8_t *hc = xcalloc(1, 4096);
    int r = blk_pread(b->fd, hc, b->file_size < 4096 ? b->file_size : 4096, 0);
    if (r >= 0)
        r = parse_extensions(b, hc, ext_limit, err, errlen);
    if (r >= 0 && bf_off) {
        if (memchr(hc + bf_off, 0, bf_len) || !blk_utf8_valid(hc + bf_off, bf_len)) {
            r = fail(b, err, errlen, "%sbacking file name is not UTF-8 text (%llu bytes)", "", bf_len);
        } else {
            b->backing_path = xcalloc(1, bf_len + 1);
            memcpy(b->backing_path, hc + bf_off, bf_len);
        }
    }
    free(hc);
    if (r < 0)
        return -1;
    if (q->nb_snapshots > 65536)
        return fail(b, err, errlen, "%s%llu snapshots (at most 65536)", "", q->nb_snapshots);
    if (q->nb_snapshots && b->writable) {
        blk_set_err(err, errlen, "%s: qcow2: images with internal snapshots open read-only here "
                    "(readonly=on, -snapshot, or qemu-img snapshot -d)", b->path);
        return -1;
    }
    if (b->writable && q->refcount_order != 4) {
        blk_set_err(err, errlen, "%s: qcow2: refcount_order %u opens read-only here (16-bit counts only)",
                    b->path, q->refcount_order);
        return -1;
    }
    if (read_table(b, q->l1_offset, q->l1_size, &q->l1) < 0 || read_table(b, q->rt_offset, q->rt_entries, &q->rt) < 0)
        return fail(b, err, errlen, "%scannot read the L1 or refcount table%llu", "", 0);
    if (validate_tables(b, err, errlen) < 0 || validate_refcounts(b, err, errlen) < 0)
        return -1;
    if (b->writable && q->version >= 3 && be64(h + 88)) {
        /* Autoclear features (bitmaps...) we do not keep up to date: say so by clearing them. */
        uint8_t zero[8] = { 0 };
        if (blk_pwrite(b->fd, zero, 8, 88) < 0)
            return fail(b, err, errlen, "%scannot update the header%llu", "", 0);
    }
    return 0;
}

/* ---- check: recount every reference and compare ---- */

struct refs {
    uint32_t *count;
    uint64_t n;
};

static void ref(struct blk *b, struct refs *rf, uint64_t off, uint64_t bytes, struct blk_check_result *res, const char *what)
{
    struct qcow2 *q = Q(b);
    for (uint64_t c = off / q->cs; c < (off + bytes + q->cs - 1) / q->cs; c++) {
        if (c >= rf->n) {
            if (!res->errors)
                snprintf(res->first_error, sizeof(res->first_error), "%s at 0x%llx is outside the file", what,
                         (unsigned long long)(c * q->cs));
            res->errors++;
            return;
        }
        rf->count[c]++;
    }
}

static void ref_l1(struct blk *b, struct refs *rf, uint64_t l1off, uint32_t l1size, struct blk_check_result *res, bool active)
{
    struct qcow2 *q = Q(b);
    ref(b, rf, l1off, (uint64_t)l1size * 8, res, "an L1 table");
    uint64_t *l1;
    if ((uint64_t)l1size * 8 > MAX_L1_BYTES || read_table(b, l1off, l1size, &l1) < 0) {
        res->errors++;
        return;
    }
    uint8_t *tab = xmalloc(q->cs);
    for (uint32_t i = 0; i < l1size; i++) {
        uint64_t l2off = l1[i] & OFFSET_MASK;
        if (!l2off)
            continue;
        ref(b, rf, l2off, q->cs, res, "an L2 table");
        if (blk_pread(b->fd, tab, q->cs, l2off) < 0)
            continue;
        for (uint64_t j = 0; j < (1ull << q->l2_bits); j++) {
            uint64_t e = be64(tab + 8 * j), h = e & OFFSET_MASK;
            if (e & OFLAG_COMPRESSED) {
                uint64_t start, bytes;
                compressed_range(q, e, &start, &bytes);
                ref(b, rf, start & ~511ull, (start & 511) + bytes, res, "a compressed cluster");
                if (active)
                    res->allocated += q->cs;
                continue;
            }
            if (!h)
                continue;
            ref(b, rf, h, q->cs, res, "a data cluster");
            if (active && !(e & OFLAG_ZERO))
                res->allocated += q->cs;
        }
    }
    free(tab);
    free(l1);
}

static int qcow2_check(struct blk *b, struct blk_check_result *res)
{
    struct qcow2 *q = Q(b);
    struct refs rf;
    rf.n = (blk_file_size(b) + q->cs - 1) / q->cs;
    rf.count = xcalloc(rf.n ? rf.n : 1, sizeof(uint32_t));
    ref(b, &rf, 0, q->cs, res, "the header");
    ref(b, &rf, q->rt_offset, (uint64_t)q->rt_clusters * q->cs, res, "the refcount table");
    for (uint64_t i = 0; i < q->rt_entries; i++)
        if (q->rt[i] & OFFSET_MASK)
            ref(b, &rf, q->rt[i] & OFFSET_MASK, q->cs, res, "a refcount block");
    ref_l1(b, &rf, q->l1_offset, q->l1_size, res, true);
    uint64_t at = q->snapshots_offset;
    for (uint32_t s = 0; s < q->nb_snapshots; s++) {
        uint8_t e[40];
        if (blk_pread(b->fd, e, sizeof(e), at) < 0) {
            res->errors++;
            break;
        }
        ref_l1(b, &rf, be64(e), be32(e + 8), res, false);
        at += (40 + be32(e + 36) + be16(e + 12) + be16(e + 14) + 7) & ~7ull;
    }
    if (q->nb_snapshots)
        ref(b, &rf, q->snapshots_offset, at - q->snapshots_offset, res, "the snapshot table");
    for (uint64_t c = 0; c < rf.n; c++) {
        uint64_t have;
        if (get_refcount(b, c, &have) < 0) {
            res->errors++;
            continue;
        }
        if (have < rf.count[c]) {
            if (!res->errors)
                snprintf(res->first_error, sizeof(res->first_error), "cluster %llu: refcount %llu, %u references",
                         (unsigned long long)c, (unsigned long long)have, rf.count[c]);
            res->errors++;
        } else if (have > rf.count[c]) {
            res->leaks++;
        }
    }
    free(rf.count);
    return 0;
}

/* ---- create ---- */

int blk_qcow2_create_fd(int fd, uint64_t size, const char *backing, const char *backing_fmt, char *err, size_t errlen);

static int create_fd(int fd, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen)
{
    uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
    int version = o->compat ? o->compat : 3;
    if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)) || (version != 2 && version != 3)) {
        blk_set_err(err, errlen, "qcow2: cluster size must be a power of two in 512..2M and compat 2 or 3");
        return -1;
    }
    uint32_t bits = (uint32_t)__builtin_ctzll(cs);
    uint64_t per_l1 = cs * (cs / 8);
    uint64_t l1_size = size / per_l1 + (size % per_l1 != 0);
    uint64_t l1_clusters = (l1_size * 8 + cs - 1) / cs;
    if (!l1_clusters)
        l1_clusters = 1;
    uint64_t rb_entries = cs * 8 / 16;
    /* Enough refcount blocks to count a fully allocated image and its tables. */
    uint64_t max_clusters = size / cs + size / per_l1 + l1_clusters + 1024;
    uint64_t rt_clusters = ((max_clusters / rb_entries + 1) * 8 + cs - 1) / cs;
    if (rt_clusters * cs > MAX_RT_BYTES || l1_size * 8 > MAX_L1_BYTES) {
        blk_set_err(err, errlen, "qcow2: a disk of %llu bytes needs tables too large for %llu-byte clusters",
                    (unsigned long long)size, (unsigned long long)cs);
        return -1;
    }
    uint64_t rt_off = cs, rb_off = rt_off + rt_clusters * cs, l1_off = rb_off + cs;
    uint64_t total = l1_off / cs + l1_clusters;
    if (total > rb_entries) {
        blk_set_err(err, errlen, "qcow2: too many metadata clusters for one refcount block");
        return -1;
    }
    uint8_t *c = xcalloc(1, cs);
    put_be32(c, QCOW2_MAGIC);
    put_be32(c + 4, (uint32_t)version);
    put_be32(c + 20, bits);
    put_be64(c + 24, size);
    put_be32(c + 36, (uint32_t)l1_size);
    put_be64(c + 40, l1_off);
    put_be64(c + 48, rt_off);
    put_be32(c + 56, (uint32_t)rt_clusters);
    uint64_t at = 72;
    if (version == 3) {
        put_be32(c + 96, 4);
        put_be32(c + 100, 104);
        at = 104;
    }
    const char *backing = o->backing, *backing_fmt = o->backing_fmt ? o->backing_fmt : "raw";
    if (backing) {
        size_t fl = strlen(backing_fmt), bl = strlen(backing);
        if (bl > 1023 || fl > 16 || at + 8 + 24 + 8 + bl > cs) {
            blk_set_err(err, errlen, "qcow2: backing file name too long (%zu bytes)", bl);
            free(c);
            return -1;
        }
        put_be32(c + at, EXT_BACKING_FORMAT);
        put_be32(c + at + 4, (uint32_t)fl);
        memcpy(c + at + 8, backing_fmt, fl);
        at += 8 + ((fl + 7) & ~7ull);
        at += 8;    /* end-of-extensions marker: zeros */
        memcpy(c + at, backing, bl);
        put_be64(c + 8, at);
        put_be32(c + 16, (uint32_t)bl);
    }
    int r = blk_pwrite(fd, c, cs, 0);
    memset(c, 0, cs);
    put_be64(c, rb_off);
    for (uint64_t i = 0; i < rt_clusters && r >= 0; i++, memset(c, 0, cs))
        r = blk_pwrite(fd, c, cs, rt_off + i * cs);
    for (uint64_t i = 0; i < total; i++)
        put_be16(c + 2 * i, 1);
    if (r >= 0)
        r = blk_pwrite(fd, c, cs, rb_off);
    memset(c, 0, cs);
    for (uint64_t i = 0; i < l1_clusters && r >= 0; i++)
        r = blk_pwrite(fd, c, cs, l1_off + i * cs);
    free(c);
    if (r < 0) {
        blk_set_err(err, errlen, "qcow2: %s", strerror(-r));
        return -1;
    }
    return 0;
}

int blk_qcow2_create_fd(int fd, uint64_t size, const char *backing, const char *backing_fmt, char *err, size_t errlen)
{
    struct blk_create_opts o = { .backing = backing, .backing_fmt = backing_fmt };
    return create_fd(fd, size, &o, err, errlen);
}

static int qcow2_create(const char *path, uint64_t size, const struct blk_create_opts *o, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        blk_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char inner[400] = "";
    int r = create_fd(fd, size, o, inner, sizeof(inner));
    if (r < 0)
        blk_set_err(err, errlen, "%s: %s", path, inner);
    else if (fsync(fd) < 0)
        blk_set_err(err, errlen, "%s: %s", path, strerror(errno)), r = -1;
    close(fd);
    return r;
}

const struct blk_format blk_fmt_qcow2 = {
    .name = "qcow2",
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .map = qcow2_map,
    .read_special = qcow2_read_compressed,
    .write_new = qcow2_write_new,
    .flush = qcow2_flush,
    .make_empty = qcow2_make_empty,
    .check = qcow2_check,
    .create = qcow2_create,
};
