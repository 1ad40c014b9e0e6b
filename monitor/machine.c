/*
 * Machine assembly (the i440FX PC) and the run loop.
 */
#include "monitor/machine.h"
#include "monitor/interp.h"
#include "monitor/loader.h"
#include "monitor/acpi_tables.h"
#include "bt/bt.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "monitor/trace.h"
#include "monitor/guestlog.h"
#include "monitor/control.h"
#include "monitor/snapshot.h"

#include "monitor/gdbstub.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/pic.h"
#include "devices/pit.h"
#include "devices/cmos.h"
#include "devices/kbc.h"
#include "devices/uart.h"
#include "devices/debugcon.h"
#include "devices/debugexit.h"
#include "devices/post.h"
#include "devices/i440fx.h"
#include "devices/piix3.h"
#include "devices/acpi_pm.h"
#include "devices/fwcfg.h"
#include "devices/ide.h"
#include "devices/dma.h"
#include "devices/fdc.h"
#include "devices/atapi.h"
#include "devices/vga.h"
#include "devices/lapic.h"
#include "devices/ioapic.h"
#include "devices/pctestdev.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/chardev.h"
#include "hosted-driver/readfile.h"
#include "devices/pcnet.h"
#include "devices/ne2k.h"
#include "hosted-driver/net.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"
#include "ui/ui.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BIOS MACHINE_DEFAULT_BIOS
#define E820_RAM 1
#define E820_RESERVED 2

/* Instructions per run-loop slice in realtime mode (timers are checked
 * between slices): about 20-100 us of guest time either way.  Each slice
 * ends a chain of translated blocks, and at 20000 the way out and back
 * in was 8% of the sha256 job's time under bt. */
#define REALTIME_SLICE 20000
#define REALTIME_SLICE_BT 100000
#define MAX_SLICE 200000
/* The display front end is polled every UI_POLL_NS of host time; the run loop
 * reads the host clock only once per UI_CHECK_INSNS instructions (or when the
 * CPU is halted), so polling costs nothing measurable per instruction. */
#define UI_POLL_NS (10 * 1000 * 1000)
#define UI_CHECK_INSNS 50000

/* Firmware and kernels are read whole, after read_regular_file's checks. */
#define BIOS_MAX_SIZE 0x40000u

static uint8_t *read_file(const char *path, uint64_t limit, const char *limit_why, size_t *len, char *err,
                          size_t errlen)
{
    return read_regular_file(path, limit, limit_why, len, err, errlen);
}

/* ---- CPU-facing hooks ---- */

static void account_insns(struct machine *m)
{
    uint64_t n = cpu_icount(&m->cpu) - m->icount_accounted;
    if (n) {
        vclock_account_insns(m->clock, n);
        m->icount_accounted = cpu_icount(&m->cpu);
    }
}

int64_t machine_now(struct machine *m)
{
    account_insns(m);
    return vclock_now(m->clock);
}

uint32_t machine_io_read(struct machine *m, uint16_t port, int size)
{
    account_insns(m);
    uint32_t v = bus_pio_read(m->bus, port, size);
    if ((m->cfg.trace & TRACE_UNIMP) && !bus_pio_claimed(m->bus, port))
        guest_log(GUEST_LOG_UNASSIGNED_PORT, "in%c from unassigned port %04x", "bw?l"[size - 1], port);
    if (m->cfg.trace & TRACE_IOPORT)
        fprintf(trace_output(), "in%c  %04x -> %0*x\n", "bw?l"[size - 1], port, size * 2, v);
    return v;
}

void machine_io_write(struct machine *m, uint16_t port, uint32_t val, int size)
{
    account_insns(m);
    if (m->cfg.trace & TRACE_IOPORT)
        fprintf(trace_output(), "out%c %04x <- %0*x\n", "bw?l"[size - 1], port, size * 2, val);
    if ((m->cfg.trace & TRACE_UNIMP) && !bus_pio_claimed(m->bus, port))
        guest_log(GUEST_LOG_UNASSIGNED_PORT, "out%c to unassigned port %04x", "bw?l"[size - 1], port);
    uint64_t generation = m->pm->generation;
    bus_pio_write(m->bus, port, val, size);
    /* The write moved memory (PAM, a BAR, the LFB): translated code must not
     * run on into bytes whose page may now come from elsewhere. */
    if (m->pm->generation != generation)
        m->cpu.bt_exit = true;
    /* Devices may have asked for a reset or exit: end the slice. */
    int status;
    if (bus_pending_request(m->bus, &status) != BUS_REQ_NONE)
        cpu_set_budget(&m->cpu, 0);
}

void machine_phys_write(struct machine *m, uint32_t pa, uint32_t val, int size)
{
    physmem_note_write(m->pm, pa, size);
    bool mmio = !m->pm->wr[pa >> 12];
    /* A device answers (the APIC timer's count): its clock must be exact, as for ports. */
    if (mmio)
        account_insns(m);
    physmem_write(m->pm, pa, val, size);
    /* A device may have raised an interrupt: chained translated code stops. */
    if (mmio)
        m->cpu.bt_exit = true;
}

void machine_sync_clock(struct machine *m)
{
    account_insns(m);
}

bool machine_intr_pending(struct machine *m)
{
    return bus_intr_pending(m->bus);
}

const bool *machine_intr_line(struct machine *m)
{
    return bus_intr_line(m->bus);
}

int machine_intr_ack(struct machine *m)
{
    account_insns(m);
    return bus_intr_ack(m->bus);
}

void machine_nmi_ack(struct machine *m)
{
    lapic_nmi_ack(m->lapic);
}

uint64_t machine_apic_base(struct machine *m)
{
    return m->lapic ? lapic_get_base(m->lapic) : 0;
}

bool machine_set_apic_base(struct machine *m, uint64_t val)
{
    return m->lapic && lapic_set_base(m->lapic, val);
}

bool machine_apic_enabled(struct machine *m)
{
    return m->lapic && lapic_enabled(m->lapic);
}

void machine_invlpg(struct machine *m, uint32_t lin)
{
    (void)m;
    (void)lin;
}

