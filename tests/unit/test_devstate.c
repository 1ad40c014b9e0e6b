/*
 * Device state tables (devices/state.h): every device of a whole machine is
 * driven into a busy state through its ports and memory (transfers half
 * done, timers armed, interrupts raised), its records are moved into a
 * second machine that was driven elsewhere, and then
 *   - the second machine's records equal the first's, field by field;
 *   - both answer the same further port and memory reads, take the same
 *     interrupts, and stay equal while their timers fire.
 * Also: every device machine_new registers has a table and a unique name,
 * PCI BARs are re-mapped without leaking bus claims, and state_check
 * refuses records of the wrong shape naming the field.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/bus.h"
#include "devices/lapic.h"
#include "devices/pctestdev.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"

/* ---- the machine under test ---- */

struct files {
    char bios[64], disk[64], iso[64], floppy[64];
};
static struct files F;

static void write_pattern(const char *path, long size, int salt)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (long i = 0; i < size; i++)
        fputc((int)((i * 7 + salt + i / 512) & 0xff), f);
    fclose(f);
}

static int setup_files(void **state)
{
    int pid = (int)getpid();
    snprintf(F.bios, sizeof(F.bios), "/tmp/rv-devstate-bios-%d.bin", pid);
    snprintf(F.disk, sizeof(F.disk), "/tmp/rv-devstate-disk-%d.img", pid);
    snprintf(F.iso, sizeof(F.iso), "/tmp/rv-devstate-cd-%d.iso", pid);
    snprintf(F.floppy, sizeof(F.floppy), "/tmp/rv-devstate-fd-%d.img", pid);
    FILE *f = fopen(F.bios, "wb");
    assert_non_null(f);
    for (int i = 0; i < 0x10000; i++)
        fputc(0xf4, f);               /* HLT: the firmware never runs here */
    fclose(f);
    write_pattern(F.disk, 1 << 20, 1);
    write_pattern(F.iso, 1 << 20, 2);
    write_pattern(F.floppy, 1474560, 3);
    return 0;
}

static int remove_files(void **state)
{
    unlink(F.bios);
    unlink(F.disk);
    unlink(F.iso);
    unlink(F.floppy);
    return 0;
}

/* Every device the machine can have: two serial ports, both debug consoles,
 * pc-testdev, a disk, a CD-ROM, a floppy, a PCnet and an NE2000. */
static struct machine *full_machine(void)
{
    struct machine_config cfg = {
        .ram_mb = 16, .bios_path = F.bios, .deterministic = true, .ns_per_insn = 1,
        .serial = { "null", "null" }, .debugcon = "null", .pc_testdev = true,
        .n_netdev = 2, .netdev = { "user,id=n0", "user,id=n1" }, .n_nic = 2,
    };
    cfg.drive[0] = (struct drive_config){ .path = F.disk, .format = "raw", .readonly = true };
    cfg.drive[2] = (struct drive_config){ .path = F.iso, .format = "raw", .cdrom = true };
    cfg.floppy[0] = (struct floppy_config){ .present = true, .path = F.floppy, .readonly = true };
    cfg.nic[0] = (struct nic_config){ .model = "pcnet", .netdev = "n0", .mac = { 0x52, 0x54, 0, 1, 2, 3 },
                                      .option = "-device pcnet" };
    cfg.nic[1] = (struct nic_config){ .model = "ne2k_pci", .netdev = "n1", .mac = { 0x52, 0x54, 0, 1, 2, 4 },
                                      .option = "-device ne2k_pci" };
    struct machine *m = machine_new(&cfg);
    assert_non_null(m);
    return m;
}

/* ---- access helpers ---- */

static void out8(struct machine *m, uint16_t port, uint8_t v) { machine_io_write(m, port, v, 1); }
static void out16(struct machine *m, uint16_t port, uint16_t v) { machine_io_write(m, port, v, 2); }
static void out32(struct machine *m, uint16_t port, uint32_t v) { machine_io_write(m, port, v, 4); }
static uint32_t in(struct machine *m, uint16_t port, int size) { return machine_io_read(m, port, size); }

static void mmio_w32(struct machine *m, uint32_t addr, uint32_t v)
{
    assert_true(bus_mmio_write(m->bus, addr, v, 4));
}

static uint32_t mmio_r32(struct machine *m, uint32_t addr)
{
    uint32_t v = 0xdeadbeef;
    if (!bus_mmio_read(m->bus, addr, 4, &v))
        return 0xfeedface;
    return v;
}

static void cfg_w(struct machine *m, int devfn, int off, uint32_t v, int size)
{
    out32(m, 0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (off & 0xfc));
    machine_io_write(m, 0xcfc + (off & 3), v, size);
}

static uint32_t cfg_r(struct machine *m, int devfn, int off, int size)
{
    out32(m, 0xcf8, 0x80000000u | (uint32_t)devfn << 8 | (off & 0xfc));
    return machine_io_read(m, 0xcfc + (off & 3), size);
}

static int find_fn(struct machine *m, uint16_t vendor, uint16_t device)
{
    for (int devfn = 0; devfn < 256; devfn++)
        if (cfg_r(m, devfn, 0, 4) == ((uint32_t)device << 16 | vendor))
            return devfn;
    fail_msg("no PCI function %04x:%04x", vendor, device);
    return -1;
}

static void pass_time(struct machine *m, int64_t ns)
{
    vclock_account_insns(m->clock, (uint64_t)ns);
    vclock_run_timers(m->clock);
}

/* ---- driving every device into a busy state ---- */

