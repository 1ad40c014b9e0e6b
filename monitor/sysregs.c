/*
 * System registers and privileged instructions shared by every engine:
 * control registers, CPUID, MSRs, the TSC and the I/O permission check.
 */
#include "monitor/interp.h"
#include "monitor/machine.h"
#include "monitor/guestlog.h"

#include <stdio.h>
#include <string.h>

#define MSR_TSC              0x010
#define MSR_PLATFORM_ID      0x017
#define MSR_BIOS_SIGN_ID     0x08b
#define MSR_SYSENTER_CS      0x174
#define MSR_SYSENTER_ESP     0x175
#define MSR_SYSENTER_EIP     0x176
#define MSR_MISC_ENABLE      0x1a0
#define MSR_APIC_BASE        0x01b
#define MSR_EBL_CR_POWERON   0x02a
#define MSR_BIOS_UPDT_TRIG   0x079
#define MSR_MTRRCAP          0x0fe
#define MSR_MTRR_PHYS_FIRST  0x200      /* base/mask pairs of the 8 variable ranges */
#define MSR_MTRR_PHYS_LAST   0x20f
#define MSR_PAT              0x277
#define MSR_MTRR_DEF_TYPE    0x2ff
#define MSR_EFER             0xc0000080u
#define MSR_TSC_AUX          0xc0000103u
#define MSR_TSC_ADJUST       0x03b
#define MSR_MCG_CAP          0x179
#define EFER_SCE             0x1u

/* 8 variable ranges, the fixed ranges, write-combining. */
#define MTRRCAP_VALUE 0x508
/* Physical addresses have 36 bits (PSE-36 era P6): the MTRRs' masks. */
#define PHYS_ADDR_MASK 0xffffff000ull

/* The fixed-range MTRRs, in the order of cpu.mtrr_fixed. */
static const uint32_t mtrr_fixed_msrs[11] = {
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
};

static int mtrr_fixed_index(uint32_t msr)
{
    for (int k = 0; k < 11; k++)
        if (mtrr_fixed_msrs[k] == msr)
            return k;
    return -1;
}

