/*
 * Command line: QEMU's spelling where the meaning is the same.
 */
#define _GNU_SOURCE
#include "monitor/machine.h"
#include "monitor/snapshot.h"
#include "monitor/trace.h"
#include "monitor/cli_check.h"
#include "monitor/window_keys.h"
#include "monitor/hmp.h"

#include "monitor/control.h"
#include "monitor/gdbstub.h"
#include "hosted-driver/blk.h"
#include "hosted-driver/chardev.h"
#include "devices/vga.h"
#include "ui/ui.h"
#include "hosted-driver/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
            "  -no-reboot         exit instead of rebooting (a guest reset or system_reset)\n"
            "  -gdb tcp:[HOST]:PORT  wait for gdb's remote protocol on that port (HOST default\n"
            "                     127.0.0.1); addresses are linear, through the guest's page tables\n"
            "  -s                 the same as -gdb tcp:127.0.0.1:1234\n"
            "  -S                 start with the CPU paused (gdb continue or detach starts it)\n"
            "  -hda/-hdb/-hdc/-hdd FILE  disk image (raw, qcow2, vmdk, vhd: detected from its header)\n"
            "                     as IDE primary master/slave, secondary master/slave\n"
            "  -drive file=F[,format=raw|qcow2|vmdk|vpc][,index=N][,readonly=on][,snapshot=on]\n"
            "                     the same, with options (format= overrides detection)\n"
            "  -fda/-fdb FILE     raw floppy image in drive A:/B: (160K, 180K, 320K, 360K, 720K,\n"
            "                     1.2M, 1.44M or 2.88M; the drive type follows the size)\n"
            "  -drive [file=F,]if=floppy[,index=N][,readonly=on][,snapshot=on]  the same, with options;\n"
            "                     without file= an empty 1.44M drive\n"
            "  -fda-change SECONDS:FILE|SECONDS:eject  at that virtual time put FILE in A: (or\n"
            "                     take the disk out); -fdb-change for B:; may be repeated.\n"
            "                     Ctrl+Alt+F in the window or Ctrl-A F on the terminal takes the\n"
            "                     disk out of A: and puts it back\n"
            "  -cdrom FILE        ISO 9660 image in an ATAPI CD-ROM drive, IDE secondary master\n"
            "  -drive [file=F,]media=cdrom[,index=N]  a CD-ROM drive at position N (empty without file=)\n"
            "  -cdrom-change SECONDS:FILE|SECONDS:eject  at that virtual time put FILE in the first CD-ROM\n"
            "                     drive, or eject its disc (repeatable; the guest sees a media change)\n"
            "  -boot [order=]DRIVES[,menu=on|off]  boot order: a floppy, c hard disk, d CD-ROM,\n"
            "                     n network (default cad); menu=on: SeaBIOS's boot menu (ESC)\n"
            "  -snapshot          guest disk writes go to temporary files; images are never written\n"
            "  -rtc base=utc|YYYY-MM-DD[THH:MM:SS]  the RTC's date at power-on (default: the host's\n"
            "                     clock); a fixed date makes -icount runs reproducible\n"
            "  -loadvm NAME       start from snapshot NAME (taken with savevm in the monitor console\n"
            "                     or the window's Ctrl+Alt+S)\n"
            "  -snapshot-dir DIR  keep snapshots in DIR (default: FIRSTDISK.snapshots/ beside the first\n"
            "                     disk, else beside -kernel); a writable disk is frozen at savevm and\n"
            "                     later writes go to a layer in that folder, which later runs use\n"
            "  -kernel FILE       boot a kernel directly: Linux bzImage, or Multiboot (ELF or a.out kludge)\n"
            "  -initrd FILE       Linux initrd; for Multiboot: modules 'F [args],F2' comma separated\n"
            "  -append CMDLINE    kernel command line\n"
            "  -accel ENGINE      bt: the translation cache (default); interp: the reference interpreter\n"
            "  -vga TYPE          std: standard VGA + Bochs VBE at PCI 00:02.0 (default); none: no display adapter\n"
            "  -vgabios FILE      VGA BIOS option ROM (default: SeaVGABIOS,\n"
            "                     " VGA_DEFAULT_BIOS ")\n"
            "  -machine [pc,]acpi=on|off  acpi=off: no ACPI power management function and no ACPI\n"
            "                     tables (the older machine); default on\n"
            "  -no-acpi           same as -machine acpi=off\n"

            "  -device pc-testdev kvm-unit-tests' test device: ports 0xe0-0xe7, IRQ lines at\n"
            "                     0x2000-0x2017, 64 KiB of MMIO memory at 0xff000000 (off by default)\n"
            "\n"
            "Network (default: one PCnet card on user networking, MAC 52:54:00:12:34:56):\n"
            "  -netdev user,id=ID[,hostfwd=[tcp|udp]:[HOSTADDR]:PORT-[GUESTADDR]:PORT][,restrict=on]\n"
            "          [,tftp=DIR][,bootfile=FILE][,hostname=NAME][,pcap=FILE][,ipv6=on]\n"
            "                     user-mode NAT (libslirp): guest 10.0.2.15, gateway and host 10.0.2.2,\n"
            "                     DNS 10.0.2.3; hostfwd binds 127.0.0.1 unless HOSTADDR is given;\n"
            "                     restrict=on allows only forwarded ports; pcap= captures the traffic\n"
            "  -device pcnet,netdev=ID[,mac=M]     AMD PCnet-PCI II (Am79C970A) on that backend\n"
            "  -device ne2k_pci,netdev=ID[,mac=M]  NE2000 PCI (RTL8029) on that backend\n"
            "  -nic user[,model=pcnet|ne2k_pci][,mac=M][,BACKEND OPTIONS]  both in one option\n"
            "  -net none          no network card\n"
            "  -boot n            boot from the network: the cards get iPXE's boot ROM (Debian's ipxe-qemu,\n"
            "                     or romfile=FILE on -device/-nic) and come first in SeaBIOS's boot order\n"
            "\n"
            "Display:\n"
            "  -display sdl       an SDL2 window (default when $DISPLAY is set and SDL can open it);\n"
            "                     a click grabs the mouse, Ctrl+Alt releases it; Ctrl+Alt plus:\n"
            "                     Enter full screen, Del Ctrl+Alt+Del to the guest (Insert sends it\n"
            "                     too), P pause/resume, S snapshot, R revert to the last snapshot,\n"
            "                     Q power button (again: power off), F floppy A: out/in, E CD out/in\n"
            "                     (the same keys work from a VNC client)\n"
            "  -name NAME         the VM's name, in the window title (default: the first disk's\n"
            "                     or -kernel's file name)\n"
            "  -display vnc=[ADDR]:N[,password][,password-file=FILE]\n"
            "                     a VNC server on TCP port 5900+N of ADDR (default 127.0.0.1); with\n"
            "                     'password' the password is $RETROVISOR_VNC_PASSWORD (at most 8 characters)\n"
            "      ,websocket=on  also accept WebSockets (noVNC) on the same port (default off)\n"
            "      ,websocket-origins=ORIGIN[;ORIGIN...]  web pages allowed to connect\n"
            "                     (default: the server's own host and port)\n"
            "      ,max-clients=N at most N connections at a time, authenticated or not (default 16)\n"
            "      ,insecure      allow a non-loopback ADDR without a password\n"
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
            "Monitor console (QEMU's commands: help, info, x, xp, stop, cont, sendkey, savevm...):\n"
            "  -monitor stdio     on the terminal; shared with a serial port on stdio, Ctrl-A C\n"
            "                     switches between the two\n"
            "  -monitor unix:PATH[,server][,nowait]  a unix socket; with server it listens (and\n"
            "                     without nowait waits for the first client before the guest\n"
            "                     starts), else it connects to PATH\n"
            "  -monitor tcp:[HOST]:PORT[,server][,nowait]  the same over TCP; HOST defaults to\n"
            "                     127.0.0.1 (loopback) unless another address is named\n"
            "\n"
            "Debugging and testing:\n"
            "  -d FLAGS           trace: comma-separated list (-d help lists them)\n"
            "  -D FILE            write traces to FILE instead of stderr\n"
            "  -icount [shift=]N  deterministic time: each instruction takes 2^N ns (N 0..10)\n"
            "  -run-for SECONDS   stop after SECONDS of virtual time (exit status 0; finite, > 0)\n"
            "  -max-insns N       stop after N guest instructions (N >= 1; says so on stderr)\n"
            "  -savevm-at N:NAME  take snapshot NAME when N guest instructions have run, or with\n"
            "                     N = end when the run ends (reproducible snapshots with -icount)\n"
            "  -post-port PORT    also record POST codes written to PORT (1..0xffff; port 0x80 always)\n"
            "\n"
            "  -h, --help         this text\n"
            "  --version          print the version\n"
            "\n"
            "The guest can end the run through the isa-debug-exit port 0xf4: writing V exits\n"
            "with status (V << 1) | 1, as in QEMU.  SIGPWR (kill -PWR) presses the ACPI power\n"
            "button; an ACPI guest that powers off (S5) ends the run with status 0.\n"
            "\n"
            "An option given twice: the last one wins, as in QEMU, except that -serial adds\n"
            "the next port and a drive position (-hda, -drive index=) cannot be taken twice.\n"
            "A bad option or input file ends retrovisor with one line and exit status 2 before\n"
            "any output file is opened; an output file that is one of the input images is refused.\n");
}

