/*
 * The assembled PC: CPU, bus, physical memory, clock and devices, plus the
 * run loop that asks an engine to execute until something needs the monitor.
 */
#ifndef RV_MACHINE_H
#define RV_MACHINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "monitor/cpu.h"

struct bus;
struct physmem;
struct vclock;
struct chardev;
struct pic;
struct pit;
struct cmos;
struct kbc;
struct uart;
struct pci_bus;
struct i440fx;
struct piix3;
struct fwcfg;
struct post;
struct ide;
struct dma;
struct fdc;
struct blockdev;
struct atapi;
struct vtimer;
struct bt;
struct vga;
struct ui;
struct acpi_pm;
struct control;
struct snapshots;

struct gdbstub;

struct lapic;
struct ioapic;
struct pctestdev;

/* The firmware without -bios: Debian's SeaBIOS. */
#define MACHINE_DEFAULT_BIOS "/usr/share/seabios/bios.bin"
struct pcnet;
struct ne2k;
struct netdev;

#define MAX_NICS 4

/* Trace flags for -d. */
#define TRACE_IN_ASM  0x01   /* disassemble each executed instruction */
#define TRACE_INT     0x02   /* interrupts and exceptions */
#define TRACE_POST    0x04   /* POST codes */
#define TRACE_UNIMP   0x08   /* unimplemented instructions / device accesses */
#define TRACE_CPU     0x10   /* register dump with in_asm */
#define TRACE_IOPORT  0x20   /* every port access */
#define TRACE_OUT_ASM 0x40   /* host code of each translated block (bt) */
#define TRACE_BT      0x80   /* translation cache: flushes, invalidated pages, totals at exit */

struct machine_config {
    uint32_t ram_mb;
    const char *bios_path;       /* NULL: the Debian SeaBIOS */
    const char *serial[2];       /* chardev specs for COM1/COM2 */
    const char *debugcon;        /* chardev spec for port 0x402, NULL: none */
    bool no_reboot;
    bool accel_bt;               /* -accel bt (default): the translation cache; else the interpreter */
    bool deterministic;          /* -icount: virtual time follows instructions */
    int ns_per_insn;
    unsigned trace;
    const char *trace_file;
    uint16_t post_port2;         /* extra POST port (0 = none), e.g. 0x190 for test386 */
    int64_t max_insns;           /* stop after this many instructions (0 = unlimited) */
    int64_t run_for_ns;          /* stop after this much virtual time (0 = unlimited) */
    const char *boot_order;      /* -boot: drive letters a, c, d, n in order; NULL: "cad" */
    bool boot_menu;              /* -boot menu=on */
    struct drive_config {
        const char *path;        /* disk image; NULL: no drive at this position */
        const char *format;      /* raw, qcow2, vmdk, vpc; NULL: detected from the header */
        bool readonly;
        bool snapshot;           /* writes go to a temporary overlay, the image is never written */
        bool cdrom;              /* an ATAPI CD-ROM drive (path NULL with cdrom: an empty drive) */
    } drive[4];                  /* IDE: 0 primary master, 1 primary slave, 2/3 secondary */
    struct media_change {        /* -cdrom-change: a CD swap at a virtual time (a test hook) */
        int64_t at_ns;
        const char *path;        /* NULL: eject */
    } cdrom_change[8];
    int n_cdrom_change;
    struct floppy_config {
        bool present;            /* a drive A:/B: is connected (with or without a disk) */
        const char *path;        /* raw image, or NULL: the drive is empty */
        bool readonly;
        bool snapshot;
    } floppy[2];
    struct floppy_change {       /* -fda-change/-fdb-change: at a virtual time, a new disk (or none) */
        int drive;
        int64_t at_ns;
        const char *path;        /* NULL: eject */
    } floppy_change[8];
    int n_floppy_change;
    const char *kernel;          /* -kernel: direct boot of a Multiboot image */
    const char *initrd;          /* -initrd: modules, comma separated ("file args,file2") */
    const char *append;          /* -append: kernel command line */
    bool no_vga;                 /* -vga none: no display adapter */
    const char *vgabios_path;    /* -vgabios: NULL = SeaVGABIOS (VGA_DEFAULT_BIOS) */
    bool no_acpi;                /* -machine acpi=off: no PM function, no ACPI tables */

