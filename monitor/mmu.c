#include "monitor/mmu.h"
#include "monitor/databp.h"

#include <string.h>

#define PTE_P   0x001u
#define PTE_RW  0x002u
#define PTE_US  0x004u
#define PTE_A   0x020u
#define PTE_D   0x040u
#define PTE_PS  0x080u
#define PTE_G   0x100u

#define PF_P    0x01u
#define PF_W    0x02u
#define PF_U    0x04u

/* Who makes an access: the translation's privilege.  Implicit supervisor
 * accesses (descriptor tables, the TSS; SDM vol. 3, 4.6) share the
 * supervisor TLB half but SMAP forbids them user pages whatever EFLAGS.AC. */
enum mmu_priv { PRIV_SUPERVISOR = 0, PRIV_USER = 1, PRIV_IMPLICIT = 2 };   /* the first two: `user`'s values */

/* tlb_entry.lists bit: the entry's index is in cpu.tlb_smap. */
#define TLB_SMAP_LISTED 0x80u

static void tlb_clear(struct tlb_entry *e)
{
    e->tag_read = e->tag_write = TLB_INVALID;
    e->global = false;
}

/* Clear the entries of one list.  A CR3 write walks only the local list and
 * keeps the entries that have become global since they were listed there
 * (the global list has them too). */
static void tlb_flush_list(struct cpu *c, int u, int list, bool keep_global)
{
    for (unsigned k = 0; k < c->tlb_nused[u][list]; k++) {
        struct tlb_entry *e = &c->tlb[u][c->tlb_used[u][list][k]];
        e->lists &= ~(1u << list);
        if (!(keep_global && e->global))
            tlb_clear(e);
    }
    c->tlb_nused[u][list] = 0;
}

static void tlb_flush_listed(struct cpu *c, bool keep_global)
{
    cpu_forget_returns(c);
    for (int u = 0; u < 2; u++) {
        tlb_flush_list(c, u, TLB_LIST_LOCAL, keep_global);
        if (!keep_global)
            tlb_flush_list(c, u, TLB_LIST_GLOBAL, false);
    }
}

void tlb_flush_all(struct cpu *c)
{
    tlb_flush_listed(c, false);
    c->tlb_generation = c->m ? c->m->pm->generation : 0;
}

void tlb_flush_nonglobal(struct cpu *c)
{
    if (!(c->cr4 & CR4_PGE)) {
        tlb_flush_all(c);
        return;
    }
    tlb_flush_listed(c, true);
}

void tlb_invalidate_phys_writes(struct cpu *c, uint32_t page)
{
    for (int u = 0; u < 2; u++)
        for (int list = 0; list < TLB_LISTS; list++)
            for (unsigned k = 0; k < c->tlb_nused[u][list]; k++) {
                struct tlb_entry *e = &c->tlb[u][c->tlb_used[u][list][k]];
                if ((e->phys & PAGE_MASK) == (page & PAGE_MASK))
                    e->tag_write = TLB_INVALID;
            }
}

/* EFLAGS.AC was cleared with supervisor entries for user pages cached
 * under SMAP: those entries lose their tags (an entry refilled since with
 * a supervisor page keeps them). */
void tlb_revoke_smap(struct cpu *c)
{
    cpu_forget_returns(c);
    for (unsigned k = 0; k < c->tlb_smap_n; k++) {
        struct tlb_entry *e = &c->tlb[0][c->tlb_smap[k]];
        e->lists &= ~TLB_SMAP_LISTED;
        if (e->user_page)
            e->tag_read = e->tag_write = TLB_INVALID;
    }
    c->tlb_smap_n = 0;
}

void tlb_flush_page(struct cpu *c, uint32_t lin)
{
    cpu_forget_returns(c);
    for (int u = 0; u < 2; u++) {
        struct tlb_entry *e = &c->tlb[u][(lin >> 12) & (TLB_SIZE - 1)];
        if ((e->tag_read & PAGE_MASK) == (lin & PAGE_MASK) || (e->tag_write & PAGE_MASK) == (lin & PAGE_MASK))
            tlb_clear(e);
    }
}

static uint32_t phys_read32(struct cpu *c, uint32_t pa)
{
    return (uint32_t)physmem_read(c->m->pm, pa, 4);
}

static void phys_write32(struct cpu *c, uint32_t pa, uint32_t v)
{
    physmem_write(c->m->pm, pa, v, 4);
}

static _Noreturn void page_fault(struct cpu *c, uint32_t lin, uint32_t err)
{
    c->cr2 = lin;
    cpu_raise(c, EXC_PF, err);
}