static _Noreturn void bad(const char *fmt, const char *a, const char *b);

/* -rtc base=utc|localtime|YYYY-MM-DD[THH:MM:SS] (UTC): Unix seconds, 0 for the host's clock. */
static int64_t parse_rtc_base(const char *spec)
{
    if (strncmp(spec, "base=", 5))
        bad("-rtc %s: expected base=utc, base=localtime or base=YYYY-MM-DDTHH:MM:SS%s", spec, "");
    const char *v = spec + 5;
    if (!strcmp(v, "utc") || !strcmp(v, "localtime"))
        return 0;
    struct tm tm = {0};
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(v, "%Y-%m-%d", &tm);
    }
    if (!end || *end || tm.tm_year < 70 || tm.tm_year > 8099)
        bad("-rtc %s: the date is not YYYY-MM-DD[THH:MM:SS] between 1970 and 9999%s", spec, "");
    struct tm asked = tm, back;
    time_t t = timegm(&tm);
    /* timegm rolls 2006-02-30 over into March: such a date was a mistake. */
    if (!gmtime_r(&t, &back) || back.tm_mday != asked.tm_mday || back.tm_mon != asked.tm_mon)
        bad("-rtc %s: no such day%s", spec, "");
    return (int64_t)t;
}

static _Noreturn void bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "retrovisor: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(2);
}

