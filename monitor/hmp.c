/*
 * The monitor console's commands (see hmp.h).  Every command runs on the
 * machine's thread between slices; the console thread (hmp_server.c) only
 * moves lines in and text out.  A command checks all its arguments before it
 * touches the machine: a bad one prints one error line and changes nothing.
 */
#include "monitor/hmp.h"

#include <capstone/capstone.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/atapi.h"
#include "devices/bus.h"
#include "devices/kbc.h"
#include "devices/lapic.h"
#include "devices/pci.h"
#include "devices/pic.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/net.h"
#include "monitor/control.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "monitor/snapshot.h"
#include "ui/ui.h"

#define MAX_ARGS 8
#define MAX_DUMP_COUNT 65536u      /* units one x/xp prints at most */
#define MAX_INSN_BYTES 15

struct hmp_cmd {
    const char *name;
    const char *args;        /* for help */
    const char *help;
    int min_args, max_args;
    bool takes_format;       /* x/FMT, xp/FMT */
    void (*fn)(struct machine *m, const char *fmt, int argc, char **argv, FILE *out);
};

static const struct hmp_cmd commands[];

/* ---- parsing ---- */

static bool is_format_char(char ch)
{
    return strchr("xduoci", ch) != NULL;
}

static int size_of_char(char ch)
{
    switch (ch) {
    case 'b': return 1;
    case 'h': return 2;
    case 'w': return 4;
    case 'g': return 8;
    default: return 0;
    }
}

bool hmp_parse_format(const char *fmt, struct hmp_format *out, char *err, size_t errlen)
{
    *out = (struct hmp_format){ .count = 1, .format = 'x', .size = 0 };
    const char *p = fmt;
    if (isdigit((unsigned char)*p)) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(p, &end, 10);
        if (errno || n < 1 || n > MAX_DUMP_COUNT) {
            snprintf(err, errlen, "invalid count in format '/%s' (1..%u)", fmt, MAX_DUMP_COUNT);
            return false;
        }
        out->count = (unsigned)n;
        p = end;
    }
    bool have_format = false, have_size = false;
    for (; *p; p++) {
        if (is_format_char(*p) && !have_format) {
            out->format = *p;
            have_format = true;
        } else if (size_of_char(*p) && !have_size) {
            out->size = size_of_char(*p);
            have_size = true;
        } else {
            snprintf(err, errlen, "invalid char '%c' in format '/%s' (count, then x d u o c i and b h w g)", *p,
                     fmt);
            return false;
        }
    }
    return true;
}

struct reg_name {
    const char *name;
    int kind;                /* 0: 32-bit GPR, 1: 16-bit GPR, 2: segment selector, 3: other */
    int index;
};

static const struct reg_name reg_names[] = {
    { "eax", 0, R_EAX }, { "ecx", 0, R_ECX }, { "edx", 0, R_EDX }, { "ebx", 0, R_EBX },
    { "esp", 0, R_ESP }, { "ebp", 0, R_EBP }, { "esi", 0, R_ESI }, { "edi", 0, R_EDI },
    { "ax", 1, R_EAX },  { "cx", 1, R_ECX },  { "dx", 1, R_EDX },  { "bx", 1, R_EBX },
    { "sp", 1, R_ESP },  { "bp", 1, R_EBP },  { "si", 1, R_ESI },  { "di", 1, R_EDI },
    { "es", 2, SEG_ES }, { "cs", 2, SEG_CS }, { "ss", 2, SEG_SS }, { "ds", 2, SEG_DS },
    { "fs", 2, SEG_FS }, { "gs", 2, SEG_GS },
    { "eip", 3, 0 }, { "pc", 3, 1 }, { "eflags", 3, 2 }, { "cr0", 3, 3 }, { "cr2", 3, 4 },
    { "cr3", 3, 5 }, { "cr4", 3, 6 },
};

static bool register_value(const struct cpu *c, const char *name, size_t len, uint64_t *v)
{
    for (size_t k = 0; k < sizeof(reg_names) / sizeof(reg_names[0]); k++) {
        const struct reg_name *r = &reg_names[k];
        if (strlen(r->name) != len || strncasecmp(r->name, name, len))
            continue;
        switch (r->kind) {
        case 0: *v = c->r[r->index]; return true;
        case 1: *v = c->r[r->index] & 0xffff; return true;
        case 2: *v = c->seg[r->index].sel; return true;
        default: break;
        }
        uint32_t other[] = { c->eip, c->seg[SEG_CS].base + c->eip, c->eflags, c->cr0, c->cr2, c->cr3, c->cr4 };
        *v = other[r->index];
        return true;
    }
    return false;
}

/* One term of an address: a number or $REG; *end is set past it. */
static bool parse_term(const struct cpu *c, const char *s, const char **end, uint64_t *v, char *err,
                       size_t errlen)
{
    if (*s == '$') {
        size_t len = 0;
        while (isalnum((unsigned char)s[1 + len]))
            len++;
        if (!c || !register_value(c, s + 1, len, v)) {
            snprintf(err, errlen, "unknown register '$%.*s'", (int)len, s + 1);
            return false;
        }
        *end = s + 1 + len;
        return true;
    }
    if (!isdigit((unsigned char)*s)) {
        snprintf(err, errlen, "'%s' is not an address (a number, or $REG)", s);
        return false;
    }
    char *e;
    errno = 0;
    unsigned long long n = strtoull(s, &e, s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 16 : 10);
    if (errno || e == s || isalnum((unsigned char)*e)) {
        snprintf(err, errlen, "'%s' is not an address (a number, or $REG)", s);
        return false;
    }
    *v = n;
    *end = e;
    return true;
}

