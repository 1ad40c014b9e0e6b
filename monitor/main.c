/*
 * Command line: QEMU's spelling where the meaning is the same.
 */
#include "monitor/machine.h"
#include "monitor/trace.h"
#include "hosted-driver/chardev.h"
#include "hosted-driver/readfile.h"
#include "devices/vga.h"
#include "ui/ui.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RETROVISOR_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: retrovisor [options]\n"
            "\n"
            "Machine:\n"
            "  -m [size=]SIZE     guest RAM in MiB (suffix M or G allowed; default 128, 2..3584: the\n"
            "                     machine's maximum, RAM ends where the PCI hole starts at 3.5 GiB)\n"
            "  -bios FILE         firmware image of 64, 128 or 256 KiB (default: Debian's SeaBIOS,\n"
            "                     /usr/share/seabios/bios.bin)\n"
            "  -no-reboot         exit instead of rebooting when the guest resets\n"
            "  -hda/-hdb/-hdc/-hdd FILE  raw disk image as IDE primary master/slave, secondary master/slave\n"
            "  -drive file=F[,index=N][,readonly=on][,snapshot=on]  the same, with options\n"
            "  -snapshot          keep all disk writes in memory; images are never written\n"
            "  -kernel FILE       boot a kernel directly: Linux bzImage, or Multiboot (ELF or a.out kludge)\n"
            "  -initrd FILE       Linux initrd; for Multiboot: modules 'F [args],F2' comma separated\n"
            "  -append CMDLINE    kernel command line\n"
            "  -accel ENGINE      bt: the translation cache (default); interp: the reference interpreter\n"
            "  -vga TYPE          std: standard VGA + Bochs VBE at PCI 00:02.0 (default); none: no display adapter\n"
            "  -vgabios FILE      VGA BIOS option ROM (default: SeaVGABIOS,\n"
            "                     " VGA_DEFAULT_BIOS ")\n"
            "\n"
            "Display:\n"
            "  -display sdl       an SDL2 window (default when $DISPLAY is set and SDL can open it)\n"
            "  -display vnc=[ADDR]:N[,password][,password-file=FILE]\n"
            "                     a VNC server on TCP port 5900+N of ADDR (default 127.0.0.1); with\n"
            "                     'password' the password is $RETROVISOR_VNC_PASSWORD\n"
            "  -vnc [ADDR]:N[,...] same as -display vnc=[ADDR]:N[,...]\n"
            "  -display none      no display; the guest's serial console is on the terminal\n"
            "                     (Ctrl-A X quits, Ctrl-A H lists the keys); the default without $DISPLAY\n"
            "  -nographic         same as -display none\n"
            "  -screendump FILE   write the guest's screen to FILE (PNG) when the run ends\n"
            "\n"
            "Character devices (SPEC is stdio, file:PATH or none):\n"
            "  -serial SPEC       next serial port (first COM1, then COM2); default: COM1 on stdio\n"
            "  -debugcon SPEC     debug console on port 0x402 (SeaBIOS prints its log there)\n"
            "\n"
            "Debugging and testing:\n"
            "  -d FLAGS           trace: comma-separated list (-d help lists them)\n"
            "  -D FILE            write traces to FILE instead of stderr\n"
            "  -icount [shift=]N  deterministic time: each instruction takes 2^N ns (N 0..10)\n"
            "  -run-for SECONDS   stop after SECONDS of virtual time (exit status 0; finite, > 0)\n"
            "  -max-insns N       stop after N guest instructions (N >= 1)\n"
            "  -post-port PORT    also record POST codes written to PORT (1..0xffff; port 0x80 always)\n"
            "\n"
            "  -h, --help         this text\n"
            "  --version          print the version\n"
            "\n"
            "The guest can end the run through the isa-debug-exit port 0xf4: writing V exits\n"
            "with status (V << 1) | 1, as in QEMU.\n"
            "\n"
            "An option given twice: the last one wins, as in QEMU, except that -serial adds\n"
            "the next port and a drive position (-hda, -drive index=) cannot be taken twice.\n"
            "A bad option or input file ends retrovisor with one line and exit status 2 before\n"
            "any output file is opened; an output file that is one of the input images is refused.\n");
}