struct walk {
    uint32_t phys;
    bool writable;    /* a write with this privilege would be allowed now (D already set) */
    bool global;
    bool user_page;   /* U/S set at both levels */
};

/* SMAP (CR4.SMAP; SDM vol. 3, 4.6.1): a supervisor data access to a user
 * page faults unless it is explicit and EFLAGS.AC is set.  Instruction
 * fetches are SMEP's business, which this CPU does not have. */
static bool smap_forbids(const struct cpu *c, enum mmu_access acc, enum mmu_priv priv)
{
    return priv != PRIV_USER && acc != ACC_EXEC && (c->cr4 & CR4_SMAP) &&
           (priv == PRIV_IMPLICIT || !(c->eflags & FL_AC));
}

/* The two-level walk; sets A (and D on writes) as the hardware does.
 * False, with the #PF error code in *err, when the access would fault;
 * `quiet`: false too where it would have to set an A or D bit. */
static bool page_walk_try(struct cpu *c, uint32_t lin, enum mmu_access acc, enum mmu_priv priv, bool quiet,
                          struct walk *w, uint32_t *err)
{
    bool write = acc == ACC_WRITE;
    bool user = priv == PRIV_USER;
    *err = (write ? PF_W : 0) | (user ? PF_U : 0);
    uint32_t pde_addr = (c->cr3 & PAGE_MASK) | ((lin >> 20) & 0xffc);
    uint32_t pde = phys_read32(c, pde_addr);
    if (!(pde & PTE_P))
        return false;

    uint32_t entry, entry_addr, phys;
    bool big = (pde & PTE_PS) && (c->cr4 & CR4_PSE);
    uint32_t flags;
    if (big) {
        entry = pde;
        entry_addr = pde_addr;
        flags = pde;
        phys = (pde & 0xffc00000u) | (lin & 0x003ff000u);
    } else {
        entry_addr = (pde & PAGE_MASK) | ((lin >> 10) & 0xffc);
        entry = phys_read32(c, entry_addr);
        if (!(entry & PTE_P))
            return false;
        flags = pde & entry;
        phys = entry & PAGE_MASK;
    }
    bool user_ok = flags & PTE_US;
    bool rw_ok = flags & PTE_RW;
    if ((user && !user_ok) || (write && !rw_ok && (user || (c->cr0 & CR0_WP))) ||
        (user_ok && smap_forbids(c, acc, priv))) {
        *err |= PF_P;
        return false;
    }

    uint32_t upd = entry | PTE_A | (write ? PTE_D : 0);
    if (quiet && ((!big && !(pde & PTE_A)) || upd != entry))
        return false;
    if (!big && !(pde & PTE_A))
        phys_write32(c, pde_addr, pde | PTE_A);
    if (upd != entry)
        phys_write32(c, entry_addr, upd);

    w->phys = phys;
    w->writable = (upd & PTE_D) && (rw_ok || (!user && !(c->cr0 & CR0_WP)));
    w->global = (entry & PTE_G) && (c->cr4 & CR4_PGE);
    w->user_page = user_ok;
    return true;
}

static uint32_t a20_mask(const struct cpu *c)
{
    return c->a20 ? 0xffffffffu : ~0x100000u;
}

static void check_generation(struct cpu *c)
{
    if (c->tlb_generation != c->m->pm->generation)
        tlb_flush_all(c);
}

/* A supervisor entry for a user page under SMAP holds data tags only
 * while EFLAGS.AC is set, and is listed so that clearing AC revokes them.
 * Without tags, a fetch from it (allowed) goes the uncached way. */
static bool smap_cacheable(struct cpu *c, unsigned index, const struct walk *w, bool user)
{
    if (user || !w->user_page || !(c->cr4 & CR4_SMAP))
        return true;
    if (!(c->eflags & FL_AC))
        return false;
    struct tlb_entry *e = &c->tlb[0][index];
    if (!(e->lists & TLB_SMAP_LISTED)) {
        e->lists |= TLB_SMAP_LISTED;
        c->tlb_smap[c->tlb_smap_n++] = (uint16_t)index;
    }
    return true;
}

/* Translate and fill the TLB entry for the page; false (with the #PF error
 * code in *err, nothing filled) when the access would fault, or with
 * `quiet` when the walk would have to set an A or D bit. */