    bool pc_testdev;             /* -device pc-testdev: kvm-unit-tests' test device */
    const char *netdev[MAX_NICS]; /* -netdev specs ("user,id=n0,..."), in order */
    int n_netdev;
    struct nic_config {
        const char *model;       /* "pcnet" or "ne2k_pci" */
        const char *netdev;      /* id of its -netdev */
        uint8_t mac[6];
        const char *option;      /* the option that asked for it, for error lines */
        const char *romfile;     /* boot ROM for its ROM BAR; NULL: iPXE's with -boot n, else none */
    } nic[MAX_NICS];
    int n_nic;
    bool net_none;               /* -net none: no card even by default */
    const char *snapshot_dir;    /* -snapshot-dir: where snapshots live (NULL: beside the first disk) */
    const char *loadvm;          /* -loadvm NAME: start from this snapshot */
    int64_t rtc_base;            /* -rtc base=: the RTC's time at power-on (Unix seconds); 0: the host's now */
    int64_t savevm_at;           /* -savevm-at N:NAME: take a snapshot at instruction N (0: none) */
    bool savevm_at_end;          /* -savevm-at end:NAME: ... when the run ends */
    const char *savevm_at_name;
};

struct machine {
    struct machine_config cfg;
    struct cpu cpu;
    struct bus *bus;
    struct physmem *pm;
    struct vclock *clock;
    struct chardev *serial_cd[2];
    struct chardev *debugcon_cd;
    struct pic *pic;
    struct pit *pit;
    struct cmos *cmos;
    struct kbc *kbc;
    struct uart *uart[2];
    struct pci_bus *pci;
    struct i440fx *i440fx;
    struct piix3 *piix3;
    struct fwcfg *fwcfg;
    struct post *post;
    struct ide *ide;
    struct blockdev *disk[4];
    struct atapi *cdrom[4];      /* ATAPI drives by IDE position */
    struct vtimer *cdrom_change_timer;
    int cdrom_change_next;
    char *cdrom_last;            /* the disc machine_toggle_cdrom took out */
    struct dma *dma;             /* the two 8237s and their page registers */
    struct fdc *fdc;             /* floppy controller at 0x3F0 */
    struct blockdev *floppy[2];  /* the disks in A: and B:, or NULL */
    char *floppy_out[2];         /* the image the terminal's Ctrl-A f took out, to put back */
    struct vtimer *floppy_change_timer;
    int floppy_change_next;      /* the first -fda-change not done yet */
    struct bt *bt;               /* translation cache, NULL with -accel interp */
    struct vga *vga;             /* standard VGA + Bochs VBE at 00:02.0, NULL with -vga none */
    uint32_t lfb_base;           /* where the VGA's LFB is mapped onto video memory (PCI_BAR_UNMAPPED: not) */
    uint32_t lfb_len;
    struct netdev *net[MAX_NICS]; /* the -netdev backends, in order */
    int n_net;
    struct pcnet *pcnet[MAX_NICS];
    struct ne2k *ne2k[MAX_NICS];
    struct ui *ui;               /* display front end polled by the run loop (main sets it), or NULL */
    uint64_t ui_next_ns;         /* host time (CLOCK_MONOTONIC) of the next ui_poll */
    uint64_t ui_check_icount;    /* icount at which the run loop next reads the host clock */
    uint64_t icount_accounted;   /* instructions already reported to the clock */
    bool stop;                   /* the run loop should return */
    volatile sig_atomic_t stop_signal;  /* set by main's SIGINT/SIGTERM handler: end the run cleanly */
    int exit_status;
    int resets;
    bool ferr;                   /* x87 FERR# asserted (IRQ13 level) */
    struct acpi_pm *acpi_pm;     /* PIIX4-style PM at 00:01.3, NULL with -machine acpi=off */
    volatile sig_atomic_t power_button_signal;  /* set by main's SIGPWR handler: press the button */