/* Where the BARs go, and a few values that differ between the two. */
struct layout {
    uint16_t pcnet_io, ne2k_io, ide_bm, pm_io;
    uint32_t lfb, vga_mmio;
    uint8_t salt;
};
static const struct layout HERE = { 0xc000, 0xc100, 0xc200, 0x600, 0xe0000000u, 0xe1000000u, 0 };
static const struct layout ELSEWHERE = { 0xd000, 0xd100, 0xd200, 0x700, 0xe8000000u, 0xe9000000u, 0x11 };

static void place_pci(struct machine *m, const struct layout *l)
{
    int pcnet = find_fn(m, 0x1022, 0x2000), ne2k = find_fn(m, 0x10ec, 0x8029);
    int vga = find_fn(m, 0x1234, 0x1111), ide = find_fn(m, 0x8086, 0x7010);
    int pm = find_fn(m, 0x8086, 0x7113), isa = find_fn(m, 0x8086, 0x7000);
    cfg_w(m, pcnet, 0x10, l->pcnet_io | 1, 4);
    cfg_w(m, pcnet, 0x04, 0x0007, 2);
    cfg_w(m, ne2k, 0x10, l->ne2k_io | 1, 4);
    cfg_w(m, ne2k, 0x04, 0x0003, 2);
    cfg_w(m, vga, 0x10, l->lfb, 4);
    cfg_w(m, vga, 0x18, l->vga_mmio, 4);
    cfg_w(m, vga, 0x04, 0x0003, 2);
    cfg_w(m, ide, 0x20, l->ide_bm | 1, 4);
    cfg_w(m, ide, 0x04, 0x0005, 2);
    cfg_w(m, pm, 0x40, l->pm_io | 1, 4);
    cfg_w(m, pm, 0x80, 0x01, 1);          /* PMREGMISC: the block decodes */
    /* PIRQA-D to IRQ 10, 11, 10, 11. */
    cfg_w(m, isa, 0x60, 0x0b0a0b0a, 4);
}

static void drive_pic_pit_rtc(struct machine *m, const struct layout *l)
{
    static const uint8_t init[][2] = {
        { 0x20, 0x11 }, { 0x21, 0x08 }, { 0x21, 0x04 }, { 0x21, 0x01 },
        { 0xa0, 0x11 }, { 0xa1, 0x70 }, { 0xa1, 0x02 }, { 0xa1, 0x01 },
    };
    for (size_t k = 0; k < sizeof(init) / sizeof(init[0]); k++)
        out8(m, init[k][0], init[k][1]);
    out8(m, 0x21, 0x08 ^ l->salt);       /* COM2 masked */
    out8(m, 0xa1, 0x20 ^ l->salt);       /* IRQ 13 masked */
    out8(m, 0x4d1, 0x0c);                 /* ELCR: IRQ 10, 11 level-triggered */
    out8(m, 0x43, 0x34);                  /* channel 0: mode 2, 1000 ticks */
    out8(m, 0x40, 0xe8 ^ l->salt);
    out8(m, 0x40, 0x03);
    out8(m, 0x61, 0x01);                  /* gate 2 up */
    out8(m, 0x43, 0xb0);                  /* channel 2: mode 0, 0x4321 */
    out8(m, 0x42, 0x21);
    out8(m, 0x42, 0x43);
    out8(m, 0x43, 0x76);                  /* channel 1: mode 3, only the LSB written */
    out8(m, 0x41, 0x10);
    pass_time(m, 1234567);
    out8(m, 0x43, 0x80);                  /* latch channel 2 and read half of it */
    in(m, 0x42, 1);
    out8(m, 0x70, 0x0b);                  /* RTC: periodic interrupts on */
    out8(m, 0x71, 0x42);
    out8(m, 0x70, 0x0a);
    out8(m, 0x71, 0x2a);                  /* 64 Hz */
    out8(m, 0x70, 0x20);
    out8(m, 0x71, 0x5a ^ l->salt);       /* a byte of CMOS RAM */
    out8(m, 0x70, 0x0c);                  /* index left at C */
}

static void drive_kbc_uarts(struct machine *m)
{
    out8(m, 0x64, 0xd1);                  /* output port: A20 off */
    out8(m, 0x60, 0xcd);
    out8(m, 0x60, 0xee);                  /* ECHO: the reply is on the wire */
    out8(m, 0x64, 0xd4);                  /* mouse: set sample rate 100 */
    out8(m, 0x60, 0xf3);
    for (int u = 0; u < 2; u++) {
        uint16_t b = u ? 0x2f8 : 0x3f8;
        out8(m, b + 3, 0x83);
        out8(m, b + 0, 0x03 + u);
        out8(m, b + 1, 0x00);
        out8(m, b + 3, 0x03);
        out8(m, b + 2, 0xc7);             /* FIFO, trigger 14 */
        out8(m, b + 4, 0x1b);             /* loopback, OUT2 */
        out8(m, b + 1, 0x0f);
        out8(m, b + 7, 0x5a + u);
        out8(m, b + 0, 'A' + u);          /* loops back into the RX FIFO */
        out8(m, b + 0, 'b');
    }
}

static void drive_dma_fdc(struct machine *m)
{
    out8(m, 0x0a, 0x05);                  /* mask channel 1 */
    out8(m, 0x0c, 0x00);
    out8(m, 0x02, 0x34);
    out8(m, 0x02, 0x12);
    out8(m, 0x83, 0x05);
    out8(m, 0x03, 0xff);
    out8(m, 0x0b, 0x45);
    out8(m, 0x02, 0x78);                  /* flip-flop left in the middle */
    out8(m, 0xd4, 0x05);                  /* second controller: mask channel 5 */
    /* FDC: non-DMA, read C0 H0 S1 and take 100 bytes of it. */
    out8(m, 0x3f2, 0x1c);
    out8(m, 0x3f5, 0x03);
    out8(m, 0x3f5, 0xaf);
    out8(m, 0x3f5, 0x03);
    static const uint8_t cmd[9] = { 0x46, 0x00, 0, 0, 1, 2, 1, 0x1b, 0xff };
    for (int i = 0; i < 9; i++)
        out8(m, 0x3f5, cmd[i]);
    assert_int_equal(in(m, 0x3f4, 1) & 0xe0, 0xe0);
    for (int i = 0; i < 100; i++)
        in(m, 0x3f5, 1);
}