static bool translate_fill_try(struct cpu *c, uint32_t lin, enum mmu_access acc, enum mmu_priv priv, bool quiet,
                               uint32_t *pa, uint32_t *err)
{
    struct walk w;
    bool user = priv == PRIV_USER;
    if (c->cr0 & CR0_PG) {
        if (!page_walk_try(c, lin, acc, priv, quiet, &w, err))
            return false;
    } else {
        w.phys = lin & PAGE_MASK;
        w.writable = true;
        w.global = false;
        w.user_page = false;
    }
    w.phys &= a20_mask(c);
    check_generation(c);
    struct physmem *pm = c->m->pm;
    unsigned index = (lin >> 12) & (TLB_SIZE - 1);
    struct tlb_entry *e = &c->tlb[user][index];
    int list = w.global ? TLB_LIST_GLOBAL : TLB_LIST_LOCAL;
    if (!(e->lists & 1u << list)) {
        e->lists |= 1u << list;
        c->tlb_used[user][list][c->tlb_nused[user][list]++] = (uint16_t)index;
    }
    uint8_t *rd = pm->rd[w.phys >> 12];
    uint8_t *wr = pm->wr[w.phys >> 12];
    uint32_t page = lin & PAGE_MASK;
    e->tag_read = rd ? page : TLB_INVALID;
    /* No direct writes to pages with translations: they must go through machine_phys_write. */
    bool code = physmem_is_code(pm, w.phys);
    e->tag_write = (wr && w.writable && wr == rd && !code) ? page : TLB_INVALID;
    e->user_page = w.user_page;
    if (!smap_cacheable(c, index, &w, user))
        e->tag_read = e->tag_write = TLB_INVALID;
    /* Every access to a watched page must reach the slow paths, which note it. */
    if (databp_active(c->databp) && databp_covers_page(c->databp, page))
        e->tag_read = e->tag_write = TLB_INVALID;
    e->addend = rd ? (uintptr_t)rd - page : 0;
    e->phys = w.phys;
    e->global = w.global;
    *pa = w.phys | (lin & 0xfff);
    return true;
}

/* Translate and fill the TLB entry for the page, or raise #PF. */
static uint32_t translate_fill(struct cpu *c, uint32_t lin, enum mmu_access acc, enum mmu_priv priv)
{
    uint32_t pa, err;
    if (!translate_fill_try(c, lin, acc, priv, false, &pa, &err))
        page_fault(c, lin, err);
    return pa;
}

uint32_t mmu_translate(struct cpu *c, uint32_t lin, enum mmu_access acc, bool user)
{
    return translate_fill(c, lin, acc, user);
}

/* Called once the access's translations succeeded: an access that faults
 * is not made, and does not match. */
static void note_data_access(struct cpu *c, uint32_t lin, int size, uint8_t access)
{
    if (databp_active(c->databp))
        databp_note(c->databp, lin, (uint32_t)size, access);
}

static uint32_t read_slow(struct cpu *c, uint32_t lin, int size, enum mmu_priv priv)
{
    if ((lin & 0xfff) + size > PAGE_SIZE) {
        /* Page-crossing: translate both pages before reading either. */
        uint32_t first = PAGE_SIZE - (lin & 0xfff);
        uint32_t pa0 = translate_fill(c, lin, ACC_READ, priv);
        uint32_t pa1 = translate_fill(c, lin + first, ACC_READ, priv);
        note_data_access(c, lin, size, DATABP_READ);
        uint32_t v = 0;
        for (int k = 0; k < size; k++) {
            uint32_t pa = k < (int)first ? pa0 + k : pa1 + (k - first);
            v |= (uint32_t)physmem_read(c->m->pm, pa, 1) << (8 * k);
        }
        return v;
    }
    uint32_t pa = translate_fill(c, lin, ACC_READ, priv);
    note_data_access(c, lin, size, DATABP_READ);
    if (!c->m->pm->rd[pa >> 12])
        machine_sync_clock(c->m);
    return (uint32_t)physmem_read(c->m->pm, pa, size);
}

static void write_slow(struct cpu *c, uint32_t lin, uint32_t val, int size, enum mmu_priv priv)
{
    if ((lin & 0xfff) + size > PAGE_SIZE) {
        uint32_t first = PAGE_SIZE - (lin & 0xfff);
        uint32_t pa0 = translate_fill(c, lin, ACC_WRITE, priv);
        uint32_t pa1 = translate_fill(c, lin + first, ACC_WRITE, priv);
        note_data_access(c, lin, size, DATABP_WRITE);
        for (int k = 0; k < size; k++) {
            uint32_t pa = k < (int)first ? pa0 + k : pa1 + (k - first);
            machine_phys_write(c->m, pa, (val >> (8 * k)) & 0xff, 1);
        }
        return;
    }
    uint32_t pa = translate_fill(c, lin, ACC_WRITE, priv);
    note_data_access(c, lin, size, DATABP_WRITE);
    machine_phys_write(c->m, pa, val, size);
}

