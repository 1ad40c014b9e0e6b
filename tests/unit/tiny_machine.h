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
#include "monitor/mmu.h"

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

/* Flat 4 GiB segments (CS 0x08, the others 0x10) in protected mode at CPL 0,
 * paging off, loaded straight into the descriptor caches: nothing reads a
 * GDT.  Callers add paging, stacks and EIP. */
static inline void tiny_flat_ring0_segments(struct cpu *c)
{
    struct seg code = { 0 }, data = { 0 };
    code.limit = data.limit = 0xffffffffu;
    code.attr = SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G | 0xb;
    data.attr = SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G | 0x3;
    code.sel = 0x08;
    data.sel = 0x10;
    for (int s = 0; s < SEG_COUNT; s++)
        c->seg[s] = data;
    c->seg[SEG_CS] = code;
    c->cr0 = CR0_PE | CR0_ET;
    c->cpl = 0;
}

/* tiny_flat_ring0_segments with paging off, EFLAGS clear, no fault in
 * progress, not halted, the registers 0 but ESP, at eip; the TLB emptied. */
static inline void tiny_flat_ring0_start(struct cpu *c, uint32_t eip, uint32_t esp)
{
    tiny_flat_ring0_segments(c);
    c->cr3 = c->cr4 = 0;
    c->eflags = 0x2;
    c->eip = eip;
    c->halted = false;
    c->fault_depth = 0;
    memset(c->r, 0, sizeof c->r);
    c->r[R_ESP] = esp;
    tlb_flush_all(c);
}

#endif
