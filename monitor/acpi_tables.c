#include "monitor/acpi_tables.h"
#include "devices/acpi_pm.h"
#include "devices/cmos.h"
#include "hosted-driver/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* devices/acpi/dsdt.asl, compiled by iasl and turned into C by the GNUmakefile. */
extern const unsigned char acpi_dsdt_aml[];
extern const unsigned int acpi_dsdt_aml_len;

#define HEADER_LEN 36
#define FACS_LEN 64
#define FACS_ALIGN 64
#define FADT_LEN 244
#define FADT_REVISION 3
#define RSDP_LEN 20                   /* ACPI 1.0 RSDP: the RSDT only */
#define RSDP_CHECKSUM 8
#define RSDP_RSDT 16
#define OEM_ID "RETROV"
#define OEM_TABLE_ID "RVPC    "
#define CREATOR_ID "RTRV"
/* The name in the DSDT whose byte says which COM ports exist. */
static const uint8_t comp_name[] = { 0x08, 'C', 'O', 'M', 'P', 0x0a };
#define COMP_PLACEHOLDER 0xaa

/* FADT fields (offsets of ACPI 2.0+ revision 3) */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_ACPI_DISABLE 53
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_GPE0_BLK 80
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_GPE0_BLK_LEN 92
#define FADT_P_LVL2_LAT 96
#define FADT_P_LVL3_LAT 98
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
/* FADT flags */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5)   /* no sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define BOOT_ARCH_LEGACY_DEVICES 0x0001
#define BOOT_ARCH_8042 0x0002
#define C_STATE_UNSUPPORTED_LAT2 101
#define C_STATE_UNSUPPORTED_LAT3 1001
#define RESET_PORT 0xcf9
#define RESET_VALUE 0x06               /* PIIX3 RCR: SYS_RST | RST_CPU */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* MADT */
#define MADT_PCAT_COMPAT 1
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_INT_OVERRIDE 2
#define MADT_LAPIC_NMI 4
#define MPS_ACTIVE_HIGH 0x1
#define MPS_LEVEL 0xc

struct buf {
    uint8_t *p;
    uint32_t len, cap;
};

static uint32_t buf_reserve(struct buf *b, uint32_t n, uint32_t align)
{
    uint32_t off = (b->len + align - 1) & ~(align - 1);
    if (off + n > b->cap) {
        uint32_t cap = b->cap ? b->cap : 1024;
        while (cap < off + n)
            cap *= 2;
        uint8_t *p = xcalloc(1, cap);
        if (b->p)
            memcpy(p, b->p, b->len);
        free(b->p);
        b->p = p;
        b->cap = cap;
    }
    memset(b->p + b->len, 0, off + n - b->len);
    b->len = off + n;
    return off;
}

static void le16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void le32(uint8_t *p, uint32_t v) { le16(p, v); le16(p + 2, v >> 16); }

/* A table header with length and revision; the checksum is the loader's job. */
static uint32_t add_table(struct buf *t, const char *sig, uint32_t len, uint8_t rev)
{
    uint32_t off = buf_reserve(t, len, 8);
    uint8_t *h = t->p + off;
    memcpy(h, sig, 4);
    le32(h + 4, len);
    h[8] = rev;
    memcpy(h + 10, OEM_ID, 6);
    memcpy(h + 16, OEM_TABLE_ID, 8);
    le32(h + 24, 1);
    memcpy(h + 28, CREATOR_ID, 4);
    le32(h + 32, 1);
    return off;
}

/* ---- table-loader commands ---- */

static uint8_t *loader_entry(struct buf *l, uint32_t command)
{
    uint32_t off = buf_reserve(l, ACPI_LOADER_ENTRY_SIZE, 1);   /* may move l->p */
    uint8_t *e = l->p + off;
    le32(e, command);
    return e;
}

static void loader_allocate(struct buf *l, const char *file, uint32_t align, uint8_t zone)
{
    uint8_t *e = loader_entry(l, ACPI_LOADER_ALLOCATE);
    strncpy((char *)e + 4, file, ACPI_LOADER_FILESZ - 1);
    le32(e + 4 + ACPI_LOADER_FILESZ, align);
    e[8 + ACPI_LOADER_FILESZ] = zone;
}

/* dest_file[offset .. +size] += the address where src_file was placed. */
static void loader_add_pointer(struct buf *l, const char *dest, uint32_t offset, uint8_t size, const char *src)
{
    uint8_t *e = loader_entry(l, ACPI_LOADER_ADD_POINTER);
    strncpy((char *)e + 4, dest, ACPI_LOADER_FILESZ - 1);
    strncpy((char *)e + 4 + ACPI_LOADER_FILESZ, src, ACPI_LOADER_FILESZ - 1);
    le32(e + 4 + 2 * ACPI_LOADER_FILESZ, offset);
    e[8 + 2 * ACPI_LOADER_FILESZ] = size;
}

