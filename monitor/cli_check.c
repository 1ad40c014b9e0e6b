/*
 * Validating helpers for monitor/main.c's option loop: each refuses a bad
 * value with one line naming the option and exit status 2, before anything
 * is opened for writing; and the check of the input and output file sets
 * (inputs regular files; no output the same file, by st_dev and st_ino, as
 * an input image).
 */
#include "monitor/cli_check.h"
#include "monitor/machine.h"
#include "hosted-driver/readfile.h"
#include "devices/vga.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "retrovisor: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* A whole number in [min, max]: no blanks, no '+', no trailing junk. */
long cli_number(const char *opt, const char *s, long min, long max)
{
    char *end;
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
        cli_fail("%s: '%s' is not a number in %ld..%ld", opt, s, min, max);
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || end == s || *end || v < min || v > max)
        cli_fail("%s: '%s' is not a number in %ld..%ld", opt, s, min, max);
    return v;
}

/* A file name option: an empty name is a mistake, not "no file". */
const char *cli_need_path(const char *opt, const char *val)
{
    if (!*val)
        cli_fail("%s: empty file name", opt);
    return val;
}

/* QEMU's boolean spellings. */
bool cli_on_off(const char *opt, const char *key, const char *v)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        return true;
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        return false;
    cli_fail("%s: %s=%s: expected on or off", opt, key, v);
}

/* -run-for: finite, positive, at least a nanosecond, and no more than
 * virtual time can count (int64 nanoseconds). */
#define RUN_FOR_MAX_S 1e9

int64_t cli_seconds(const char *opt, const char *s)
{
    char *end;
    if (!isdigit((unsigned char)s[0]) && s[0] != '.')
        cli_fail("%s: '%s' is not a positive number of seconds", opt, s);
    double secs = strtod(s, &end);
    if (end == s || *end || !isfinite(secs) || secs <= 0)
        cli_fail("%s: '%s' is not a positive number of seconds", opt, s);
    if (secs > RUN_FOR_MAX_S)
        cli_fail("%s: '%s' seconds is more than the %.0f that virtual time can count", opt, s, RUN_FOR_MAX_S);
    int64_t ns = (int64_t)(secs * 1e9);
    if (ns < 1)
        cli_fail("%s: '%s' seconds is shorter than a nanosecond", opt, s);
    return ns;
}

/* -icount [shift=]N[,...]: QEMU's align=, sleep=, rr= do not exist here. */
int cli_icount(const char *arg)
{
    const char *comma = strchr(arg, ',');
    if (comma)
        cli_fail("-icount %s: unknown sub-option '%s' (only shift=N is supported)", arg, comma + 1);
    const char *v = strncmp(arg, "shift=", 6) ? arg : arg + 6;
    if (!strcmp(v, "auto"))
        cli_fail("-icount %s: shift=auto is not supported; give a shift of 0..10", arg);
    return (int)cli_number("-icount", v, 0, 10);
}

/* Character device specs that hosted-driver/chardev.c opens: checked here so
 * that a bad one is refused before any other output file is opened. */
void cli_check_chardev(const char *opt, const char *spec)
{
    if (!strcmp(spec, "stdio") || !strcmp(spec, "none") || !strcmp(spec, "null"))
        return;
    if (!strncmp(spec, "file:", 5)) {
        if (!spec[5])
            cli_fail("%s %s: empty file name", opt, spec);
        return;
    }
    cli_fail("%s %s: unknown character device (valid: stdio, file:PATH, none, null)", opt, spec);
}

/* The sub-options of -display vnc= that ui/vnc.c takes (with the ones its
 * hardening adds: websocket, websocket-origins, max-clients, insecure); it
 * checks their values.  A key with '=' takes a value, one without is a flag. */
static const char *const vnc_suboptions[] = {
    "password", "password-file=", "websocket=", "websocket-origins=", "max-clients=", "insecure",
};