bool hmp_parse_address(const struct cpu *c, const char *s, uint64_t *out, char *err, size_t errlen)
{
    uint64_t sum = 0;
    int sign = 1;
    const char *p = s;
    for (;;) {
        uint64_t v;
        if (!parse_term(c, p, &p, &v, err, errlen))
            return false;
        sum += sign > 0 ? v : -v;
        if (!*p)
            break;
        if (*p != '+' && *p != '-') {
            snprintf(err, errlen, "'%s' is not an address (junk after a term: '%s')", s, p);
            return false;
        }
        sign = *p == '+' ? 1 : -1;
        p++;
    }
    *out = sum;
    return true;
}

struct key_name {
    const char *name;
    uint8_t code;
    bool e0;
};

/* QEMU's key names (its QKeyCode spelling) and their set-1 make codes. */
static const struct key_name key_names[] = {
    { "esc", 0x01 }, { "1", 0x02 }, { "2", 0x03 }, { "3", 0x04 }, { "4", 0x05 }, { "5", 0x06 },
    { "6", 0x07 }, { "7", 0x08 }, { "8", 0x09 }, { "9", 0x0a }, { "0", 0x0b }, { "minus", 0x0c },
    { "equal", 0x0d }, { "backspace", 0x0e }, { "tab", 0x0f }, { "q", 0x10 }, { "w", 0x11 },
    { "e", 0x12 }, { "r", 0x13 }, { "t", 0x14 }, { "y", 0x15 }, { "u", 0x16 }, { "i", 0x17 },
    { "o", 0x18 }, { "p", 0x19 }, { "bracket_left", 0x1a }, { "bracket_right", 0x1b }, { "ret", 0x1c },
    { "ctrl", 0x1d }, { "a", 0x1e }, { "s", 0x1f }, { "d", 0x20 }, { "f", 0x21 }, { "g", 0x22 },
    { "h", 0x23 }, { "j", 0x24 }, { "k", 0x25 }, { "l", 0x26 }, { "semicolon", 0x27 },
    { "apostrophe", 0x28 }, { "grave_accent", 0x29 }, { "shift", 0x2a }, { "backslash", 0x2b },
    { "z", 0x2c }, { "x", 0x2d }, { "c", 0x2e }, { "v", 0x2f }, { "b", 0x30 }, { "n", 0x31 },
    { "m", 0x32 }, { "comma", 0x33 }, { "dot", 0x34 }, { "slash", 0x35 }, { "shift_r", 0x36 },
    { "kp_multiply", 0x37 }, { "asterisk", 0x37 }, { "alt", 0x38 }, { "spc", 0x39 },
    { "caps_lock", 0x3a }, { "f1", 0x3b }, { "f2", 0x3c }, { "f3", 0x3d }, { "f4", 0x3e },
    { "f5", 0x3f }, { "f6", 0x40 }, { "f7", 0x41 }, { "f8", 0x42 }, { "f9", 0x43 }, { "f10", 0x44 },
    { "num_lock", 0x45 }, { "scroll_lock", 0x46 }, { "kp_7", 0x47 }, { "kp_8", 0x48 }, { "kp_9", 0x49 },
    { "kp_subtract", 0x4a }, { "kp_4", 0x4b }, { "kp_5", 0x4c }, { "kp_6", 0x4d }, { "kp_add", 0x4e },
    { "kp_1", 0x4f }, { "kp_2", 0x50 }, { "kp_3", 0x51 }, { "kp_0", 0x52 }, { "kp_decimal", 0x53 },
    { "sysrq", 0x54 }, { "less", 0x56 }, { "f11", 0x57 }, { "f12", 0x58 },
    { "kp_enter", 0x1c, true }, { "ctrl_r", 0x1d, true }, { "kp_divide", 0x35, true },
    { "print", 0x37, true }, { "alt_r", 0x38, true }, { "pause", 0x45, true }, { "home", 0x47, true },
    { "up", 0x48, true }, { "pgup", 0x49, true }, { "left", 0x4b, true }, { "right", 0x4d, true },
    { "end", 0x4f, true }, { "down", 0x50, true }, { "pgdn", 0x51, true }, { "insert", 0x52, true },
    { "delete", 0x53, true }, { "meta_l", 0x5b, true }, { "meta_r", 0x5c, true }, { "menu", 0x5d, true },
};