void machine_triple_fault(struct machine *m)
{
    if (m->cfg.trace & TRACE_INT)
        fprintf(trace_output(), "triple fault at %04x:%08x\n", m->cpu.seg[SEG_CS].sel, m->cpu.eip);
    /* A guest that crashes this hard resets or, under -no-reboot, ends the
     * run; without this line neither says why. */
    guest_log(GUEST_LOG_TRIPLE_FAULT, "triple fault at %04x:%08x: the machine resets%s",
              m->cpu.seg[SEG_CS].sel, m->cpu.eip, m->cfg.no_reboot ? " (-no-reboot: the run ends)" : "");
    bus_request(m->bus, BUS_REQ_RESET, 0);
    cpu_set_budget(&m->cpu, 0);
}

void machine_fpu_ferr(struct machine *m, bool asserted)
{
    if (m->ferr != asserted) {
        m->ferr = asserted;
        irq_set(m->bus, 13, asserted);
        m->cpu.bt_exit = true;     /* translated code must let bt_run see IRQ13 */
    }
}

/* ---- wiring callbacks ---- */

/* Port 0xF0: a write clears the latched coprocessor error (FERR# -> IRQ13). */
static void ferr_clear_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    machine_fpu_ferr(opaque, false);
}

static void pam_changed(void *opaque, uint32_t base, uint32_t len, bool read_ram, bool write_ram)
{
    struct machine *m = opaque;
    physmem_set_pam(m->pm, base, len, read_ram, write_ram);
    tlb_flush_all(&m->cpu);
}

static void a20_changed(void *opaque, bool enabled)
{
    struct machine *m = opaque;
    m->cpu.a20 = enabled;
    tlb_flush_all(&m->cpu);
}

static bool guest_phys_rw(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write)
{
    struct machine *m = opaque;
    return write ? physmem_copy_to(m->pm, gpa, buf, len) : physmem_copy_from(m->pm, gpa, buf, len);
}

/* Register 0x10: drive A's type in the high nibble, B's in the low one;
 * the equipment byte 0x14 counts the drives in bits 6-7. */
static void fill_cmos_floppies(struct machine *m)
{
    uint8_t a = fdc_drive_type(m->fdc, 0), b = fdc_drive_type(m->fdc, 1);
    int drives = (a != FLOPPY_NONE) + (b != FLOPPY_NONE);
    cmos_set(m->cmos, 0x10, (a << 4) | b);
    if (drives)
        cmos_set(m->cmos, 0x14, cmos_get(m->cmos, 0x14) | 0x01 | ((drives - 1) << 6));
}

/*
 * -boot: SeaBIOS's QEMU build takes the kinds of device from CMOS 0x3D/0x38
 * (1 floppy, 2 hard disk, 3 CD-ROM, 4 network, first device in the low
 * nibble of 0x3D) and, when -boot was given, the devices themselves from
 * the fw_cfg file "bootorder", one firmware path per line, which it matches
 * against the paths it builds: /pci@i0cf8/isa@1/fdc@03f0/floppy@N for the
 * floppies behind the PIIX3's ISA bridge, /pci@i0cf8/ide@1,1/drive@C/disk@S
 * for the disk or CD-ROM on IDE channel C, master (0) or slave (1).
 * (-kernel's option ROM replaces the file: it boots first.)  Devices missing from the file
 * follow, in the CMOS order.  menu=on shows SeaBIOS's "Press ESC" menu.
 */
static void set_boot_order(struct machine *m)
{
    const char *order = m->cfg.boot_order ? m->cfg.boot_order : "cad";
    uint16_t kinds = 0;
    char paths[512] = "";
    size_t used = 0;
    for (int i = 0; order[i] && i < 3; i++) {
        const char *k = strchr("acdn", order[i]);
        if (k)
            kinds |= (uint16_t)(k - "acdn" + 1) << (4 * i);
    }
    for (int i = 0; order[i]; i++) {
        if (order[i] == 'a')
            for (int k = 0; k < 2; k++)
                if (fdc_drive_type(m->fdc, k) != FLOPPY_NONE)
                    used += snprintf(paths + used, sizeof(paths) - used, "/pci@i0cf8/isa@1/fdc@03f0/floppy@%d\n", k);
        for (int k = 0; k < 4; k++)
            if ((order[i] == 'c' && m->disk[k]) || (order[i] == 'd' && m->cdrom[k]))
                used += snprintf(paths + used, sizeof(paths) - used, "/pci@i0cf8/ide@1,1/drive@%d/disk@%d\n",
                                 k / 2, k % 2);
    }
    cmos_set(m->cmos, 0x3d, kinds & 0xff);
    cmos_set(m->cmos, 0x38, (kinds >> 4) & 0xf0);
    if (m->cfg.boot_order && used && used < sizeof(paths)) {
        paths[used - 1] = 0;      /* lines are separated, not ended, by newlines */
        fwcfg_add_file(m->fwcfg, "bootorder", paths, used);
    }
    fwcfg_add_i16(m->fwcfg, FW_CFG_BOOT_MENU, m->cfg.boot_menu);
}

static void fill_cmos(struct machine *m)
{
    uint32_t ram = m->cfg.ram_mb << 20;
    uint32_t ext_kb = ram > (1u << 20) ? (ram - (1u << 20)) / 1024 : 0;
    if (ext_kb > 0xfc00)
        ext_kb = 0xfc00;
    cmos_set(m->cmos, 0x15, 640 & 0xff);
    cmos_set(m->cmos, 0x16, 640 >> 8);
    cmos_set(m->cmos, 0x17, ext_kb & 0xff);
    cmos_set(m->cmos, 0x18, ext_kb >> 8);
    cmos_set(m->cmos, 0x30, ext_kb & 0xff);
    cmos_set(m->cmos, 0x31, ext_kb >> 8);
    uint32_t above16 = ram > (16u << 20) ? (ram - (16u << 20)) >> 16 : 0;
    if (above16 > 0xffff)
        above16 = 0xffff;
    cmos_set(m->cmos, 0x34, above16 & 0xff);
    cmos_set(m->cmos, 0x35, above16 >> 8);
    cmos_set(m->cmos, 0x5b, 0);
    cmos_set(m->cmos, 0x5c, 0);
    cmos_set(m->cmos, 0x5d, 0);
    cmos_set(m->cmos, 0x5f, 0);          /* CPUs - 1 */
    cmos_set(m->cmos, 0x14, 0x06);       /* equipment: x87 present, PS/2 mouse, VGA/EGA, no floppy */
    fill_cmos_floppies(m);
    set_boot_order(m);
    cmos_update_checksum(m->cmos);
}