static void drive_ide(struct machine *m)
{
    /* Primary master: READ SECTORS, 2 sectors from LBA 5, 100 words taken. */
    out8(m, 0x1f6, 0xe0);
    out8(m, 0x1f2, 2);
    out8(m, 0x1f3, 5);
    out8(m, 0x1f4, 0);
    out8(m, 0x1f5, 0);
    out8(m, 0x1f7, 0x20);
    assert_int_equal(in(m, 0x1f7, 1) & 0x89, 0x08);
    for (int i = 0; i < 100; i++)
        in(m, 0x1f0, 2);
    /* Secondary master (ATAPI): a unit attention is pending after power-on;
     * TEST UNIT READY takes it, then READ(10) of 2 sectors from LBA 3, 2 KiB
     * blocks, 40 words taken. */
    for (int round = 0; round < 2; round++) {
        bool read = round == 1;
        out8(m, 0x176, 0xa0);
        out8(m, 0x171, 0x00);
        out8(m, 0x174, 0x00);
        out8(m, 0x175, 0x08);
        out8(m, 0x177, 0xa0);
        uint8_t pkt[12] = { 0 };
        if (read) {
            pkt[0] = 0x28;
            pkt[5] = 3;
            pkt[8] = 2;
        }
        for (int i = 0; i < 12; i += 2)
            out16(m, 0x170, pkt[i] | pkt[i + 1] << 8);
        in(m, 0x177, 1);
    }
    assert_int_equal(in(m, 0x177, 1) & 0x89, 0x08);
    for (int i = 0; i < 40; i++)
        in(m, 0x170, 2);
}

static void drive_pci_devices(struct machine *m, const struct layout *l)
{
    int i440fx = find_fn(m, 0x8086, 0x1237);
    cfg_w(m, i440fx, 0x5a, 0x33, 1);      /* PAM1: 0xC0000-0xC7FFF is RAM */
    cfg_w(m, i440fx, 0x72, 0x0a, 1);      /* SMRAM: D_OPEN */
    /* PCnet: an init block at 0x10000 (16-bit style), rings of 4 and 2. */
    uint8_t ib[24] = { 0 };
    ib[2] = 0x52;
    ib[3] = 0x54;
    ib[16] = 0x00;
    ib[17] = 0x20;                        /* RX ring at 0x012000, 4 entries */
    ib[18] = 0x01;
    ib[19] = 2 << 5;
    ib[20] = 0x00;
    ib[21] = 0x30;                        /* TX ring at 0x013000, 2 entries */
    ib[22] = 0x01;
    ib[23] = 1 << 5;
    assert_true(physmem_copy_to(m->pm, 0x10000, ib, sizeof(ib)));
    out16(m, l->pcnet_io + 0x12, 1);
    out16(m, l->pcnet_io + 0x10, 0x0000);
    out16(m, l->pcnet_io + 0x12, 2);
    out16(m, l->pcnet_io + 0x10, 0x0001);
    out16(m, l->pcnet_io + 0x12, 0);
    out16(m, l->pcnet_io + 0x10, 0x0041);  /* INIT + IENA: IDON raises INTA */
    out16(m, l->pcnet_io + 0x10, 0x0042);  /* STRT: the TX poll timer runs */
    out16(m, l->pcnet_io + 0x12, 15);      /* RAP left at CSR15 */
    /* NE2000: ring 0x46-0x80, a remote write of 8 bytes half done. */
    uint16_t n = l->ne2k_io;
    out8(m, n + 0x00, 0x21);
    out8(m, n + 0x01, 0x46);
    out8(m, n + 0x02, 0x80);
    out8(m, n + 0x03, 0x46);
    out8(m, n + 0x0f, 0x1f);
    out8(m, n + 0x08, 0x00);
    out8(m, n + 0x09, 0x40);
    out8(m, n + 0x0a, 0x08);
    out8(m, n + 0x0b, 0x00);
    out8(m, n + 0x00, 0x12);
    out8(m, n + 0x10, 0xa1);
    out8(m, n + 0x10, 0xb2);
    out8(m, n + 0x10, 0xc3);
    out8(m, n + 0x00, 0x62);               /* page 1: CURR etc. */
    out8(m, n + 0x07, 0x47);
    out8(m, n + 0x00, 0x22);
    /* VGA: registers, a DAC write half done, VRAM, DISPI. */
    out8(m, 0x3c4, 0x02);
    out8(m, 0x3c5, 0x0f);
    out8(m, 0x3ce, 0x05);
    out8(m, 0x3cf, 0x40);
    out8(m, 0x3d4, 0x0e);
    out8(m, 0x3d5, 0x12);
    out8(m, 0x3c8, 0x05);
    out8(m, 0x3c9, 0x11);
    out8(m, 0x3c9, 0x22);
    out16(m, 0x1ce, 1);
    out16(m, 0x1cf, 640);
    mmio_w32(m, 0xb8000, 0x07410742);
    mmio_w32(m, l->lfb + 0x123450, 0xcafef00d);
    /* ACPI: the overflow timer on, SCI enabled and raised by a power button. */
    out16(m, l->pm_io + 0x02, 0x0101);
    out16(m, l->pm_io + 0x04, 0x0001);
    assert_true(machine_power_button(m));
    out8(m, 0xb3, 0x77);                  /* APM status */
    /* fw_cfg: the signature item, two bytes read. */
    out16(m, 0x510, 0x0000);
    in(m, 0x511, 1);
    in(m, 0x511, 1);
}