/* A key: its name, or its set-1 code in hex (0x1d; 0xe01d with the prefix). */
static bool parse_key(const char *name, size_t len, struct hmp_key *k)
{
    for (size_t i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
        if (strlen(key_names[i].name) == len && !strncasecmp(key_names[i].name, name, len)) {
            *k = (struct hmp_key){ key_names[i].code, key_names[i].e0 };
            return true;
        }
    if (len > 2 && len <= 6 && name[0] == '0' && (name[1] == 'x' || name[1] == 'X')) {
        unsigned v = 0;
        for (size_t i = 2; i < len; i++) {
            if (!isxdigit((unsigned char)name[i]))
                return false;
            v = v * 16 + (isdigit((unsigned char)name[i]) ? name[i] - '0' : tolower((unsigned char)name[i]) - 'a' + 10);
        }
        if ((v >> 8) && (v >> 8) != 0xe0)
            return false;
        if (!(v & 0x7f) || (v & 0x80))
            return false;
        *k = (struct hmp_key){ v & 0x7f, (v >> 8) == 0xe0 };
        return true;
    }
    return false;
}

int hmp_parse_keys(const char *s, struct hmp_key *keys, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = s;
    if (!*s) {
        snprintf(err, errlen, "sendkey: no key given");
        return -1;
    }
    for (;;) {
        const char *dash = strchr(p, '-');
        size_t len = dash ? (size_t)(dash - p) : strlen(p);
        if (n == max) {
            snprintf(err, errlen, "sendkey %s: at most %d keys at once", s, max);
            return -1;
        }
        if (!len || !parse_key(p, len, &keys[n])) {
            snprintf(err, errlen, "sendkey %s: unknown key '%.*s'", s, (int)len, p);
            return -1;
        }
        n++;
        if (!dash)
            break;
        p = dash + 1;
    }
    return n;
}

/* ---- guest memory, without side effects ---- */

/* Physical bytes from RAM or ROM only (a device's registers are never read);
 * false with the first address that is neither in *bad. */
static bool read_phys(struct machine *m, uint64_t pa, uint8_t *buf, size_t len, uint64_t *bad)
{
    while (len) {
        if (pa >= (1ull << 32) || !m->pm->rd[pa >> 12]) {
            *bad = pa;
            return false;
        }
        size_t n = PAGE_SIZE - (pa & 0xfff);
        if (n > len)
            n = len;
        memcpy(buf, m->pm->rd[pa >> 12] + (pa & 0xfff), n);
        buf += n;
        pa += n;
        len -= n;
    }
    return true;
}

/* Linear bytes through the guest's page tables now. */
static bool read_linear(struct machine *m, uint64_t lin, uint8_t *buf, size_t len, uint64_t *bad)
{
    while (len) {
        uint32_t pa;
        if (lin >= (1ull << 32) || !mmu_debug_translate(&m->cpu, (uint32_t)lin, &pa)) {
            *bad = lin;
            return false;
        }
        size_t n = PAGE_SIZE - (lin & 0xfff);
        if (n > len)
            n = len;
        uint64_t pbad;
        if (!read_phys(m, pa, buf, n, &pbad)) {
            *bad = lin + (pbad - pa);
            return false;
        }
        buf += n;
        lin += n;
        len -= n;
    }
    return true;
}

static bool read_guest(struct machine *m, bool physical, uint64_t addr, uint8_t *buf, size_t len, uint64_t *bad)
{
    return physical ? read_phys(m, addr, buf, len, bad) : read_linear(m, addr, buf, len, bad);
}

/* ---- x / xp ---- */

static void print_char(FILE *out, uint8_t ch)
{
    switch (ch) {
    case '\\': fputs("'\\\\'", out); return;
    case '\'': fputs("'\\''", out); return;
    case '\n': fputs("'\\n'", out); return;
    case '\r': fputs("'\\r'", out); return;
    default: break;
    }
    if (ch >= 32 && ch < 127)
        fprintf(out, "'%c'", ch);
    else
        fprintf(out, "'\\x%02x'", ch);
}

static void print_address(FILE *out, bool physical, uint64_t addr)
{
    if (physical)
        fprintf(out, "%016" PRIx64 ":", addr);
    else
        fprintf(out, "%08" PRIx64 ":", addr);
}

static void print_unit(FILE *out, char format, int size, uint64_t v)
{
    int bits = size * 8;
    switch (format) {
    case 'x': fprintf(out, " 0x%0*" PRIx64, size * 2, v); break;
    case 'o': fprintf(out, " %#*" PRIo64, (bits + 2) / 3, v); break;
    case 'u': fprintf(out, " %*" PRIu64, (bits * 10 + 32) / 33, v); break;
    case 'd': {
        int64_t s = bits == 64 ? (int64_t)v : (int64_t)(v << (64 - bits)) >> (64 - bits);
        fprintf(out, " %*" PRId64, (bits * 10 + 32) / 33, s);
        break;
    }
    case 'c': fputc(' ', out); print_char(out, (uint8_t)v); break;
    }
}

/* QEMU's layout: 8 units a line for bytes, 16 bytes a line otherwise. */
static void dump_units(FILE *out, bool physical, uint64_t addr, const uint8_t *buf, const struct hmp_format *f)
{
    int size = f->size ? f->size : f->format == 'c' ? 1 : 4;
    if (f->format == 'c')
        size = 1;
    size_t len = (size_t)f->count * size, line = size == 1 ? 8 : 16;
    for (size_t off = 0; off < len; off += line) {
        print_address(out, physical, addr + off);
        for (size_t k = off; k < off + line && k < len; k += size) {
            uint64_t v = 0;
            memcpy(&v, buf + k, size);
            print_unit(out, f->format, size, v);
        }
        fputc('\n', out);
    }
}

/* The code size of CS now: 32 in a protected-mode code segment with D set. */
static bool cs_is_32bit(const struct cpu *c)
{
    return (c->cr0 & CR0_PE) && !(c->eflags & FL_VM) && (c->seg[SEG_CS].attr & SEG_ATTR_DB);
}

static void disassemble(struct machine *m, bool physical, uint64_t addr, const struct hmp_format *f, FILE *out)
{
    bool code32 = f->size == 4 ? true : f->size == 2 ? false : cs_is_32bit(&m->cpu);
    csh h;
    if (cs_open(CS_ARCH_X86, code32 ? CS_MODE_32 : CS_MODE_16, &h) != CS_ERR_OK) {
        fprintf(out, "disassembler unavailable (capstone)\n");
        return;
    }
    for (unsigned k = 0; k < f->count; k++) {
        uint8_t bytes[MAX_INSN_BYTES];
        size_t len = 0;
        uint64_t bad;
        /* An instruction may end before an unreadable page: take what there is. */
        while (len < sizeof(bytes) && read_guest(m, physical, addr + len, bytes + len, 1, &bad))
            len++;
        if (!len) {
            fprintf(out, "Cannot access memory at 0x%08" PRIx64 "\n", addr);
            break;
        }
        cs_insn *insn;
        size_t n = cs_disasm(h, bytes, len, addr, 1, &insn);
        fprintf(out, "0x%08" PRIx64 ":  ", addr);
        if (n) {
            fprintf(out, "%s%s%s\n", insn[0].mnemonic, insn[0].op_str[0] ? " " : "", insn[0].op_str);
            addr += insn[0].size;
            cs_free(insn, n);
        } else {
            fprintf(out, "(bad)\n");
            addr += 1;
        }
    }
    cs_close(&h);
}

static void memory_dump(struct machine *m, bool physical, const char *fmt, const char *arg, FILE *out)
{
    const char *cmd = physical ? "xp" : "x";
    struct hmp_format f;
    uint64_t addr, bad;
    char err[256];
    if (!hmp_parse_format(fmt, &f, err, sizeof(err)) || !hmp_parse_address(&m->cpu, arg, &addr, err, sizeof(err))) {
        fprintf(out, "%s: %s\n", cmd, err);
        return;
    }
    if (f.format == 'i') {
        disassemble(m, physical, addr, &f, out);
        return;
    }
    size_t len = (size_t)f.count * (f.format == 'c' ? 1 : f.size ? f.size : 4);
    uint8_t *buf = malloc(len);
    if (!buf) {
        fprintf(out, "%s: out of memory\n", cmd);
        return;
    }
    if (read_guest(m, physical, addr, buf, len, &bad))
        dump_units(out, physical, addr, buf, &f);
    else
        fprintf(out, "%s: cannot access memory at 0x%08" PRIx64 " (%s)\n", cmd, bad,
                physical ? "not RAM or ROM" : "not mapped, or not RAM or ROM");
    free(buf);
}

static void cmd_x(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    memory_dump(m, false, fmt, argv[0], out);
}

static void cmd_xp(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    memory_dump(m, true, fmt, argv[0], out);
}

/* ---- info ---- */

static void print_segment(FILE *out, const char *name, const struct seg *s)
{
    /* QEMU shows the descriptor's attribute bits where they sit in its high dword. */
    uint32_t flags = ((uint32_t)(s->attr & 0xff) << 8) | ((uint32_t)(s->attr & 0xf00) << 12);
    fprintf(out, "%s=%04x %08x %08x %08x\n", name, s->sel, s->base, s->limit, flags);
}

static void info_registers(struct machine *m, FILE *out)
{
    const struct cpu *c = &m->cpu;
    static const char *seg_names[SEG_COUNT] = { "ES ", "CS ", "SS ", "DS ", "FS ", "GS " };
    uint32_t f = c->eflags;
    fprintf(out, "EAX=%08x EBX=%08x ECX=%08x EDX=%08x\n", c->r[R_EAX], c->r[R_EBX], c->r[R_ECX], c->r[R_EDX]);
    fprintf(out, "ESI=%08x EDI=%08x EBP=%08x ESP=%08x\n", c->r[R_ESI], c->r[R_EDI], c->r[R_EBP], c->r[R_ESP]);
    fprintf(out, "EIP=%08x EFL=%08x [%c%c%c%c%c%c%c] CPL=%d II=%d A20=%d SMM=0 HLT=%d\n", c->eip, f,
            f & FL_OF ? 'O' : '-', f & FL_DF ? 'D' : '-', f & FL_SF ? 'S' : '-', f & FL_ZF ? 'Z' : '-',
            f & FL_AF ? 'A' : '-', f & FL_PF ? 'P' : '-', f & FL_CF ? 'C' : '-', c->cpl, c->intr_shadow, c->a20,
            c->halted);
    for (int k = 0; k < SEG_COUNT; k++)
        print_segment(out, seg_names[k], &c->seg[k]);
    print_segment(out, "LDT", &c->ldtr);
    print_segment(out, "TR ", &c->tr);
    fprintf(out, "GDT=     %08x %08x\n", c->gdtr.base, c->gdtr.limit);
    fprintf(out, "IDT=     %08x %08x\n", c->idtr.base, c->idtr.limit);
    fprintf(out, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", c->cr0, c->cr2, c->cr3, c->cr4);
    fprintf(out, "DR0=%08x DR1=%08x DR2=%08x DR3=%08x\n", c->dr[0], c->dr[1], c->dr[2], c->dr[3]);
    fprintf(out, "DR6=%08x DR7=%08x\n", c->dr[6], c->dr[7]);
    fprintf(out, "FCW=%04x FSW=%04x [ST=%d] FTW=%04x MXCSR=%08x\n", c->fpu.cw,
            (c->fpu.sw & ~0x3800) | ((c->fpu.top & 7) << 11), c->fpu.top & 7, c->fpu.tw, c->sse.mxcsr);
}

static void info_cpu(struct machine *m, FILE *out)
{
    const struct cpu *c = &m->cpu;
    fprintf(out, "* CPU #0: pc=0x%08x%s\n", c->seg[SEG_CS].base + c->eip, c->halted ? " (halted)" : "");
}

/* The mappings of 32-bit paging, page by page: each present 4 KiB or 4 MiB
 * page is passed to fn with its effective user/write bits. */
typedef void (*page_fn)(void *ctx, uint32_t lin, uint32_t phys, uint32_t size, uint32_t pde, uint32_t pte);

static void walk_pages(struct machine *m, page_fn fn, void *ctx)
{
    const struct cpu *c = &m->cpu;
    for (uint32_t i = 0; i < 1024; i++) {
        uint32_t pde;
        if (!physmem_copy_from(m->pm, (c->cr3 & PAGE_MASK) + i * 4, &pde, 4) || !(pde & 1))
            continue;
        if ((pde & 0x80) && (c->cr4 & CR4_PSE)) {
            fn(ctx, i << 22, pde & 0xffc00000u, 1u << 22, pde, pde);
            continue;
        }
        for (uint32_t j = 0; j < 1024; j++) {
            uint32_t pte;
            if (!physmem_copy_from(m->pm, (pde & PAGE_MASK) + j * 4, &pte, 4) || !(pte & 1))
                continue;
            fn(ctx, (i << 22) | (j << 12), pte & PAGE_MASK, PAGE_SIZE, pde, pte);
        }
    }
}

struct mem_range {
    FILE *out;
    bool open;
    uint32_t start, end, prot;
};

static void mem_range_flush(struct mem_range *r)
{
    if (r->open)
        fprintf(r->out, "%08x-%08" PRIx64 " %08x %c%c%c\n", r->start, (uint64_t)r->start + (r->end - r->start),
                r->end - r->start, r->prot & 4 ? 'u' : '-', 'r', r->prot & 2 ? 'w' : '-');
    r->open = false;
}

static void mem_range_page(void *ctx, uint32_t lin, uint32_t phys, uint32_t size, uint32_t pde, uint32_t pte)
{
    struct mem_range *r = ctx;
    uint32_t prot = pde & pte & 6;
    if (r->open && lin == r->end && prot == r->prot) {
        r->end = lin + size;
        return;
    }
    mem_range_flush(r);
    *r = (struct mem_range){ r->out, true, lin, lin + size, prot };
}

static void info_mem(struct machine *m, FILE *out)
{
    if (!(m->cpu.cr0 & CR0_PG)) {
        fprintf(out, "PG disabled\n");
        return;
    }
    struct mem_range r = { .out = out };
    walk_pages(m, mem_range_page, &r);
    mem_range_flush(&r);
}

static void tlb_page(void *ctx, uint32_t lin, uint32_t phys, uint32_t size, uint32_t pde, uint32_t pte)
{
    FILE *out = ctx;
    uint32_t f = size > PAGE_SIZE ? pde : pte;
    fprintf(out, "%08x: %08x %c%c%c%c%c%c%c%c\n", lin, phys, f & 0x100 ? 'G' : '-', size > PAGE_SIZE ? 'P' : '-',
            f & 0x40 ? 'D' : '-', f & 0x20 ? 'A' : '-', f & 0x10 ? 'T' : '-', f & 0x08 ? 'W' : '-',
            (pde & pte & 4) ? 'U' : '-', (pde & pte & 2) ? 'W' : '-');
}

static void info_tlb(struct machine *m, FILE *out)
{
    if (!(m->cpu.cr0 & CR0_PG)) {
        fprintf(out, "PG disabled\n");
        return;
    }
    walk_pages(m, tlb_page, out);
}

static void info_pic(struct machine *m, FILE *out)
{
    for (int chip = 0; chip < 2; chip++) {
        struct pic_regs r;
        pic_get_regs(m->pic, chip, &r);
        fprintf(out, "pic%d: irr=%02x imr=%02x isr=%02x irq_base=%02x elcr=%02x\n", chip, r.irr, r.imr, r.isr,
                r.vector_base, r.elcr);
    }
}

static void info_lapic(struct machine *m, FILE *out)
{
    if (!m->lapic) {
        fprintf(out, "info lapic: the machine has no local APIC\n");
        return;
    }
    machine_sync_clock(m);    /* the timer's current count is read at exact time */
    struct lapic *a = m->lapic;
    fprintf(out, "dumping local APIC state for CPU 0\n\n");
    fprintf(out, "APIC base=0x%08" PRIx64 " (%s)\n", lapic_get_base(a), lapic_enabled(a) ? "enabled" : "disabled");
    fprintf(out, "ID=%08x VER=%08x\n", lapic_reg_read(a, 0x20), lapic_reg_read(a, 0x30));
    static const char *lvt[] = { "LVT0", "LVT1", "LVTT", "LVTPC", "LVTERR", "LVTTHMR" };
    static const uint32_t lvt_off[] = { 0x350, 0x360, 0x320, 0x340, 0x370, 0x330 };
    for (int k = 0; k < 6; k++)
        fprintf(out, "%-7s 0x%08x\n", lvt[k], lapic_reg_read(a, lvt_off[k]));
    fprintf(out, "Timer   DCR=0x%x initial_count=%u current_count=%u\n", lapic_reg_read(a, 0x3e0),
            lapic_reg_read(a, 0x380), lapic_reg_read(a, 0x390));
    fprintf(out, "SPIV    0x%08x\n", lapic_reg_read(a, 0xf0));
    fprintf(out, "ICR     0x%08x ICR2 0x%08x\n", lapic_reg_read(a, 0x300), lapic_reg_read(a, 0x310));
    fprintf(out, "ESR     0x%08x\n", lapic_reg_read(a, 0x280));
    const char *regs[] = { "ISR", "TMR", "IRR" };
    const uint32_t base[] = { 0x100, 0x180, 0x200 };
    for (int r = 0; r < 3; r++) {
        fprintf(out, "%s    ", regs[r]);
        bool any = false;
        for (int v = 0; v < 256; v++)
            if (lapic_reg_read(a, base[r] + (v / 32) * 0x10) & (1u << (v % 32))) {
                fprintf(out, " %d", v);
                any = true;
            }
        fprintf(out, "%s\n", any ? "" : " (none)");
    }
    fprintf(out, "APR=%02x TPR=%02x DFR=%02x LDR=%02x PPR=%02x\n", lapic_reg_read(a, 0x90),
            lapic_reg_read(a, 0x80), lapic_reg_read(a, 0xe0) >> 28, lapic_reg_read(a, 0xd0) >> 24,
            lapic_reg_read(a, 0xa0));
}

static void print_bar(FILE *out, const char *name, const struct pci_bar *b)
{
    if (!b->size)
        return;
    if (b->mapped == PCI_BAR_UNMAPPED)
        fprintf(out, "      %s: %s (unmapped), size 0x%x.\n", name, b->io ? "I/O" : "32 bit memory", b->size);
    else if (b->io)
        fprintf(out, "      %s: I/O at 0x%04x [0x%04x].\n", name, b->mapped, b->mapped + b->size - 1);
    else
        fprintf(out, "      %s: 32 bit %smemory at 0x%08x [0x%08x].\n", name, b->prefetch ? "prefetchable " : "",
                b->mapped, b->mapped + b->size - 1);
}

static void info_pci(struct machine *m, FILE *out)
{
    for (int devfn = 0; devfn < 256; devfn++) {
        struct pci_dev *d = pci_find(m->pci, devfn);
        if (!d)
            continue;
        uint32_t class = d->config[0x0b] << 8 | d->config[0x0a];
        fprintf(out, "  Bus  0, device %3d, function %d:\n", devfn >> 3, devfn & 7);
        fprintf(out, "    %s (class %04x): PCI device %04x:%04x\n", d->name ? d->name : "device", class,
                pci_get16(d, 0), pci_get16(d, 2));
        if (d->config[0x3d])
            fprintf(out, "      IRQ %d, pin %c.\n", d->config[0x3c], 'A' + d->config[0x3d] - 1);
        for (int k = 0; k < PCI_BAR_COUNT; k++) {
            char name[8];
            snprintf(name, sizeof(name), "BAR%d", k);
            print_bar(out, name, &d->bar[k]);
        }
        print_bar(out, "ROM", &d->rom);
    }
}

static void print_disk(FILE *out, const char *name, struct blockdev *bd)
{
    fprintf(out, "%s: %s (%" PRIu64 " bytes%s%s)\n", name, blockdev_path(bd), blockdev_size(bd),
            blockdev_readonly(bd) ? ", read-only" : "", blockdev_snapshot(bd) ? ", snapshot" : "");
}

static void info_block(struct machine *m, FILE *out)
{
    for (int k = 0; k < 4; k++) {
        char name[16];
        if (m->disk[k]) {
            snprintf(name, sizeof(name), "ide%d-hd%d", k / 2, k % 2);
            print_disk(out, name, m->disk[k]);
        } else if (m->cdrom[k]) {
            struct atapi *cd = m->cdrom[k];
            fprintf(out, "ide%d-cd%d (cdrom): ", k / 2, k % 2);
            if (atapi_has_medium(cd))
                fprintf(out, "%s (%u sectors, read-only)\n", atapi_medium_path(cd), atapi_medium_sectors(cd));
            else
                fprintf(out, "[not inserted]\n");
            fprintf(out, "    Removable device: %s, tray %s\n", atapi_locked(cd) ? "locked" : "not locked",
                    atapi_tray_open(cd) ? "open" : "closed");
        }
    }
    for (int k = 0; k < 2; k++) {
        char name[16];
        snprintf(name, sizeof(name), "floppy%d", k);
        if (m->floppy[k])
            print_disk(out, name, m->floppy[k]);
        else if (m->cfg.floppy[k].present)
            fprintf(out, "%s: [not inserted]\n", name);
    }
}

static void info_network(struct machine *m, FILE *out)
{
    if (!m->n_net)
        fprintf(out, "no network backend\n");
    for (int k = 0; k < m->n_net; k++) {
        fprintf(out, "%s: index=%d,type=user\n", m->net[k]->id, k);
        for (int n = 0; n < m->cfg.n_nic; n++) {
            const struct nic_config *c = &m->cfg.nic[n];
            if (!c->netdev || strcmp(c->netdev, m->net[k]->id))
                continue;
            fprintf(out, " \\ %s.%d: index=%d,type=nic,model=%s,macaddr=%02x:%02x:%02x:%02x:%02x:%02x\n", c->model,
                    n, n, c->model, c->mac[0], c->mac[1], c->mac[2], c->mac[3], c->mac[4], c->mac[5]);
        }
    }
}

static void info_snapshots(struct machine *m, FILE *out)
{
    snapshot_list(m, out);
}

static void info_status(struct machine *m, FILE *out)
{
    const char *why = machine_pause_reason(m);
    if (!machine_paused(m))
        fprintf(out, "VM status: running\n");
    else if (!why[0] || !strcmp(why, "user"))
        fprintf(out, "VM status: paused\n");
    else
        fprintf(out, "VM status: paused (%s)\n", why);
}

struct info_cmd {
    const char *name;
    const char *help;
    void (*fn)(struct machine *m, FILE *out);
};

static const struct info_cmd info_cmds[] = {
    { "registers", "the CPU registers", info_registers },
    { "cpu", "the CPU and where it is", info_cpu },
    { "mem", "the active virtual memory mappings", info_mem },
    { "tlb", "every virtual page and its physical page", info_tlb },
    { "pic", "the state of the two 8259s", info_pic },
    { "lapic", "the state of the local APIC", info_lapic },
    { "pci", "the PCI devices", info_pci },
    { "block", "the disks, CD-ROM and floppy drives", info_block },
    { "snapshots", "the snapshots of the VM", info_snapshots },
    { "network", "the network backends and cards", info_network },
    { "status", "whether the VM runs", info_status },
};

#define N_INFO (sizeof(info_cmds) / sizeof(info_cmds[0]))

static void cmd_info(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    if (!argc) {
        for (size_t k = 0; k < N_INFO; k++)
            fprintf(out, "info %-10s -- show %s\n", info_cmds[k].name, info_cmds[k].help);
        return;
    }
    for (size_t k = 0; k < N_INFO; k++)
        if (!strcmp(argv[0], info_cmds[k].name)) {
            info_cmds[k].fn(m, out);
            return;
        }
    fprintf(out, "info: unknown item '%s' (info alone lists them)\n", argv[0]);
}

/* ---- run control ---- */

static void cmd_stop(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    machine_pause(m, "user");
}

static void cmd_cont(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    machine_resume(m);
}

/* -no-reboot turns every reset into the end of the run, the user's as well
 * as the guest's (QEMU does the same). */
static void cmd_system_reset(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    if (m->cfg.no_reboot) {
        m->exit_status = 0;
        m->stop = true;
        return;
    }
    m->resets++;
    machine_reset(m);
}

static void cmd_system_powerdown(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    if (!machine_power_button(m))
        fprintf(out, "system_powerdown: the machine has no ACPI (-machine acpi=off)\n");
}

static void cmd_quit(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    m->exit_status = 0;
    m->stop = true;
}

/* ---- keyboard and screen ---- */

#define MAX_KEYS 16

static void cmd_sendkey(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    struct hmp_key keys[MAX_KEYS];
    char err[256];
    int n = hmp_parse_keys(argv[0], keys, MAX_KEYS, err, sizeof(err));
    if (n < 0) {
        fprintf(out, "%s\n", err);
        return;
    }
    /* As QEMU does: every key down in order, then up in reverse order. */
    for (int k = 0; k < n; k++)
        kbc_key_event(m->kbc, keys[k].code, keys[k].e0, true);
    for (int k = n - 1; k >= 0; k--)
        kbc_key_event(m->kbc, keys[k].code, keys[k].e0, false);
}

static void cmd_screendump(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512];
    if (argc > 1 && (strcmp(argv[1], "-f") || argc < 3 || strcmp(argv[2], "png"))) {
        fprintf(out, "screendump: only PNG is written (screendump FILE [-f png])\n");
        return;
    }
    if (!m->vga) {
        fprintf(out, "screendump: there is no screen with -vga none\n");
        return;
    }
    if (!ui_screendump(m->ui, argv[0], err, sizeof(err)))
        fprintf(out, "%s\n", err);
}

/* ---- snapshots ---- */

static void cmd_savevm(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512], name[64];
    if (argc)
        snprintf(name, sizeof(name), "%s", argv[0]);
    else {
        /* QEMU names an unnamed snapshot after the time it was taken. */
        time_t now = time(NULL);
        strftime(name, sizeof(name), "vm-%Y%m%d%H%M%S", localtime(&now));
    }
    if (snapshot_save(m, argc ? argv[0] : name, err, sizeof(err)) < 0)
        fprintf(out, "%s\n", err);
}

