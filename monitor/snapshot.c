/*
 * Snapshots (see snapshot.h).
 *
 * The folder NAME.snapshots/ beside the VM's first disk (or its -kernel, or
 * the current directory) holds:
 *   index          one line per snapshot, per frozen disk layer and per
 *                  disk's current layer (text, rewritten atomically);
 *   ID.rvs         a snapshot's machine state (snapshot_file.h);
 *   hdK-N.qcow2    disk layers.
 *
 * Disks.  A writable disk is frozen at savevm: the image it writes to
 * becomes the snapshot's layer and is never written again; a new qcow2
 * layer over it takes the guest's writes from then on, and the index names
 * it as the disk's current layer, which later runs open in place of the
 * image given on the command line.  A -snapshot disk keeps its temporary
 * overlay; savevm copies what the overlay holds into a layer file over the
 * overlay's parent.  loadvm puts a fresh layer (or overlay) over the
 * snapshot's layer.  Layer files that no snapshot and no current layer
 * needs any more are deleted.
 */
#define _GNU_SOURCE
/* Paths go into fixed buffers: a message cut short at the caller's length is fine. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "monitor/snapshot.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <dirent.h>

#include "bt/bt.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/blk.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "monitor/snapshot_file.h"

#define MAX_SNAPSHOTS 256
#define NAME_MAX_LEN 63
#define NDISKS 4

struct snap_entry {
    int id;
    char name[NAME_MAX_LEN + 1];
    int64_t date;               /* host time of savevm, seconds since the epoch */
    int64_t vm_ns;              /* the guest's virtual clock then */
    uint64_t icount;
    uint64_t size;              /* bytes of the state file */
    char *layer[NDISKS];        /* frozen layer per disk slot, or NULL */
};

struct snap_index {
    struct snap_entry e[MAX_SNAPSHOTS];
    int n;
    char *current[NDISKS];      /* the layer each disk runs on, or NULL: the image given */
    char *base[NDISKS];         /* ... when the command line names this image */
};

struct snapshots {
    char dir[PATH_MAX];
    char last[NAME_MAX_LEN + 1];
};

/* ---- the folder ---- */

static const char *first_image(const struct machine_config *cfg)
{
    for (int k = 0; k < NDISKS; k++)
        if (cfg->drive[k].path && !cfg->drive[k].cdrom)
            return cfg->drive[k].path;
    if (cfg->floppy[0].path)
        return cfg->floppy[0].path;
    return cfg->kernel;
}

static void folder_for(const struct machine_config *cfg, char *dir, size_t cap)
{
    if (cfg->snapshot_dir) {
        snprintf(dir, cap, "%s", cfg->snapshot_dir);
        return;
    }
    const char *img = first_image(cfg);
    snprintf(dir, cap, "%s.snapshots", img ? img : "retrovisor");
}

static struct snapshots *snaps(struct machine *m)
{
    if (!m->snapshots) {
        m->snapshots = xcalloc(1, sizeof(*m->snapshots));
        folder_for(&m->cfg, m->snapshots->dir, sizeof(m->snapshots->dir));
    }
    return m->snapshots;
}

static void path_in(struct machine *m, const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", snaps(m)->dir, file);
}

/* ---- the index ---- */

static char *dup_str(const char *s)
{
    char *d = xmalloc(strlen(s) + 1);
    strcpy(d, s);
    return d;
}

static void index_free(struct snap_index *ix)
{
    for (int i = 0; i < ix->n; i++)
        for (int k = 0; k < NDISKS; k++)
            free(ix->e[i].layer[k]);
    for (int k = 0; k < NDISKS; k++) {
        free(ix->current[k]);
        free(ix->base[k]);
    }
    memset(ix, 0, sizeof(*ix));
}

static struct snap_entry *find_id(struct snap_index *ix, int id)
{
    for (int i = 0; i < ix->n; i++)
        if (ix->e[i].id == id)
            return &ix->e[i];
    return NULL;
}