static _Noreturn void bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "retrovisor: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(2);
}

static _Noreturn __attribute__((format(printf, 1, 2))) void badf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "retrovisor: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* A file name option: an empty name is a mistake, not "no file". */
static const char *need_path(const char *opt, const char *val)
{
    if (!*val)
        badf("%s: empty file name", opt);
    return val;
}

/* QEMU's boolean spellings. */
static bool parse_on_off(const char *opt, const char *key, const char *v)
{
    if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
        return true;
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
        return false;
    badf("%s: %s=%s: expected on or off", opt, key, v);
}

static long parse_number(const char *opt, const char *s, long min, long max)
{
    char *end;
    /* strtol would skip blanks and take a '+'; an option value has neither. */
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
        badf("%s: '%s' is not a number in %ld..%ld", opt, s, min, max);
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || end == s || *end || v < min || v > max) {
        char range[64];
        snprintf(range, sizeof(range), "%ld..%ld", min, max);
        fprintf(stderr, "retrovisor: %s: '%s' is not a number in %s\n", opt, s, range);
        exit(2);
    }
    return v;
}

/* The machine's largest RAM: it ends where the PCI hole starts, at 3.5 GiB. */
#define RAM_MIN_MB 2
#define RAM_MAX_MB 3584

/* -m [size=]N[M|G]: QEMU's form; its slots= and maxmem= have no meaning here. */
static uint32_t parse_mem(const char *arg)
{
    const char *s = strncmp(arg, "size=", 5) ? arg : arg + 5;
    if (strchr(s, ','))
        badf("-m %s: unknown sub-option '%s' (only size= is supported)", arg, strchr(s, ',') + 1);
    if (!isdigit((unsigned char)s[0]))
        badf("-m %s: '%s' is not a size in MiB", arg, s);
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || v > RAM_MAX_MB)
        v = RAM_MAX_MB + 1;
    if (*end == 'G' || *end == 'g')
        v = v > RAM_MAX_MB / 1024 ? RAM_MAX_MB + 1 : v * 1024, end++;
    else if (*end == 'M' || *end == 'm')
        end++;
    if (*end)
        badf("-m %s: '%s' is not a size (a number of MiB, or with a suffix M or G)", arg, s);
    if (v < RAM_MIN_MB || v > RAM_MAX_MB)
        badf("-m %s: guest RAM must be between %d MiB and %d MiB (the machine's maximum: RAM ends where the PCI "
             "hole starts at 3.5 GiB)", arg, RAM_MIN_MB, RAM_MAX_MB);
    return v;
}

/* -run-for: finite, positive, at least a nanosecond, and no more than
 * virtual time can count (int64 nanoseconds). */
#define RUN_FOR_MAX_S 1e9

static int64_t parse_seconds(const char *opt, const char *s)
{
    char *end;
    if (!isdigit((unsigned char)s[0]) && s[0] != '.')
        badf("%s: '%s' is not a positive number of seconds", opt, s);
    double secs = strtod(s, &end);
    if (end == s || *end || !isfinite(secs) || secs <= 0)
        badf("%s: '%s' is not a positive number of seconds", opt, s);
    if (secs > RUN_FOR_MAX_S)
        badf("%s: '%s' seconds is more than the %.0f that virtual time can count", opt, s, RUN_FOR_MAX_S);
    int64_t ns = (int64_t)(secs * 1e9);
    if (ns < 1)
        badf("%s: '%s' seconds is shorter than a nanosecond", opt, s);
    return ns;
}