static void check_vnc_suboption(const char *opt, const char *item, size_t len)
{
    for (size_t k = 0; k < sizeof(vnc_suboptions) / sizeof(vnc_suboptions[0]); k++) {
        const char *name = vnc_suboptions[k];
        size_t n = strlen(name);
        bool takes_value = name[n - 1] == '=';
        if (takes_value ? len > n && !strncmp(item, name, n) : len == n && !strncmp(item, name, n))
            return;
        if (takes_value && len >= n - 1 && !strncmp(item, name, n - 1) && (len == n - 1 || len == n))
            cli_fail("%s: %.*s needs a value", opt, (int)(n - 1), name);
    }
    cli_fail("%s: unknown sub-option '%.*s' (see --help)", opt, (int)len, item);
}

/* -display vnc=[ADDR]:N[,sub-options]: the shape only; ui/vnc.c resolves the address. */
void cli_check_vnc(const char *opt, const char *spec)
{
    const char *comma = strchr(spec, ',');
    size_t hostlen = comma ? (size_t)(comma - spec) : strlen(spec);
    const char *colon = NULL;
    for (size_t k = 0; k < hostlen; k++)
        if (spec[k] == ':')
            colon = spec + k;
    if (!colon)
        cli_fail("%s: expected [ADDR]:N (display N listens on TCP port 5900+N)", opt);
    const char *num = colon + 1;
    size_t numlen = spec + hostlen - num;
    long n = -1;
    if (numlen > 0 && numlen <= 5) {
        n = 0;
        for (size_t k = 0; k < numlen; k++)
            n = isdigit((unsigned char)num[k]) ? n * 10 + (num[k] - '0') : -1 - 65536;
    }
    if (n < 0 || n > 65535 - 5900)
        cli_fail("%s: display number '%.*s' is not in 0..%d (TCP port 5900+N)", opt, (int)numlen, num, 65535 - 5900);
    for (const char *c = spec; c < colon; c++)
        if (!isalnum((unsigned char)*c) && !strchr(".-:[]", *c))
            cli_fail("%s: '%.*s' is not a host name or address", opt, (int)(colon - spec), spec);
    while (comma) {
        const char *item = comma + 1;
        comma = strchr(item, ',');
        check_vnc_suboption(opt, item, comma ? (size_t)(comma - item) : strlen(item));
    }
}

void cli_check_display(const char *spec)
{
    if (!strcmp(spec, "sdl") || !strcmp(spec, "none"))
        return;
    if (!strncmp(spec, "vnc=", 4)) {
        char opt[64];
        snprintf(opt, sizeof(opt), "-display vnc=%.40s%s", spec + 4, strlen(spec + 4) > 40 ? "..." : "");
        cli_check_vnc(opt, spec + 4);
        return;
    }
    if (!strncmp(spec, "sdl,", 4))
        cli_fail("-display %s: unknown sub-option '%s' (sdl takes none)", spec, spec + 4);
    cli_fail("-display %s: unknown display (use sdl, vnc=[ADDR]:N or none)", spec);
}

/* ---- input and output files ---- */

/* Every file retrovisor reads as an image, with the option that named it. */
struct named_file {
    const char *opt;
    const char *path;
};
#define MAX_NAMED_FILES 80

struct file_list {
    struct named_file f[MAX_NAMED_FILES];
    int n;
};

static void add_file(struct file_list *l, const char *opt, const char *path)
{
    if (path && l->n < MAX_NAMED_FILES)
        l->f[l->n++] = (struct named_file){ opt, path };
}

/* -initrd is one file for Linux and "F args,F2 args" for Multiboot: the
 * whole string when it names a file, else each item's first word. */
static void add_initrd_files(struct file_list *l, const char *spec)
{
    struct stat st;
    if (stat(spec, &st) == 0 || !strpbrk(spec, ", ")) {
        add_file(l, "-initrd", spec);
        return;
    }
    size_t n = strlen(spec);
    if (spec[0] == ',' || spec[n - 1] == ',' || strstr(spec, ",,"))
        cli_fail("-initrd %s: empty module in the list", spec);
    char *copy = strdup(spec);     /* lives as long as the list: until exit */
    for (char *save, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *space = strchr(item, ' ');
        if (space)
            *space = 0;
        if (!*item)
            cli_fail("-initrd %s: empty module file name", spec);
        add_file(l, "-initrd", item);
    }
}