static struct snap_entry *find_name(struct snap_index *ix, const char *name)
{
    for (int i = 0; i < ix->n; i++)
        if (!strcmp(ix->e[i].name, name))
            return &ix->e[i];
    /* QEMU accepts the ID where a name is expected. */
    char *end;
    long id = strtol(name, &end, 10);
    return *name && !*end ? find_id(ix, (int)id) : NULL;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

/* One line of the index; false when it is malformed. */
static bool parse_line(struct snap_index *ix, char *line)
{
    char word[16], a[PATH_MAX], b[PATH_MAX];
    int slot, id;
    if (line[0] == '#' || line[0] == '\n' || line[0] == 0)
        return true;
    if (sscanf(line, "%15s", word) != 1)
        return false;
    if (!strcmp(word, "snapshot")) {
        if (ix->n == MAX_SNAPSHOTS)
            return false;
        struct snap_entry *e = &ix->e[ix->n];
        char name[NAME_MAX_LEN + 2];
        long long date, vm_ns;
        unsigned long long icount, size;
        if (sscanf(line, "snapshot %d %64s %lld %lld %llu %llu", &e->id, name, &date, &vm_ns, &icount,
                   &size) != 6 || !valid_name(name) || e->id <= 0)
            return false;
        strcpy(e->name, name);
        e->date = date;
        e->vm_ns = vm_ns;
        e->icount = icount;
        e->size = size;
        ix->n++;
        return true;
    }
    if (!strcmp(word, "layer")) {
        if (sscanf(line, "layer %d %d %4095[^\n]", &id, &slot, a) != 3 || slot < 0 || slot >= NDISKS)
            return false;
        struct snap_entry *e = find_id(ix, id);
        if (!e || e->layer[slot])
            return false;
        e->layer[slot] = dup_str(a);
        return true;
    }
    if (!strcmp(word, "current")) {
        /* current SLOT LAYER <TAB> BASE: paths may hold spaces, not tabs */
        if (sscanf(line, "current %d %4095[^\t]\t%4095[^\n]", &slot, a, b) != 3 || slot < 0 || slot >= NDISKS ||
            ix->current[slot])
            return false;
        ix->current[slot] = dup_str(a);
        ix->base[slot] = dup_str(b);
        return true;
    }
    return false;
}

/* Read the index; a missing one is an empty index.  -1 with err when malformed. */
static int index_read(struct machine *m, struct snap_index *ix, char *err, size_t errlen)
{
    memset(ix, 0, sizeof(*ix));
    char path[PATH_MAX + 16];
    path_in(m, "index", path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[2 * PATH_MAX + 64];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (!parse_line(ix, line)) {
            snprintf(err, errlen, "%s: line %d is malformed", path, lineno);
            fclose(f);
            index_free(ix);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int index_write(struct machine *m, const struct snap_index *ix, char *err, size_t errlen)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
    path_in(m, "index", path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "# retrovisor snapshots: snapshot ID NAME DATE VM_NS ICOUNT SIZE; layer ID SLOT FILE; "
               "current SLOT FILE<TAB>IMAGE\n");
    for (int i = 0; i < ix->n; i++) {
        const struct snap_entry *e = &ix->e[i];
        fprintf(f, "snapshot %d %s %lld %lld %llu %llu\n", e->id, e->name, (long long)e->date,
                (long long)e->vm_ns, (unsigned long long)e->icount, (unsigned long long)e->size);
        for (int k = 0; k < NDISKS; k++)
            if (e->layer[k])
                fprintf(f, "layer %d %d %s\n", e->id, k, e->layer[k]);
    }
    for (int k = 0; k < NDISKS; k++)
        if (ix->current[k])
            fprintf(f, "current %d %s\t%s\n", k, ix->current[k], ix->base[k]);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Create the folder if need be; from then on its path is absolute, so
 * that the index names files wherever retrovisor is started from. */
static int ensure_folder(struct machine *m, char *err, size_t errlen)
{
    char *dir = snaps(m)->dir;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char *r = realpath(dir, NULL);
    if (r) {
        snprintf(dir, PATH_MAX, "%s", r);
        free(r);
    }
    return 0;
}

/* ---- disks ---- */

/* Disks whose contents a snapshot keeps: writable hard disks. */
static bool disk_in_snapshots(struct machine *m, int k)
{
    return m->disk[k] && !blockdev_readonly(m->disk[k]);
}

static void abs_path(const char *p, char *out, size_t cap)
{
    char *r = realpath(p, NULL);
    snprintf(out, cap, "%s", r ? r : p);
    free(r);
}

/* A new qcow2 layer file in the folder over `parent`; its path in out. */
static int new_layer(struct machine *m, int k, const char *parent, char *out, size_t cap, char *err, size_t errlen)
{
    char parent_abs[PATH_MAX];
    abs_path(parent, parent_abs, sizeof(parent_abs));
    for (int seq = 1; seq < 1000000; seq++) {
        char name[64];
        snprintf(name, sizeof(name), "hd%d-%d.qcow2", k, seq);
        path_in(m, name, out, cap);
        if (access(out, F_OK) == 0)
            continue;
        struct blk_create_opts o = { .backing = parent_abs };
        return blk_create("qcow2", out, 0, &o, err, errlen);
    }
    snprintf(err, errlen, "%s: no free layer name", snaps(m)->dir);
    return -1;
}

/* Copy what the -snapshot overlay holds into a layer file over its parent. */
static int export_overlay(struct machine *m, int k, char *out, size_t cap, char *err, size_t errlen)
{
    struct blockdev *bd = m->disk[k];
    struct blk *top = blockdev_top(bd);
    if (!top) {
        snprintf(err, errlen, "%s: the disk is not open", blockdev_path(bd));
        return -1;
    }
    if (new_layer(m, k, blockdev_layer_path(bd), out, cap, err, errlen) < 0)
        return -1;
    struct blk *dst = blk_open(out, "qcow2", BLK_WRITABLE | BLK_NO_BACKING, err, errlen);
    if (!dst)
        return -1;
    uint64_t size = blk_size(top);
    static uint8_t buf[1 << 20];
    int rc = 0;
    for (uint64_t off = 0; off < size && rc == 0;) {
        uint64_t n;
        int st = blk_block_state(top, off, size - off, &n);
        if (st < 0) {
            rc = st;
            break;
        }
        if (n > size - off)
            n = size - off;
        if (st != BLK_STATE_BACKING) {
            for (uint64_t done = 0; done < n && rc == 0;) {
                size_t chunk = n - done > sizeof(buf) ? sizeof(buf) : (size_t)(n - done);
                if (st == BLK_STATE_ZERO)
                    memset(buf, 0, chunk);
                else
                    rc = blk_read(top, off + done, buf, chunk);
                if (rc == 0)
                    rc = blk_write(dst, off + done, buf, chunk);
                done += chunk;
            }
        }
        off += n;
    }
    if (rc == 0)
        rc = blk_flush(dst);
    blk_close(dst);
    if (rc < 0) {
        snprintf(err, errlen, "%s: copying the -snapshot overlay: %s", out, strerror(-rc));
        unlink(out);
        return -1;
    }
    return 0;
}

static void set_current(struct snap_index *ix, int k, const char *layer, const char *image)
{
    char a[PATH_MAX];
    free(ix->current[k]);
    ix->current[k] = dup_str(layer);
    if (!ix->base[k]) {
        abs_path(image, a, sizeof(a));
        ix->base[k] = dup_str(a);
    }
}

/* savevm's disk step for slot k: the layer the snapshot keeps in out. */
static int freeze_disk(struct machine *m, int k, struct snap_index *ix, char *out, size_t cap, char *err,
                       size_t errlen)
{
    struct blockdev *bd = m->disk[k];
    if (blockdev_snapshot(bd))
        return export_overlay(m, k, out, cap, err, errlen);
    char frozen[PATH_MAX], next[PATH_MAX];
    abs_path(blockdev_layer_path(bd), frozen, sizeof(frozen));
    if (blockdev_flush(bd) < 0) {
        snprintf(err, errlen, "%s: flush failed", frozen);
        return -1;
    }
    if (new_layer(m, k, frozen, next, sizeof(next), err, errlen) < 0)
        return -1;
    if (blockdev_reopen(bd, next, err, errlen) < 0) {
        unlink(next);
        return -1;
    }
    set_current(ix, k, next, blockdev_path(bd));
    snprintf(out, cap, "%s", frozen);
    return 0;
}

/* loadvm's disk step: the disk runs on a fresh layer over `layer`. */
static int thaw_disk(struct machine *m, int k, const char *layer, struct snap_index *ix, char *err, size_t errlen)
{
    struct blockdev *bd = m->disk[k];
    if (blockdev_snapshot(bd))
        return blockdev_reopen(bd, layer, err, errlen);
    char next[PATH_MAX];
    if (new_layer(m, k, layer, next, sizeof(next), err, errlen) < 0)
        return -1;
    if (blockdev_reopen(bd, next, err, errlen) < 0) {
        unlink(next);
        return -1;
    }
    set_current(ix, k, next, blockdev_path(bd));
    return 0;
}

static bool in_list(char **list, int n, const char *p)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], p))
            return true;
    return false;
}