static void cmd_loadvm(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512];
    if (snapshot_load(m, argv[0], err, sizeof(err)) < 0)
        fprintf(out, "%s\n", err);
}

static void cmd_delvm(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512];
    if (snapshot_delete(m, argv[0], err, sizeof(err)) < 0)
        fprintf(out, "%s\n", err);
}

/* ---- removable media ---- */

enum media { MEDIA_NONE, MEDIA_FLOPPY0, MEDIA_FLOPPY1, MEDIA_CDROM };

/* floppy0, floppy1, cdrom; the CD-ROM also by its `info block` name. */
static enum media parse_media(struct machine *m, const char *name)
{
    if (!strcmp(name, "floppy0") || !strcmp(name, "fda"))
        return MEDIA_FLOPPY0;
    if (!strcmp(name, "floppy1") || !strcmp(name, "fdb"))
        return MEDIA_FLOPPY1;
    if (!strcmp(name, "cdrom"))
        return MEDIA_CDROM;
    for (int k = 0; k < 4; k++) {
        char cd[16];
        snprintf(cd, sizeof(cd), "ide%d-cd%d", k / 2, k % 2);
        if (m->cdrom[k] && !strcmp(name, cd))
            return MEDIA_CDROM;
    }
    return MEDIA_NONE;
}

