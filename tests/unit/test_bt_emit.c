/*
 * The translator's named x86-64 emitters (bt/emit.h) against capstone: each
 * emitter writes one instruction into a buffer; capstone, in 64-bit mode,
 * must decode exactly those bytes as one instruction whose mnemonic and
 * operands (registers by name, memory base/index/scale/displacement and
 * size, immediates) are the ones the emitter's name and arguments promise.
 * Every register, and displacements on both sides of the disp8/disp32
 * boundary, are tried; the memory forms also check which displacement
 * encoding they chose (by length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <capstone/capstone.h>

#include "bt/emit.h"
#include "monitor/alu.h"

static csh cs;
static cs_insn *ci;

static const char *const r64[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };
static const char *const r32[16] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
                                     "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d" };
static const char *const r16[16] = { "ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
                                     "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w" };
static const char *const r8[8] = { "al", "cl", "dl", "bl", "ah", "ch", "dh", "bh" };   /* no REX: AH..BH */
static const char *const r8rex[8] = { "al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil" };
static const char *const alu_name[8] = { "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp" };
static const char *const shift_name[8] = { "rol", "ror", "rcl", "rcr", "shl", "shr", NULL, "sar" };
static const char *const cc_name[16] = { "o", "no", "b", "ae", "e", "ne", "be", "a",
                                         "s", "ns", "p", "np", "l", "ge", "le", "g" };
static const int32_t disps[] = { 0, 1, -1, 8, -8, 127, -128, 128, -129, 0x498, 0x12345, -0x12345 };
#define NDISPS ((int)(sizeof(disps) / sizeof(disps[0])))

/* One expected operand. */
struct opnd {
    char kind;               /* 'r' register, 'm' memory, 'i' immediate */
    const char *reg;         /* 'r' */
    int size;                /* 'm': bytes; 'i': bytes the immediate is compared in */
    int base, index, scale;  /* 'm': host registers (-1 none), scale as a factor */
    int64_t disp;
    uint64_t imm;
};

static struct opnd R(const char *name) { return (struct opnd){ .kind = 'r', .reg = name }; }
static struct opnd I(uint64_t v, int size) { return (struct opnd){ .kind = 'i', .imm = v, .size = size }; }
static struct opnd M(int size, struct mem m)
{
    return (struct opnd){ .kind = 'm', .size = size, .base = m.base, .index = m.index,
                          .scale = m.index >= 0 ? 1 << m.scale : 1,
                          .disp = m.form == MEM_NODISP ? 0 : m.disp };
}

static uint8_t buf[64];
static struct emitter em;

static struct emitter *start(void)
{
    memset(buf, 0xcc, sizeof(buf));
    em = (struct emitter){ .p = buf, .end = buf + sizeof(buf) };
    return &em;
}

static void hexdump(char *out, size_t n)
{
    out[0] = 0;
    for (size_t k = 0; k < n && k < 16; k++)
        sprintf(out + 3 * k, "%02x ", buf[k]);
}

static bool same_reg(unsigned cs_reg, const char *name)
{
    const char *got = cs_reg_name(cs, cs_reg);
    return got && name && !strcmp(got, name);
}

static bool opnd_matches(const cs_x86_op *op, const struct opnd *w)
{
    switch (w->kind) {
    case 'r':
        return op->type == X86_OP_REG && same_reg(op->reg, w->reg);
    case 'i': {
        uint64_t mask = w->size >= 8 ? ~0ull : (1ull << (8 * w->size)) - 1;
        return op->type == X86_OP_IMM && ((uint64_t)op->imm & mask) == (w->imm & mask);
    }
    case 'm':
        return op->type == X86_OP_MEM && op->size == w->size &&
               (w->base < 0 ? op->mem.base == X86_REG_INVALID : same_reg(op->mem.base, r64[w->base])) &&
               (w->index < 0 ? op->mem.index == X86_REG_INVALID : same_reg(op->mem.index, r64[w->index])) &&
               (w->index < 0 || op->mem.scale == w->scale) && op->mem.disp == w->disp;
    }
    return false;
}