/* Add p and the layers under it (inside the folder) to the list of files in use. */
static void mark_chain(char **used, int *n, int cap, const char *p)
{
    char cur[PATH_MAX];
    snprintf(cur, sizeof(cur), "%s", p);
    for (int depth = 0; depth < 64 && *n < cap; depth++) {
        char a[PATH_MAX];
        abs_path(cur, a, sizeof(a));
        if (in_list(used, *n, a))
            return;
        used[(*n)++] = dup_str(a);
        char err[256];
        struct blk *b = blk_open(cur, NULL, BLK_NO_BACKING | BLK_NO_LOCK, err, sizeof(err));
        if (!b)
            return;
        const char *parent = blk_backing_path(b);
        if (!parent) {
            blk_close(b);
            return;
        }
        if (parent[0] == '/')
            snprintf(cur, sizeof(cur), "%s", parent);
        else {
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s", cur);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = 0;
            else
                strcpy(dir, ".");
            char joined[2 * PATH_MAX + 2];
            snprintf(joined, sizeof(joined), "%s/%s", dir, parent);
            snprintf(cur, sizeof(cur), "%s", joined);
        }
        blk_close(b);
    }
}

/* Delete the folder's layer files that nothing needs: not a snapshot's
 * layer, not a disk's current layer, not under either. */