/* -icount [shift=]N[,...]: QEMU's align=, sleep=, rr= do not exist here. */
static int parse_icount(const char *arg)
{
    const char *comma = strchr(arg, ',');
    if (comma)
        badf("-icount %s: unknown sub-option '%s' (only shift=N is supported)", arg, comma + 1);
    const char *v = strncmp(arg, "shift=", 6) ? arg : arg + 6;
    if (!strcmp(v, "auto"))
        badf("-icount %s: shift=auto is not supported; give a shift of 0..10", arg);
    return (int)parse_number("-icount", v, 0, 10);
}

/* Character device specs that hosted-driver/chardev.c opens: checked here so
 * that a bad one is refused before any other output file is opened. */
static void check_chardev_spec(const char *opt, const char *spec)
{
    if (!strcmp(spec, "stdio") || !strcmp(spec, "none") || !strcmp(spec, "null"))
        return;
    if (!strncmp(spec, "file:", 5)) {
        if (!spec[5])
            badf("%s %s: empty file name", opt, spec);
        return;
    }
    badf("%s %s: unknown character device (valid: stdio, file:PATH, none, null)", opt, spec);
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
            badf("%s: %.*s needs a value", opt, (int)(n - 1), name);
    }
    badf("%s: unknown sub-option '%.*s' (see --help)", opt, (int)len, item);
}

/* -display vnc=[ADDR]:N[,sub-options]: the shape only; ui/vnc.c resolves the address. */
static void check_vnc_spec(const char *opt, const char *spec)
{
    const char *comma = strchr(spec, ',');
    size_t hostlen = comma ? (size_t)(comma - spec) : strlen(spec);
    const char *colon = NULL;
    for (size_t k = 0; k < hostlen; k++)
        if (spec[k] == ':')
            colon = spec + k;
    if (!colon)
        badf("%s: expected [ADDR]:N (display N listens on TCP port 5900+N)", opt);
    const char *num = colon + 1;
    size_t numlen = spec + hostlen - num;
    long n = -1;
    if (numlen > 0 && numlen <= 5) {
        n = 0;
        for (size_t k = 0; k < numlen; k++)
            n = isdigit((unsigned char)num[k]) ? n * 10 + (num[k] - '0') : -1 - 65536;
    }
    if (n < 0 || n > 65535 - 5900)
        badf("%s: display number '%.*s' is not in 0..%d (TCP port 5900+N)", opt, (int)numlen, num, 65535 - 5900);
    for (const char *c = spec; c < colon; c++)
        if (!isalnum((unsigned char)*c) && !strchr(".-:[]", *c))
            badf("%s: '%.*s' is not a host name or address", opt, (int)(colon - spec), spec);
    while (comma) {
        const char *item = comma + 1;
        comma = strchr(item, ',');
        check_vnc_suboption(opt, item, comma ? (size_t)(comma - item) : strlen(item));
    }
}