static int change_media(struct machine *m, enum media dev, const char *path, bool force, char *err, size_t errlen)
{
    if (dev == MEDIA_CDROM)
        return machine_change_cdrom(m, path, force, err, errlen);
    return machine_change_floppy(m, dev == MEDIA_FLOPPY0 ? 0 : 1, path, err, errlen);
}

static void cmd_change(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512];
    enum media dev = parse_media(m, argv[0]);
    if (dev == MEDIA_NONE) {
        fprintf(out, "change: unknown device '%s' (floppy0, floppy1, cdrom)\n", argv[0]);
        return;
    }
    if (argc > 2) {
        fprintf(out, "change: a format argument is not supported (the format is detected)\n");
        return;
    }
    if (change_media(m, dev, argv[1], false, err, sizeof(err)) < 0)
        fprintf(out, "change %s: %s\n", argv[0], err);
}

static void cmd_eject(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    char err[512];
    bool force = argc == 2;
    if (force && strcmp(argv[0], "-f")) {
        fprintf(out, "eject: usage: eject [-f] DEVICE\n");
        return;
    }
    const char *name = argv[argc - 1];
    enum media dev = parse_media(m, name);
    if (dev == MEDIA_NONE) {
        fprintf(out, "eject: unknown device '%s' (floppy0, floppy1, cdrom)\n", name);
        return;
    }
    if (change_media(m, dev, NULL, force, err, sizeof(err)) < 0)
        fprintf(out, "eject %s: %s\n", name, err);
}