static void drive_apics_misc(struct machine *m)
{
    uint32_t la = 0xfee00000u, io = 0xfec00000u;
    mmio_w32(m, la + 0xf0, 0x1ff);
    mmio_w32(m, la + 0x80, 0x10);
    mmio_w32(m, la + 0x3e0, 0x3);
    mmio_w32(m, la + 0x320, 0x20040);     /* periodic, vector 0x40 */
    mmio_w32(m, la + 0x380, 50000);
    mmio_w32(m, io + 0x00, 0x10 + 2 * 4); /* pin 4 (COM1): vector 0x31, edge */
    mmio_w32(m, io + 0x10, 0x31);
    mmio_w32(m, io + 0x00, 0x10 + 2 * 9); /* pin 9 (SCI): vector 0x39, level */
    mmio_w32(m, io + 0x10, 0x8039);
    mmio_w32(m, io + 0x00, 0x10 + 2 * 16);
    mmio_w32(m, io + 0x10, 0x8050);       /* PIRQA, level */
    mmio_w32(m, io + 0x00, 0x03);         /* regsel left somewhere */
    out8(m, 0x80, 0x42);                  /* POST code */
    out32(m, 0xe0, 0x12345678);           /* pc-testdev */
    out8(m, 0x2000 + 7, 1);               /* pc-testdev holds IRQ 7 */
    mmio_w32(m, PCTESTDEV_IORAM_BASE + 0x40, 0x55aa55aa);
    out8(m, 0x402, 'x');
}

/* A frame for the PCnet to send when its poll timer next fires: the
 * descriptor is in RAM, which the snapshot carries beside the devices. */
static void queue_frame(struct machine *m)
{
    uint8_t frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 1, 2, 3, 0x88, 0xb5 };
    uint16_t desc[4] = { 0x4000, 0x8301, (uint16_t)-60, 0 };    /* OWN, STP, ENP; buffer at 0x14000 */
    assert_true(physmem_copy_to(m->pm, 0x14000, frame, sizeof(frame)));
    assert_true(physmem_copy_to(m->pm, 0x13000, desc, sizeof(desc)));
}

static void drive_everything(struct machine *m, const struct layout *l)
{
    pass_time(m, l->salt * 100000);       /* counters start at other moments */
    place_pci(m, l);
    drive_pic_pit_rtc(m, l);
    drive_kbc_uarts(m);
    drive_dma_fdc(m);
    drive_ide(m);
    drive_pci_devices(m, l);
    drive_apics_misc(m);
    pass_time(m, 333333);
    queue_frame(m);
    if (l->salt)                          /* the APIC's page elsewhere too */
        assert_true(machine_set_apic_base(m, 0xfed00000u | MSR_APIC_BASE_BSP | MSR_APIC_BASE_ENABLE));
}

/* ---- moving the state ---- */

struct records {
    int n;
    struct state_buf rec[64];
};

static void save_all(struct machine *m, struct records *r)
{
    r->n = bus_device_count(m->bus);
    assert_true(r->n <= 64);
    for (int i = 0; i < r->n; i++) {
        const struct device *d = bus_device(m->bus, i);
        r->rec[i] = (struct state_buf){ 0 };
        assert_non_null(d->state);
        state_save(d->state, d->name, d->opaque, &r->rec[i]);
    }
}

static void free_records(struct records *r)
{
    for (int i = 0; i < r->n; i++)
        state_buf_free(&r->rec[i]);
}

/* What the snapshot loader does for the devices: clock first, every record
 * checked, then applied, then every post_load in registration order. */
static void load_all(struct machine *dst, struct machine *src, const struct records *r)
{
    assert_int_equal(bus_device_count(dst->bus), r->n);
    char err[256];
    for (int i = 0; i < r->n; i++) {
        const struct device *d = bus_device(dst->bus, i);
        if (state_check(d->state, d->name, r->rec[i].data, r->rec[i].len, err, sizeof(err)))
            fail_msg("%s: %s", d->name, err);
    }
    vclock_restore(dst->clock, vclock_now(src->clock), vclock_insns(src->clock));
    /* Guest RAM is the snapshot's too (not the devices'): copied below the
     * legacy hole and above 1 MiB. */
    if (dst != src) {
        static uint8_t ram[16 << 20];
        assert_true(physmem_copy_from(src->pm, 0, ram, 0xa0000));
        assert_true(physmem_copy_to(dst->pm, 0, ram, 0xa0000));
        assert_true(physmem_copy_from(src->pm, 0x100000, ram, (16 << 20) - 0x100000));
        assert_true(physmem_copy_to(dst->pm, 0x100000, ram, (16 << 20) - 0x100000));
    }
    for (int i = 0; i < r->n; i++) {
        const struct device *d = bus_device(dst->bus, i);
        state_apply(d->state, d->opaque, r->rec[i].data, r->rec[i].len);
    }
    for (int i = 0; i < r->n; i++) {
        const struct device *d = bus_device(dst->bus, i);
        if (d->state->post_load)
            d->state->post_load(d->opaque);
    }
}

static void print_diff(const char *record, const char *field, const char *why, void *ctx)
{
    (*(int *)ctx)++;
    print_message("  %s.%s: %s\n", record, field, why);
}