/* Inputs must exist and be regular files (disks may be block devices), so a
 * directory or a FIFO is refused here, before anything is opened. */
static void check_inputs(const struct file_list *in)
{
    for (int k = 0; k < in->n; k++) {
        const struct named_file *f = &in->f[k];
        struct stat st;
        bool disk = !strncmp(f->opt, "-hd", 3) || !strcmp(f->opt, "-drive");
        if (disk && stat(f->path, &st) == 0 && S_ISBLK(st.st_mode))
            continue;
        char buf[128];
        const char *why = input_file_problem(f->path, buf, sizeof(buf));
        if (why)
            cli_fail("%s %s: %s", f->opt, f->path, why);
    }
}

/* An output that is one of the inputs (same device and inode, whatever the
 * path) would be truncated before anything could refuse it: refuse it now. */
static void check_output(const struct file_list *in, const char *opt, const char *arg, const char *path)
{
    struct stat out;
    if (stat(path, &out) < 0)
        return;                    /* a new file is no input */
    if (S_ISDIR(out.st_mode))
        cli_fail("%s %s: is a directory", opt, arg);
    for (int k = 0; k < in->n; k++) {
        struct stat st;
        if (stat(in->f[k].path, &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
            cli_fail("%s %s: is the same file as %s %s; refusing to overwrite it", opt, arg, in->f[k].opt,
                 in->f[k].path);
    }
}

static void check_chardev_output(const struct file_list *in, const char *opt, const char *spec)
{
    if (spec && !strncmp(spec, "file:", 5))
        check_output(in, opt, spec, spec + 5);
}

/* -netdev user,...,pcap=FILE: the capture is an output file too. */
static void check_pcap_output(const struct file_list *in, const char *spec)
{
    const char *p = strstr(spec, "pcap=");
    if (!p || (p != spec && p[-1] != ','))
        return;
    char path[4096];
    size_t n = strcspn(p + 5, ",");
    if (n == 0 || n >= sizeof(path))
        return;
    memcpy(path, p + 5, n);
    path[n] = 0;
    check_output(in, "-netdev", spec, path);
}

/* Every input file is checked, then every output file against the inputs. */
void cli_check_files(const struct machine_config *cfg, const char *trace_file, const char *screendump)
{
    struct file_list inputs = { .n = 0 };
    static const char *drive_opts[4] = { "-hda", "-hdb", "-hdc", "-hdd" };
    for (int k = 0; k < 4; k++)
        add_file(&inputs, cfg->drive[k].cdrom ? "-cdrom" : drive_opts[k], cfg->drive[k].path);
    add_file(&inputs, "-fda", cfg->floppy[0].path);
    add_file(&inputs, "-fdb", cfg->floppy[1].path);
    add_file(&inputs, "-bios", cfg->bios_path);
    if (!cfg->no_vga)
        add_file(&inputs, "-vgabios", cfg->vgabios_path);
    add_file(&inputs, "-kernel", cfg->kernel);
    if (cfg->initrd)
        add_initrd_files(&inputs, cfg->initrd);
    check_inputs(&inputs);
    /* The default firmware too: no output may overwrite it either. */
    add_file(&inputs, "-bios", cfg->bios_path ? NULL : MACHINE_DEFAULT_BIOS);
    add_file(&inputs, "-vgabios", cfg->vgabios_path || cfg->no_vga ? NULL : VGA_DEFAULT_BIOS);
    check_chardev_output(&inputs, "-serial", cfg->serial[0]);
    check_chardev_output(&inputs, "-serial", cfg->serial[1]);
    check_chardev_output(&inputs, "-debugcon", cfg->debugcon);
    if (trace_file)
        check_output(&inputs, "-D", trace_file, trace_file);
    if (screendump)
        check_output(&inputs, "-screendump", screendump, screendump);
    for (int k = 0; k < cfg->n_netdev; k++)
        check_pcap_output(&inputs, cfg->netdev[k]);
}
