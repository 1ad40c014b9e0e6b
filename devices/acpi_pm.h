/*
 * PIIX4-style ACPI power management, PCI 00:01.3 (8086:7113), as on QEMU's
 * i440FX machine.  Its I/O block sits where the guest puts PMBA (config 0x40,
 * enabled by PMREGMISC bit 0 at config 0x80; SeaBIOS chooses 0x600):
 *   +0x00 PM1_STS   write 1 to clear: TMROF, GBL, PWRBTN, RTC, WAK
 *   +0x02 PM1_EN    the same bits enable the SCI
 *   +0x04 PM1_CNT   SCI_EN, SLP_TYP, SLP_EN (SLP_TYP 0 + SLP_EN = S5: power off)
 *   +0x08 PM_TMR    24-bit counter at 3.579545 MHz from the virtual clock
 *   +0x0C GPE0_STS  (16 bits, write 1 to clear)  +0x0E GPE0_EN
 * The rest of the 64-byte block keeps what the guest writes.  The SCI is
 * ISA IRQ 9, level, high while an enabled status bit is set and SCI_EN is on.
 * Ports 0xB2/0xB3 are the APM command and status ports: the FADT names 0xB2
 * as SMI_CMD with ACPI_ENABLE (0xF1) and ACPI_DISABLE (0xF0), which set and
 * clear SCI_EN here since there is no SMM to do it.
 */
#ifndef RV_ACPI_PM_H
#define RV_ACPI_PM_H

#include <stdint.h>

struct bus;
struct pci_bus;
struct acpi_pm;

#define ACPI_PM_DEVFN ((1 << 3) | 3)
#define ACPI_PM_SCI_IRQ 9
#define ACPI_PM_TIMER_HZ 3579545
/* Where SeaBIOS maps PMBA when fw_cfg offers etc/table-loader; the FADT says so. */
#define ACPI_PM_BASE 0x600
#define ACPI_PM_LEN 0x40
#define ACPI_PM1_EVT_OFF 0x00
#define ACPI_PM1_CNT_OFF 0x04
#define ACPI_PM_TMR_OFF 0x08
#define ACPI_GPE0_OFF 0x0c
#define ACPI_GPE0_LEN 4
#define ACPI_SMI_CMD_PORT 0xb2
#define ACPI_ENABLE_CMD 0xf1
#define ACPI_DISABLE_CMD 0xf0

/* PM1 status / enable bits */
#define ACPI_PM1_TMROF 0x0001
#define ACPI_PM1_GBL 0x0020
#define ACPI_PM1_PWRBTN 0x0100
#define ACPI_PM1_RTC 0x0400
#define ACPI_PM1_WAK 0x8000
/* PM1 control bits */
#define ACPI_PM1_SCI_EN 0x0001
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP_MASK (7 << ACPI_PM1_SLP_TYP_SHIFT)
#define ACPI_PM1_SLP_EN 0x2000
/* SLP_TYP values as the PIIX4 decodes them (and \_S5 / \_S0 in the DSDT say). */
#define ACPI_SLP_TYP_SOFT_OFF 0
#define ACPI_SLP_TYP_WORKING 5

struct acpi_pm *acpi_pm_new(struct pci_bus *pb, struct bus *b);
void acpi_pm_free(struct acpi_pm *pm);
/* A press of the power button: PWRBTN_STS, and the SCI if the guest enabled it. */
void acpi_pm_power_button(struct acpi_pm *pm);
/* The PM timer's count now (24 bits). */
uint32_t acpi_pm_timer(struct acpi_pm *pm);

#endif