/* ---- help and the table ---- */

static void print_command_help(FILE *out, const struct hmp_cmd *c)
{
    char usage[64];
    snprintf(usage, sizeof(usage), "%s%s%s", c->name, c->args[0] && !c->takes_format ? " " : "", c->args);
    fprintf(out, "%-28s -- %s\n", usage, c->help);
}

static void cmd_help(struct machine *m, const char *fmt, int argc, char **argv, FILE *out)
{
    for (const struct hmp_cmd *c = commands; c->name; c++)
        if (!argc || !strcmp(argv[0], c->name)) {
            print_command_help(out, c);
            if (argc)
                return;
        }
    if (argc)
        fprintf(out, "help: unknown command '%s'\n", argv[0]);
}

static const struct hmp_cmd commands[] = {
    { "help", "[COMMAND]", "list the commands, or show one", 0, 1, false, cmd_help },
    { "info", "[ITEM]", "show machine state (info alone lists the items)", 0, 1, false, cmd_info },
    { "x", "/FMT ADDR", "dump linear memory (FMT: count, x d u o c i, b h w g)", 1, 1, true, cmd_x },
    { "xp", "/FMT ADDR", "dump physical memory (FMT as for x)", 1, 1, true, cmd_xp },
    { "stop", "", "pause the VM", 0, 0, false, cmd_stop },
    { "cont", "", "resume the VM", 0, 0, false, cmd_cont },
    { "c", "", "resume the VM (cont)", 0, 0, false, cmd_cont },
    { "system_reset", "", "reset the machine", 0, 0, false, cmd_system_reset },
    { "system_powerdown", "", "press the ACPI power button", 0, 0, false, cmd_system_powerdown },
    { "quit", "", "end retrovisor (exit status 0)", 0, 0, false, cmd_quit },
    { "q", "", "end retrovisor (quit)", 0, 0, false, cmd_quit },
    { "sendkey", "KEYS", "press and release keys, e.g. ctrl-alt-delete", 1, 1, false, cmd_sendkey },
    { "screendump", "FILE [-f png]", "write the screen to FILE as a PNG", 1, 3, false, cmd_screendump },
    { "savevm", "[NAME]", "take a snapshot of the VM", 0, 1, false, cmd_savevm },
    { "loadvm", "NAME", "go back to a snapshot", 1, 1, false, cmd_loadvm },
    { "delvm", "NAME", "delete a snapshot", 1, 1, false, cmd_delvm },
    { "change", "DEVICE FILE", "put FILE in floppy0, floppy1 or cdrom", 2, 3, false, cmd_change },
    { "eject", "[-f] DEVICE", "take the medium out of floppy0, floppy1 or cdrom", 1, 2, false, cmd_eject },
    { NULL },
};