static int compare_machines(struct machine *a, struct machine *b)
{
    struct records ra, rb;
    save_all(a, &ra);
    save_all(b, &rb);
    assert_int_equal(ra.n, rb.n);
    int diffs = 0, reported = 0;
    for (int i = 0; i < ra.n; i++)
        diffs += state_compare_records(ra.rec[i].data, ra.rec[i].len, rb.rec[i].data, rb.rec[i].len,
                                       print_diff, &reported);
    free_records(&ra);
    free_records(&rb);
    assert_int_equal(diffs, reported);
    return diffs;
}

/* A copy of a's state in a fresh machine that was first driven elsewhere. */
static struct machine *clone_into_busy(struct machine *a)
{
    struct machine *b = full_machine();
    drive_everything(b, &ELSEWHERE);
    pass_time(b, 777);
    struct records r;
    save_all(a, &r);
    load_all(b, a, &r);
    free_records(&r);
    return b;
}

/* ---- the same answers afterwards ---- */

struct probe {
    uint32_t v[512];
    int n;
};

static void note(struct probe *p, uint32_t v)
{
    assert_true(p->n < 512);
    p->v[p->n++] = v;
}

/* Reads every device answers (some of them consume state: FIFOs, latches,
 * transfers), with the interrupts the CPU would take between them. */
static void probe(struct machine *m, const struct layout *l, struct probe *p)
{
    /* First let the pending timers come due: the UARTs' character
     * timeouts, the keyboard's byte on the wire. */
    pass_time(m, 1500000);
    note(p, in(m, 0x3fa, 1));
    note(p, in(m, 0x2fa, 1));
    note(p, in(m, 0x64, 1));
    note(p, machine_intr_pending(m));
    note(p, in(m, 0x42, 1));                           /* the latched count's other half */
    note(p, in(m, 0x40, 1));
    note(p, in(m, 0x61, 1));
    out8(m, 0x20, 0x0a);
    note(p, in(m, 0x20, 1));                           /* IRR */
    note(p, in(m, 0x21, 1));
    note(p, in(m, 0xa1, 1));
    note(p, in(m, 0x4d0, 1) | in(m, 0x4d1, 1) << 8);
    note(p, in(m, 0x71, 1));                           /* RTC C: flags, clears them */
    out8(m, 0x70, 0x20);
    note(p, in(m, 0x71, 1));
    note(p, in(m, 0x64, 1));
    note(p, in(m, 0x60, 1));
    note(p, in(m, 0x92, 1));
    for (int u = 0; u < 2; u++)
        for (int r = 0; r < 8; r++)
            note(p, in(m, (u ? 0x2f8 : 0x3f8) + r, 1));
    note(p, in(m, 0x08, 1));                           /* DMA status */
    note(p, in(m, 0x02, 1));
    note(p, in(m, 0x83, 1));
    uint32_t sum;
    note(p, in(m, 0x3f4, 1));
    for (int i = 0; i < 420; i += 60)
        note(p, in(m, 0x3f5, 1));                      /* the floppy sector goes on */
    sum = 0;
    for (int i = 107; i < 512; i++)
        sum = sum * 31 + in(m, 0x3f5, 1);
    note(p, sum);
    note(p, in(m, 0x3f4, 1));
    pass_time(m, 50000);                               /* the result phase comes after a delay */
    note(p, in(m, 0x3f4, 1));
    for (int i = 0; i < 7; i++)
        note(p, in(m, 0x3f5, 1));
    note(p, in(m, 0x1f7, 1));
    for (int i = 0; i < 20; i++)
        note(p, in(m, 0x1f0, 2));                      /* and the disk's */
    sum = 0;
    for (int i = 0; i < 256; i++)                      /* into the second sector */
        sum = sum * 31 + in(m, 0x1f0, 2);
    note(p, sum);
    note(p, in(m, 0x1f7, 1));
    note(p, in(m, 0x177, 1));
    for (int i = 0; i < 20; i++)
        note(p, in(m, 0x170, 2));                      /* and the CD's */
    sum = 0;
    for (int i = 0; i < 1200; i++)                     /* into its second block */
        sum = sum * 31 + in(m, 0x170, 2);
    note(p, sum);
    note(p, in(m, 0x176, 1) | in(m, 0x174, 1) << 8 | in(m, 0x175, 1) << 16);
    note(p, in(m, l->ide_bm + 2, 1));
    note(p, in(m, 0x511, 1));                          /* fw_cfg goes on where it was */
    note(p, in(m, l->pcnet_io + 0x12, 2));
    note(p, in(m, l->pcnet_io + 0x10, 2));
    out16(m, l->pcnet_io + 0x12, 0);
    note(p, in(m, l->pcnet_io + 0x10, 2));
    out16(m, l->pcnet_io + 0x12, 76);
    note(p, in(m, l->pcnet_io + 0x10, 2));
    note(p, in(m, l->pcnet_io + 0x00, 4));             /* PROM */
    out8(m, l->ne2k_io + 0x10, 0xd4);                  /* the remote write goes on */
    note(p, in(m, l->ne2k_io + 0x07, 1));              /* ISR */
    out8(m, l->ne2k_io + 0x08, 0x00);                  /* and is read back */
    out8(m, l->ne2k_io + 0x09, 0x40);
    out8(m, l->ne2k_io + 0x0a, 0x08);
    out8(m, l->ne2k_io + 0x0b, 0x00);
    out8(m, l->ne2k_io + 0x00, 0x0a);
    for (int i = 0; i < 8; i++)
        note(p, in(m, l->ne2k_io + 0x10, 1));
    out8(m, l->ne2k_io + 0x00, 0x62);
    note(p, in(m, l->ne2k_io + 0x07, 1));              /* CURR */
    out8(m, l->ne2k_io + 0x00, 0x22);
    note(p, in(m, 0x3c5, 1));
    note(p, in(m, 0x3cf, 1));
    out8(m, 0x3c9, 0x33);                              /* the DAC triple completes */
    out8(m, 0x3c7, 0x05);
    note(p, in(m, 0x3c9, 1) | in(m, 0x3c9, 1) << 8 | in(m, 0x3c9, 1) << 16);
    out16(m, 0x1ce, 1);
    note(p, in(m, 0x1cf, 2));
    note(p, mmio_r32(m, 0xb8000));
    note(p, mmio_r32(m, l->lfb + 0x123450));
    note(p, mmio_r32(m, l->vga_mmio + 0x500 + 2));
    note(p, in(m, l->pm_io + 0x00, 2));
    note(p, in(m, l->pm_io + 0x04, 2));
    note(p, in(m, l->pm_io + 0x08, 4));                /* the PM timer follows the clock */
    note(p, in(m, 0xb3, 1));
    note(p, mmio_r32(m, 0xfee00080));
    note(p, mmio_r32(m, 0xfee00390));                  /* the APIC timer's current count */
    note(p, mmio_r32(m, 0xfee00200 + 0x30));           /* IRR 0x60-0x7f */
    note(p, mmio_r32(m, 0xfee00200 + 0x10));           /* IRR 0x20-0x3f */
    note(p, mmio_r32(m, 0xfec00010));
    note(p, in(m, 0x80, 1));
    note(p, in(m, 0xe0, 4));
    note(p, mmio_r32(m, PCTESTDEV_IORAM_BASE + 0x40));
    physmem_write(m->pm, 0xc0010, 0x99, 1);            /* PAM decides where this goes */
    note(p, (uint32_t)physmem_read(m->pm, 0xc0010, 1));
    note(p, m->cpu.a20);
    /* Interrupts as the CPU would take them, with time moving on. */
    for (int round = 0; round < 24; round++) {
        pass_time(m, 400000 + round * 12345);
        if (round == 20)
            pass_time(m, 3000000000);                  /* the ACPI timer's top bit flips */
        if (round == 8) {
            /* Quieter: the power button's SCI answered, the APIC timer masked,
             * so that the 8259's lines come through. */
            out16(m, l->pm_io + 0x00, 0x0100);
            mmio_w32(m, 0xfee00320, 0x10040);
        }
        out8(m, 0x43, 0x00);
        note(p, in(m, 0x40, 1) | in(m, 0x40, 1) << 8);
        uint16_t tmd1;
        assert_true(physmem_copy_from(m->pm, 0x13002, &tmd1, 2));
        note(p, tmd1);
        note(p, machine_intr_pending(m));
        if (!machine_intr_pending(m))
            continue;
        note(p, machine_intr_ack(m));
        /* Done with it: EOI everywhere, the level sources cleared now and then. */
        mmio_w32(m, 0xfee000b0, 0);
        out8(m, 0xa0, 0x20);
        out8(m, 0x20, 0x20);
        if (round % 4 == 3) {
            out8(m, 0x70, 0x0c);
            note(p, in(m, 0x71, 1));
            note(p, in(m, 0x3fa, 1));
            note(p, in(m, 0x3f8, 1));
            note(p, in(m, 0x60, 1));
        }
    }
}