static void collect_layers(struct machine *m, const struct snap_index *ix)
{
    enum { CAP = 4096 };
    char **used = xcalloc(CAP, sizeof(char *));
    int n = 0;
    for (int i = 0; i < ix->n; i++)
        for (int k = 0; k < NDISKS; k++)
            if (ix->e[i].layer[k])
                mark_chain(used, &n, CAP, ix->e[i].layer[k]);
    for (int k = 0; k < NDISKS; k++) {
        if (ix->current[k])
            mark_chain(used, &n, CAP, ix->current[k]);
        if (m->disk[k])
            mark_chain(used, &n, CAP, blockdev_layer_path(m->disk[k]));
    }
    DIR *d = opendir(snaps(m)->dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            int slot, seq;
            char tail[8];
            if (sscanf(de->d_name, "hd%d-%d.qcow%7s", &slot, &seq, tail) != 3 || strcmp(tail, "2"))
                continue;
            char p[PATH_MAX + 64], a[PATH_MAX];
            path_in(m, de->d_name, p, sizeof(p));
            abs_path(p, a, sizeof(a));
            if (!in_list(used, n, a))
                unlink(p);
        }
        closedir(d);
    }
    for (int i = 0; i < n; i++)
        free(used[i]);
    free(used);
}

/* ---- machine state ---- */

/* What the machine itself keeps beside its devices: the clock and the
 * instruction count. */
struct machine_record {
    uint64_t icount;
    int64_t now;
    uint64_t clock_insns;
    uint8_t ferr;
};

static const struct state_field machine_fields[] = {
    STATE_FIELD(struct machine_record, icount),
    STATE_FIELD(struct machine_record, now),
    STATE_FIELD(struct machine_record, clock_insns),
    STATE_FIELD(struct machine_record, ferr),
};
static const struct state_table machine_table = {
    .name = "machine", .version = 1, .fields = machine_fields, .nfields = STATE_COUNT(machine_fields),
};

/* Which firmware and memory the state belongs to: a snapshot loads only
 * into the same kind of machine. */
struct config_record {
    uint64_t ram_size;
    uint32_t bios_crc;
    uint32_t vga_rom_crc;
};
static const struct state_field config_fields[] = {
    STATE_FIELD(struct config_record, ram_size),
    STATE_FIELD(struct config_record, bios_crc),
    STATE_FIELD(struct config_record, vga_rom_crc),
};
static const struct state_table config_table = {
    .name = "config", .version = 1, .fields = config_fields, .nfields = STATE_COUNT(config_fields),
};