/* SeaBIOS places the tables (and lists them in e820) by the table-loader. */
static void add_acpi_tables(struct machine *m)
{
    struct acpi_config cfg = { .com1 = m->uart[0] != NULL, .com2 = m->uart[1] != NULL };
    struct acpi_build b;
    acpi_build_tables(&cfg, &b);
    fwcfg_add_file(m->fwcfg, ACPI_FILE_TABLES, b.tables.data, b.tables.len);
    fwcfg_add_file(m->fwcfg, ACPI_FILE_RSDP, b.rsdp.data, b.rsdp.len);
    fwcfg_add_file(m->fwcfg, ACPI_FILE_LOADER, b.loader.data, b.loader.len);
    acpi_build_free(&b);
}

bool machine_power_button(struct machine *m)
{
    if (!m->acpi_pm)
        return false;
    acpi_pm_power_button(m->acpi_pm);
    return true;
}

static void fill_fwcfg(struct machine *m)
{
    uint64_t ram = (uint64_t)m->cfg.ram_mb << 20;
    fwcfg_add_i64(m->fwcfg, FW_CFG_RAM_SIZE, ram);
    fwcfg_add_i16(m->fwcfg, FW_CFG_NB_CPUS, 1);
    fwcfg_add_i16(m->fwcfg, FW_CFG_MAX_CPUS, 1);
    /* The board wires ISA IRQ 0 to I/O APIC pin 2; SeaBIOS's MP table says so. */
    fwcfg_add_i32(m->fwcfg, FW_CFG_IRQ0_OVERRIDE, 1);
    fwcfg_add_e820(m->fwcfg, 0, ram, E820_RAM);
    if (m->acpi_pm)
        add_acpi_tables(m);
}

static bool open_chardev(const char *option, const char *spec, struct chardev **out)
{
    char err[256];
    *out = NULL;
    if (!spec)
        return true;
    *out = chardev_open(spec, err, sizeof(err));
    if (!*out) {
        fprintf(stderr, "retrovisor: %s %s\n", option, err);
        return false;
    }
    return true;
}

static bool load_bios(struct machine *m)
{
    const char *path = m->cfg.bios_path ? m->cfg.bios_path : DEFAULT_BIOS;
    char err[512];
    size_t len;
    uint8_t *img = read_file(path, BIOS_MAX_SIZE, "a BIOS image is 64, 128 or 256 KiB", &len, err, sizeof(err));
    if (!img) {
        fprintf(stderr, "retrovisor: -bios %s%s\n", err,
                m->cfg.bios_path ? "" : " (install Debian's seabios package: make deps)");
        return false;
    }
    if (len != 0x10000 && len != 0x20000 && len != 0x40000) {
        fprintf(stderr, "retrovisor: -bios %s: size %zu bytes; a BIOS image must be 64, 128 or 256 KiB\n", path,
                len);
        free(img);
        return false;
    }
    physmem_set_bios(m->pm, img, len);
    free(img);
    return true;
}

static bool load_kernel(struct machine *m)
{
    char err[512];
    size_t len;
    char why[64];
    snprintf(why, sizeof(why), "a kernel must fit in the guest's %u MiB of RAM", m->cfg.ram_mb);
    uint8_t *img = read_file(m->cfg.kernel, (uint64_t)m->cfg.ram_mb << 20, why, &len, err, sizeof(err));
    if (!img) {
        fprintf(stderr, "retrovisor: -kernel %s\n", err);
        return false;
    }
    bool ok = false;
    if (multiboot_detect(img, len)) {
        ok = multiboot_load(m, m->cfg.kernel, img, len, m->cfg.initrd, m->cfg.append, err, sizeof(err));
        if (!ok)
            fprintf(stderr, "retrovisor: %s\n", err);
    } else if (linux_detect(img, len)) {
        ok = linux_load(m, m->cfg.kernel, img, len, m->cfg.initrd, m->cfg.append, err, sizeof(err));
        if (!ok)
            fprintf(stderr, "retrovisor: %s\n", err);
    } else {
        fprintf(stderr, "retrovisor: -kernel %s: neither a Multiboot image nor a Linux bzImage\n", m->cfg.kernel);
    }
    free(img);
    return ok;
}

static void code_written(void *opaque, uint32_t addr, uint32_t len, bool by_cpu)
{
    struct machine *m = opaque;
    bt_invalidate_range(m->bt, addr, len, by_cpu);
}

/* The VGA's linear framebuffer BAR moved: map the guest-physical range straight
 * onto video memory, so LFB accesses run at RAM speed instead of one MMIO
 * callback each.  A BAR the guest put over RAM or the BIOS is left to the
 * bus's MMIO path (RAM keeps priority there, as on the real chipset). */
static void lfb_mapper(void *opaque, uint32_t base, uint32_t len, uint8_t *host)
{
    struct machine *m = opaque;
    if (m->lfb_base != PCI_BAR_UNMAPPED) {
        physmem_set_mmio(m->pm, m->lfb_base, m->lfb_len);
        m->lfb_base = PCI_BAR_UNMAPPED;
    }
    uint64_t end = (uint64_t)base + len;
    uint64_t bios_base = 0x100000000ull - m->pm->bios_size;
    if (base != PCI_BAR_UNMAPPED && host && !(base & (PAGE_SIZE - 1)) && !(len & (PAGE_SIZE - 1)) &&
        base >= m->pm->ram_size && end <= bios_base) {
        physmem_map_host(m->pm, base, len, host);
        m->lfb_base = base;
        m->lfb_len = len;
    }
    tlb_flush_all(&m->cpu);
}

/* The CPU decodes its APIC's page before the memory bus does: wherever
 * IA32_APIC_BASE puts it, over RAM, ROM or a BAR, the page goes to the
 * APIC (physmem's slow path, then the bus's newest MMIO region) and
 * comes back when the APIC moves on. */
static void apic_page_moved(void *opaque, uint32_t old_base, uint32_t new_base)
{
    struct machine *m = opaque;
    if (old_base != ~0u) {
        m->pm->rd[old_base >> 12] = m->apic_page_rd;
        m->pm->wr[old_base >> 12] = m->apic_page_wr;
    }
    m->apic_page_rd = m->apic_page_wr = NULL;
    if (new_base != ~0u) {
        m->apic_page_rd = m->pm->rd[new_base >> 12];
        m->apic_page_wr = m->pm->wr[new_base >> 12];
        m->pm->rd[new_base >> 12] = NULL;
        m->pm->wr[new_base >> 12] = NULL;
    }
    m->pm->generation++;
    tlb_flush_all(&m->cpu);
}

