#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CFG_PMBA 0x40
#define CFG_DEVACTB 0x58
#define CFG_PMREGMISC 0x80
#define CFG_SMBBA 0x90
#define CFG_SMBHSTCFG 0xd2
#define PMREGMISC_PMIOSE 0x01
/* DEVACTB bit 25, APMC_EN: SeaBIOS takes it as "SMM already set up" and
 * skips its SMM relocation (QEMU sets it too when it has no SMM). */
#define DEVACTB_APMC_EN_BYTE3 0x02
#define PMBA_MASK 0xffc0u
#define TIMER_BITS 24
#define TIMER_MASK ((1u << TIMER_BITS) - 1)
#define TIMER_MSB_SHIFT (TIMER_BITS - 1)
/* Status bits that raise the SCI when enabled. */
#define PM1_SCI_SOURCES (ACPI_PM1_TMROF | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_RTC)
#define PM1_STS_BITS (PM1_SCI_SOURCES | ACPI_PM1_WAK)
#define PM1_CNT_WRITABLE (ACPI_PM1_SCI_EN | 0x0006 | ACPI_PM1_SLP_TYP_MASK)

struct acpi_pm {
    struct pci_dev pci;
    struct bus *bus;
    struct vclock *clock;
    struct vtimer *overflow_timer;   /* armed while TMROF_EN is set */
    uint32_t io_base;                /* where the block decodes now, 0: nowhere */
    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint16_t gpe0_sts, gpe0_en;
    uint64_t timer_msb_flips;        /* (count >> 23) when TMROF_STS was last brought up to date */
    uint8_t scratch[ACPI_PM_LEN];    /* the registers we do not model keep what is written */
    uint8_t apm_cmd, apm_sts;
    int sci_level;
};

/* Counts since power-on; split so that the product fits 64 bits for centuries. */
static uint64_t ticks_at(int64_t ns)
{
    uint64_t s = (uint64_t)ns / NS_PER_SEC, rem = (uint64_t)ns % NS_PER_SEC;
    return s * ACPI_PM_TIMER_HZ + rem * ACPI_PM_TIMER_HZ / NS_PER_SEC;
}

/* The first virtual ns at which the count reaches `ticks`. */
static int64_t ns_of_ticks(uint64_t ticks)
{
    uint64_t s = ticks / ACPI_PM_TIMER_HZ, rem = ticks % ACPI_PM_TIMER_HZ;
    return (int64_t)(s * NS_PER_SEC + (rem * NS_PER_SEC + ACPI_PM_TIMER_HZ - 1) / ACPI_PM_TIMER_HZ);
}

static uint64_t ticks_now(struct acpi_pm *pm)
{
    return ticks_at(vclock_now(pm->clock));
}

uint32_t acpi_pm_timer(struct acpi_pm *pm)
{
    return (uint32_t)ticks_now(pm) & TIMER_MASK;
}

static void update_sci(struct acpi_pm *pm)
{
    bool pending = (pm->pm1_sts & pm->pm1_en & PM1_SCI_SOURCES) || (pm->gpe0_sts & pm->gpe0_en);
    int level = (pm->pm1_cnt & ACPI_PM1_SCI_EN) && pending;
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_set(pm->bus, ACPI_PM_SCI_IRQ, level);
    }
}

/* TMROF_STS is set each time the counter's top bit changes; it is brought up
 * to date whenever the guest looks and when the overflow timer fires. */
static void catch_up_overflow(struct acpi_pm *pm)
{
    uint64_t flips = ticks_now(pm) >> TIMER_MSB_SHIFT;
    if (flips != pm->timer_msb_flips) {
        pm->timer_msb_flips = flips;
        pm->pm1_sts |= ACPI_PM1_TMROF;
    }
}

static void arm_overflow_timer(struct acpi_pm *pm)
{
    if (!(pm->pm1_en & ACPI_PM1_TMROF)) {
        vtimer_del(pm->overflow_timer);
        return;
    }
    uint64_t next_flip = (pm->timer_msb_flips + 1) << TIMER_MSB_SHIFT;
    vtimer_mod(pm->overflow_timer, ns_of_ticks(next_flip));
}

static void overflow_fired(void *opaque)
{
    struct acpi_pm *pm = opaque;
    catch_up_overflow(pm);
    arm_overflow_timer(pm);
    update_sci(pm);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }

