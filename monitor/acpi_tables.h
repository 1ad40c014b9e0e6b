/*
 * The machine's ACPI tables, handed to SeaBIOS through fw_cfg the way QEMU
 * does it: "etc/acpi/tables" (FACS, DSDT, FADT, MADT, RSDT, one blob),
 * "etc/acpi/rsdp", and "etc/table-loader", a list of 128-byte commands
 * (ALLOCATE, ADD_POINTER, ADD_CHECKSUM; SeaBIOS's src/fw/romfile_loader.h)
 * that tells the firmware where to place the blobs, which pointers to
 * relocate, and which checksums to compute once the addresses are known.
 * The DSDT is compiled from devices/acpi/dsdt.asl at build time.
 */
#ifndef RV_ACPI_TABLES_H
#define RV_ACPI_TABLES_H

#include <stdbool.h>
#include <stdint.h>

#define ACPI_FILE_TABLES "etc/acpi/tables"
#define ACPI_FILE_RSDP "etc/acpi/rsdp"
#define ACPI_FILE_LOADER "etc/table-loader"

/* The table-loader's command layout. */
#define ACPI_LOADER_ENTRY_SIZE 128
#define ACPI_LOADER_FILESZ 56
#define ACPI_LOADER_ALLOCATE 1
#define ACPI_LOADER_ADD_POINTER 2
#define ACPI_LOADER_ADD_CHECKSUM 3
#define ACPI_LOADER_ZONE_HIGH 1
#define ACPI_LOADER_ZONE_FSEG 2

#define ACPI_LAPIC_BASE 0xfee00000u
#define ACPI_IOAPIC_BASE 0xfec00000u
#define ACPI_IOAPIC_ID 0

struct acpi_config {
    bool com1, com2;             /* the UARTs that exist (the DSDT's _STA) */
};

struct acpi_blob {
    uint8_t *data;
    uint32_t len;
};

struct acpi_build {
    struct acpi_blob tables, rsdp, loader;
};

void acpi_build_tables(const struct acpi_config *cfg, struct acpi_build *out);
void acpi_build_free(struct acpi_build *b);

#endif
