#include "monitor/trace.h"
#include "monitor/guestlog.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"

#include <capstone/capstone.h>
#include <string.h>

static FILE *trace_out;

static const struct {
    const char *name;
    unsigned bit;
    const char *help;
} trace_names[] = {
    { "in_asm", TRACE_IN_ASM, "each executed guest instruction, disassembled" },
    { "cpu", TRACE_CPU, "registers before each traced instruction (with in_asm)" },
    { "int", TRACE_INT, "interrupts and exceptions" },
    { "unimp", TRACE_UNIMP, "unimplemented instructions and device accesses" },
    { "post", TRACE_POST, "POST codes written to port 0x80 (and the extra POST port)" },
    { "ioport", TRACE_IOPORT, "every port I/O access" },
    { "out_asm", TRACE_OUT_ASM, "each block the translation cache makes: guest code, then host x86-64 code" },
    { "bt", TRACE_BT, "translation cache: each flush and invalidated page, totals at exit" },
};

const char *trace_flag_help(void)
{
    static char buf[1024];
    if (!buf[0]) {
        for (size_t k = 0; k < sizeof(trace_names) / sizeof(trace_names[0]); k++) {
            size_t n = strlen(buf);
            snprintf(buf + n, sizeof(buf) - n, "    %-8s %s\n", trace_names[k].name, trace_names[k].help);
        }
    }
    return buf;
}

bool trace_parse(const char *spec, unsigned *flags, char *err, size_t errlen)
{
    char tmp[256];
    if (strlen(spec) >= sizeof(tmp)) {
        snprintf(err, errlen, "-d: the list of trace flags is too long (try -d help)");
        return false;
    }
    /* An empty list or an empty item is a slip, not "no tracing". */
    size_t n = strlen(spec);
    if (!n || spec[0] == ',' || spec[n - 1] == ',' || strstr(spec, ",,")) {
        snprintf(err, errlen, "-d: empty trace flag in '%s' (try -d help)", spec);
        return false;
    }
    snprintf(tmp, sizeof(tmp), "%s", spec);
    *flags = 0;
    for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bool found = false;
        for (size_t k = 0; k < sizeof(trace_names) / sizeof(trace_names[0]); k++) {
            if (!strcmp(tok, trace_names[k].name)) {
                *flags |= trace_names[k].bit;
                found = true;
            }
        }
        if (!found) {
            snprintf(err, errlen, "-d: unknown trace flag '%s' (try -d help)", tok);
            return false;
        }
    }
    return true;
}

void trace_set_output(FILE *f) { trace_out = f; }
FILE *trace_output(void) { return trace_out ? trace_out : stderr; }

int disasm_one(const uint8_t *code, int len, bool code32, uint32_t addr, char *buf, size_t buflen)
{
    static csh handles[2];
    static bool opened[2];
    int k = code32 ? 1 : 0;
    if (!opened[k]) {
        if (cs_open(CS_ARCH_X86, code32 ? CS_MODE_32 : CS_MODE_16, &handles[k]) != CS_ERR_OK)
            return 0;
        opened[k] = true;
    }
    cs_insn *insn;
    size_t n = cs_disasm(handles[k], code, len, addr, 1, &insn);
    if (n == 0) {
        snprintf(buf, buflen, "(bad)");
        return 0;
    }
    snprintf(buf, buflen, "%s %s", insn[0].mnemonic, insn[0].op_str);
    int l = insn[0].size;
    cs_free(insn, n);
    return l;
}

void trace_block_head(bool code32, uint32_t eip, uint32_t phys)
{
    fprintf(trace_output(), "IN: %08x (phys %08x, %d-bit)\n", eip, phys, code32 ? 32 : 16);
}

void trace_block_insn(bool code32, uint32_t eip, const uint8_t *bytes, int len)
{
    char text[160];
    disasm_one(bytes, len, code32, eip, text, sizeof(text));
    fprintf(trace_output(), "  %08x: %s\n", eip, text);
}