/* Local APIC over the 8259 (which must exist), I/O APIC beside it. */
static void create_apics(struct machine *m)
{
    m->lapic = lapic_new(m->bus, apic_page_moved, m);
    m->intr_line = bus_intr_line(m->bus);
    m->nmi_line = lapic_nmi_line(m->lapic);
    m->ioapic = ioapic_new(m->bus, IOAPIC_DEFAULT_BASE);
}

static bool create_vga(struct machine *m)
{
    if (m->cfg.no_vga)
        return true;
    const char *path = m->cfg.vgabios_path ? m->cfg.vgabios_path : VGA_DEFAULT_BIOS;
    char err[512];
    m->vga = vga_new(m->bus, m->pci, VGA_PCI_DEVFN, path, err, sizeof(err));
    if (!m->vga) {
        fprintf(stderr, "retrovisor: -vgabios: %s%s\n", err,
                m->cfg.vgabios_path ? "" : " (install Debian's seabios package: make deps; or use -vga none)");
        return false;
    }
    vga_set_lfb_mapper(m->vga, lfb_mapper, m);
    return true;
}

/* The drive's type follows its disk's size; an empty drive is a 1.44M one. */
static bool open_floppy(struct machine *m, int k, const char *path, struct blockdev **out, enum floppy_drive_type *type, char *err,
                        size_t errlen)
{
    const struct floppy_config *fc = &m->cfg.floppy[k];
    struct stat st;
    *out = NULL;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && !floppy_format_by_size(st.st_size)) {
        snprintf(err, errlen, "%s: %lld bytes is not the size of a floppy image (%s)", path,
                 (long long)st.st_size, floppy_known_sizes());
        return false;
    }
    *out = blockdev_open(path, fc->readonly, fc->snapshot, err, errlen);
    if (!*out)
        return false;
    const struct floppy_format *fmt = floppy_format_by_size(blockdev_size(*out));
    if (!fmt) {
        snprintf(err, errlen, "%s: %llu bytes is not the size of a floppy image (%s)", path,
                 (unsigned long long)blockdev_size(*out), floppy_known_sizes());
        blockdev_close(*out);
        *out = NULL;
        return false;
    }
    if (type)
        *type = fmt->drive;
    return true;
}

void machine_toggle_floppy(void *opaque)
{
    struct machine *m = opaque;
    char err[512];
    if (m->floppy[0]) {
        free(m->floppy_out[0]);
        m->floppy_out[0] = strdup(blockdev_path(m->floppy[0]));
        machine_change_floppy(m, 0, NULL, err, sizeof(err));
        fprintf(stderr, "\r\nretrovisor: A: %s taken out (Ctrl-A F or Ctrl+Alt+F puts it back)\r\n", m->floppy_out[0]);
    } else if (m->floppy_out[0]) {
        if (machine_change_floppy(m, 0, m->floppy_out[0], err, sizeof(err)) < 0)
            fprintf(stderr, "\r\nretrovisor: A: %s\r\n", err);
        else
            fprintf(stderr, "\r\nretrovisor: A: %s put in\r\n", m->floppy_out[0]);
    } else {
        fprintf(stderr, "\r\nretrovisor: %s\r\n", fdc_drive_type(m->fdc, 0) == FLOPPY_NONE
                ? "there is no floppy drive A: (give -fda or -drive if=floppy)" : "A: is empty, and no disk was taken out of it");
    }
}

static bool create_floppies(struct machine *m)
{
    static const char *names[2] = { "-fda", "-fdb" };
    m->dma = dma_new(m->bus, guest_phys_rw, m);
    m->fdc = fdc_new(m->bus, m->dma);
    for (int k = 0; k < 2; k++) {
        const struct floppy_config *fc = &m->cfg.floppy[k];
        enum floppy_drive_type type = FLOPPY_1440K;
        char err[512];
        if (!fc->present && !fc->path)
            continue;
        if (fc->path && !open_floppy(m, k, fc->path, &m->floppy[k], &type, err, sizeof(err))) {
            fprintf(stderr, "retrovisor: %s %s\n", names[k], err);
            return false;
        }
        fdc_add_drive(m->fdc, k, type);
        if (k == 0)
            chardev_add_escape('f', machine_toggle_floppy, m, "C-a f    take the disk out of A:, or put it back");
        if (m->floppy[k] && fdc_insert(m->fdc, k, m->floppy[k], err, sizeof(err)) < 0) {
            fprintf(stderr, "retrovisor: %s %s\n", names[k], err);
            return false;
        }
    }
    return true;
}

/* An ATAPI drive at IDE position k, with the image at path in it (NULL: empty). */
static bool attach_cdrom(struct machine *m, int k, const char *path)
{
    char err[512];
    m->cdrom[k] = atapi_new();
    if ((path && atapi_insert(m->cdrom[k], path, false, err, sizeof(err)) < 0) ||
        ide_attach_cdrom(m->ide, k / 2, k % 2, m->cdrom[k], err, sizeof(err)) < 0) {
        fprintf(stderr, "retrovisor: -cdrom %s\n", err);
        return false;
    }
    return true;
}

int machine_change_floppy(struct machine *m, int drive, const char *path, char *err, size_t errlen)
{
    if (drive < 0 || drive > 1 || fdc_drive_type(m->fdc, drive) == FLOPPY_NONE) {
        snprintf(err, errlen, "there is no floppy drive %c: (give -fd%c or -drive if=floppy,index=%d)",
                 'A' + (drive & 1), 'a' + (drive & 1), drive & 1);
        return -1;
    }
    struct blockdev *bd = NULL;
    if (path) {
        if (!open_floppy(m, drive, path, &bd, NULL, err, errlen))
            return -1;
    }
    struct blockdev *old = fdc_eject(m->fdc, drive);
    if (old)
        blockdev_close(old);
    m->floppy[drive] = NULL;
    if (bd && fdc_insert(m->fdc, drive, bd, err, errlen) < 0) {
        blockdev_close(bd);
        return -1;
    }
    m->floppy[drive] = bd;
    return 0;
}