static struct config_record config_of(struct machine *m)
{
    struct physmem *pm = m->pm;
    return (struct config_record){
        .ram_size = pm->ram_size,
        .bios_crc = (uint32_t)crc32(0, pm->bios, pm->bios_size),
        .vga_rom_crc = pm->vga_rom ? (uint32_t)crc32(0, pm->vga_rom, pm->vga_rom_size) : 0,
    };
}

#define ROM_SHADOW_SIZE 0x40000u

static void put_record(struct snapfile_writer *w, const char *section, const struct state_table *t,
                       const char *name, const void *opaque)
{
    size_t mark = snapfile_section_begin(w, section);
    state_save(t, name, opaque, &w->b);
    snapfile_section_end(w, mark);
}

static void section_name(char *out, size_t cap, const char *dev)
{
    snprintf(out, cap, "dev:%s", dev);
}

/* Serialize the whole machine into w. */
static void save_machine(struct machine *m, struct snapfile_writer *w)
{
    struct config_record cfg = config_of(m);
    put_record(w, "config", &config_table, NULL, &cfg);
    struct machine_record mr = {
        .icount = cpu_icount(&m->cpu),
        .now = vclock_now(m->clock),
        .clock_insns = vclock_insns(m->clock),
        .ferr = m->ferr,
    };
    put_record(w, "machine", &machine_table, NULL, &mr);
    put_record(w, "cpu", &cpu_state_table, NULL, &m->cpu);
    for (int i = 0; i < bus_device_count(m->bus); i++) {
        const struct device *d = bus_device(m->bus, i);
        if (!d->state)
            continue;
        char sec[96];
        section_name(sec, sizeof(sec), d->name);
        put_record(w, sec, d->state, d->name, d->opaque);
    }
    size_t mark = snapfile_section_begin(w, "ram");
    snapfile_put_memory(&w->b, m->pm->ram, m->pm->ram_size);
    snapfile_section_end(w, mark);
    mark = snapfile_section_begin(w, "rom-shadow");
    snapfile_put_memory(&w->b, m->pm->rom_shadow, ROM_SHADOW_SIZE);
    snapfile_section_end(w, mark);
}

/* Everything a load needs, checked before the machine is touched. */
struct prepared {
    struct snapfile f;
    const struct snapfile_section *machine, *cpu;
};

static int check_record(const struct snapfile *f, const char *section, const struct state_table *t,
                        const char *name, const struct snapfile_section **out, char *err, size_t errlen)
{
    const struct snapfile_section *s = snapfile_find(f, section);
    if (!s) {
        snprintf(err, errlen, "it has no '%s' record (a different machine?)", name ? name : t->name);
        return -1;
    }
    if (state_check(t, name, s->data, s->len, err, errlen) < 0)
        return -1;
    if (out)
        *out = s;
    return 0;
}

static int check_config(struct machine *m, const struct snapfile *f, char *err, size_t errlen)
{
    const struct snapfile_section *s;
    if (check_record(f, "config", &config_table, NULL, &s, err, errlen) < 0)
        return -1;
    struct config_record want = config_of(m), got = {0};
    state_apply(&config_table, &got, s->data, s->len);
    if (got.ram_size != want.ram_size) {
        snprintf(err, errlen, "it was taken with -m %llu, this machine has %llu MiB",
                 (unsigned long long)(got.ram_size >> 20), (unsigned long long)(want.ram_size >> 20));
        return -1;
    }
    if (got.bios_crc != want.bios_crc || got.vga_rom_crc != want.vga_rom_crc) {
        snprintf(err, errlen, "it was taken with different firmware (BIOS or VGA BIOS)");
        return -1;
    }
    return 0;
}

static int check_devices(struct machine *m, const struct snapfile *f, char *err, size_t errlen)
{
    int ndev = 0;
    for (int i = 0; i < bus_device_count(m->bus); i++) {
        const struct device *d = bus_device(m->bus, i);
        if (!d->state)
            continue;
        char sec[96];
        section_name(sec, sizeof(sec), d->name);
        if (check_record(f, sec, d->state, d->name, NULL, err, errlen) < 0)
            return -1;
        ndev++;
    }
    int nsaved = 0;
    for (int i = 0; i < f->nsec; i++)
        nsaved += !strncmp(f->sec[i].name, "dev:", 4);
    if (nsaved != ndev) {
        snprintf(err, errlen, "it holds %d devices, this machine has %d (different options?)", nsaved, ndev);
        return -1;
    }
    return 0;
}