/* The bytes from buf to em.p are one instruction: `mnemonic` with operands `want`. */
static void expect(const char *mnemonic, int n, const struct opnd *want)
{
    size_t len = (size_t)(em.p - buf);
    char hex[64];
    hexdump(hex, len);
    const uint8_t *code = buf;
    size_t size = len;
    uint64_t addr = 0x1000;
    bool ok = cs_disasm_iter(cs, &code, &size, &addr, ci);
    if (!ok || ci->size != len) {
        print_error("%s: capstone decoded %s (%d of %zu bytes) from %s\n", mnemonic, ok ? ci->mnemonic : "nothing",
                    ok ? ci->size : 0, len, hex);
        fail();
    }
    const cs_x86 *x = &ci->detail->x86;
    bool match = !strcmp(ci->mnemonic, mnemonic) && x->op_count == n;
    for (int k = 0; match && k < n; k++)
        match = opnd_matches(&x->operands[k], &want[k]);
    if (!match) {
        print_error("want %s (%d operands), capstone says %s %s from %s\n", mnemonic, n, ci->mnemonic, ci->op_str, hex);
        fail();
    }
}

#define EXPECT(mn, ...) do { \
        const struct opnd want_[] = { __VA_ARGS__ }; \
        expect(mn, (int)(sizeof(want_) / sizeof(want_[0])), want_); \
    } while (0)
#define EXPECT0(mn) expect(mn, 0, NULL)

/* The memory operands tried with register `reg`: every base, several
 * displacements, each form, and SIB forms with an index. */
static int nmems(void) { return 16 * NDISPS * 4 + 16 * 4 + 1; }

static struct mem mem_case(int k)
{
    if (k < 16 * NDISPS * 4) {
        int base = k % 16, d = disps[(k / 16) % NDISPS], form = k / (16 * NDISPS);
        if (form == 3)
            return mem_sib(base, -1, 0, d, MEM_DISP32_SIB);
        return form == 0 ? mem_at(base, d) : form == 1 ? mem_d32(base, d) : mem_ind(base);
    }
    k -= 16 * NDISPS * 4;
    if (k < 16 * 4) {
        int base = k % 16, scale = k / 16, index = (base + 5) % 16;
        if (index == H_RSP)
            index = H_RSI;
        return mem_sib(base, index, scale, scale * 100 - 100, scale & 1 ? MEM_DISP32 : MEM_AUTO);
    }
    return mem_sib(-1, H_RDX, 2, 0x1234, MEM_AUTO);   /* [rdx*4 + disp32], no base */
}

static void test_moves(void **state)
{
    (void)state;
    for (int r = 0; r < 16; r++) {
        for (int k = 0; k < nmems(); k++) {
            struct mem m = mem_case(k);
            emit_mov_r32_m(start(), r, m);
            EXPECT("mov", R(r32[r]), M(4, m));
            emit_mov_m_r32(start(), m, r);
            EXPECT("mov", M(4, m), R(r32[r]));
            emit_mov_r64_m(start(), r, m);
            EXPECT("mov", R(r64[r]), M(8, m));
            emit_mov_m_r64(start(), m, r);
            EXPECT("mov", M(8, m), R(r64[r]));
            emit_lea_r32_m(start(), r, m);
            EXPECT("lea", R(r32[r]), M(4, m));
            emit_lea_r64_m(start(), r, m);
            EXPECT("lea", R(r64[r]), M(8, m));
            emit_movzx_r32_m8(start(), r, m);
            EXPECT("movzx", R(r32[r]), M(1, m));
            emit_movzx_r32_m16(start(), r, m);
            EXPECT("movzx", R(r32[r]), M(2, m));
        }
        emit_mov_r32_imm32(start(), r, 0x89abcdefu);
        EXPECT("mov", R(r32[r]), I(0x89abcdefu, 4));
        for (int s = 0; s < 16; s++) {
            emit_mov_rr32(start(), r, s);
            EXPECT("mov", R(r32[r]), R(r32[s]));
            emit_mov_rr64(start(), r, s);
            EXPECT("mov", R(r64[r]), R(r64[s]));
            emit_movzx_r32_r16(start(), r, s);
            EXPECT("movzx", R(r32[r]), R(r16[s]));
            emit_movsxd_r64_r32(start(), r, s);
            EXPECT("movsxd", R(r64[r]), R(r32[s]));
            if (s < 4) {
                emit_movzx_r32_r8(start(), r, s);
                EXPECT("movzx", R(r32[r]), R(r8[s]));
            }
        }
    }
    for (int k = 0; k < nmems(); k++) {
        struct mem m = mem_case(k);
        emit_mov_m32_imm32(start(), m, 0xfffff000u);
        EXPECT("mov", M(4, m), I(0xfffff000u, 4));
    }
}