static void loader_add_checksum(struct buf *l, const char *file, uint32_t at, uint32_t start, uint32_t len)
{
    uint8_t *e = loader_entry(l, ACPI_LOADER_ADD_CHECKSUM);
    strncpy((char *)e + 4, file, ACPI_LOADER_FILESZ - 1);
    le32(e + 4 + ACPI_LOADER_FILESZ, at);
    le32(e + 8 + ACPI_LOADER_FILESZ, start);
    le32(e + 12 + ACPI_LOADER_FILESZ, len);
}

/* A table-to-table pointer inside the tables blob: the blob offset now, the
 * guest address once SeaBIOS has added the blob's base. */
static void link_table(struct buf *t, struct buf *l, uint32_t field, uint32_t target)
{
    le32(t->p + field, target);
    loader_add_pointer(l, ACPI_FILE_TABLES, field, 4, ACPI_FILE_TABLES);
}

static void checksum_table(struct buf *t, struct buf *l, uint32_t off)
{
    uint32_t len = t->p[off + 4] | t->p[off + 5] << 8 | t->p[off + 6] << 16 | (uint32_t)t->p[off + 7] << 24;
    t->p[off + 9] = 0;
    loader_add_checksum(l, ACPI_FILE_TABLES, off + 9, off, len);
}

/* ---- the tables ---- */

static uint32_t add_facs(struct buf *t)
{
    uint32_t off = buf_reserve(t, FACS_LEN, FACS_ALIGN);
    memcpy(t->p + off, "FACS", 4);
    le32(t->p + off + 4, FACS_LEN);
    return off;
}

static uint8_t com_mask(const struct acpi_config *cfg)
{
    return (cfg->com1 ? 1 : 0) | (cfg->com2 ? 2 : 0);
}

static uint32_t add_dsdt(struct buf *t, const struct acpi_config *cfg)
{
    uint32_t off = buf_reserve(t, acpi_dsdt_aml_len, 8);
    uint8_t *d = t->p + off;
    memcpy(d, acpi_dsdt_aml, acpi_dsdt_aml_len);
    for (uint32_t k = HEADER_LEN; k + sizeof(comp_name) < acpi_dsdt_aml_len; k++)
        if (!memcmp(d + k, comp_name, sizeof(comp_name)) && d[k + sizeof(comp_name)] == COMP_PLACEHOLDER) {
            d[k + sizeof(comp_name)] = com_mask(cfg);
            break;
        }
    return off;
}

static void set_gas_io(uint8_t *g, uint16_t port, uint8_t bits)
{
    g[0] = GAS_SYSTEM_IO;
    g[1] = bits;
    g[2] = 0;
    g[3] = GAS_ACCESS_BYTE;
    le32(g + 4, port);
}