uint32_t mem_read_slow(struct cpu *c, uint32_t lin, int size, bool user)
{
    return read_slow(c, lin, size, user ? PRIV_USER : PRIV_SUPERVISOR);
}

void mem_write_slow(struct cpu *c, uint32_t lin, uint32_t val, int size, bool user)
{
    write_slow(c, lin, val, size, user ? PRIV_USER : PRIV_SUPERVISOR);
}

uint32_t mem_read_implicit_slow(struct cpu *c, uint32_t lin, int size)
{
    return read_slow(c, lin, size, PRIV_IMPLICIT);
}

void mem_write_implicit_slow(struct cpu *c, uint32_t lin, uint32_t val, int size)
{
    write_slow(c, lin, val, size, PRIV_IMPLICIT);
}

uint8_t mem_fetch_byte(struct cpu *c, uint32_t lin, bool user)
{
    const struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    if (e->tag_read == (lin & PAGE_MASK))
        return *(const uint8_t *)(uintptr_t)(lin + e->addend);
    uint32_t pa = translate_fill(c, lin, ACC_EXEC, user ? PRIV_USER : PRIV_SUPERVISOR);
    if (!c->m->pm->rd[pa >> 12])
        machine_sync_clock(c->m);
    return (uint8_t)physmem_read(c->m->pm, pa, 1);
}

void mem_probe_write(struct cpu *c, uint32_t lin, int size, bool user)
{
    struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    if (e->tag_write == (lin & PAGE_MASK) && (lin & 0xfff) <= PAGE_SIZE - size)
        return;
    translate_fill(c, lin, ACC_WRITE, user);
    if ((lin & 0xfff) + size > PAGE_SIZE)
        translate_fill(c, (lin | 0xfff) + 1, ACC_WRITE, user);
}

bool mmu_fill_quiet(struct cpu *c, uint32_t lin, enum mmu_access acc, bool user)
{
    struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    const uint32_t *tag = acc == ACC_WRITE ? &e->tag_write : &e->tag_read;
    uint32_t pa, err;
    if (*tag != (lin & PAGE_MASK) && !translate_fill_try(c, lin, acc, user, true, &pa, &err))
        return false;
    return *tag == (lin & PAGE_MASK);
}

const uint8_t *mem_code_ptr_nofault(struct cpu *c, uint32_t lin, uint32_t *phys)
{
    bool user = mmu_user(c);
    if (!mmu_fill_quiet(c, lin, ACC_EXEC, user))
        return NULL;
    const struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    *phys = e->phys | (lin & 0xfff);
    return (const uint8_t *)(lin + e->addend);
}

const uint8_t *mem_code_ptr(struct cpu *c, uint32_t lin, uint32_t *phys)
{
    bool user = mmu_user(c);
    struct tlb_entry *e = &c->tlb[user][(lin >> 12) & (TLB_SIZE - 1)];
    if (e->tag_read != (lin & PAGE_MASK)) {
        uint32_t pa = translate_fill(c, lin, ACC_EXEC, user);
        if (e->tag_read != (lin & PAGE_MASK)) {
            *phys = pa;
            return NULL;
        }
    }
    *phys = e->phys | (lin & 0xfff);
    return (const uint8_t *)(lin + e->addend);
}

/* A paging-structure entry, read from RAM only: a debugger's walk must not
 * reach a device's registers, whose reads may have side effects. */
static bool debug_read_entry(struct cpu *c, uint32_t pa, uint32_t *entry)
{
    return physmem_copy_from(c->m->pm, pa, entry, 4);
}

bool mmu_debug_translate(struct cpu *c, uint32_t lin, uint32_t *phys)
{
    if (!(c->cr0 & CR0_PG)) {
        *phys = lin & a20_mask(c);
        return true;
    }
    uint32_t pde, pte;
    if (!debug_read_entry(c, (c->cr3 & PAGE_MASK) | ((lin >> 20) & 0xffc), &pde) || !(pde & PTE_P))
        return false;
    if ((pde & PTE_PS) && (c->cr4 & CR4_PSE)) {
        *phys = ((pde & 0xffc00000u) | (lin & 0x003fffffu)) & a20_mask(c);
        return true;
    }
    if (!debug_read_entry(c, (pde & PAGE_MASK) | ((lin >> 10) & 0xffc), &pte) || !(pte & PTE_P))
        return false;
    *phys = ((pte & PAGE_MASK) | (lin & 0xfffu)) & a20_mask(c);
    return true;
}