static uint32_t pm_io_read(void *opaque, uint16_t port, int size)
{
    struct acpi_pm *pm = opaque;
    catch_up_overflow(pm);
    update_sci(pm);
    /* One snapshot per access, so a 32-bit timer read is consistent. */
    uint8_t regs[ACPI_PM_LEN + 4];
    memcpy(regs, pm->scratch, ACPI_PM_LEN);
    memset(regs + ACPI_PM_LEN, 0xff, 4);
    put16(regs + ACPI_PM1_EVT_OFF, pm->pm1_sts);
    put16(regs + ACPI_PM1_EVT_OFF + 2, pm->pm1_en);
    put16(regs + ACPI_PM1_CNT_OFF, pm->pm1_cnt);
    put16(regs + ACPI_PM1_CNT_OFF + 2, 0);
    uint32_t t = acpi_pm_timer(pm);
    put16(regs + ACPI_PM_TMR_OFF, t);
    put16(regs + ACPI_PM_TMR_OFF + 2, t >> 16);
    put16(regs + ACPI_GPE0_OFF, pm->gpe0_sts);
    put16(regs + ACPI_GPE0_OFF + 2, pm->gpe0_en);
    int off = port - pm->io_base;
    uint32_t v = 0;
    for (int k = 0; k < size; k++)
        v |= (uint32_t)regs[off + k < ACPI_PM_LEN ? off + k : ACPI_PM_LEN] << (8 * k);
    return v;
}

/* SLP_EN is a command, not state: it reads back 0. */
static void enter_sleep_state(struct acpi_pm *pm)
{
    int typ = (pm->pm1_cnt & ACPI_PM1_SLP_TYP_MASK) >> ACPI_PM1_SLP_TYP_SHIFT;
    if (typ == ACPI_SLP_TYP_SOFT_OFF)
        bus_request(pm->bus, BUS_REQ_POWEROFF, 0);
    /* Other types (suspend to RAM) are not offered by the DSDT: nothing happens. */
}

static void write_reg_byte(struct acpi_pm *pm, int off, uint8_t b, bool *sleep)
{
    int shift = 8 * (off & 1);
    uint16_t bits = (uint16_t)b << shift, lane = (uint16_t)0xff << shift;
    switch (off & ~1) {
    case ACPI_PM1_EVT_OFF:
        pm->pm1_sts &= ~(bits & PM1_STS_BITS);
        break;
    case ACPI_PM1_EVT_OFF + 2:
        pm->pm1_en = (pm->pm1_en & ~lane) | (bits & PM1_SCI_SOURCES);
        break;
    case ACPI_PM1_CNT_OFF:
        pm->pm1_cnt = (pm->pm1_cnt & ~(lane & PM1_CNT_WRITABLE)) | (bits & PM1_CNT_WRITABLE);
        if (bits & ACPI_PM1_SLP_EN)
            *sleep = true;
        break;
    case ACPI_PM1_CNT_OFF + 2:
    case ACPI_PM_TMR_OFF:
    case ACPI_PM_TMR_OFF + 2:
        break;
    case ACPI_GPE0_OFF:
        pm->gpe0_sts &= ~bits;
        break;
    case ACPI_GPE0_OFF + 2:
        pm->gpe0_en = (pm->gpe0_en & ~lane) | bits;
        break;
    default:
        if (off < ACPI_PM_LEN)
            pm->scratch[off] = b;
        break;
    }
}

static void pm_io_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct acpi_pm *pm = opaque;
    catch_up_overflow(pm);
    int off = port - pm->io_base;
    bool sleep = false;
    for (int k = 0; k < size; k++)
        write_reg_byte(pm, off + k, val >> (8 * k), &sleep);
    arm_overflow_timer(pm);
    update_sci(pm);
    if (sleep)
        enter_sleep_state(pm);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
    pm->pm1_sts |= ACPI_PM1_PWRBTN;
    update_sci(pm);
}

static uint32_t apm_read(void *opaque, uint16_t port, int size)
{
    struct acpi_pm *pm = opaque;
    uint32_t v = 0;
    for (int k = 0; k < size; k++) {
        uint16_t p = port + k;
        uint8_t b = p == ACPI_SMI_CMD_PORT ? pm->apm_cmd : p == ACPI_SMI_CMD_PORT + 1 ? pm->apm_sts : 0xff;
        v |= (uint32_t)b << (8 * k);
    }
    return v;
}

/* The ACPI enable handshake: an OS writes ACPI_ENABLE to SMI_CMD and waits
 * for SCI_EN.  Without SMM the chipset answers the command itself. */
static void apm_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct acpi_pm *pm = opaque;
    for (int k = 0; k < size; k++) {
        uint16_t p = port + k;
        uint8_t b = val >> (8 * k);
        if (p == ACPI_SMI_CMD_PORT + 1) {
            pm->apm_sts = b;
            continue;
        }
        if (p != ACPI_SMI_CMD_PORT)
            continue;
        pm->apm_cmd = b;
        if (b == ACPI_ENABLE_CMD)
            pm->pm1_cnt |= ACPI_PM1_SCI_EN;
        else if (b == ACPI_DISABLE_CMD)
            pm->pm1_cnt &= ~ACPI_PM1_SCI_EN;
    }
    update_sci(pm);
}

/* PMBA and PMREGMISC decide where the register block decodes. */
static void remap_io(struct acpi_pm *pm)
{
    uint32_t base = 0;
    if (pm->pci.config[CFG_PMREGMISC] & PMREGMISC_PMIOSE)
        base = pci_get32(&pm->pci, CFG_PMBA) & PMBA_MASK;
    if (base == pm->io_base)
        return;
    if (pm->io_base)
        bus_unregister_pio(pm->bus, pm->io_base, ACPI_PM_LEN);
    pm->io_base = base;
    if (base)
        bus_register_pio(pm->bus, base, ACPI_PM_LEN, pm, pm_io_read, pm_io_write);
}