static long parse_number(const char *opt, const char *s, long min, long max)
{
    char *end;
    /* strtol would skip blanks and take a '+'; an option value has neither. */
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
        cli_fail("%s: '%s' is not a number in %ld..%ld", opt, s, min, max);
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
        cli_fail("-m %s: unknown sub-option '%s' (only size= is supported)", arg, strchr(s, ',') + 1);
    if (!isdigit((unsigned char)s[0]))
        cli_fail("-m %s: '%s' is not a size in MiB", arg, s);
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
        cli_fail("-m %s: '%s' is not a size (a number of MiB, or with a suffix M or G)", arg, s);
    if (v < RAM_MIN_MB || v > RAM_MAX_MB)
        cli_fail("-m %s: guest RAM must be between %d MiB and %d MiB (the machine's maximum: RAM ends where the PCI "
             "hole starts at 3.5 GiB)", arg, RAM_MIN_MB, RAM_MAX_MB);
    return v;
}

/* -drive if=floppy: index 0 is A:, 1 is B:; without file= the drive is empty. */
static void parse_floppy_drive(struct machine_config *cfg, const char *spec, const char *file, int index,
                               bool readonly, bool snapshot)
{
    if (index < 0)
        for (index = 0; index < 2 && cfg->floppy[index].present; index++)
            ;
    if (index > 1)
        bad("-drive %s: there are two floppy drives (index=0 or 1)%s", spec, "");
    cfg->floppy[index].present = true;
    cfg->floppy[index].path = file ? strdup(file) : NULL;
    cfg->floppy[index].readonly = readonly;
    cfg->floppy[index].snapshot = snapshot;
}

/* -fda-change/-fdb-change SECONDS:FILE or SECONDS:eject, in time order. */
static void parse_floppy_change(struct machine_config *cfg, const char *opt, const char *spec)
{
    const char *colon = strchr(spec, ':');
    char *end;
    double secs = strtod(spec, &end);
    if (!colon || end != colon || !(secs >= 0 && secs < 1e9) || !colon[1])
        bad("%s %s: expected SECONDS:FILE or SECONDS:eject", opt, spec);
    int n = cfg->n_floppy_change;
    if (n >= (int)(sizeof(cfg->floppy_change) / sizeof(cfg->floppy_change[0])))
        bad("%s %s: at most 8 floppy changes", opt, spec);
    int64_t at = (int64_t)(secs * 1e9);
    if (n && at < cfg->floppy_change[n - 1].at_ns)
        bad("%s %s: changes must be given in time order", opt, spec);
    cfg->floppy_change[n].drive = opt[3] - 'a';
    cfg->floppy_change[n].at_ns = at;
    cfg->floppy_change[n].path = strcmp(colon + 1, "eject") ? colon + 1 : NULL;
    cfg->n_floppy_change++;
}