static void test_alu(void **state)
{
    (void)state;
    for (int op = ALU_ADD; op <= ALU_CMP; op++) {
        const char *mn = alu_name[op];
        for (int r = 0; r < 16; r++) {
            for (int s = 0; s < 16; s++) {
                emit_alu_rr32(start(), op, r, s);
                EXPECT(mn, R(r32[r]), R(r32[s]));
                emit_alu_rr64(start(), op, r, s);
                EXPECT(mn, R(r64[r]), R(r64[s]));
            }
            emit_alu_r32_imm32(start(), op, r, 0x12345678u);
            EXPECT(mn, R(r32[r]), I(0x12345678u, 4));
            emit_alu_r32_imm8(start(), op, r, -3);
            EXPECT(mn, R(r32[r]), I((uint32_t)-3, 4));
            emit_alu_r64_imm8(start(), op, r, 16);
            EXPECT(mn, R(r64[r]), I(16, 8));
            if (r < 8) {
                emit_alu_r8_imm8(start(), op, r, 0xef);
                EXPECT(mn, R(r8[r]), I(0xef, 1));
            }
            for (int k = 0; k < nmems(); k += 7) {
                struct mem m = mem_case(k);
                emit_alu_r32_m(start(), op, r, m);
                EXPECT(mn, R(r32[r]), M(4, m));
                emit_alu_r64_m(start(), op, r, m);
                EXPECT(mn, R(r64[r]), M(8, m));
                emit_alu_m_r32(start(), op, m, r);
                EXPECT(mn, M(4, m), R(r32[r]));
                if (r < 8) {             /* a REX prefix (R8-R15 in m) makes 4-7 SPL..DIL */
                    bool rex = (m.base >= 0 && m.base >= 8) || (m.index >= 0 && m.index >= 8);
                    emit_alu_m_r8(start(), op, m, r);
                    EXPECT(mn, M(1, m), R(rex ? r8rex[r] : r8[r]));
                }
            }
        }
        emit_alu_eax_imm32(start(), op, 0xfffff000u);
        EXPECT(mn, R("eax"), I(0xfffff000u, 4));
        emit_alu_al_imm8(start(), op, 0x7f);
        EXPECT(mn, R("al"), I(0x7f, 1));
        for (int k = 0; k < nmems(); k++) {
            struct mem m = mem_case(k);
            emit_alu_m32_imm32(start(), op, m, 0xfffff7ffu);
            EXPECT(mn, M(4, m), I(0xfffff7ffu, 4));
            emit_alu_m32_imm8(start(), op, m, -1);
            EXPECT(mn, M(4, m), I(0xffffffffu, 4));
            emit_alu_m64_imm8(start(), op, m, 0);
            EXPECT(mn, M(8, m), I(0, 8));
            emit_alu_m64_imm32(start(), op, m, (uint32_t)-5);
            EXPECT(mn, M(8, m), I((uint64_t)-5, 8));
            emit_alu_m8_imm8(start(), op, m, 0);
            EXPECT(mn, M(1, m), I(0, 1));
        }
    }
}

