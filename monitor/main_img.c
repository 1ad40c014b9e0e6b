/*
 * retrovisor-img: the image tool, in qemu-img's command shapes.
 *
 *   retrovisor-img info [-f FMT] FILE
 *   retrovisor-img create -f FMT [-b BACKING [-F BACKING_FMT]] [-o OPTS] FILE [SIZE]
 *   retrovisor-img convert [-f FMT] -O FMT [-o OPTS] IN OUT
 *   retrovisor-img check [-f FMT] FILE
 *   retrovisor-img commit [-f FMT] FILE
 *
 * Errors are one line naming the file, exit status 2.  check exits like
 * qemu-img check: 0 clean, 2 corrupt, 3 only leaked clusters.
 */
#include "hosted-driver/blk.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/snapshot_file.h"
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: retrovisor-img COMMAND ...\n"
               "  info [-f FMT] FILE\n"
               "  create -f FMT [-b BACKING [-F BACKING_FMT]] [-o OPTS] FILE [SIZE]\n"
               "  convert [-f FMT] -O FMT [-o OPTS] IN OUT\n"
               "  check [-f FMT] FILE\n"
               "  commit [-f FMT] FILE\n"
               "  statediff A.rvs B.rvs   compare two snapshot state files (in a VM's .snapshots\n"
               "                          folder) field by field; exit 0 when equal, 1 when not\n"
               "formats: raw, qcow2, vmdk, vpc (vhd)\n"
               "OPTS: subformat=monolithicSparse|monolithicFlat|twoGbMaxExtentSparse|twoGbMaxExtentFlat (vmdk),\n"
               "      subformat=dynamic|fixed (vpc), cluster_size=N, compat=0.10|1.1 (qcow2)\n"
               "SIZE: bytes, or with a suffix k, M, G, T (powers of 1024)\n");
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("retrovisor-img: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        die("size '%s': not a number", s);
    int shift = 0;
    switch (*end) {
    case 0: case 'b': case 'B': break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: die("size '%s': unknown suffix", s);
    }
    if (*end && end[1])
        die("size '%s': unknown suffix", s);
    if (v > (UINT64_MAX >> 8) >> shift)
        die("size '%s': too large", s);
    return (uint64_t)v << shift;
}

struct args {
    const char *fmt, *out_fmt, *backing, *backing_fmt, *opts;
    const char *pos[3];
    int npos;
};

static void parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        const char **slot = !strcmp(s, "-f") ? &a->fmt : !strcmp(s, "-O") ? &a->out_fmt :
                            !strcmp(s, "-b") ? &a->backing : !strcmp(s, "-F") ? &a->backing_fmt :
                            !strcmp(s, "-o") ? &a->opts : NULL;
        if (slot) {
            if (i + 1 >= argc)
                die("%s needs a value", s);
            *slot = argv[++i];
        } else if (!strcmp(s, "-p") || !strcmp(s, "-q") || !strcmp(s, "-U")) {
            continue;   /* progress, quiet, force-share: accepted for qemu-img's scripts */
        } else if (s[0] == '-' && s[1]) {
            die("%s: unknown option '%s'", argv[1], s);
        } else if (a->npos < 3) {
            a->pos[a->npos++] = s;
        } else {
            die("%s: too many arguments", argv[1]);
        }
    }
    if (a->fmt && !blk_format_known(a->fmt))
        die("-f %s: unknown format (raw, qcow2, vmdk, vpc)", a->fmt);
    if (a->out_fmt && !blk_format_known(a->out_fmt))
        die("-O %s: unknown format (raw, qcow2, vmdk, vpc)", a->out_fmt);
}