/*
 * -boot [order=]DRIVES[,once=DRIVES][,menu=on|off][,strict=on|off]
 * DRIVES: letters a (floppy), c (hard disk), d (CD-ROM), n (network), each once.
 */
static void parse_boot(struct machine_config *cfg, const char *spec)
{
    char *copy = strdup(spec);
    for (char *save, *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        const char *v = eq ? eq + 1 : opt;
        if (eq)
            *eq = 0;
        if (!eq || !strcmp(opt, "order") || !strcmp(opt, "once")) {
            if (!*v || strspn(v, "acdn") != strlen(v))
                bad("-boot %s: '%s' is not a boot order (letters a, c, d, n)", spec, v);
            for (const char *p = v; *p; p++)
                if (strchr(p + 1, *p))
                    bad("-boot %s: drive '%s' is given twice", spec, (char[]){ *p, 0 });
            cfg->boot_order = strdup(v);
        } else if (!strcmp(opt, "menu")) {
            if (strcmp(v, "on") && strcmp(v, "off"))
                bad("-boot %s: menu=%s: on or off", spec, v);
            cfg->boot_menu = !strcmp(v, "on");
        } else if (strcmp(opt, "strict") && strcmp(opt, "splash-time") && strcmp(opt, "reboot-timeout")) {
            bad("-boot %s: unknown parameter '%s' (order, once, menu)", spec, opt);
        }
    }
    free(copy);
}

/* -drive file=F[,format=raw|qcow2|vmdk|vpc][,if=ide][,index=N][,media=disk][,readonly=on][,snapshot=on] */
static void parse_drive(struct machine_config *cfg, const char *spec)
{
    char *copy = strdup(spec);
    const char *file = NULL, *format = NULL;
    int index = -1;
    bool readonly = false, snapshot = false, floppy = false, cdrom = false;
    for (char *save, *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        if (!eq)
            bad("-drive %s: '%s' is not key=value", spec, opt);
        *eq = 0;
        const char *v = eq + 1;
        if (!strcmp(opt, "file"))
            file = cli_need_path("-drive file=", v);
        else if (!strcmp(opt, "format") && !blk_format_known(v))
            bad("-drive %s: format '%s' is not supported (raw, qcow2, vmdk, vpc)", spec, v);
        else if (!strcmp(opt, "format"))
            format = v;
        else if (!strcmp(opt, "if") && !strcmp(v, "floppy"))
            floppy = true;
        else if (!strcmp(opt, "if") && strcmp(v, "ide"))
            bad("-drive %s: interface '%s' is not supported (ide or floppy)", spec, v);
        else if (!strcmp(opt, "media") && strcmp(v, "disk") && strcmp(v, "cdrom"))
            bad("-drive %s: media '%s' is not supported (disk or cdrom)", spec, v);
        else if (!strcmp(opt, "media") && !strcmp(v, "cdrom"))
            cdrom = true;
        else if (!strcmp(opt, "index"))
            index = parse_number("-drive index", v, 0, 3);
        else if (!strcmp(opt, "readonly"))
            readonly = cli_on_off("-drive", opt, v);
        else if (!strcmp(opt, "snapshot"))
            snapshot = cli_on_off("-drive", opt, v);
        else if (strcmp(opt, "format") && strcmp(opt, "if") && strcmp(opt, "media"))
            bad("-drive %s: unknown parameter '%s'", spec, opt);
    }
    if (floppy) {
        parse_floppy_drive(cfg, spec, file, index, readonly, snapshot);
        free(copy);
        return;
    }
    if (!file && !cdrom)
        bad("-drive %s: file= is required%s", spec, "");
    if (index < 0)
        for (index = 0; index < 4 && (cfg->drive[index].path || cfg->drive[index].cdrom); index++)
            ;
    if (index > 3)
        bad("-drive %s: all four IDE positions are taken%s", spec, "");
    if (cfg->drive[index].path || cfg->drive[index].cdrom)
        cli_fail("-drive %s: drive index %d is already used by %s", spec, index,
                 cfg->drive[index].path ? cfg->drive[index].path : "a CD-ROM drive");
    cfg->drive[index].path = file ? strdup(file) : NULL;
    cfg->drive[index].readonly = readonly || cdrom;
    cfg->drive[index].snapshot = snapshot;
    cfg->drive[index].cdrom = cdrom;
    cfg->drive[index].format = format ? strdup(format) : NULL;
    free(copy);
}