static void test_test_not_neg_imul(void **state)
{
    (void)state;
    for (int r = 0; r < 16; r++) {
        for (int s = 0; s < 16; s++) {
            emit_test_rr32(start(), r, s);
            EXPECT("test", R(r32[r]), R(r32[s]));
            emit_test_rr64(start(), r, s);
            EXPECT("test", R(r64[r]), R(r64[s]));
            emit_imul_r32_r32_imm8(start(), r, s, -8);
            EXPECT("imul", R(r32[r]), R(r32[s]), I((uint32_t)-8, 4));
        }
        emit_test_r32_imm32(start(), r, 0x400);
        EXPECT("test", R(r32[r]), I(0x400, 4));
        emit_not_r32(start(), r);
        EXPECT("not", R(r32[r]));
        emit_neg_r32(start(), r);
        EXPECT("neg", R(r32[r]));
    }
    for (int k = 0; k < nmems(); k++) {
        struct mem m = mem_case(k);
        emit_test_m32_imm32(start(), m, 0xfff);
        EXPECT("test", M(4, m), I(0xfff, 4));
    }
}

static void test_shifts_and_bits(void **state)
{
    (void)state;
    for (int kind = SH_ROL; kind <= SH_SAR; kind++) {
        if (!shift_name[kind])
            continue;
        for (int r = 0; r < 16; r++) {
            emit_shift_r32_imm8(start(), kind, r, 9);
            EXPECT(shift_name[kind], R(r32[r]), I(9, 1));
            emit_shift_r16_imm8(start(), kind, r, 8);
            EXPECT(shift_name[kind], R(r16[r]), I(8, 1));
            if (r < 8) {
                emit_shift_r8_imm8(start(), kind, r, 3);
                EXPECT(shift_name[kind], R(r8[r]), I(3, 1));
            }
        }
    }
    for (int r = 0; r < 16; r++) {
        emit_bt_r32_imm8(start(), r, 11);
        EXPECT("bt", R(r32[r]), I(11, 1));
    }
    for (int k = 0; k < nmems(); k++) {
        struct mem m = mem_case(k);
        emit_bt_m32_imm8(start(), m, 0);
        EXPECT("bt", M(4, m), I(0, 1));
        emit_cmpxchg8b_m(start(), m);
        EXPECT("cmpxchg8b", M(8, m));
        emit_jmp_m64(start(), m);
        EXPECT("jmp", M(8, m));
    }
}

static void test_bmi2(void **state)
{
    (void)state;
    for (int d = 0; d < 16; d++)
        for (int s = 0; s < 16; s++) {
            emit_rorx_r32(start(), d, s, 20);
            EXPECT("rorx", R(r32[d]), R(r32[s]), I(20, 1));
            for (int c = 0; c < 16; c += 3) {
                emit_shrx(start(), 0, d, s, c);
                EXPECT("shrx", R(r32[d]), R(r32[s]), R(r32[c]));
                emit_shrx(start(), 1, d, s, c);
                EXPECT("shrx", R(r64[d]), R(r64[s]), R(r64[c]));
                emit_shlx_r32(start(), d, s, c);
                EXPECT("shlx", R(r32[d]), R(r32[s]), R(r32[c]));
            }
        }
}