static void parse_opts(const char *opts, struct blk_create_opts *o)
{
    if (!opts)
        return;
    char *copy = xmalloc(strlen(opts) + 1);
    strcpy(copy, opts);
    for (char *save = NULL, *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (!v)
            die("-o %s: '%s' is not key=value", opts, kv);
        *v++ = 0;
        if (!strcmp(kv, "subformat"))
            o->subformat = strdup(v);
        else if (!strcmp(kv, "cluster_size"))
            o->cluster_size = (uint32_t)parse_size(v);
        else if (!strcmp(kv, "compat"))
            o->compat = !strcmp(v, "0.10") ? 2 : !strcmp(v, "1.1") || !strcmp(v, "v3") ? 3 :
                        (die("-o compat=%s: 0.10 or 1.1", v), 0);
        else if (!strcmp(kv, "backing_file"))
            o->backing = strdup(v);
        else if (!strcmp(kv, "backing_fmt"))
            o->backing_fmt = strdup(v);
        else
            die("-o %s: unknown option '%s'", opts, kv);
    }
    free(copy);
}

static struct blk *open_or_die(const char *path, const char *fmt, int flags)
{
    char err[512];
    struct blk *b = blk_open(path, fmt, flags, err, sizeof(err));
    if (!b)
        die("%s", err);
    return b;
}

static void print_size(const char *label, uint64_t v)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    double d = (double)v;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        printf("%s: %llu B", label, (unsigned long long)v);
    else
        printf("%s: %.3g %s", label, d, units[u]);
}

static int cmd_info(struct args *a)
{
    if (a->npos != 1)
        die("info: one image expected");
    struct blk *top = open_or_die(a->pos[0], a->fmt, 0);
    for (struct blk *b = top; b; b = blk_backing(b)) {
        if (b != top)
            printf("\n");
        printf("image: %s\nfile format: %s\n", blk_path(b), blk_format_name(b));
        print_size("virtual size", blk_size(b));
        printf(" (%llu bytes)\n", (unsigned long long)blk_size(b));
        print_size("disk size", blk_file_size(b));
        printf("\n");
        uint64_t held = 0, n;
        for (uint64_t off = 0; off < blk_size(b); off += n) {
            uint64_t want = blk_size(b) - off;
            int s = blk_block_state(b, off, want, &n);
            if (s < 0)
                die("%s: cannot read the allocation map: %s", blk_path(b), strerror(-s));
            if (s == BLK_STATE_DATA)
                held += n;
        }
        printf("allocated: %llu bytes\n", (unsigned long long)held);
        if (blk_backing_path(b))
            printf("backing file: %s\n", blk_backing_path(b));
    }
    blk_close(top);
    return 0;
}