/* Memory types a MTRR or PAT entry may hold: UC, WC, WT, WP, WB (PAT adds UC-, 7). */
static bool mtrr_type_valid(unsigned t)
{
    return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

static bool pat_valid(uint64_t v)
{
    for (int k = 0; k < 8; k++) {
        unsigned t = (v >> (8 * k)) & 0xff;
        if (!mtrr_type_valid(t) && t != 7)
            return false;
    }
    return true;
}

static bool fixed_mtrr_valid(uint64_t v)
{
    for (int k = 0; k < 8; k++)
        if (!mtrr_type_valid((v >> (8 * k)) & 0xff))
            return false;
    return true;
}

/* A variable range: even MSRs are PHYSBASE (type, base), odd PHYSMASK (valid bit 11, mask). */
static bool var_mtrr_valid(uint32_t msr, uint64_t v)
{
    if (msr & 1)
        return !(v & ~(PHYS_ADDR_MASK | 0x800));
    return !(v & ~(PHYS_ADDR_MASK | 0xff)) && mtrr_type_valid(v & 0xff);
}

/* TSC rate exposed to the guest: cycles per virtual ns. */
#define TSC_PER_NS 1

void cpu_write_cr0(struct cpu *c, uint32_t v)
{
    if ((v & CR0_PG) && !(v & CR0_PE))
        cpu_raise(c, EXC_GP, 0);
    if ((v & CR0_NW) && !(v & CR0_CD))
        cpu_raise(c, EXC_GP, 0);
    uint32_t changed = c->cr0 ^ v;
    c->cr0 = v | CR0_ET;
    if (changed & (CR0_PG | CR0_WP | CR0_PE))
        tlb_flush_all(c);
    if (!(c->cr0 & CR0_PE))
        c->cpl = 0;
}

void cpu_write_cr3(struct cpu *c, uint32_t v)
{
    c->cr3 = v;
    tlb_flush_nonglobal(c);
}

void cpu_write_cr4(struct cpu *c, uint32_t v)
{
    const uint32_t supported = CR4_VME | CR4_PVI | CR4_TSD | CR4_DE | CR4_PSE | CR4_PGE | CR4_OSFXSR | CR4_SMAP;
    if (v & ~supported)
        cpu_raise(c, EXC_GP, 0);
    uint32_t changed = c->cr4 ^ v;
    c->cr4 = v;
    /* SMAP decides which supervisor entries may hold data tags (mmu.c). */
    if (changed & (CR4_PSE | CR4_PGE | CR4_SMAP))
        tlb_flush_all(c);
}

/* CPUID reports a P6-class processor with exactly the features implemented. */
#define CPUID_FPU  (1u << 0)
#define CPUID_DE   (1u << 2)
#define CPUID_PSE  (1u << 3)
#define CPUID_TSC  (1u << 4)
#define CPUID_MSR  (1u << 5)
#define CPUID_CX8  (1u << 8)
#define CPUID_APIC (1u << 9)
#define CPUID_SEP  (1u << 11)
#define CPUID_PGE  (1u << 13)
#define CPUID_CMOV (1u << 15)
#define CPUID_FXSR (1u << 24)
/* Beyond the P6 set: what kvm-unit-tests' tsc and smap tests look for. */
#define CPUID_7_EBX_TSC_ADJUST (1u << 1)
#define CPUID_7_EBX_SMAP   (1u << 20)
#define CPUID_7_ECX_RDPID  (1u << 22)
#define CPUID_X1_EDX_RDTSCP (1u << 27)
#define CPUID_MAX_BASIC    7
#define CPUID_MAX_EXTENDED 0x80000001u

uint32_t cpu_feature_edx(void)
{
    /* MTRR and PAT are not announced: memory types mean nothing to an
     * emulator, and with the MTRR bit Linux goes on to report PAT missing
     * (a Pentium II has none).  Their MSRs answer all the same, for
     * software that touches them without asking. */
    uint32_t f = CPUID_DE | CPUID_PSE | CPUID_TSC | CPUID_MSR | CPUID_CX8 | CPUID_SEP | CPUID_PGE | CPUID_CMOV;
    if (fpu_implemented())
        f |= CPUID_FPU | CPUID_FXSR;
    return f;
}

void cpu_cpuid(struct cpu *c)
{
    uint32_t leaf = c->r[R_EAX];
    uint32_t a = 0, b = 0, cx = 0, d = 0;
    switch (leaf) {
    case 0:
        a = CPUID_MAX_BASIC;
        memcpy(&b, "Genu", 4);
        memcpy(&d, "ineI", 4);
        memcpy(&cx, "ntel", 4);
        break;
    case 1:
        a = (CPU_FAMILY << 8) | (CPU_MODEL << 4) | CPU_STEPPING;
        d = cpu_feature_edx();
        /* The APIC bit follows IA32_APIC_BASE's enable; EBX[31:24] is the APIC ID (0). */
        if (machine_apic_enabled(c->m))
            d |= CPUID_APIC;
        break;
    case 7:
        /* Sub-leaf 0 (ECX): EAX is the highest sub-leaf, 0. */
        if (c->r[R_ECX] == 0) {
            b = CPUID_7_EBX_SMAP | CPUID_7_EBX_TSC_ADJUST;
            cx = CPUID_7_ECX_RDPID;
        }
        break;
    case 0x80000000u:
        a = CPUID_MAX_EXTENDED;
        break;
    case 0x80000001u:
        d = CPUID_X1_EDX_RDTSCP;
        break;
    default:
        /* Leaves 2-6 (caches, MONITOR, power) report nothing.  Intel
         * returns the highest basic leaf's data for out-of-range leaves,
         * but zeros are what software checks for. */
        break;
    }
    c->r[R_EAX] = a;
    c->r[R_EBX] = b;
    c->r[R_ECX] = cx;
    c->r[R_EDX] = d;
}

uint64_t cpu_rdtsc(struct cpu *c)
{
    return (uint64_t)machine_now(c->m) * TSC_PER_NS + c->tsc_offset;
}

/* An unmodelled MSR raises #GP and is logged once per MSR (guest_log then
 * bounds how many distinct ones are printed). */
static void log_unmodelled_msr(struct cpu *c, const char *op, uint32_t msr)
{
    enum { SEEN = 32 };
    static uint32_t seen[SEEN];
    static unsigned nseen;
    for (unsigned k = 0; k < nseen && k < SEEN; k++)
        if (seen[k] == msr)
            return;
    seen[nseen++ % SEEN] = msr;
    guest_log(GUEST_LOG_UNMODELLED_MSR, "%s of unmodelled MSR 0x%x at eip %08x: #GP", op, msr, c->eip_start);
}

bool cpu_rdmsr(struct cpu *c, uint32_t msr, uint64_t *val)
{
    switch (msr) {
    case MSR_TSC: *val = cpu_rdtsc(c); return true;
    case MSR_PLATFORM_ID: *val = 0; return true;
    case MSR_BIOS_SIGN_ID: *val = 0; return true;
    case MSR_SYSENTER_CS: *val = c->sysenter_cs; return true;
    case MSR_SYSENTER_ESP: *val = c->sysenter_esp; return true;
    case MSR_SYSENTER_EIP: *val = c->sysenter_eip; return true;
    case MSR_MISC_ENABLE: *val = c->misc_enable; return true;
    case MSR_APIC_BASE: *val = machine_apic_base(c->m); return true;
    case MSR_EBL_CR_POWERON: *val = 0; return true;
    case MSR_MTRRCAP: *val = MTRRCAP_VALUE; return true;
    case MSR_MTRR_DEF_TYPE: *val = c->mtrr_def_type; return true;
    case MSR_PAT: *val = c->pat; return true;
    /* EFER answers with every feature off (no NX or long mode here), as
     * QEMU's 32-bit CPUs do: test code reads it to learn the mode.  SCE
     * holds what was written, as on Intel's 64-bit CPUs in legacy mode. */
    case MSR_EFER: *val = c->efer; return true;
    case MSR_TSC_ADJUST: *val = c->tsc_adjust; return true;
    /* No machine-check banks: MCi_* raise #GP as unmodelled MSRs. */
    case MSR_MCG_CAP: *val = 0; return true;
    case MSR_TSC_AUX: *val = c->tsc_aux; return true;
    }
    if (msr >= MSR_MTRR_PHYS_FIRST && msr <= MSR_MTRR_PHYS_LAST) {
        *val = c->mtrr_var[msr - MSR_MTRR_PHYS_FIRST];
        return true;
    }
    int k = mtrr_fixed_index(msr);
    if (k >= 0) {
        *val = c->mtrr_fixed[k];
        return true;
    }
    log_unmodelled_msr(c, "rdmsr", msr);
    return false;
}

bool cpu_wrmsr(struct cpu *c, uint32_t msr, uint64_t val)
{
    switch (msr) {
    case MSR_TSC: {
        /* SDM 17.17.3: what a write adds to the TSC, it adds to IA32_TSC_ADJUST. */
        uint64_t offset = val - (uint64_t)machine_now(c->m) * TSC_PER_NS;
        c->tsc_adjust += offset - c->tsc_offset;
        c->tsc_offset = offset;
        return true;
    }
    case MSR_TSC_ADJUST:
        c->tsc_offset += val - c->tsc_adjust;
        c->tsc_adjust = val;
        return true;
    case MSR_BIOS_SIGN_ID: return true;
    case MSR_SYSENTER_CS: c->sysenter_cs = val; return true;
    case MSR_SYSENTER_ESP: c->sysenter_esp = val; return true;
    case MSR_SYSENTER_EIP: c->sysenter_eip = val; return true;
    case MSR_MISC_ENABLE: c->misc_enable = val; return true;
    case MSR_APIC_BASE: return machine_set_apic_base(c->m, val);
    case MSR_EBL_CR_POWERON: return true;
    case MSR_BIOS_UPDT_TRIG: return true;            /* no microcode to load */
    case MSR_MTRRCAP: return false;                  /* read-only */
    case MSR_MTRR_DEF_TYPE:
        /* type, FE (bit 10), E (bit 11) */
        if ((val & ~0xcffull) || !mtrr_type_valid(val & 0xff))
            return false;
        c->mtrr_def_type = val;
        return true;
    case MSR_PAT:
        if (!pat_valid(val))
            return false;
        c->pat = val;
        return true;
    case MSR_EFER:
        if (val & ~(uint64_t)EFER_SCE)
            return false;
        c->efer = val;
        return true;
    case MSR_TSC_AUX:
        if (val >> 32)
            return false;                            /* bits 63:32 are reserved */
        c->tsc_aux = (uint32_t)val;
        return true;
    }
    if (msr >= MSR_MTRR_PHYS_FIRST && msr <= MSR_MTRR_PHYS_LAST) {
        if (!var_mtrr_valid(msr, val))
            return false;
        c->mtrr_var[msr - MSR_MTRR_PHYS_FIRST] = val;
        return true;
    }
    int k = mtrr_fixed_index(msr);
    if (k >= 0) {
        if (!fixed_mtrr_valid(val))
            return false;
        c->mtrr_fixed[k] = val;
        return true;
    }
    log_unmodelled_msr(c, "wrmsr", msr);
    return false;
}

void io_check(struct cpu *c, uint16_t port, int size)
{
    if (!cpu_protected(c))
        return;
    int iopl = (c->eflags >> 12) & 3;
    if (!cpu_v86(c) && c->cpl <= iopl)
        return;
    /* Consult the I/O permission bitmap of a 32-bit TSS. */
    int type = SEG_ATTR_TYPE(c->tr.attr);
    if (!(type & 8) || c->tr.limit < 0x67)
        cpu_raise(c, EXC_GP, 0);
    uint32_t map = sys_read(c, c->tr.base + 0x66, 2);
    uint32_t byte = map + port / 8;
    if (byte + 1 > c->tr.limit)
        cpu_raise(c, EXC_GP, 0);
    uint32_t bits = sys_read(c, c->tr.base + byte, 2);
    uint32_t want = ((1u << size) - 1) << (port & 7);
    if (bits & want)
        cpu_raise(c, EXC_GP, 0);
}