static void test_flags_and_conditions(void **state)
{
    (void)state;
    emit_pushfq(start());
    EXPECT0("pushfq");
    emit_popfq(start());
    EXPECT0("popfq");
    emit_lahf(start());
    EXPECT0("lahf");
    emit_sahf(start());
    EXPECT0("sahf");
    emit_cdq(start());
    EXPECT0("cdq");
    char mn[16];
    for (int cc = 0; cc < 16; cc++) {
        for (int r = 0; r < 8; r++) {
            emit_setcc_r8(start(), cc, r);
            snprintf(mn, sizeof(mn), "set%s", cc_name[cc]);
            EXPECT(mn, R(r8[r]));
        }
        for (int d = 0; d < 16; d++)
            for (int s = 0; s < 16; s++) {
                emit_cmovcc_rr32(start(), cc, d, s);
                snprintf(mn, sizeof(mn), "cmov%s", cc_name[cc]);
                EXPECT(mn, R(r32[d]), R(r32[s]));
            }
        uint8_t *field = emit_jcc_rel32(start(), cc);
        assert_ptr_equal(field, buf + 2);
        snprintf(mn, sizeof(mn), "j%s", cc_name[cc]);
        EXPECT(mn, I(0x1000 + 6, 8));
    }
}

static void test_control_and_strings(void **state)
{
    (void)state;
    emit_push_imm32(start(), 0xfffffff0u);
    EXPECT("push", I((uint64_t)(int64_t)(int32_t)0xfffffff0u, 8));
    emit_ret_imm16(start(), 8);
    EXPECT("ret", I(8, 2));
    emit_jrcxz(start(), 5);
    EXPECT("jrcxz", I(0x1000 + 2 + 5, 8));
    for (int r = 0; r < 16; r++) {
        emit_bswap_r32(start(), r);
        EXPECT("bswap", R(r32[r]));
    }
    static const struct { uint8_t op; int size; const char *mn; } str[] = {
        { 0xa4, 1, "movsb" }, { 0xa5, 2, "movsw" }, { 0xa5, 4, "movsd" },
        { 0xaa, 1, "stosb" }, { 0xab, 2, "stosw" }, { 0xab, 4, "stosd" },
    };
    for (size_t k = 0; k < sizeof(str) / sizeof(str[0]); k++) {
        emit_rep_string_op(start(), str[k].size, str[k].op);
        char mn[24];
        snprintf(mn, sizeof(mn), "rep %s", str[k].mn);
        assert_true(cs_disasm_iter(cs, &(const uint8_t *){ buf }, &(size_t){ (size_t)(em.p - buf) },
                                   &(uint64_t){ 0 }, ci));
        assert_int_equal(ci->size, em.p - buf);
        assert_string_equal(ci->mnemonic, mn);
    }
}

/* MEM_AUTO takes disp8 exactly when the displacement fits; MEM_DISP32 never
 * does; MEM_NODISP has none (but RBP/R13 need a zero disp8). */
static void test_displacement_forms(void **state)
{
    (void)state;
    for (int base = 0; base < 16; base++) {
        emit_mov_r32_m(start(), H_RAX, mem_d32(base, 0));
        long d32 = em.p - buf;
        for (int k = 0; k < NDISPS; k++) {
            emit_mov_r32_m(start(), H_RAX, mem_at(base, disps[k]));
            bool fits = disps[k] >= -128 && disps[k] <= 127;
            assert_int_equal(em.p - buf, fits ? d32 - 3 : d32);
        }
        emit_mov_r32_m(start(), H_RAX, mem_ind(base));
        assert_int_equal(em.p - buf, (base & 7) == 5 ? d32 - 3 : d32 - 4);
        emit_mov_r32_m(start(), H_RAX, mem_sib(base, -1, 0, 0, MEM_DISP32_SIB));
        assert_int_equal(em.p - buf, (base & 7) == 4 ? d32 : d32 + 1);   /* a SIB byte even without index */
    }
}

static int setup(void **state)
{
    (void)state;
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
        return -1;
    cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
    ci = cs_malloc(cs);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cs_free(ci, 1);
    cs_close(&cs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moves),
        cmocka_unit_test(test_alu),
        cmocka_unit_test(test_test_not_neg_imul),
        cmocka_unit_test(test_shifts_and_bits),
        cmocka_unit_test(test_bmi2),
        cmocka_unit_test(test_flags_and_conditions),
        cmocka_unit_test(test_control_and_strings),
        cmocka_unit_test(test_displacement_forms),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