/* -cdrom-change SECONDS:FILE or SECONDS:eject */
static void parse_cdrom_change(struct machine_config *cfg, const char *spec)
{
    const char *colon = strchr(spec, ':');
    char *end;
    double secs = strtod(spec, &end);
    if (!colon || end != colon || secs < 0 || !colon[1])
        bad("-cdrom-change %s: expected SECONDS:FILE or SECONDS:eject%s", spec, "");
    if (cfg->n_cdrom_change >= (int)(sizeof(cfg->cdrom_change) / sizeof(cfg->cdrom_change[0])))
        bad("-cdrom-change %s: at most 8 changes%s", spec, "");
    int64_t at = (int64_t)(secs * 1e9);
    int n = cfg->n_cdrom_change;
    if (n && at < cfg->cdrom_change[n - 1].at_ns)
        bad("-cdrom-change %s: changes must be given in time order%s", spec, "");
    cfg->cdrom_change[n].at_ns = at;
    cfg->cdrom_change[n].path = strcmp(colon + 1, "eject") ? colon + 1 : NULL;
    cfg->n_cdrom_change++;
}

/* -machine [type=]pc[,acpi=on|off] */
static void parse_machine(struct machine_config *cfg, const char *spec)
{
    char *copy = strdup(spec);
    for (char *save, *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        if (!strcmp(opt, "pc") || !strcmp(opt, "type=pc"))
            continue;
        if (!strcmp(opt, "acpi=off") || !strcmp(opt, "acpi=no"))
            cfg->no_acpi = true;
        else if (!strcmp(opt, "acpi=on") || !strcmp(opt, "acpi=yes"))
            cfg->no_acpi = false;
        else
            bad("-machine %s: unknown property '%s' (available: pc, acpi=on|off)", spec, opt);
    }
    free(copy);
}

/* ---- network: -netdev, -device pcnet|ne2k_pci, -nic, -net none ---- */

static bool is_nic_model(const char *m)
{
    return !strcmp(m, "pcnet") || !strcmp(m, "ne2k_pci");
}

/* "-device MODEL,..." names one of our cards */
static bool is_nic_device(const char *spec)
{
    size_t n = strcspn(spec, ",");
    return (n == 5 && !strncmp(spec, "pcnet", 5)) || (n == 8 && !strncmp(spec, "ne2k_pci", 8));
}