static void pm_config_write(struct pci_dev *d, int offset, uint32_t val, int size)
{
    bool pmba = offset < CFG_PMBA + 4 && offset + size > CFG_PMBA;
    bool misc = offset <= CFG_PMREGMISC && offset + size > CFG_PMREGMISC;
    if (pmba || misc)
        remap_io(d->opaque);
}

static void pm_config_reset(struct pci_dev *d)
{
    struct acpi_pm *pm = d->opaque;
    pci_set32(d, CFG_PMBA, 1);                  /* bit 0: an I/O address */
    d->config[CFG_PMREGMISC] = 0;
    pci_set32(d, CFG_SMBBA, 1);
    d->config[CFG_SMBHSTCFG] = 0;
    pci_set32(d, CFG_DEVACTB, (uint32_t)DEVACTB_APMC_EN_BYTE3 << 24);
    remap_io(pm);
}

static void pm_reset(void *opaque)
{
    struct acpi_pm *pm = opaque;
    pm->pm1_sts = pm->pm1_en = pm->pm1_cnt = 0;
    pm->gpe0_sts = pm->gpe0_en = 0;
    memset(pm->scratch, 0, sizeof(pm->scratch));
    pm->apm_cmd = pm->apm_sts = 0;
    pm->timer_msb_flips = ticks_now(pm) >> TIMER_MSB_SHIFT;
    vtimer_del(pm->overflow_timer);
    update_sci(pm);
}

/* The register block decodes where PMBA/PMREGMISC say; SCI follows the registers. */
static void pm_post_load(void *opaque)
{
    struct acpi_pm *pm = opaque;
    pci_dev_post_load(&pm->pci);
    remap_io(pm);
    if (pm->sci_level)
        irq_set(pm->bus, ACPI_PM_SCI_IRQ, 1);
}

static const struct state_field pm_fields[] = {
    STATE_FIELD(struct acpi_pm, pci.config), STATE_FIELD(struct acpi_pm, pci.irq_level),
    STATE_TIMER(struct acpi_pm, overflow_timer), STATE_FIELD(struct acpi_pm, pm1_sts),
    STATE_FIELD(struct acpi_pm, pm1_en), STATE_FIELD(struct acpi_pm, pm1_cnt), STATE_FIELD(struct acpi_pm, gpe0_sts),
    STATE_FIELD(struct acpi_pm, gpe0_en), STATE_FIELD(struct acpi_pm, timer_msb_flips),
    STATE_FIELD(struct acpi_pm, scratch), STATE_FIELD(struct acpi_pm, apm_cmd), STATE_FIELD(struct acpi_pm, apm_sts),
    STATE_FIELD(struct acpi_pm, sci_level),
};
static const struct state_table pm_state = { "acpi-pm", 1, pm_fields, STATE_COUNT(pm_fields), pm_post_load };

struct acpi_pm *acpi_pm_new(struct pci_bus *pb, struct bus *b)
{
    struct acpi_pm *pm = xcalloc(1, sizeof(*pm));
    pm->bus = b;
    pm->clock = bus_clock(b);
    pm->overflow_timer = vtimer_new(pm->clock, overflow_fired, pm);
    /* Class 0x0680 (other bridge), revision 3: QEMU's PIIX4 PM. */
    pci_dev_init(&pm->pci, "piix4-pm", ACPI_PM_DEVFN, 0x8086, 0x7113, 0x068000, 0x03);
    pm->pci.opaque = pm;
    pm->pci.config_write = pm_config_write;
    pm->pci.reset = pm_config_reset;
    pm->pci.wmask[CFG_PMBA] = PMBA_MASK & 0xff;
    pm->pci.wmask[CFG_PMBA + 1] = PMBA_MASK >> 8;
    pm->pci.wmask[CFG_PMREGMISC] = PMREGMISC_PMIOSE;
    /* SMBus: base and enable are kept but nothing decodes there. */
    pm->pci.wmask[CFG_SMBBA] = 0xf0;
    pm->pci.wmask[CFG_SMBBA + 1] = 0xff;
    pm->pci.wmask[CFG_SMBHSTCFG] = 0x0f;
    for (int k = 0; k < 3; k++)
        pm->pci.wmask[CFG_DEVACTB + k] = 0xff;
    pci_register(pb, &pm->pci);
    bus_register_pio(b, ACPI_SMI_CMD_PORT, 2, pm, apm_read, apm_write);
    struct device dev = { "acpi-pm", pm, pm_reset, &pm_state };
    bus_add_device(b, &dev);
    pm_config_reset(&pm->pci);
    pm_reset(pm);
    return pm;
}

void acpi_pm_free(struct acpi_pm *pm)
{
    if (!pm)
        return;
    vtimer_free(pm->overflow_timer);
    free(pm);
}