/* -fda-change/-fdb-change: the changes whose time has come, then the timer for the next. */
static void floppy_change_due(void *opaque)
{
    struct machine *m = opaque;
    int64_t now = vclock_now(m->clock);
    while (m->floppy_change_next < m->cfg.n_floppy_change &&
           m->cfg.floppy_change[m->floppy_change_next].at_ns <= now) {
        const struct floppy_change *c = &m->cfg.floppy_change[m->floppy_change_next++];
        char err[512];
        if (machine_change_floppy(m, c->drive, c->path, err, sizeof(err)) < 0)
            fprintf(stderr, "retrovisor: -fd%c-change %s: %s\n", 'a' + c->drive, c->path ? c->path : "eject", err);
    }
    if (m->floppy_change_next < m->cfg.n_floppy_change)
        vtimer_mod(m->floppy_change_timer, m->cfg.floppy_change[m->floppy_change_next].at_ns);
}

/* The disks -fda-change will insert are checked now: a missing file or one
 * of no floppy size stops the start, as -fda would. */
static bool schedule_floppy_changes(struct machine *m)
{
    for (int k = 0; k < m->cfg.n_floppy_change; k++) {
        const struct floppy_change *c = &m->cfg.floppy_change[k];
        struct stat st;
        if (!c->path)
            continue;
        if (stat(c->path, &st) != 0) {
            fprintf(stderr, "retrovisor: -fd%c-change %s: %s\n", 'a' + c->drive, c->path, strerror(errno));
            return false;
        }
        if (S_ISREG(st.st_mode) && !floppy_format_by_size(st.st_size)) {
            fprintf(stderr, "retrovisor: -fd%c-change %s: %lld bytes is not the size of a floppy image (%s)\n",
                    'a' + c->drive, c->path, (long long)st.st_size, floppy_known_sizes());
            return false;
        }
    }
    if (!m->cfg.n_floppy_change)
        return true;
    m->floppy_change_timer = vtimer_new(m->clock, floppy_change_due, m);
    vtimer_mod(m->floppy_change_timer, m->cfg.floppy_change[0].at_ns);
    return true;
}

static struct atapi *first_cdrom(struct machine *m)
{
    for (int k = 0; k < 4; k++)
        if (m->cdrom[k])
            return m->cdrom[k];
    return NULL;
}

int machine_change_cdrom(struct machine *m, const char *path, bool force, char *err, size_t errlen)
{
    struct atapi *cd = first_cdrom(m);
    if (!cd) {
        snprintf(err, errlen, "there is no CD-ROM drive (use -cdrom or -drive media=cdrom)");
        return -1;
    }
    if (path)
        return atapi_insert(cd, path, force, err, errlen);
    return atapi_eject(cd, force, err, errlen);
}

#define CDROM_CHANGE_RETRY_NS (500 * 1000 * 1000)

static char *copy_string(const char *s)
{
    return strcpy(xmalloc(strlen(s) + 1), s);
}

void machine_toggle_cdrom(void *machine)
{
    struct machine *m = machine;
    struct atapi *cd = first_cdrom(m);
    char err[512];
    if (!cd) {
        fprintf(stderr, "retrovisor: Ctrl+Alt+E: there is no CD-ROM drive\n");
        return;
    }
    const char *path = atapi_medium_path(cd);
    if (path && !atapi_tray_open(cd)) {
        char *keep = copy_string(path);
        if (atapi_eject(cd, false, err, sizeof(err)) < 0) {
            fprintf(stderr, "retrovisor: CD-ROM: %s\n", err);
            free(keep);
            return;
        }
        free(m->cdrom_last);
        m->cdrom_last = keep;
        fprintf(stderr, "retrovisor: CD-ROM: ejected %s (Ctrl+Alt+E puts it back)\n", keep);
        return;
    }
    /* The tray is open: with the guest's disc still in it, or empty after ours. */
    char *disc = path ? copy_string(path) : m->cdrom_last ? copy_string(m->cdrom_last) : NULL;
    if (!disc)
        fprintf(stderr, "retrovisor: CD-ROM: no disc to put back\n");
    else if (atapi_insert(cd, disc, false, err, sizeof(err)) < 0)
        fprintf(stderr, "retrovisor: CD-ROM: %s\n", err);
    else
        fprintf(stderr, "retrovisor: CD-ROM: inserted %s\n", disc);
    free(disc);
}

/* -cdrom-change: the changes whose time has come, then the timer for the next. */
static void cdrom_change_due(void *opaque)
{
    struct machine *m = opaque;
    int64_t now = vclock_now(m->clock);
    while (m->cdrom_change_next < m->cfg.n_cdrom_change &&
           m->cfg.cdrom_change[m->cdrom_change_next].at_ns <= now) {
        const char *path = m->cfg.cdrom_change[m->cdrom_change_next].path;
        struct atapi *cd = first_cdrom(m);
        if (cd && atapi_locked(cd)) {
            /* The guest holds the tray (a mounted disc): ask it, and try
             * again until it lets go, as a user pressing eject would. */
            char err[512];
            atapi_eject(cd, false, err, sizeof(err));
            vtimer_mod(m->cdrom_change_timer, now + CDROM_CHANGE_RETRY_NS);
            return;
        }
        m->cdrom_change_next++;
        char err[512];
        if (machine_change_cdrom(m, path, false, err, sizeof(err)) < 0)
            fprintf(stderr, "retrovisor: -cdrom-change %s: %s\n", path ? path : "eject", err);
    }
    if (m->cdrom_change_next < m->cfg.n_cdrom_change)
        vtimer_mod(m->cdrom_change_timer, m->cfg.cdrom_change[m->cdrom_change_next].at_ns);
}

static bool schedule_cdrom_changes(struct machine *m)
{
    if (!m->cfg.n_cdrom_change)
        return true;
    if (!first_cdrom(m)) {
        fprintf(stderr, "retrovisor: -cdrom-change: there is no CD-ROM drive (use -cdrom or -drive media=cdrom)\n");
        return false;
    }
    m->cdrom_change_timer = vtimer_new(m->clock, cdrom_change_due, m);
    vtimer_mod(m->cdrom_change_timer, m->cfg.cdrom_change[0].at_ns);
    return true;
}