static void parse_mac(const char *opt, const char *spec, const char *v, uint8_t mac[6])
{
    unsigned b[6];
    char end;
    if (sscanf(v, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
        bad("%s: mac=%s is not six hex bytes like 52:54:00:12:34:56", opt, v);
    for (int k = 0; k < 6; k++) {
        if (b[k] > 0xff)
            bad("%s: mac=%s is not six hex bytes like 52:54:00:12:34:56", opt, v);
        mac[k] = b[k];
    }
    if (mac[0] & 1)
        bad("%s: mac=%s is a multicast address (the first byte must be even)", opt, v);
    (void)spec;
}

/* QEMU's default: 52:54:00:12:34:56 for the first card, one more for each next. */
static struct nic_config *add_nic(struct machine_config *cfg, const char *opt)
{
    if (cfg->n_nic == MAX_NICS)
        bad("%s: at most four network cards%s", opt, "");
    struct nic_config *n = &cfg->nic[cfg->n_nic];
    static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    memcpy(n->mac, base, 6);
    n->mac[5] += cfg->n_nic;
    n->option = strdup(opt);
    cfg->n_nic++;
    return n;
}

/* -device pcnet|ne2k_pci,netdev=ID[,mac=M][,id=NAME] */
static void parse_nic_device(struct machine_config *cfg, const char *spec)
{
    char opt[600];
    snprintf(opt, sizeof(opt), "-device %s", spec);
    char *copy = strdup(spec);
    char *save;
    char *model = strtok_r(copy, ",", &save);
    struct nic_config *n = add_nic(cfg, opt);
    n->model = strdup(model);
    for (char *o = strtok_r(NULL, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(o, '=');
        if (!eq)
            bad("%s: '%s' is not key=value", opt, o);
        *eq = 0;
        if (!strcmp(o, "netdev"))
            n->netdev = strdup(eq + 1);
        else if (!strcmp(o, "mac"))
            parse_mac(opt, spec, eq + 1, n->mac);
        else if (!strcmp(o, "romfile"))
            n->romfile = strdup(eq + 1);
        else if (strcmp(o, "id"))
            bad("%s: unknown parameter '%s' (netdev, mac, romfile, id)", opt, o);
    }
    if (!n->netdev)
        bad("%s: netdev= is required (the id of a -netdev user,id=...)%s", opt, "");
    free(copy);
}

/* -nic user[,model=pcnet|ne2k_pci][,mac=M][,BACKEND OPTIONS] or -nic none */
static void parse_nic(struct machine_config *cfg, const char *spec)
{
    if (!strcmp(spec, "none")) {
        cfg->net_none = true;
        return;
    }
    char opt[600];
    snprintf(opt, sizeof(opt), "-nic %s", spec);
    if (strncmp(spec, "user", 4) || (spec[4] && spec[4] != ','))
        bad("%s: only user networking exists (-nic user[,model=pcnet|ne2k_pci]...)%s", opt, "");
    if (cfg->n_netdev == MAX_NICS)
        bad("%s: at most four network backends%s", opt, "");
    struct nic_config *n = add_nic(cfg, opt);
    n->model = "pcnet";
    char id[32];
    snprintf(id, sizeof(id), "nic%d", cfg->n_nic - 1);
    n->netdev = strdup(id);
    /* Everything but model= and mac= is the backend's. */
    size_t cap = strlen(spec) + 64;
    char *backend = malloc(cap);
    snprintf(backend, cap, "user,id=%s", id);
    char *copy = strdup(spec);
    char *save;
    strtok_r(copy, ",", &save);
    for (char *o = strtok_r(NULL, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
        if (!strncmp(o, "model=", 6)) {
            if (!is_nic_model(o + 6))
                bad("%s: model '%s' is not a network card we have (pcnet, ne2k_pci)", opt, o + 6);
            n->model = strdup(o + 6);
        } else if (!strncmp(o, "mac=", 4)) {
            parse_mac(opt, spec, o + 4, n->mac);
        } else if (!strncmp(o, "romfile=", 8)) {
            n->romfile = strdup(o + 8);
        } else if (!strncmp(o, "id=", 3)) {
            bad("%s: -nic takes no id= (use -netdev and -device to name it)%s", opt, "");
        } else {
            strcat(backend, ",");
            strcat(backend, o);
        }
    }
    free(copy);
    cfg->netdev[cfg->n_netdev++] = backend;
}

/* SIGINT/SIGTERM/SIGHUP end the run like a power-off (the screendump is
 * written, the terminal restored); a second one kills at once. */
static struct machine *running;

/* SIGPWR presses the ACPI power button: an ACPI guest then shuts down cleanly. */
static void power_button_signal(int sig)
{
    if (running)
        running->power_button_signal = 1;
}

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
    struct sigaction pwr;
    memset(&pwr, 0, sizeof(pwr));
    pwr.sa_handler = power_button_signal;
    sigemptyset(&pwr.sa_mask);
    pwr.sa_flags = SA_RESTART;
    sigaction(SIGPWR, &pwr, NULL);
}

int main(int argc, char **argv)
{
    struct machine_config cfg = { .ram_mb = 128, .accel_bt = true };
    const char *display = NULL;
    char *vnc_spec = NULL;
    const char *screendump = NULL;
    const char *monitor = NULL;
    int nserial = 0;
    const char *trace_file = NULL;
    bool snapshot_all = false;
    char vm_name[64] = "";

    const char *gdb_spec = NULL;
    bool start_paused = false;

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
            cfg.bios_path = cli_need_path("-bios", val);
        } else if (!strcmp(a, "-serial")) {
            NEED_ARG();
            if (nserial >= 2)
                bad("-serial %s: only two serial ports (COM1, COM2)%s", val, "");
            cli_check_chardev("-serial", val);
            cfg.serial[nserial++] = strcmp(val, "none") ? val : NULL;
        } else if (!strcmp(a, "-debugcon")) {
            NEED_ARG();
            cli_check_chardev("-debugcon", val);
            cfg.debugcon = strcmp(val, "none") ? val : NULL;
        } else if (!strcmp(a, "-monitor")) {
            NEED_ARG();
            struct hmp_spec ms;
            char merr[512];
            if (strcmp(val, "none") && !hmp_parse_spec(val, &ms, merr, sizeof(merr)))
                bad("-monitor %s%s", merr, "");
            monitor = strcmp(val, "none") ? val : NULL;
        } else if (!strcmp(a, "-display")) {
            NEED_ARG();
            cli_check_display(val);
            display = val;
        } else if (!strcmp(a, "-name")) {
            NEED_ARG();
            char name_err[256];
            if (!window_parse_name(val, vm_name, sizeof(vm_name), name_err, sizeof(name_err)))
                bad("%s%s", name_err, "");
        } else if (!strcmp(a, "-vnc")) {
            NEED_ARG();
            free(vnc_spec);
            vnc_spec = xmalloc(strlen(val) + 5);
            sprintf(vnc_spec, "vnc=%s", val);
            cli_check_vnc("-vnc", val);
            display = vnc_spec;
        } else if (!strcmp(a, "-nographic")) {
            display = "none";
        } else if (!strcmp(a, "-screendump")) {
            NEED_ARG();
            screendump = cli_need_path("-screendump", val);
        } else if (!strcmp(a, "-vga")) {
            NEED_ARG();
            if (!strcmp(val, "std"))
                cfg.no_vga = false;
            else if (!strcmp(val, "none"))
                cfg.no_vga = true;
            else
                bad("-vga %s: unknown display adapter (available: std, none)%s", val, "");
        } else if (!strcmp(a, "-machine") || !strcmp(a, "-M")) {
            NEED_ARG();
            parse_machine(&cfg, val);
        } else if (!strcmp(a, "-no-acpi")) {
            cfg.no_acpi = true;
        } else if (!strcmp(a, "-device") && val && !strcmp(val, "pc-testdev")) {
            NEED_ARG();
            cfg.pc_testdev = true;
        } else if (!strcmp(a, "-vgabios")) {
            NEED_ARG();
            cfg.vgabios_path = cli_need_path("-vgabios", val);
        } else if (!strcmp(a, "-hda") || !strcmp(a, "-hdb") || !strcmp(a, "-hdc") || !strcmp(a, "-hdd")) {
            NEED_ARG();
            if (cfg.drive[a[3] - 'a'].cdrom)
                bad("%s %s: that IDE position already holds a CD-ROM drive", a, val);
            if (cfg.drive[a[3] - 'a'].path)
                cli_fail("%s %s: drive index %d is already used by %s", a, val, a[3] - 'a', cfg.drive[a[3] - 'a'].path);
            cfg.drive[a[3] - 'a'].path = cli_need_path(a, val);
        } else if (!strcmp(a, "-fda") || !strcmp(a, "-fdb")) {
            NEED_ARG();
            if (cfg.floppy[a[3] - 'a'].present)
                cli_fail("%s %s: drive %c: is already given", a, val, a[3] - 'a' + 'A');
            cfg.floppy[a[3] - 'a'].present = true;
            cfg.floppy[a[3] - 'a'].path = cli_need_path(a, val);
        } else if (!strcmp(a, "-fda-change") || !strcmp(a, "-fdb-change")) {
            NEED_ARG();
            parse_floppy_change(&cfg, a, val);
        } else if (!strcmp(a, "-boot")) {
            NEED_ARG();
            parse_boot(&cfg, val);
        } else if (!strcmp(a, "-drive")) {
            NEED_ARG();
            parse_drive(&cfg, val);
        } else if (!strcmp(a, "-cdrom")) {
            NEED_ARG();
            if (cfg.drive[2].path && !cfg.drive[2].cdrom)
                bad("-cdrom %s: IDE secondary master already holds the disk %s", val, cfg.drive[2].path);
            cfg.drive[2].path = val;
            cfg.drive[2].readonly = true;
            cfg.drive[2].cdrom = true;
        } else if (!strcmp(a, "-cdrom-change")) {
            NEED_ARG();
            parse_cdrom_change(&cfg, val);
        } else if (!strcmp(a, "-snapshot")) {
            snapshot_all = true;
        } else if (!strcmp(a, "-kernel")) {
            NEED_ARG();
            cfg.kernel = cli_need_path("-kernel", val);
        } else if (!strcmp(a, "-initrd")) {
            NEED_ARG();
            cfg.initrd = cli_need_path("-initrd", val);
        } else if (!strcmp(a, "-append")) {
            NEED_ARG();
            cfg.append = val;
        } else if (!strcmp(a, "-netdev")) {
            NEED_ARG();
            if (cfg.n_netdev == MAX_NICS)
                bad("-netdev %s: at most four network backends%s", val, "");
            cfg.netdev[cfg.n_netdev++] = val;
        } else if (!strcmp(a, "-device") && val && is_nic_device(val)) {
            NEED_ARG();
            parse_nic_device(&cfg, val);
        } else if (!strcmp(a, "-nic")) {
            NEED_ARG();
            parse_nic(&cfg, val);
        } else if (!strcmp(a, "-net")) {
            NEED_ARG();
            if (strcmp(val, "none"))
                bad("-net %s: only '-net none' is supported; use -nic or -netdev/-device%s", val, "");
            cfg.net_none = true;
        } else if (!strcmp(a, "-device")) {
            NEED_ARG();
            bad("-device %s: unknown device (available: pcnet, ne2k_pci, pc-testdev)%s", val, "");
        } else if (!strcmp(a, "-no-reboot")) {
            cfg.no_reboot = true;
        } else if (!strcmp(a, "-gdb")) {
            NEED_ARG();
            gdb_spec = val;
        } else if (!strcmp(a, "-s")) {
            gdb_spec = GDBSTUB_DEFAULT_SPEC;
        } else if (!strcmp(a, "-S")) {
            start_paused = true;
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
            trace_file = cli_need_path("-D", val);
        } else if (!strcmp(a, "-icount")) {
            NEED_ARG();
            cfg.deterministic = true;
            cfg.ns_per_insn = 1 << cli_icount(val);
        } else if (!strcmp(a, "-run-for")) {
            NEED_ARG();
            cfg.run_for_ns = cli_seconds("-run-for", val);
        } else if (!strcmp(a, "-max-insns")) {
            NEED_ARG();
            cfg.max_insns = parse_number("-max-insns", val, 1, 0x7fffffffffffffffL);
        } else if (!strcmp(a, "-rtc")) {
            NEED_ARG();
            cfg.rtc_base = parse_rtc_base(val);
        } else if (!strcmp(a, "-loadvm")) {
            NEED_ARG();
            cfg.loadvm = val;
        } else if (!strcmp(a, "-snapshot-dir")) {
            NEED_ARG();
            if (!*val)
                bad("-snapshot-dir: an empty folder name%s%s", "", "");
            cfg.snapshot_dir = val;
        } else if (!strcmp(a, "-savevm-at")) {
            NEED_ARG();
            char *colon = strchr(val, ':');
            if (!colon || !colon[1])
                bad("-savevm-at %s: expected ICOUNT:NAME%s", val, "");
            *colon = 0;
            if (!strcmp(val, "end"))
                cfg.savevm_at_end = true;
            else
                cfg.savevm_at = parse_number("-savevm-at", val, 1, 0x7fffffffffffffffL);
            cfg.savevm_at_name = colon + 1;
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
    if (snapshot_all)
        for (int k = 0; k < 2; k++)
            cfg.floppy[k].snapshot = true;
    for (int k = 0; k < cfg.n_floppy_change; k++)
        if (!cfg.floppy[cfg.floppy_change[k].drive].present)
            bad("-fd%s-change: there is no drive %s: (give -fda/-fdb or -drive if=floppy)",
                cfg.floppy_change[k].drive ? "b" : "a", cfg.floppy_change[k].drive ? "B" : "A");
    if ((cfg.initrd || cfg.append) && !cfg.kernel)
        bad("%s needs -kernel%s", cfg.initrd ? "-initrd" : "-append", "");
    if (screendump && cfg.no_vga)
        bad("-screendump %s: there is no screen with -vga none%s", screendump, "");
    if (nserial == 0)
        cfg.serial[0] = "stdio";

    cli_check_files(&cfg, trace_file, screendump);

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
    if (cfg.loadvm && snapshot_load(m, cfg.loadvm, err, sizeof(err)) < 0) {
        chardev_restore_terminal();
        fprintf(stderr, "retrovisor: -%s\n", err);
        machine_free(m);
        return 2;
    }

    if (gdb_spec && !gdbstub_new(m, gdb_spec, err, sizeof(err))) {
        chardev_restore_terminal();
        fprintf(stderr, "retrovisor: %s\n", err);
        machine_free(m);
        return 2;
    }
    if (start_paused)
        machine_pause(m, gdb_spec ? "debug" : "user");
    if (display) {
        m->ui = ui_open(display, m->vga, m->kbc, err, sizeof(err));
        if (!m->ui) {
            chardev_restore_terminal();
            fprintf(stderr, "retrovisor: %s\n", err);
            gdbstub_free(m->gdb);
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
    ui_set_cdrom_key(m->ui, machine_toggle_cdrom, m);
    ui_set_floppy_key(m->ui, machine_toggle_floppy, m);
    window_keys_attach(m, vm_name[0] ? vm_name : window_default_name(&cfg, vm_name, sizeof(vm_name)));
    struct hmp *hmp = NULL;
    if (monitor) {
        bool serial_on_stdio = (cfg.serial[0] && !strcmp(cfg.serial[0], "stdio")) ||
                               (cfg.serial[1] && !strcmp(cfg.serial[1], "stdio"));
        hmp = hmp_open(m, monitor, serial_on_stdio, err, sizeof(err));
        if (!hmp) {
            chardev_restore_terminal();
            fprintf(stderr, "retrovisor: %s\n", err);
            ui_close(m->ui);
            machine_free(m);
            return 2;
        }
    }
    running = m;
    int status = machine_run(m);
    hmp_close(hmp);

    gdbstub_free(m->gdb);
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
