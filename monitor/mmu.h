/*
 * Linear -> physical translation (two-level 32-bit paging with 4 MiB PSE
 * pages and global pages), the software TLB in struct cpu, and the memory
 * accessors every engine uses.  Faults raise #PF through cpu_raise with CR2
 * and the architectural error code.
 */
#ifndef RV_MMU_H
#define RV_MMU_H

#include "monitor/cpu.h"
#include "monitor/machine.h"
#include "monitor/physmem.h"

enum mmu_access { ACC_READ = 0, ACC_WRITE = 1, ACC_EXEC = 2 };

/* Translate with the current CPL's privilege (user = CPL 3). */
uint32_t mmu_translate(struct cpu *c, uint32_t lin, enum mmu_access acc, bool user);
void tlb_flush_all(struct cpu *c);          /* everything, global pages included */
void tlb_flush_nonglobal(struct cpu *c);    /* CR3 write */
void tlb_flush_page(struct cpu *c, uint32_t lin);
void tlb_invalidate_phys_writes(struct cpu *c, uint32_t page);   /* no direct writes to a guest-physical page */

/* Slow paths behind the inline fast paths below. */
uint32_t mem_read_slow(struct cpu *c, uint32_t lin, int size, bool user);
void mem_write_slow(struct cpu *c, uint32_t lin, uint32_t val, int size, bool user);
/* Check that `size` bytes at lin are writable (raises #PF otherwise). */
void mem_probe_write(struct cpu *c, uint32_t lin, int size, bool user);
/* Host pointer for an executable linear address, or NULL if not plain memory
 * (then *phys receives the physical address).  Raises #PF. */
const uint8_t *mem_code_ptr(struct cpu *c, uint32_t lin, uint32_t *phys);
/* The same without side effects: NULL when the page cannot be fetched from
 * now (not present, not allowed, not RAM), or not without setting an A bit
 * first.  Only the TLB entry may be filled. */
const uint8_t *mem_code_ptr_nofault(struct cpu *c, uint32_t lin, uint32_t *phys);
/* Fill lin's TLB entry (the `user` half) for `acc` the same way, without
 * side effects: whether the entry now allows the access. */
bool mmu_fill_quiet(struct cpu *c, uint32_t lin, enum mmu_access acc, bool user);

/* lin's physical address as the guest's page tables say now, for the
 * monitor console and the debugger: no fault, no A/D bit, no TLB entry,
 * no permission check.  False when the page is not present (or a paging
 * structure lies outside RAM). */
bool mmu_debug_translate(struct cpu *c, uint32_t lin, uint32_t *phys);

static inline bool mmu_user(const struct cpu *c) { return c->cpl == 3; }

/* Guest data may sit at any address: a fixed-size memcpy is how C says
 * "unaligned load/store" without undefined behaviour, and compiles to the
 * same single mov on x86. */
static inline uint32_t host_load(const uint8_t *p, int size)
{
    if (size == 1)
        return *p;
    if (size == 2) {
        uint16_t v;
        __builtin_memcpy(&v, p, 2);
        return v;
    }
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

static inline void host_store(uint8_t *p, uint32_t val, int size)
{
    if (size == 1) {
        *p = val;
    } else if (size == 2) {
        uint16_t v = val;
        __builtin_memcpy(p, &v, 2);
    } else {
        __builtin_memcpy(p, &val, 4);
    }
}

static inline uint32_t mem_read(struct cpu *c, uint32_t lin, int size, bool user)
{
    struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    if (e->tag_read != (lin & PAGE_MASK) || (lin & 0xfff) > PAGE_SIZE - size)
        return mem_read_slow(c, lin, size, user);
    return host_load((const uint8_t *)(lin + e->addend), size);
}

static inline void mem_write(struct cpu *c, uint32_t lin, uint32_t val, int size, bool user)
{
    struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    if (e->tag_write == (lin & PAGE_MASK) && (lin & 0xfff) <= PAGE_SIZE - size) {
        host_store((uint8_t *)(lin + e->addend), val, size);
        return;
    }
    mem_write_slow(c, lin, val, size, user);
}

#endif