static bool attach_drives(struct machine *m)
{
    static const char *names[4] = { "-hda", "-hdb", "-hdc", "-hdd" };
    for (int k = 0; k < 4; k++) {
        const struct drive_config *d = &m->cfg.drive[k];
        if (d->cdrom) {
            if (!attach_cdrom(m, k, d->path))
                return false;
            continue;
        }
        if (!d->path)
            continue;
        char err[512], layer[4096];
        const char *path = d->path, *format = d->format;
        if (!d->readonly && !d->snapshot && snapshot_current_layer(&m->cfg, k, d->path, layer, sizeof(layer))) {
            /* savevm froze the image: its writes go on in the snapshot folder's layer. */
            fprintf(stderr, "retrovisor: %s %s: running on %s (the image is frozen by a snapshot)\n", names[k],
                    d->path, layer);
            path = layer;
            format = NULL;
        }
        m->disk[k] = blockdev_open_format(path, format, d->readonly, d->snapshot, err, sizeof(err));
        if (!m->disk[k] || ide_attach_disk(m->ide, k / 2, k % 2, m->disk[k], err, sizeof(err)) < 0) {
            fprintf(stderr, "retrovisor: %s %s\n", names[k], err);
            return false;
        }
    }
    return true;
}

/* The network cards sit in PCI slots 3 and up, as QEMU's first NIC does. */
#define NIC_FIRST_SLOT 3
#define IPXE_ROM_DIR "/usr/lib/ipxe/qemu"

/* -boot n, order=n..., once=n...: the network comes first. */
static bool boot_from_network(const char *spec)
{
    if (!spec)
        return false;
    const char *order = spec;
    const char *p = strstr(spec, "order=");
    if (!p)
        p = strstr(spec, "once=");
    if (p)
        order = strchr(p, '=') + 1;
    else if (strchr(spec, '='))
        return false;
    return order[0] == 'n';
}

/* A NIC's boot ROM: the file named with romfile=, or iPXE's for the model when booting from the network. */
static bool load_nic_rom(struct machine *m, int k, bool netboot)
{
    const struct nic_config *n = &m->cfg.nic[k];
    char path[256];
    if (n->romfile)
        snprintf(path, sizeof(path), "%s", n->romfile);
    else if (netboot)
        snprintf(path, sizeof(path), IPXE_ROM_DIR "/pxe-%s.rom", n->model);
    else
        return true;
    char err[512];
    size_t len;
    uint8_t *img = read_file(path, 1u << 20, "a boot ROM is at most 1 MiB", &len, err, sizeof(err));
    if (!img || len < 3 || img[0] != 0x55 || img[1] != 0xaa) {
        fprintf(stderr, "retrovisor: %s: boot ROM %s%s\n", n->option,
                img ? path : err, !img ? (n->romfile ? "" : " (install Debian's ipxe-qemu: make deps)")
                                       : ": not an option ROM (no 55 AA signature)");
        free(img);
        return false;
    }
    if (m->pcnet[k])
        pcnet_set_rom(m->pcnet[k], img, len);
    else
        ne2k_set_rom(m->ne2k[k], img, len);
    free(img);
    return true;
}

static struct netdev *find_netdev(struct machine *m, const char *id)
{
    for (int k = 0; k < m->n_net; k++)
        if (!strcmp(m->net[k]->id, id))
            return m->net[k];
    return NULL;
}

static bool create_nics(struct machine *m)
{
    struct machine_config *cfg = &m->cfg;
    char err[512];
    bool netboot = boot_from_network(cfg->boot_order);
    if (!cfg->n_nic && !cfg->n_netdev && !cfg->net_none) {
        /* The default machine: one PCnet on user networking. */
        static const uint8_t default_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
        cfg->netdev[cfg->n_netdev++] = "user,id=net0";
        cfg->nic[0] = (struct nic_config){ .model = "pcnet", .netdev = "net0", .option = "the default network card" };
        memcpy(cfg->nic[0].mac, default_mac, 6);
        cfg->n_nic = 1;
    }
    for (int k = 0; k < cfg->n_netdev; k++) {
        struct netdev *nd = net_slirp_new(cfg->netdev[k], m->clock, err, sizeof(err));
        if (nd && find_netdev(m, nd->id)) {
            snprintf(err, sizeof(err), "id '%s' is already used by another -netdev", nd->id);
            netdev_free(nd);
            nd = NULL;
        }
        if (!nd) {
            fprintf(stderr, "retrovisor: -netdev %s: %s\n", cfg->netdev[k], err);
            return false;
        }
        m->net[m->n_net++] = nd;
    }
    for (int k = 0; k < cfg->n_nic; k++) {
        const struct nic_config *n = &cfg->nic[k];
        struct netdev *nd = find_netdev(m, n->netdev);
        if (!nd) {
            fprintf(stderr, "retrovisor: %s: no -netdev with id '%s'\n", n->option, n->netdev);
            return false;
        }
        if (nd->attached) {
            fprintf(stderr, "retrovisor: %s: -netdev '%s' already has a card\n", n->option, n->netdev);
            return false;
        }
        int devfn = (NIC_FIRST_SLOT + k) << 3;
        if (!strcmp(n->model, "ne2k_pci"))
            m->ne2k[k] = ne2k_new(m->bus, m->pci, devfn, n->mac, nd);
        else
            m->pcnet[k] = pcnet_new(m->bus, m->pci, devfn, n->mac, nd, guest_phys_rw, m);
        if (!load_nic_rom(m, k, netboot))
            return false;
    }
    if (netboot && cfg->n_nic) {
        /* SeaBIOS's boot order: the cards' boot ROMs first, in the path form it matches. */
        char order[256] = "";
        for (int k = 0; k < cfg->n_nic; k++)
            snprintf(order + strlen(order), sizeof(order) - strlen(order),
                     "/pci@i0cf8/ethernet@%x/ethernet-phy@0\n", NIC_FIRST_SLOT + k);
        order[strlen(order) - 1] = 0;       /* entries are separated, not ended, by newlines */
        fwcfg_add_file(m->fwcfg, "bootorder", order, strlen(order) + 1);
    }
    return true;
}