    struct lapic *lapic;         /* the CPU's local APIC */
    struct ioapic *ioapic;
    struct pctestdev *pctestdev; /* NULL unless -device pc-testdev */
    const bool *intr_line;       /* "an interrupt is deliverable" (bus_intr_line), polled at block boundaries */
    const bool *nmi_line;        /* the local APIC's NMI output, polled at instruction boundaries */
    uint8_t *apic_page_rd, *apic_page_wr;   /* what the APIC's page hides while it sits over RAM */
    struct control *control;     /* run state and work from other threads (monitor/control.h) */
    struct snapshots *snapshots; /* the snapshot folder and the last snapshot (monitor/snapshot.c) */
    bool savevm_at_done;

    struct gdbstub *gdb;         /* -gdb: the stub runs slices itself while it debugs, or NULL */
};

/* Build the machine; on a host-side error prints one line and returns NULL. */
struct machine *machine_new(const struct machine_config *cfg);
void machine_free(struct machine *m);
void machine_reset(struct machine *m);
/* Run until the guest powers off, asks to exit, or the user quits (the UI's
 * window closed: status 0). Returns the exit status. */
int machine_run(struct machine *m);

/* Change the disk in floppy drive 0 (A:) or 1 (B:): path NULL ejects.  The
 * guest sees the disk-change line.  Returns 0, or -1 with one line in err
 * (no such drive, unreadable file, size of no floppy format). */
int machine_change_floppy(struct machine *m, int drive, const char *path, char *err, size_t errlen);

/* CPU-side physical write (the hook where code-page tracking will live). */
void machine_phys_write(struct machine *m, uint32_t pa, uint32_t val, int size);
/* Report the instructions retired so far to the clock (before an MMIO read:
 * a device answers with exact time, as for ports). */
void machine_sync_clock(struct machine *m);
/* Port I/O from the CPU. */
uint32_t machine_io_read(struct machine *m, uint16_t port, int size);
void machine_io_write(struct machine *m, uint16_t port, uint32_t val, int size);
/* Virtual time now, including instructions of the current slice. */
int64_t machine_now(struct machine *m);
/* PIC interrupt line as seen by the CPU. */
bool machine_intr_pending(struct machine *m);
/* A flag equal to machine_intr_pending, or NULL (see bus_intr_line). */
const bool *machine_intr_line(struct machine *m);
int machine_intr_ack(struct machine *m);
/* The CPU took the NMI that *m->nmi_line announced. */
void machine_nmi_ack(struct machine *m);
/* IA32_APIC_BASE; machine_set_apic_base returns false for reserved bits (#GP). */
uint64_t machine_apic_base(struct machine *m);
bool machine_set_apic_base(struct machine *m, uint64_t val);
bool machine_apic_enabled(struct machine *m);
/* INVLPG hook (the translator drops stale lookups here). */
void machine_invlpg(struct machine *m, uint32_t lin);
/* The x87 unit's FERR# output, wired to IRQ13 as on a PC (port 0xF0 clears it). */
void machine_fpu_ferr(struct machine *m, bool asserted);
/* Put the image at path in the first CD-ROM drive, or eject its disc (path
 * NULL).  The guest sees a unit attention.  Refused (-1, one line in err)
 * when there is no CD-ROM drive, the file cannot be used, or the guest has
 * locked the tray and !force.  For the monitor console, a key in the window
 * and -cdrom-change. */
int machine_change_cdrom(struct machine *m, const char *path, bool force, char *err, size_t errlen);
/* Ctrl-A F on the terminal, Ctrl+Alt+F in the window: take the disk out of
 * A:, or put the one taken out back (the file is opened again, so it may
 * have been changed meanwhile); one line on stderr says which. */
void machine_toggle_floppy(void *machine);
/* Ctrl+Alt+E in the window: eject the first CD-ROM drive's disc, or put the
 * last one back; one line on stderr says which (or why not). */
void machine_toggle_cdrom(void *machine);
/* The power button (ACPI fixed feature): an ACPI guest shuts down on it.
 * False when the machine has no ACPI (-machine acpi=off). */
bool machine_power_button(struct machine *m);
/* Triple fault: reset (or stop with -no-reboot). */
void machine_triple_fault(struct machine *m);

#endif
