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
struct blockdev;
struct bt;
struct vga;
struct ui;
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
    const char *boot_order;
    struct drive_config {
        const char *path;        /* raw image; NULL: no drive at this position */
        bool readonly;
        bool snapshot;           /* writes stay in memory, the image is never written */
    } drive[4];                  /* IDE: 0 primary master, 1 primary slave, 2/3 secondary */
    const char *kernel;          /* -kernel: direct boot of a Multiboot image */
    const char *initrd;          /* -initrd: modules, comma separated ("file args,file2") */
    const char *append;          /* -append: kernel command line */
    bool no_vga;                 /* -vga none: no display adapter */
    const char *vgabios_path;    /* -vgabios: NULL = SeaVGABIOS (VGA_DEFAULT_BIOS) */
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
};

/* Build the machine; on a host-side error prints one line and returns NULL. */
struct machine *machine_new(const struct machine_config *cfg);
void machine_free(struct machine *m);
void machine_reset(struct machine *m);
/* Run until the guest powers off, asks to exit, or the user quits (the UI's
 * window closed: status 0). Returns the exit status. */
int machine_run(struct machine *m);

/* CPU-side physical write (the hook where code-page tracking will live). */
void machine_phys_write(struct machine *m, uint32_t pa, uint32_t val, int size);
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
/* INVLPG hook (the translator drops stale lookups here). */
void machine_invlpg(struct machine *m, uint32_t lin);
/* The x87 unit's FERR# output, wired to IRQ13 as on a PC (port 0xF0 clears it). */
void machine_fpu_ferr(struct machine *m, bool asserted);
/* Triple fault: reset (or stop with -no-reboot). */
void machine_triple_fault(struct machine *m);

#endif