static void assert_same_probes(const struct probe *a, const struct probe *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        if (a->v[i] != b->v[i])
            fail_msg("probe %d: %#x in the original, %#x in the copy", i, a->v[i], b->v[i]);
}

/* ---- tests ---- */

static void every_device_has_a_table_and_a_unique_name(void **state)
{
    struct machine *m = full_machine();
    int n = bus_device_count(m->bus);
    static const char *const expected[] = {
        "pic", "lapic", "ioapic", "pit", "rtc", "kbc", "serial0", "serial1", "debugcon-402", "debugcon-e9",
        "isa-debug-exit", "pc-testdev", "post", "pci-bus", "i440fx", "piix3", "acpi-pm", "fw_cfg", "ide",
        "vga", "ide1-cd0", "pcnet-3", "ne2k_pci-4", "dma", "fdc",
    };
    for (int i = 0; i < n; i++) {
        const struct device *d = bus_device(m->bus, i);
        if (!d->state)
            fail_msg("device '%s' has no state table", d->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(bus_device(m->bus, j)->name, d->name))
                fail_msg("two devices are called '%s'", d->name);
    }
    for (size_t k = 0; k < sizeof(expected) / sizeof(expected[0]); k++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            found |= !strcmp(bus_device(m->bus, i)->name, expected[k]);
        if (!found)
            fail_msg("no device '%s' in the machine", expected[k]);
    }
    assert_int_equal(n, (int)(sizeof(expected) / sizeof(expected[0])));
    machine_free(m);
}

/* A table's fields lie inside its structure and do not overlap. */
static void tables_are_well_formed(void **state)
{
    struct machine *m = full_machine();
    for (int i = 0; i < bus_device_count(m->bus); i++) {
        const struct state_table *t = bus_device(m->bus, i)->state;
        for (int a = 0; a < t->nfields; a++) {
            const struct state_field *fa = &t->fields[a];
            uint32_t alen = fa->kind == STATE_PLAIN ? fa->size : sizeof(void *);
            assert_true(fa->size > 0);
            for (int b = 0; b < a; b++) {
                const struct state_field *fb = &t->fields[b];
                uint32_t blen = fb->kind == STATE_PLAIN ? fb->size : sizeof(void *);
                if (!strcmp(fa->name, fb->name) ||
                    (fa->offset < fb->offset + blen && fb->offset < fa->offset + alen))
                    fail_msg("%s: fields %s and %s overlap", t->name, fa->name, fb->name);
            }
        }
    }
    machine_free(m);
}