void trace_block_host(const uint8_t *host, size_t host_len)
{
    FILE *f = trace_output();
    static csh host_cs;
    static bool host_open;
    if (!host_open && cs_open(CS_ARCH_X86, CS_MODE_64, &host_cs) == CS_ERR_OK)
        host_open = true;
    fprintf(f, "OUT: %zu bytes at %p\n", host_len, (const void *)host);
    if (!host_open)
        return;
    cs_insn *insn;
    size_t n = cs_disasm(host_cs, host, host_len, (uintptr_t)host, 0, &insn);
    for (size_t k = 0; k < n; k++)
        fprintf(f, "  %012lx: %s %s\n", (unsigned long)insn[k].address, insn[k].mnemonic, insn[k].op_str);
    if (n)
        cs_free(insn, n);
    fputc('\n', f);
}

static void fetch_bytes(struct cpu *c, uint32_t lin, uint8_t *buf, int len)
{
    for (int k = 0; k < len; k++) {
        uint32_t pa = lin + k;
        if (c->cr0 & CR0_PG) {
            struct tlb_entry *e = &c->tlb[mmu_user(c)][((lin + k) >> 12) & (TLB_SIZE - 1)];
            pa = e->phys | ((lin + k) & 0xfff);
        }
        buf[k] = physmem_read(c->m->pm, pa, 1);
    }
}

void trace_insn(struct cpu *c, const struct insn *in)
{
    if (!(c->trace & TRACE_IN_ASM))
        return;
    FILE *f = trace_output();
    uint8_t bytes[INSN_MAX_LEN];
    uint32_t lin = c->seg[SEG_CS].base + c->eip;
    fetch_bytes(c, lin, bytes, in->len);
    char text[128];
    disasm_one(bytes, in->len, cpu_code32(c), c->eip, text, sizeof(text));
    if (c->trace & TRACE_CPU)
        fprintf(f, "EAX=%08x EBX=%08x ECX=%08x EDX=%08x ESI=%08x EDI=%08x EBP=%08x ESP=%08x EFL=%08x CPL=%d\n",
                c->r[R_EAX], c->r[R_EBX], c->r[R_ECX], c->r[R_EDX], c->r[R_ESI], c->r[R_EDI], c->r[R_EBP],
                c->r[R_ESP], c->eflags, c->cpl);
    fprintf(f, "%04x:%08x  ", c->seg[SEG_CS].sel, c->eip);
    for (int k = 0; k < in->len; k++)
        fprintf(f, "%02x", bytes[k]);
    fprintf(f, "%*s %s\n", 2 * (INSN_MAX_LEN - in->len) + 1, "", text);
}

void trace_exception(struct cpu *c, int vector, uint32_t err)
{
    if (c->trace & TRACE_INT)
        fprintf(trace_output(), "exception %d err=%x at %04x:%08x cr2=%08x\n", vector, err,
                c->seg[SEG_CS].sel, c->eip, c->cr2);
}

void trace_interrupt(struct cpu *c, int vector)
{
    if (c->trace & TRACE_INT)
        fprintf(trace_output(), "interrupt 0x%02x at %04x:%08x\n", vector, c->seg[SEG_CS].sel, c->eip);
}

/* Logged once per address, whatever the trace flags: the contract for
 * unimplemented opcodes; guest_log bounds how many such lines a guest gets. */
void trace_unimplemented(struct cpu *c, const struct insn *in, const char *what)
{
    enum { SEEN = 64 };
    static uint32_t seen[SEEN];
    static unsigned nseen;
    uint32_t lin = c->seg[SEG_CS].base + c->eip_start;
    for (unsigned k = 0; k < nseen && k < SEEN; k++)
        if (seen[k] == lin)
            return;
    seen[nseen++ % SEEN] = lin;
    uint8_t bytes[INSN_MAX_LEN];
    int len = in->len ? in->len : 8;
    fetch_bytes(c, lin, bytes, len);
    char hex[3 * INSN_MAX_LEN + 1] = "";
    for (int k = 0; k < len; k++)
        snprintf(hex + 3 * k, sizeof(hex) - 3 * k, " %02x", bytes[k]);
    guest_log(GUEST_LOG_UNDEFINED_OPCODE, "%s at %04x:%08x (linear %08x), bytes%s: raising #UD", what,
              c->seg[SEG_CS].sel, c->eip_start, lin, hex);
}