static void check_display_spec(const char *spec)
{
    if (!strcmp(spec, "sdl") || !strcmp(spec, "none"))
        return;
    if (!strncmp(spec, "vnc=", 4)) {
        char opt[64];
        snprintf(opt, sizeof(opt), "-display vnc=%.40s%s", spec + 4, strlen(spec + 4) > 40 ? "..." : "");
        check_vnc_spec(opt, spec + 4);
        return;
    }
    if (!strncmp(spec, "sdl,", 4))
        badf("-display %s: unknown sub-option '%s' (sdl takes none)", spec, spec + 4);
    badf("-display %s: unknown display (use sdl, vnc=[ADDR]:N or none)", spec);
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
        badf("-initrd %s: empty module in the list", spec);
    char *copy = strdup(spec);     /* lives as long as the list: until exit */
    for (char *save, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *space = strchr(item, ' ');
        if (space)
            *space = 0;
        if (!*item)
            badf("-initrd %s: empty module file name", spec);
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
            badf("%s %s: %s", f->opt, f->path, why);
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
        badf("%s %s: is a directory", opt, arg);
    for (int k = 0; k < in->n; k++) {
        struct stat st;
        if (stat(in->f[k].path, &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
            badf("%s %s: is the same file as %s %s; refusing to overwrite it", opt, arg, in->f[k].opt,
                 in->f[k].path);
    }
}

static void check_chardev_output(const struct file_list *in, const char *opt, const char *spec)
{
    if (spec && !strncmp(spec, "file:", 5))
        check_output(in, opt, spec, spec + 5);
}

/* -drive file=F[,format=raw][,if=ide][,index=N][,media=disk][,readonly=on][,snapshot=on] */
static void parse_drive(struct machine_config *cfg, const char *spec)
{
    char *copy = strdup(spec);
    const char *file = NULL;
    int index = -1;
    bool readonly = false, snapshot = false;
    for (char *save, *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        if (!eq)
            bad("-drive %s: '%s' is not key=value", spec, opt);
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(opt, "file"))
            file = need_path("-drive file=", v);
        else if (!strcmp(opt, "format") && strcmp(v, "raw"))
            bad("-drive %s: format '%s' is not supported (raw only)", spec, v);
        else if (!strcmp(opt, "if") && strcmp(v, "ide"))
            bad("-drive %s: interface '%s' is not supported (ide only)", spec, v);
        else if (!strcmp(opt, "media") && strcmp(v, "disk"))
            bad("-drive %s: media '%s' is not supported yet (disk only)", spec, v);
        else if (!strcmp(opt, "index"))
            index = parse_number("-drive index", v, 0, 3);
        else if (!strcmp(opt, "readonly"))
            readonly = parse_on_off("-drive", opt, v);
        else if (!strcmp(opt, "snapshot"))
            snapshot = parse_on_off("-drive", opt, v);
        else if (strcmp(opt, "format") && strcmp(opt, "if") && strcmp(opt, "media"))
            bad("-drive %s: unknown parameter '%s'", spec, opt);
    }
    if (!file)
        bad("-drive %s: file= is required%s", spec, "");
    if (index < 0)
        for (index = 0; index < 4 && cfg->drive[index].path; index++)
            ;
    if (index > 3)
        bad("-drive %s: all four IDE positions are taken%s", spec, "");
    if (cfg->drive[index].path)
        badf("-drive %s: drive index %d is already used by %s", spec, index, cfg->drive[index].path);
    cfg->drive[index].path = strdup(file);
    cfg->drive[index].readonly = readonly;
    cfg->drive[index].snapshot = snapshot;
    free(copy);
}

/* SIGINT/SIGTERM/SIGHUP end the run like a power-off (the screendump is
 * written, the terminal restored); a second one kills at once. */
static struct machine *running;

static void stop_signal(int sig)
{
    if (running && !running->stop_signal) {
        running->stop_signal = sig;
        return;
    }
    chardev_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_stop_signals(void)
{
    int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = stop_signal;
        sigemptyset(&sa.sa_mask);
        /* A signal the parent chose to ignore (nohup, background jobs) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            sigaction(sigs[i], &sa, NULL);
    }
}

int main(int argc, char **argv)
{
    struct machine_config cfg = { .ram_mb = 128, .accel_bt = true };
    const char *display = NULL;
    char *vnc_spec = NULL;
    const char *screendump = NULL;
    int nserial = 0;
    const char *trace_file = NULL;
    bool snapshot_all = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* Accept --opt as -opt, as QEMU does. */
        if (a[0] == '-' && a[1] == '-' && a[2])
            a++;
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG() do { if (!val) bad("%s needs an argument (see --help)%s", a, ""); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "-help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-version")) {
            printf("retrovisor %s\n", RETROVISOR_VERSION);
            return 0;
        } else if (!strcmp(a, "-m")) {
            NEED_ARG();
            cfg.ram_mb = parse_mem(val);
        } else if (!strcmp(a, "-bios")) {
            NEED_ARG();
            cfg.bios_path = need_path("-bios", val);
        } else if (!strcmp(a, "-serial")) {
            NEED_ARG();
            if (nserial >= 2)
                bad("-serial %s: only two serial ports (COM1, COM2)%s", val, "");
            check_chardev_spec("-serial", val);
            cfg.serial[nserial++] = strcmp(val, "none") ? val : NULL;
        } else if (!strcmp(a, "-debugcon")) {
            NEED_ARG();
            check_chardev_spec("-debugcon", val);
            cfg.debugcon = strcmp(val, "none") ? val : NULL;
        } else if (!strcmp(a, "-display")) {
            NEED_ARG();
            check_display_spec(val);
            display = val;
        } else if (!strcmp(a, "-vnc")) {
            NEED_ARG();
            free(vnc_spec);
            vnc_spec = malloc(strlen(val) + 5);
            sprintf(vnc_spec, "vnc=%s", val);
            check_vnc_spec("-vnc", val);
            display = vnc_spec;
        } else if (!strcmp(a, "-nographic")) {
            display = "none";
        } else if (!strcmp(a, "-screendump")) {
            NEED_ARG();
            screendump = need_path("-screendump", val);
        } else if (!strcmp(a, "-vga")) {
            NEED_ARG();
            if (!strcmp(val, "std"))
                cfg.no_vga = false;
            else if (!strcmp(val, "none"))
                cfg.no_vga = true;
            else
                bad("-vga %s: unknown display adapter (available: std, none)%s", val, "");
        } else if (!strcmp(a, "-vgabios")) {
            NEED_ARG();
            cfg.vgabios_path = need_path("-vgabios", val);
        } else if (!strcmp(a, "-hda") || !strcmp(a, "-hdb") || !strcmp(a, "-hdc") || !strcmp(a, "-hdd")) {
            NEED_ARG();
            if (cfg.drive[a[3] - 'a'].path)
                badf("%s %s: drive index %d is already used by %s", a, val, a[3] - 'a', cfg.drive[a[3] - 'a'].path);
            cfg.drive[a[3] - 'a'].path = need_path(a, val);
        } else if (!strcmp(a, "-drive")) {
            NEED_ARG();
            parse_drive(&cfg, val);
        } else if (!strcmp(a, "-snapshot")) {
            snapshot_all = true;
        } else if (!strcmp(a, "-kernel")) {
            NEED_ARG();
            cfg.kernel = need_path("-kernel", val);
        } else if (!strcmp(a, "-initrd")) {
            NEED_ARG();
            cfg.initrd = need_path("-initrd", val);
        } else if (!strcmp(a, "-append")) {
            NEED_ARG();
            cfg.append = val;
        } else if (!strcmp(a, "-no-reboot")) {
            cfg.no_reboot = true;
        } else if (!strcmp(a, "-accel")) {
            NEED_ARG();
            if (!strcmp(val, "bt") || !strcmp(val, "tcg"))
                cfg.accel_bt = true;
            else if (!strcmp(val, "interp"))
                cfg.accel_bt = false;
            else if (!strcmp(val, "kvm"))
                bad("-accel kvm: %s (available: bt, interp)%s",
                    access("/dev/kvm", R_OK | W_OK) ? "this host has no usable /dev/kvm" : "the kvm engine is not built yet", "");
            else
                bad("-accel %s: unknown engine (available: bt, interp)%s", val, "");
        } else if (!strcmp(a, "-d")) {
            NEED_ARG();
            if (!strcmp(val, "help")) {
                printf("trace flags for -d:\n%s", trace_flag_help());
                return 0;
            }
            char err[128];
            if (!trace_parse(val, &cfg.trace, err, sizeof(err)))
                bad("%s%s", err, "");
        } else if (!strcmp(a, "-D")) {
            NEED_ARG();
            trace_file = need_path("-D", val);
        } else if (!strcmp(a, "-icount")) {
            NEED_ARG();
            cfg.deterministic = true;
            cfg.ns_per_insn = 1 << parse_icount(val);
        } else if (!strcmp(a, "-run-for")) {
            NEED_ARG();
            cfg.run_for_ns = parse_seconds("-run-for", val);
        } else if (!strcmp(a, "-max-insns")) {
            NEED_ARG();
            cfg.max_insns = parse_number("-max-insns", val, 1, 0x7fffffffffffffffL);
        } else if (!strcmp(a, "-post-port")) {
            NEED_ARG();
            cfg.post_port2 = parse_number("-post-port", val, 1, 0xffff);
        } else {
            bad("unknown option '%s' (see --help)%s", argv[i], "");
        }
#undef NEED_ARG
    }

    if (snapshot_all)
        for (int k = 0; k < 4; k++)
            cfg.drive[k].snapshot = true;
    if ((cfg.initrd || cfg.append) && !cfg.kernel)
        bad("%s needs -kernel%s", cfg.initrd ? "-initrd" : "-append", "");
    if (screendump && cfg.no_vga)
        bad("-screendump %s: there is no screen with -vga none%s", screendump, "");
    if (nserial == 0)
        cfg.serial[0] = "stdio";

    struct file_list inputs = { .n = 0 };
    static const char *drive_opts[4] = { "-hda", "-hdb", "-hdc", "-hdd" };
    for (int k = 0; k < 4; k++)
        add_file(&inputs, drive_opts[k], cfg.drive[k].path);
    add_file(&inputs, "-bios", cfg.bios_path);
    if (!cfg.no_vga)
        add_file(&inputs, "-vgabios", cfg.vgabios_path);
    add_file(&inputs, "-kernel", cfg.kernel);
    if (cfg.initrd)
        add_initrd_files(&inputs, cfg.initrd);
    check_inputs(&inputs);
    /* The default firmware too: no output may overwrite it either. */
    add_file(&inputs, "-bios", cfg.bios_path ? NULL : MACHINE_DEFAULT_BIOS);
    add_file(&inputs, "-vgabios", cfg.vgabios_path || cfg.no_vga ? NULL : VGA_DEFAULT_BIOS);
    check_chardev_output(&inputs, "-serial", cfg.serial[0]);
    check_chardev_output(&inputs, "-serial", cfg.serial[1]);
    check_chardev_output(&inputs, "-debugcon", cfg.debugcon);
    if (trace_file)
        check_output(&inputs, "-D", trace_file, trace_file);
    if (screendump)
        check_output(&inputs, "-screendump", screendump, screendump);

    if (trace_file) {
        FILE *f = fopen(trace_file, "w");
        if (!f)
            bad("-D %s: %s", trace_file, strerror(errno));
        trace_set_output(f);
    }

    catch_stop_signals();
    struct machine *m = machine_new(&cfg);
    if (!m) {
        chardev_restore_terminal();
        return 2;
    }
    char err[512];
    if (display) {
        m->ui = ui_open(display, m->vga, m->kbc, err, sizeof(err));
        if (!m->ui) {
            chardev_restore_terminal();
            fprintf(stderr, "retrovisor: %s\n", err);
            machine_free(m);
            return 2;
        }
    } else {
        /* Default: a window when there is an X/Wayland display that SDL can open, else none. */
        const char *x = getenv("DISPLAY"), *wl = getenv("WAYLAND_DISPLAY");
        if ((x && *x) || (wl && *wl))
            m->ui = ui_open("sdl", m->vga, m->kbc, err, sizeof(err));
        if (!m->ui)
            m->ui = ui_open("none", m->vga, m->kbc, err, sizeof(err));
    }
    running = m;
    int status = machine_run(m);
    chardev_restore_terminal();
    if (m->stop_signal) {
        fprintf(stderr, "retrovisor: terminating on signal %d\n", (int)m->stop_signal);
        status = 0;
    }
    if (screendump && !ui_screendump(m->ui, screendump, err, sizeof(err))) {
        fprintf(stderr, "retrovisor: -%s\n", err);   /* err is "screendump FILE: why" */
        status = 2;
    }
    ui_close(m->ui);
    m->ui = NULL;
    running = NULL;
    machine_free(m);
    free(vnc_spec);
    fflush(NULL);
    return status;
}