static uint32_t add_fadt(struct buf *t, struct buf *l, uint32_t facs, uint32_t dsdt)
{
    uint32_t off = add_table(t, "FACP", FADT_LEN, FADT_REVISION);
    uint8_t *f = t->p + off;
    le16(f + FADT_SCI_INT, ACPI_PM_SCI_IRQ);
    le32(f + FADT_SMI_CMD, ACPI_SMI_CMD_PORT);
    f[FADT_ACPI_ENABLE] = ACPI_ENABLE_CMD;
    f[FADT_ACPI_DISABLE] = ACPI_DISABLE_CMD;
    le32(f + FADT_PM1A_EVT_BLK, ACPI_PM_BASE + ACPI_PM1_EVT_OFF);
    le32(f + FADT_PM1A_CNT_BLK, ACPI_PM_BASE + ACPI_PM1_CNT_OFF);
    le32(f + FADT_PM_TMR_BLK, ACPI_PM_BASE + ACPI_PM_TMR_OFF);
    le32(f + FADT_GPE0_BLK, ACPI_PM_BASE + ACPI_GPE0_OFF);
    f[FADT_PM1_EVT_LEN] = 4;
    f[FADT_PM1_CNT_LEN] = 2;
    f[FADT_PM_TMR_LEN] = 4;
    f[FADT_GPE0_BLK_LEN] = ACPI_GPE0_LEN;
    le16(f + FADT_P_LVL2_LAT, C_STATE_UNSUPPORTED_LAT2);
    le16(f + FADT_P_LVL3_LAT, C_STATE_UNSUPPORTED_LAT3);
    f[FADT_CENTURY] = CMOS_CENTURY;
    le16(f + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042);
    /* PWR_BUTTON clear: the power button is the fixed-feature one in PM1;
     * TMR_VAL_EXT clear: the PM timer has 24 bits. */
    le32(f + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
    set_gas_io(f + FADT_RESET_REG, RESET_PORT, 8);
    f[FADT_RESET_VALUE] = RESET_VALUE;
    link_table(t, l, off + FADT_FIRMWARE_CTRL, facs);
    link_table(t, l, off + FADT_DSDT, dsdt);
    return off;
}

static uint8_t *madt_entry(struct buf *t, uint8_t type, uint8_t len)
{
    uint32_t off = buf_reserve(t, len, 1);   /* may move t->p */
    uint8_t *e = t->p + off;
    e[0] = type;
    e[1] = len;
    return e;
}

static void madt_override(struct buf *t, uint8_t irq, uint32_t gsi, uint16_t flags)
{
    uint8_t *e = madt_entry(t, MADT_INT_OVERRIDE, 10);
    e[2] = 0;                       /* ISA */
    e[3] = irq;
    le32(e + 4, gsi);
    le16(e + 8, flags);
}

/* One CPU (LAPIC id 0), the I/O APIC (id 0, GSI base 0); ISA IRQ 0 is pin 2,
 * and the SCI is level, active high, as on QEMU's PC. */
static uint32_t add_madt(struct buf *t)
{
    uint32_t off = add_table(t, "APIC", HEADER_LEN + 8, 1);
    le32(t->p + off + HEADER_LEN, ACPI_LAPIC_BASE);
    le32(t->p + off + HEADER_LEN + 4, MADT_PCAT_COMPAT);
    uint8_t *e = madt_entry(t, MADT_LAPIC, 8);
    e[2] = 0;                       /* processor id (the DSDT's CPU0 _UID) */
    e[3] = 0;                       /* APIC id */
    le32(e + 4, 1);                 /* enabled */
    e = madt_entry(t, MADT_IOAPIC, 12);
    e[2] = ACPI_IOAPIC_ID;
    le32(e + 4, ACPI_IOAPIC_BASE);
    le32(e + 8, 0);
    madt_override(t, 0, 2, 0);
    madt_override(t, ACPI_PM_SCI_IRQ, ACPI_PM_SCI_IRQ, MPS_ACTIVE_HIGH | MPS_LEVEL);
    e = madt_entry(t, MADT_LAPIC_NMI, 6);
    e[2] = 0xff;                    /* all processors */
    le16(e + 3, 0);
    e[5] = 1;                       /* LINT1 */
    le32(t->p + off + 4, t->len - off);
    return off;
}

static uint32_t add_rsdt(struct buf *t, struct buf *l, const uint32_t *tables, int n)
{
    uint32_t off = add_table(t, "RSDT", HEADER_LEN + 4 * n, 1);
    for (int k = 0; k < n; k++)
        link_table(t, l, off + HEADER_LEN + 4 * k, tables[k]);
    return off;
}

static void fill_rsdp(struct buf *r, struct buf *l, uint32_t rsdt)
{
    uint32_t off = buf_reserve(r, RSDP_LEN, 1);
    memcpy(r->p + off, "RSD PTR ", 8);
    memcpy(r->p + off + 9, OEM_ID, 6);
    r->p[off + 15] = 0;              /* revision 0: ACPI 1.0, RSDT only */
    le32(r->p + off + RSDP_RSDT, rsdt);
    loader_add_pointer(l, ACPI_FILE_RSDP, RSDP_RSDT, 4, ACPI_FILE_TABLES);
    loader_add_checksum(l, ACPI_FILE_RSDP, RSDP_CHECKSUM, 0, RSDP_LEN);
}

void acpi_build_tables(const struct acpi_config *cfg, struct acpi_build *out)
{
    struct buf t = { 0 }, r = { 0 }, l = { 0 };
    loader_allocate(&l, ACPI_FILE_TABLES, FACS_ALIGN, ACPI_LOADER_ZONE_HIGH);
    loader_allocate(&l, ACPI_FILE_RSDP, 16, ACPI_LOADER_ZONE_FSEG);

    uint32_t facs = add_facs(&t);
    uint32_t dsdt = add_dsdt(&t, cfg);
    uint32_t fadt = add_fadt(&t, &l, facs, dsdt);
    uint32_t madt = add_madt(&t);
    uint32_t listed[] = { fadt, madt };
    uint32_t rsdt = add_rsdt(&t, &l, listed, 2);
    /* Checksums last: they cover the pointers SeaBIOS has just relocated. */
    checksum_table(&t, &l, dsdt);
    checksum_table(&t, &l, fadt);
    checksum_table(&t, &l, madt);
    checksum_table(&t, &l, rsdt);
    fill_rsdp(&r, &l, rsdt);

    out->tables = (struct acpi_blob){ t.p, t.len };
    out->rsdp = (struct acpi_blob){ r.p, r.len };
    out->loader = (struct acpi_blob){ l.p, l.len };
}

void acpi_build_free(struct acpi_build *b)
{
    free(b->tables.data);
    free(b->rsdp.data);
    free(b->loader.data);
    memset(b, 0, sizeof(*b));
}