/* Check a memory image without keeping it: the machine's RAM is written
 * only once every check has passed. */
static int check_memory(const struct snapfile *f, const char *section, size_t size, char *err, size_t errlen)
{
    const struct snapfile_section *s = snapfile_find(f, section);
    if (!s) {
        snprintf(err, errlen, "it has no '%s' image", section);
        return -1;
    }
    char why[200];
    if (snapfile_get_memory(s->data, s->len, NULL, size, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", section, why);
        return -1;
    }
    return 0;
}

static void prepared_free(struct prepared *p)
{
    snapfile_free(&p->f);
}

static int prepare_load(struct machine *m, const char *path, struct prepared *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    uint64_t bound = (uint64_t)m->pm->ram_size * 2 + (256u << 20);
    if (snapfile_read(path, bound, &p->f, err, errlen) < 0)
        return -1;
    char why[300];
    if (check_config(m, &p->f, why, sizeof(why)) < 0 ||
        check_record(&p->f, "machine", &machine_table, NULL, &p->machine, why, sizeof(why)) < 0 ||
        check_record(&p->f, "cpu", &cpu_state_table, NULL, &p->cpu, why, sizeof(why)) < 0 ||
        check_devices(m, &p->f, why, sizeof(why)) < 0 ||
        check_memory(&p->f, "ram", m->pm->ram_size, why, sizeof(why)) < 0 ||
        check_memory(&p->f, "rom-shadow", ROM_SHADOW_SIZE, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        prepared_free(p);
        return -1;
    }
    return 0;
}

/* Put a checked snapshot into the machine: nothing here can fail. */
static void apply_machine(struct machine *m, struct prepared *p)
{
    char unused[8];     /* both images decoded once already, in prepare_load */
    const struct snapfile_section *ram = snapfile_find(&p->f, "ram"), *rom = snapfile_find(&p->f, "rom-shadow");
    snapfile_get_memory(ram->data, ram->len, m->pm->ram, m->pm->ram_size, unused, sizeof(unused));
    snapfile_get_memory(rom->data, rom->len, m->pm->rom_shadow, ROM_SHADOW_SIZE, unused, sizeof(unused));
    struct machine_record mr = {0};
    state_apply(&machine_table, &mr, p->machine->data, p->machine->len);
    vclock_restore(m->clock, mr.now, mr.clock_insns);
    state_apply(&cpu_state_table, &m->cpu, p->cpu->data, p->cpu->len);
    m->cpu.icount_end = mr.icount;
    m->cpu.budget = 0;
    m->icount_accounted = mr.icount;
    m->ferr = mr.ferr;
    for (int i = 0; i < bus_device_count(m->bus); i++) {
        const struct device *d = bus_device(m->bus, i);
        char sec[96];
        if (!d->state)
            continue;
        section_name(sec, sizeof(sec), d->name);
        const struct snapfile_section *s = snapfile_find(&p->f, sec);
        state_apply(d->state, d->opaque, s->data, s->len);
    }
    for (int i = 0; i < bus_device_count(m->bus); i++) {
        const struct device *d = bus_device(m->bus, i);
        if (d->state && d->state->post_load)
            d->state->post_load(d->opaque);
    }
    bus_set_a20(m->bus, m->cpu.a20);
    m->cpu.m = m;
    m->cpu.fault_depth = 0;
    m->cpu.bt_exit = false;
    tlb_flush_all(&m->cpu);
    if (m->bt)
        bt_flush(m->bt);
    m->pm->rom_generation++;
    m->pm->generation++;
}

/* ---- the commands ---- */

static int save_locked(struct machine *m, const char *name, char *err, size_t errlen)
{
    struct snapshots *s = snaps(m);
    struct snap_index ix;
    char why[512];
    if (!valid_name(name)) {
        snprintf(err, errlen, "savevm: '%s' is not a snapshot name (1-%d letters, digits, '.', '-', '_')", name,
                 NAME_MAX_LEN);
        return -1;
    }
    if (ensure_folder(m, why, sizeof(why)) < 0 || index_read(m, &ix, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "savevm %s: %s", name, why);
        return -1;
    }
    if (ix.n == MAX_SNAPSHOTS && !find_name(&ix, name)) {
        snprintf(err, errlen, "savevm %s: %s holds %d snapshots already", name, s->dir, MAX_SNAPSHOTS);
        index_free(&ix);
        return -1;
    }
    int id = 1;
    for (int i = 0; i < ix.n; i++)
        if (ix.e[i].id >= id)
            id = ix.e[i].id + 1;
    struct snap_entry e = { .id = id };
    snprintf(e.name, sizeof(e.name), "%s", name);
    for (int k = 0; k < NDISKS; k++) {
        if (!disk_in_snapshots(m, k))
            continue;
        char layer[PATH_MAX];
        if (freeze_disk(m, k, &ix, layer, sizeof(layer), why, sizeof(why)) < 0) {
            snprintf(err, errlen, "savevm %s: %s", name, why);
            goto fail;
        }
        e.layer[k] = dup_str(layer);
    }
    struct snapfile_writer w;
    snapfile_begin(&w);
    save_machine(m, &w);
    char file[32], path[PATH_MAX + 40];
    snprintf(file, sizeof(file), "%d.rvs", id);
    path_in(m, file, path, sizeof(path));
    int rc = snapfile_commit(&w, path, why, sizeof(why));
    e.size = w.b.len;
    snapfile_writer_free(&w);
    if (rc < 0) {
        snprintf(err, errlen, "savevm %s: %s", name, why);
        goto fail;
    }
    e.date = time(NULL);
    e.vm_ns = vclock_now(m->clock);
    e.icount = cpu_icount(&m->cpu);
    struct snap_entry *old = find_name(&ix, name);
    int old_id = 0;
    if (old && !strcmp(old->name, name)) {
        /* Same name: the new snapshot replaces the old one, as QEMU's savevm does. */
        old_id = old->id;
        for (int k = 0; k < NDISKS; k++)
            free(old->layer[k]);
        *old = ix.e[--ix.n];
    }
    ix.e[ix.n++] = e;
    if (index_write(m, &ix, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "savevm %s: %s", name, why);
        ix.n--;
        goto fail;
    }
    if (old_id) {
        snprintf(file, sizeof(file), "%d.rvs", old_id);
        path_in(m, file, path, sizeof(path));
        unlink(path);
        collect_layers(m, &ix);
    }
    snprintf(s->last, sizeof(s->last), "%s", name);
    index_free(&ix);
    return 0;
fail:
    for (int k = 0; k < NDISKS; k++)
        free(e.layer[k]);
    index_write(m, &ix, why, sizeof(why));    /* the disks' current layers may have moved */
    index_free(&ix);
    return -1;
}

int snapshot_save(struct machine *m, const char *name, char *err, size_t errlen)
{
    return save_locked(m, name, err, errlen);
}

int snapshot_load(struct machine *m, const char *name, char *err, size_t errlen)
{
    struct snapshots *s = snaps(m);
    struct snap_index ix;
    char why[512];
    if (index_read(m, &ix, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "loadvm %s: %s", name, why);
        return -1;
    }
    struct snap_entry *e = find_name(&ix, name);
    if (!e || ensure_folder(m, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "loadvm %s: no such snapshot in %s", name, s->dir);
        index_free(&ix);
        return -1;
    }
    for (int k = 0; k < NDISKS; k++) {
        if (disk_in_snapshots(m, k) != (e->layer[k] != NULL)) {
            snprintf(err, errlen, "loadvm %s: disk %d %s", name, k,
                     e->layer[k] ? "was in the snapshot but this machine has no writable disk there"
                                 : "is writable here but was not in the snapshot");
            index_free(&ix);
            return -1;
        }
        if (e->layer[k] && access(e->layer[k], R_OK) < 0) {
            snprintf(err, errlen, "loadvm %s: %s: %s", name, e->layer[k], strerror(errno));
            index_free(&ix);
            return -1;
        }
    }
    char file[32], path[PATH_MAX + 40];
    snprintf(file, sizeof(file), "%d.rvs", e->id);
    path_in(m, file, path, sizeof(path));
    struct prepared p;
    if (prepare_load(m, path, &p, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "loadvm %s: %s", name, why);
        index_free(&ix);
        return -1;
    }
    int rc = 0;
    for (int k = 0; k < NDISKS && rc == 0; k++)
        if (e->layer[k] && thaw_disk(m, k, e->layer[k], &ix, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "loadvm %s: %s", name, why);
            rc = -1;
        }
    if (rc == 0) {
        apply_machine(m, &p);
        snprintf(s->last, sizeof(s->last), "%s", e->name);
    }
    prepared_free(&p);
    if (index_write(m, &ix, why, sizeof(why)) == 0)
        collect_layers(m, &ix);
    index_free(&ix);
    return rc;
}

int snapshot_delete(struct machine *m, const char *name, char *err, size_t errlen)
{
    struct snap_index ix;
    char why[512];
    if (index_read(m, &ix, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "delvm %s: %s", name, why);
        return -1;
    }
    struct snap_entry *e = find_name(&ix, name);
    if (!e) {
        snprintf(err, errlen, "delvm %s: no such snapshot in %s", name, snaps(m)->dir);
        index_free(&ix);
        return -1;
    }
    int id = e->id;
    if (!strcmp(snaps(m)->last, e->name))
        snaps(m)->last[0] = 0;
    for (int k = 0; k < NDISKS; k++)
        free(e->layer[k]);
    *e = ix.e[--ix.n];
    memset(&ix.e[ix.n], 0, sizeof(ix.e[ix.n]));
    if (index_write(m, &ix, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "delvm %s: %s", name, why);
        index_free(&ix);
        return -1;
    }
    char file[32], path[PATH_MAX + 40];
    snprintf(file, sizeof(file), "%d.rvs", id);
    path_in(m, file, path, sizeof(path));
    unlink(path);
    collect_layers(m, &ix);
    index_free(&ix);
    return 0;
}

static void format_size(uint64_t n, char *out, size_t cap)
{
    if (n >= (1u << 30))
        snprintf(out, cap, "%.1f GiB", n / (double)(1u << 30));
    else if (n >= (1u << 20))
        snprintf(out, cap, "%.1f MiB", n / (double)(1u << 20));
    else
        snprintf(out, cap, "%.1f KiB", n / 1024.0);
}

void snapshot_list(struct machine *m, FILE *out)
{
    struct snap_index ix;
    char why[512];
    if (index_read(m, &ix, why, sizeof(why)) < 0) {
        fprintf(out, "%s\n", why);
        return;
    }
    if (ix.n == 0) {
        fprintf(out, "There is no snapshot available.\n");
        return;
    }
    fprintf(out, "List of snapshots present on all disks:\n");
    fprintf(out, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (int i = 0; i < ix.n; i++) {
        const struct snap_entry *e = &ix.e[i];
        char size[32], date[32], clock[32];
        format_size(e->size, size, sizeof(size));
        time_t t = (time_t)e->date;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        int64_t ms = e->vm_ns / 1000000;
        snprintf(clock, sizeof(clock), "%02lld:%02lld:%02lld.%03lld", (long long)(ms / 3600000),
                 (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), (long long)(ms % 1000));
        fprintf(out, "%-10d%-17s%8s%20s%13s%11llu\n", e->id, e->name, size, date, clock,
                (unsigned long long)e->icount);
    }
    index_free(&ix);
}

const char *snapshot_last(struct machine *m)
{
    return snaps(m)->last[0] ? snaps(m)->last : NULL;
}

const char *snapshot_current_layer(const struct machine_config *cfg, int slot, const char *image, char *out,
                                   size_t cap)
{
    struct machine tmp = { .cfg = *cfg };
    struct snap_index ix;
    char why[512];
    const char *result = NULL;
    if (index_read(&tmp, &ix, why, sizeof(why)) < 0) {
        fprintf(stderr, "retrovisor: warning: %s\n", why);
    } else {
        char a[PATH_MAX], b[PATH_MAX];
        if (ix.current[slot] && ix.base[slot]) {
            abs_path(image, a, sizeof(a));
            abs_path(ix.base[slot], b, sizeof(b));
            if (!strcmp(a, b) && access(ix.current[slot], F_OK) == 0) {
                snprintf(out, cap, "%s", ix.current[slot]);
                result = out;
            }
        }
        index_free(&ix);
    }
    free(tmp.snapshots);
    return result;
}

void snapshot_free(struct machine *m)
{
    free(m->snapshots);
    m->snapshots = NULL;
}