static void busy_machine_moves_into_another(void **state)
{
    struct machine *a = full_machine();
    drive_everything(a, &HERE);
    /* The state is the busy one this test means. */
    assert_true(machine_intr_pending(a));
    assert_false(a->cpu.a20);
    struct machine *b = clone_into_busy(a);
    assert_int_equal(compare_machines(a, b), 0);

    struct probe pa = { .n = 0 }, pb = { .n = 0 };
    probe(a, &HERE, &pa);
    probe(b, &HERE, &pb);
    assert_same_probes(&pa, &pb);
    /* The probes saw the busy state: the disk's sector data, the CD's. */
    assert_int_equal(compare_machines(a, b), 0);
    machine_free(a);
    machine_free(b);
}

/* The second machine had its BARs elsewhere: after the load they decode
 * where the record says, nothing answers at the old places, and loading
 * again and again does not grow the bus's tables. */
static void bars_move_without_leaking(void **state)
{
    struct machine *a = full_machine();
    drive_everything(a, &HERE);
    struct machine *b = clone_into_busy(a);
    assert_true(bus_pio_claimed(b->bus, HERE.pcnet_io));
    assert_true(bus_pio_claimed(b->bus, HERE.ne2k_io));
    assert_true(bus_pio_claimed(b->bus, HERE.ide_bm));
    assert_true(bus_pio_claimed(b->bus, HERE.pm_io));
    assert_false(bus_pio_claimed(b->bus, ELSEWHERE.pcnet_io));
    assert_false(bus_pio_claimed(b->bus, ELSEWHERE.ne2k_io));
    assert_false(bus_pio_claimed(b->bus, ELSEWHERE.ide_bm));
    assert_false(bus_pio_claimed(b->bus, ELSEWHERE.pm_io));
    uint32_t v;
    assert_false(bus_mmio_read(b->bus, ELSEWHERE.lfb, 4, &v));
    assert_false(bus_mmio_read(b->bus, ELSEWHERE.vga_mmio, 4, &v));
    assert_int_equal(mmio_r32(b, HERE.lfb + 0x123450), 0xcafef00d);

    /* Back and forth between the two placements. */
    struct machine *c = full_machine();
    drive_everything(c, &ELSEWHERE);
    struct records ra, rc;
    save_all(a, &ra);
    save_all(c, &rc);
    load_all(b, c, &rc);
    int pio = bus_pio_slots(b->bus), mmio = bus_mmio_regions(b->bus);
    for (int k = 0; k < 20; k++) {
        load_all(b, a, &ra);
        assert_true(bus_pio_claimed(b->bus, HERE.pcnet_io));
        load_all(b, c, &rc);
        assert_false(bus_pio_claimed(b->bus, HERE.pcnet_io));
        assert_true(bus_pio_claimed(b->bus, ELSEWHERE.pcnet_io));
    }
    assert_int_equal(bus_pio_slots(b->bus), pio);
    assert_int_equal(bus_mmio_regions(b->bus), mmio);
    assert_int_equal(compare_machines(c, b), 0);
    load_all(b, a, &ra);
    assert_int_equal(compare_machines(a, b), 0);
    free_records(&ra);
    free_records(&rc);
    machine_free(a);
    machine_free(b);
    machine_free(c);
}

/* A freshly reset machine loaded with a busy one's state is as busy. */
static void reset_machine_takes_the_state(void **state)
{
    struct machine *a = full_machine();
    drive_everything(a, &HERE);
    struct machine *b = full_machine();
    assert_int_not_equal(compare_machines(a, b), 0);
    struct records r;
    save_all(a, &r);
    load_all(b, a, &r);
    free_records(&r);
    assert_int_equal(compare_machines(a, b), 0);
    struct probe pa = { .n = 0 }, pb = { .n = 0 };
    probe(a, &HERE, &pa);
    probe(b, &HERE, &pb);
    assert_same_probes(&pa, &pb);
    machine_free(a);
    machine_free(b);
}

/* Saved the moment the timers were armed: a seek in flight, a keyboard
 * byte on the wire, the RTC's periodic tick, the ACPI timer's overflow. */
static void arm_timers(struct machine *m)
{
    place_pci(m, &HERE);
    drive_pic_pit_rtc(m, &HERE);
    out16(m, HERE.pm_io + 0x02, 0x0001);
    out16(m, HERE.pm_io + 0x04, 0x0001);
    out8(m, 0x3f2, 0x1c);
    out8(m, 0x3f5, 0x0f);
    out8(m, 0x3f5, 0x00);
    out8(m, 0x3f5, 0x05);
    out8(m, 0x60, 0xee);
    out8(m, 0x60, 0xee);                  /* a second reply waits for the wire */
    in(m, 0x60, 1);
}

static void watch_timers(struct machine *m, struct probe *p)
{
    for (int round = 0; round < 40; round++) {
        pass_time(m, round == 30 ? 3000000000 : 7000 + round * 3001);
        note(p, machine_intr_pending(m));
        if (machine_intr_pending(m)) {
            note(p, machine_intr_ack(m));
            out8(m, 0xa0, 0x20);
            out8(m, 0x20, 0x20);
        }
        note(p, in(m, 0x3f4, 1));
        note(p, in(m, 0x64, 1));
        if (round % 10 == 5) {
            out8(m, 0x3f5, 0x08);                          /* SENSE INTERRUPT */
            note(p, in(m, 0x3f5, 1) | in(m, 0x3f5, 1) << 8);
            note(p, in(m, 0x60, 1));
            out8(m, 0x70, 0x0c);
            note(p, in(m, 0x71, 1));
            note(p, in(m, HERE.pm_io, 2));
        }
    }
}