static const struct hmp_cmd *find_command(const char *name)
{
    for (const struct hmp_cmd *c = commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

/* Splits line into words in place; -1 when there are more than max. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    for (char *save, *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return -1;
        words[n++] = w;
    }
    return n;
}

void hmp_execute(struct machine *m, const char *line, FILE *out)
{
    char *copy = strdup(line);
    char *words[MAX_ARGS + 1];
    int n = copy ? split_words(copy, words, MAX_ARGS + 1) : -1;
    if (n <= 0) {
        if (n < 0)
            fprintf(out, "too many arguments\n");
        free(copy);
        return;
    }
    char *slash = strchr(words[0], '/');
    const char *fmt = "";
    if (slash) {
        *slash = 0;
        fmt = slash + 1;
    }
    const struct hmp_cmd *c = find_command(words[0]);
    if (!c || (slash && !c->takes_format)) {
        fprintf(out, "unknown command: '%s%s%s' (help lists the commands)\n", words[0], slash ? "/" : "",
                fmt);
    } else if (n - 1 < c->min_args || n - 1 > c->max_args) {
        fprintf(out, "%s: wrong number of arguments; usage: %s%s%s\n", c->name, c->name,
                c->args[0] && !c->takes_format ? " " : "", c->args);
    } else {
        c->fn(m, fmt, n - 1, words + 1, out);
    }
    free(copy);
}
