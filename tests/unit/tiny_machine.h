/*
 * Test helper: a machine whose firmware is a 64 KiB ROM of HLTs, for tests
 * that set the CPU state themselves and never run the BIOS (the engines'
 * differential fuzzer, the interpreter's oracle, the code-write tests).
 * machine_new wants a firmware file, so one is written and removed again.
 */
#ifndef RV_TEST_TINY_MACHINE_H
#define RV_TEST_TINY_MACHINE_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "monitor/machine.h"

/* NULL when the machine cannot be built (a message was printed). */
static inline struct machine *tiny_machine_new(bool bt, uint32_t ram_mb, bool vga)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/rv-tiny-bios-%d.bin", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    static uint8_t rom[0x10000];
    memset(rom, 0xf4, sizeof rom);
    fwrite(rom, 1, sizeof rom, f);
    fclose(f);
    struct machine_config cfg = { .ram_mb = ram_mb, .bios_path = path, .accel_bt = bt, .no_vga = !vga };
    struct machine *m = machine_new(&cfg);
    unlink(path);
    return m;
}

#endif