struct machine *machine_new(const struct machine_config *cfg)
{
    struct machine *m = xcalloc(1, sizeof(*m));
    m->cfg = *cfg;
    if (m->cfg.ns_per_insn <= 0)
        m->cfg.ns_per_insn = 4;
    m->clock = vclock_new(cfg->deterministic, m->cfg.ns_per_insn);
    m->control = control_new();
    m->bus = bus_new(m->clock);
    m->pm = physmem_new(cfg->ram_mb << 20, m->bus);
    m->cpu.m = m;
    m->lfb_base = PCI_BAR_UNMAPPED;
    m->cpu.trace = cfg->trace & (TRACE_IN_ASM | TRACE_INT | TRACE_CPU | TRACE_OUT_ASM | TRACE_BT);

    if (!load_bios(m) || !open_chardev("-serial", cfg->serial[0], &m->serial_cd[0]) ||
        !open_chardev("-serial", cfg->serial[1], &m->serial_cd[1]) ||
        !open_chardev("-debugcon", cfg->debugcon, &m->debugcon_cd)) {
        machine_free(m);
        return NULL;
    }

    m->pic = pic_new(m->bus);
    create_apics(m);
    m->pit = pit_new(m->bus);
    m->cmos = cmos_new(m->bus, m->cfg.rtc_base ? (time_t)m->cfg.rtc_base : time(NULL));
    m->kbc = kbc_new(m->bus);
    if (m->serial_cd[0])
        m->uart[0] = uart_new(m->bus, UART_COM1_BASE, UART_COM1_IRQ, m->serial_cd[0]);
    if (m->serial_cd[1])
        m->uart[1] = uart_new(m->bus, UART_COM2_BASE, UART_COM2_IRQ, m->serial_cd[1]);
    if (m->debugcon_cd) {
        /* SeaBIOS's QEMU build prints to 0x402; Bochs-style guests and test ROMs use 0xE9. */
        debugcon_new(m->bus, 0x402, m->debugcon_cd);
        debugcon_new(m->bus, 0xe9, m->debugcon_cd);
    }
    debugexit_new(m->bus, 0xf4);
    if (cfg->pc_testdev)
        m->pctestdev = pctestdev_new(m->bus);
    bus_register_pio(m->bus, 0xf0, 1, m, NULL, ferr_clear_write);
    m->post = post_new(m->bus, cfg->post_port2, (cfg->trace & TRACE_POST) != 0);

    m->pci = pci_bus_new(m->bus);
    m->i440fx = i440fx_new(m->pci, pam_changed, m);
    m->piix3 = piix3_new(m->pci, m->bus);
    if (!cfg->no_acpi)
        m->acpi_pm = acpi_pm_new(m->pci, m->bus);
    m->fwcfg = fwcfg_new(m->bus, guest_phys_rw, m);

    m->ide = ide_new(m->bus, m->pci, guest_phys_rw, m);
    if (!create_vga(m) || !attach_drives(m) || !schedule_cdrom_changes(m) || !create_nics(m) ||
        !create_floppies(m) || !schedule_floppy_changes(m)) {
        machine_free(m);
        return NULL;
    }

    if (m->cfg.accel_bt) {
        m->bt = bt_new(&m->cpu);
        /* -icount: slices end at exact counts under either engine. */
        bt_set_exact_budget(m->bt, m->cfg.deterministic);
        m->pm->code_write = code_written;
        m->pm->code_write_opaque = m;
    }

    bus_set_a20_listener(m->bus, a20_changed, m);
    fill_cmos(m);
    fill_fwcfg(m);
    machine_reset(m);
    if (cfg->kernel && !load_kernel(m)) {
        machine_free(m);
        return NULL;
    }
    return m;
}

void machine_free(struct machine *m)
{
    if (!m)
        return;
    for (int k = 0; k < 2; k++)
        uart_free(m->uart[k]);         /* before their character devices */
    for (int k = 0; k < 2; k++)
        if (m->serial_cd[k])
            chardev_close(m->serial_cd[k]);
    if (m->debugcon_cd)
        chardev_close(m->debugcon_cd);
    for (int k = 0; k < 4; k++) {
        if (m->disk[k])
            blockdev_close(m->disk[k]);
        atapi_free(m->cdrom[k]);
    }
    vtimer_free(m->cdrom_change_timer);
    free(m->cdrom_last);
    for (int k = 0; k < 2; k++)
        if (m->floppy[k])
            blockdev_close(m->floppy[k]);
    chardev_remove_escapes(m);
    free(m->floppy_out[0]);
    free(m->floppy_out[1]);
    fdc_free(m->fdc);
    if (m->floppy_change_timer)
        vtimer_free(m->floppy_change_timer);
    dma_free(m->dma);
    for (int k = 0; k < MAX_NICS; k++) {
        pcnet_free(m->pcnet[k]);
        ne2k_free(m->ne2k[k]);
    }
    for (int k = 0; k < m->n_net; k++)
        netdev_free(m->net[k]);
    bt_free(m->bt);
    acpi_pm_free(m->acpi_pm);

    lapic_free(m->lapic);
    ioapic_free(m->ioapic);
    pctestdev_free(m->pctestdev);
    /* The front end (main closes it first) reads the VGA's memory. */
    vga_free(m->vga);
    /* The devices every machine has, then their bus and clock: tests build
     * and free many machines in one process. */
    ide_free(m->ide);
    fwcfg_free(m->fwcfg);
    post_free(m->post);
    kbc_free(m->kbc);
    cmos_free(m->cmos);
    pit_free(m->pit);
    pic_free(m->pic);
    pci_bus_free(m->pci);
    physmem_free(m->pm);
    control_free(m->control);
    snapshot_free(m);

    bus_free(m->bus);
    vclock_free(m->clock);
    free(m);
}

void machine_reset(struct machine *m)
{
    bus_reset_devices(m->bus);
    bus_set_a20(m->bus, true);
    cpu_reset(&m->cpu);
    m->cpu.a20 = true;
    tlb_flush_all(&m->cpu);
}

/* Returns true when the run loop must stop. */
static bool handle_requests(struct machine *m)
{
    int status = 0;
    enum bus_request r = bus_pending_request(m->bus, &status);
    if (r == BUS_REQ_NONE)
        return false;
    bus_clear_request(m->bus);
    switch (r) {
    case BUS_REQ_RESET:
        if (m->cfg.no_reboot) {
            m->exit_status = 0;
            return true;
        }
        m->resets++;
        machine_reset(m);
        return false;
    case BUS_REQ_POWEROFF:
        m->exit_status = 0;
        return true;
    case BUS_REQ_EXIT:
        m->exit_status = status;
        return true;
    default:
        return false;
    }
}