static void timers_in_flight_fire_in_the_copy(void **state)
{
    struct machine *a = full_machine();
    arm_timers(a);
    struct machine *b = full_machine();
    struct records r;
    save_all(a, &r);
    load_all(b, a, &r);
    free_records(&r);
    assert_int_equal(compare_machines(a, b), 0);
    struct probe pa = { .n = 0 }, pb = { .n = 0 };
    watch_timers(a, &pa);
    watch_timers(b, &pb);
    assert_same_probes(&pa, &pb);
    assert_int_equal(compare_machines(a, b), 0);
    machine_free(a);
    machine_free(b);
}

/* ---- refusals ---- */

static const struct device *device_named(struct machine *m, const char *name)
{
    for (int i = 0; i < bus_device_count(m->bus); i++)
        if (!strcmp(bus_device(m->bus, i)->name, name))
            return bus_device(m->bus, i);
    fail_msg("no device %s", name);
    return NULL;
}

/* The record `d` would have if its table had field `k` changed by `edit`. */
static void save_edited(const struct device *d, int k, void (*edit)(struct state_field *), uint16_t version,
                        struct state_buf *out)
{
    const struct state_table *t = d->state;
    struct state_field fields[256];
    assert_true(t->nfields <= 256);
    memcpy(fields, t->fields, t->nfields * sizeof(fields[0]));
    struct state_table copy = *t;
    copy.fields = fields;
    copy.version = version;
    if (edit)
        edit(&fields[k]);
    *out = (struct state_buf){ 0 };
    state_save(&copy, d->name, d->opaque, out);
}

static void grow(struct state_field *f) { f->size += 1; }
static void rename_field(struct state_field *f) { f->name = "no_such_register"; }

static void expect_refusal(const struct device *d, const struct state_buf *rec, size_t len, const char *words)
{
    char err[256] = "";
    assert_int_equal(state_check(d->state, d->name, rec->data, len, err, sizeof(err)), -1);
    if (!strstr(err, words))
        fail_msg("'%s' does not say '%s'", err, words);
}

static void wrong_records_are_refused(void **state)
{
    struct machine *m = full_machine();
    const char *names[] = { "pit", "serial1", "ide", "vga", "fdc" };
    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        const struct device *d = device_named(m, names[n]);
        const struct state_table *t = d->state;
        int k = t->nfields / 2;
        struct state_buf rec;
        char err[256];

        save_edited(d, k, NULL, t->version, &rec);
        assert_int_equal(state_check(t, d->name, rec.data, rec.len, err, sizeof(err)), 0);
        for (size_t cut = 1; cut < rec.len; cut += rec.len / 7 + 1)
            expect_refusal(d, &rec, rec.len - cut, "truncated");
        expect_refusal(d, &rec, 3, "truncated");
        /* Under another device's name. */
        char other[64];
        snprintf(other, sizeof(other), "%s", d->name);
        assert_int_equal(state_check(t, "pic", rec.data, rec.len, err, sizeof(err)), -1);
        assert_non_null(strstr(err, other));
        state_buf_free(&rec);

        if (t->fields[k].kind == STATE_PLAIN) {
            save_edited(d, k, grow, t->version, &rec);
            char want[96];
            snprintf(want, sizeof(want), "field '%s' is %u bytes", t->fields[k].name, t->fields[k].size + 1);
            expect_refusal(d, &rec, rec.len, want);
            state_buf_free(&rec);
        }
        save_edited(d, k, rename_field, t->version, &rec);
        expect_refusal(d, &rec, rec.len, "field 'no_such_register'");
        state_buf_free(&rec);

        save_edited(d, k, NULL, t->version + 1, &rec);
        expect_refusal(d, &rec, rec.len, "version");
        state_buf_free(&rec);
    }
    machine_free(m);
}

/* A field missing from the record (a shorter table of the same version) is
 * named; a table version that added it later accepts the older record. */
static void missing_field_is_named(void **state)
{
    struct machine *m = full_machine();
    const struct device *d = device_named(m, "rtc");
    const struct state_table *t = d->state;
    struct state_table shorter = *t;
    shorter.nfields = t->nfields - 1;
    struct state_buf rec = { 0 };
    state_save(&shorter, d->name, d->opaque, &rec);
    char want[96];
    snprintf(want, sizeof(want), "lacks field '%s'", t->fields[t->nfields - 1].name);
    expect_refusal(d, &rec, rec.len, want);

    struct state_field fields[64];
    memcpy(fields, t->fields, t->nfields * sizeof(fields[0]));
    fields[t->nfields - 1].version = 2;
    struct state_table newer = *t;
    newer.fields = fields;
    newer.version = 2;
    char err[256];
    assert_int_equal(state_check(&newer, d->name, rec.data, rec.len, err, sizeof(err)), 0);
    state_buf_free(&rec);
    machine_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_device_has_a_table_and_a_unique_name),
        cmocka_unit_test(tables_are_well_formed),
        cmocka_unit_test(busy_machine_moves_into_another),
        cmocka_unit_test(bars_move_without_leaking),
        cmocka_unit_test(reset_machine_takes_the_state),
        cmocka_unit_test(timers_in_flight_fire_in_the_copy),
        cmocka_unit_test(wrong_records_are_refused),
        cmocka_unit_test(missing_field_is_named),
    };
    return cmocka_run_group_tests(tests, setup_files, remove_files);
}