static int cmd_create(struct args *a)
{
    if (!a->fmt || a->npos < 1 || a->npos > 2)
        die("create: -f FORMAT FILE [SIZE] expected");
    struct blk_create_opts o = { 0 };
    parse_opts(a->opts, &o);
    if (a->backing)
        o.backing = a->backing;
    if (a->backing_fmt)
        o.backing_fmt = a->backing_fmt;
    uint64_t size = a->npos == 2 ? parse_size(a->pos[1]) : 0;
    char err[512];
    if (blk_create(a->fmt, a->pos[0], size, &o, err, sizeof(err)) < 0)
        die("%s", err);
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int cmd_convert(struct args *a)
{
    if (!a->out_fmt || a->npos != 2)
        die("convert: -O FORMAT IN OUT expected");
    struct blk *in = open_or_die(a->pos[0], a->fmt, 0);
    struct blk_create_opts o = { 0 };
    parse_opts(a->opts, &o);
    char err[512];
    if (blk_create(a->out_fmt, a->pos[1], blk_size(in), &o, err, sizeof(err)) < 0)
        die("%s", err);
    struct blk *out = open_or_die(a->pos[1], a->out_fmt, BLK_WRITABLE);
    if (blk_size(out) < blk_size(in))
        die("%s: created smaller (%llu bytes) than %s", a->pos[1], (unsigned long long)blk_size(out), a->pos[0]);
    const size_t chunk = 1 << 20, unit = 64 << 10;
    uint8_t *buf = xmalloc(chunk);
    for (uint64_t off = 0; off < blk_size(in); off += chunk) {
        size_t n = blk_size(in) - off < chunk ? (size_t)(blk_size(in) - off) : chunk;
        int r = blk_read(in, off, buf, n);
        if (r < 0)
            die("%s: read error at %llu: %s", a->pos[0], (unsigned long long)off, strerror(-r));
        /* The new image reads zeros where nothing is written: keep it sparse. */
        for (size_t at = 0; at < n; at += unit) {
            size_t m = n - at < unit ? n - at : unit;
            if (all_zero(buf + at, m))
                continue;
            if ((r = blk_write(out, off + at, buf + at, m)) < 0)
                die("%s: write error at %llu: %s", a->pos[1], (unsigned long long)(off + at), strerror(-r));
        }
    }
    free(buf);
    int r = blk_flush(out);
    if (r < 0)
        die("%s: flush failed: %s", a->pos[1], strerror(-r));
    blk_close(out);
    blk_close(in);
    return 0;
}

static int cmd_check(struct args *a)
{
    if (a->npos != 1)
        die("check: one image expected");
    struct blk *b = open_or_die(a->pos[0], a->fmt, BLK_NO_BACKING);
    struct blk_check_result res;
    int r = blk_check(b, &res);
    if (r == -ENOTSUP) {
        printf("This image format (%s) does not support checks\n", blk_format_name(b));
        blk_close(b);
        return 63;
    }
    if (r < 0)
        die("%s: check failed: %s", a->pos[0], strerror(-r));
    if (res.errors)
        printf("%llu errors were found on the image (first: %s).\nData may be corrupted.\n",
               (unsigned long long)res.errors, res.first_error);
    if (res.leaks)
        printf("%llu leaked clusters were found on the image.\n"
               "This means waste of disk space, but no harm to data.\n", (unsigned long long)res.leaks);
    if (!res.errors && !res.leaks)
        printf("No errors were found on the image.\n");
    printf("%llu bytes allocated in %s.\n", (unsigned long long)res.allocated, a->pos[0]);
    blk_close(b);
    return res.errors ? 2 : res.leaks ? 3 : 0;
}

static int cmd_commit(struct args *a)
{
    if (a->npos != 1)
        die("commit: one image expected");
    /* A qcow2 top is emptied afterwards (qemu-img's default), so it opens for
     * writing; one that only opens read-only (compressed clusters, internal
     * snapshots) is committed and left as it is. */
    const char *fmt = a->fmt ? a->fmt : blk_probe_file(a->pos[0]);
    char err[512];
    struct blk *b = NULL;
    if (fmt && !strcmp(fmt, "qcow2"))
        b = blk_open(a->pos[0], a->fmt, BLK_WRITABLE, err, sizeof(err));
    if (!b)
        b = open_or_die(a->pos[0], a->fmt, 0);
    if (blk_commit(b, err, sizeof(err)) < 0)
        die("%s", err);
    printf("Image committed.\n");
    blk_close(b);
    return 0;
}

static int cmd_statediff(int argc, char **argv)
{
    if (argc != 4)
        die("statediff: two snapshot state files expected");
    char err[512];
    int n = snapfile_diff(argv[2], argv[3], 8ull << 30, stdout, err, sizeof(err));
    if (n < 0)
        die("%s", err);
    printf(n ? "%d differences\n" : "State files are identical.\n", n);
    return n ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "statediff"))
        return cmd_statediff(argc, argv);
    struct args a;
    parse_args(argc, argv, &a);
    if (!strcmp(argv[1], "info"))
        return cmd_info(&a);
    if (!strcmp(argv[1], "create"))
        return cmd_create(&a);
    if (!strcmp(argv[1], "convert"))
        return cmd_convert(&a);
    if (!strcmp(argv[1], "check"))
        return cmd_check(&a);
    if (!strcmp(argv[1], "commit"))
        return cmd_commit(&a);
    die("unknown command '%s' (info, create, convert, check, commit, statediff)", argv[1]);
}