static int64_t slice_budget(struct machine *m)
{
    if (!vclock_deterministic(m->clock))
        return m->bt ? REALTIME_SLICE_BT : REALTIME_SLICE;
    int64_t deadline = vclock_next_deadline(m->clock);
    int64_t now = vclock_now(m->clock);
    if (deadline == INT64_MAX)
        return MAX_SLICE;
    int64_t n = (deadline - now) / m->cfg.ns_per_insn + 1;
    return n < 1 ? 1 : n > MAX_SLICE ? MAX_SLICE : n;
}

/* A slice ends no later than an instruction count the user asked to stop
 * or take a snapshot at. */
static int64_t clip_to_targets(struct machine *m, int64_t n)
{
    int64_t now = (int64_t)cpu_icount(&m->cpu);
    int64_t targets[2] = { m->cfg.max_insns, m->savevm_at_done ? 0 : m->cfg.savevm_at };
    for (int i = 0; i < 2; i++)
        if (targets[i] > now && targets[i] - now < n)
            n = targets[i] - now;
    return n;
}

static void idle(struct machine *m)
{
    int64_t deadline = vclock_next_deadline(m->clock);
    int64_t now = vclock_now(m->clock);
    /* Wake up at least every 10 ms of host time to poll input. */
    int64_t cap = now + 10 * 1000 * 1000;
    if (vclock_deterministic(m->clock) && deadline == INT64_MAX)
        deadline = cap;
    /* The capped sleeps below wake us early; the guest waits for `deadline`. */
    vclock_idle_until(m->clock, deadline);
    if (m->n_net && !vclock_deterministic(m->clock)) {
        /* Sleep in poll() on the network's sockets, so a frame wakes the guest at once. */
        net_poll(m->net, m->n_net, (deadline < cap ? deadline : cap) - now);
        return;
    }
    vclock_advance_to(m->clock, deadline < cap || vclock_deterministic(m->clock) ? deadline : cap);
}

static uint64_t host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls the display front end when UI_POLL_NS of host time have passed;
 * false when the user closed the window. */
static bool poll_ui(struct machine *m)
{
    struct cpu *c = &m->cpu;
    if (!m->ui || (cpu_icount(c) < m->ui_check_icount && !c->halted))
        return true;
    m->ui_check_icount = cpu_icount(c) + UI_CHECK_INSNS;
    uint64_t now = host_ns();
    if (now < m->ui_next_ns)
        return true;
    m->ui_next_ns = now + UI_POLL_NS;
    return ui_poll(m->ui);
}

/* One turn of the run loop while paused: serve the controls, the terminal
 * and the window, nothing else.  False when the run must end. */
static bool serve_paused(struct machine *m)
{
    if (chardev_poll_all())
        return false;
    if (m->ui && !ui_poll(m->ui)) {
        m->exit_status = 0;
        return false;
    }
    if (m->power_button_signal) {
        m->power_button_signal = 0;
        machine_power_button(m);
    }
    control_wait(m, 10);
    return true;
}

int machine_run(struct machine *m)
{
    struct cpu *c = &m->cpu;
    uint64_t last_poll = 0;
    if (m->ui)
        ui_set_status(m->ui, machine_paused(m) ? "paused" : "running");
    while (!m->stop && !m->stop_signal) {
        control_service(m);
        if (machine_paused(m)) {
            if (!serve_paused(m))
                break;
            continue;
        }
        if (cpu_icount(c) - last_poll >= 100000 || c->halted) {
            last_poll = cpu_icount(c);
            if (chardev_poll_all())
                break;
            if (m->n_net)
                net_poll(m->net, m->n_net, 0);
        }
        if (m->power_button_signal) {
            m->power_button_signal = 0;
            if (!machine_power_button(m))
                fprintf(stderr, "retrovisor: power button: the machine has no ACPI (-machine acpi=off)\n");
        }
        if (!poll_ui(m)) {
            m->exit_status = 0;       /* the window was closed: power off */
            break;
        }
        vclock_run_timers(m->clock);
        if (handle_requests(m))
            break;
        if (m->cfg.savevm_at && (int64_t)cpu_icount(c) >= m->cfg.savevm_at && !m->savevm_at_done) {
            char err[512];
            m->savevm_at_done = true;
            if (snapshot_save(m, m->cfg.savevm_at_name, err, sizeof(err)) < 0)
                fprintf(stderr, "retrovisor: -savevm-at: %s\n", err);
        }
        if (m->cfg.max_insns && (int64_t)cpu_icount(c) >= m->cfg.max_insns) {
            /* A guest that hangs and one that was merely stopped early must
             * not look alike to whoever reads the status. */
            fprintf(stderr, "retrovisor: -max-insns: the run ends after %lld instructions\n",
                    (long long)cpu_icount(c));
            break;
        }
        if (m->cfg.run_for_ns && vclock_now(m->clock) >= m->cfg.run_for_ns)
            break;
        cpu_set_budget(c, clip_to_targets(m, slice_budget(m)));
        if (m->gdb && gdbstub_run_slice(m->gdb))
            ;   /* single-stepping, or breakpoints to check: the stub ran the slice */
        else if (m->bt)
            bt_run(m->bt);
        else
            interp_run(c);
        account_insns(m);
        if (c->halted && !(c->eflags & FL_IF)) {
            /* Nothing can wake a CPU halted with interrupts off but an NMI, and the
             * guest sends those itself (self-IPIs, taken before it halts); an APIC
             * timer or I/O APIC pin in NMI mode is not waited for. */
            fprintf(stderr, "retrovisor: the guest halted the CPU with interrupts disabled at %04x:%08x; stopping\n",
                    c->seg[SEG_CS].sel, c->eip);
            m->exit_status = 0;
            break;
        }
        if (c->halted && !machine_intr_pending(m))
            idle(m);
    }
    if (m->cfg.savevm_at_end) {
        char err[512];
        if (snapshot_save(m, m->cfg.savevm_at_name, err, sizeof(err)) < 0)
            fprintf(stderr, "retrovisor: -savevm-at: %s\n", err);
    }
    control_shutdown(m);
    guest_log_summary();
    return m->exit_status;
}
