/*
 * The monitor console's parsers (monitor/hmp.c, hmp_server.c): x/FMT
 * formats, addresses with registers, sendkey's key names, -monitor specs,
 * and the command line's dispatch: an unknown command or a wrong number of
 * arguments answers one error line before any command runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/cpu.h"
#include "monitor/hmp.h"
#include "monitor/machine.h"
#include "monitor/mmu.h"
#include "monitor/physmem.h"
#include "tiny_machine.h"

static void test_format_defaults_and_fields(void **state)
{
    struct hmp_format f;
    char err[256];
    assert_true(hmp_parse_format("", &f, err, sizeof(err)));
    assert_int_equal(f.count, 1);
    assert_int_equal(f.format, 'x');
    assert_int_equal(f.size, 0);             /* the command's default */
    assert_true(hmp_parse_format("10i", &f, err, sizeof(err)));
    assert_int_equal(f.count, 10);
    assert_int_equal(f.format, 'i');
    assert_true(hmp_parse_format("4xw", &f, err, sizeof(err)));
    assert_int_equal(f.count, 4);
    assert_int_equal(f.size, 4);
    /* Size and format in either order, as QEMU takes them. */
    assert_true(hmp_parse_format("3gd", &f, err, sizeof(err)));
    assert_int_equal(f.size, 8);
    assert_int_equal(f.format, 'd');
    assert_true(hmp_parse_format("hu", &f, err, sizeof(err)));
    assert_int_equal(f.size, 2);
    assert_int_equal(f.format, 'u');
    assert_true(hmp_parse_format("2cb", &f, err, sizeof(err)));
    assert_true(hmp_parse_format("o", &f, err, sizeof(err)));
    assert_int_equal(f.format, 'o');
}

static void test_format_refusals(void **state)
{
    struct hmp_format f;
    char err[256] = "";
    const char *badfmt[] = { "5z", "0x", "xx", "bw", "99999999x", "4 x", "-1x", "x4" };
    for (size_t k = 0; k < sizeof(badfmt) / sizeof(badfmt[0]); k++) {
        err[0] = 0;
        assert_false(hmp_parse_format(badfmt[k], &f, err, sizeof(err)));
        assert_non_null(strstr(err, badfmt[k]));    /* the line names the format */
    }
}

static void test_addresses(void **state)
{
    struct cpu c;
    memset(&c, 0, sizeof(c));
    c.eip = 0x1234;
    c.seg[SEG_CS].base = 0xf0000;
    c.seg[SEG_CS].sel = 0xf000;
    c.r[R_ESP] = 0x7000;
    c.r[R_EAX] = 0x12345678;
    c.cr3 = 0x1000;
    uint64_t a;
    char err[256];
    assert_true(hmp_parse_address(&c, "0x1000", &a, err, sizeof(err)));
    assert_int_equal(a, 0x1000);
    assert_true(hmp_parse_address(&c, "4096", &a, err, sizeof(err)));
    assert_int_equal(a, 4096);
    assert_true(hmp_parse_address(&c, "$eip", &a, err, sizeof(err)));
    assert_int_equal(a, 0x1234);
    assert_true(hmp_parse_address(&c, "$pc", &a, err, sizeof(err)));
    assert_int_equal(a, 0xf1234);
    assert_true(hmp_parse_address(&c, "$esp+8", &a, err, sizeof(err)));
    assert_int_equal(a, 0x7008);
    assert_true(hmp_parse_address(&c, "$EAX-0x78", &a, err, sizeof(err)));
    assert_int_equal(a, 0x12345600);
    assert_true(hmp_parse_address(&c, "$ax", &a, err, sizeof(err)));
    assert_int_equal(a, 0x5678);
    assert_true(hmp_parse_address(&c, "$cs", &a, err, sizeof(err)));
    assert_int_equal(a, 0xf000);
    assert_true(hmp_parse_address(&c, "$cr3", &a, err, sizeof(err)));
    assert_int_equal(a, 0x1000);
    const char *bad[] = { "$nosuch", "12junk", "", "+", "0x10+", "$", "eip", "0x1g", "1 2" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        assert_false(hmp_parse_address(&c, bad[k], &a, err, sizeof(err)));
}

static void test_keys(void **state)
{
    struct hmp_key k[16];
    char err[256];
    assert_int_equal(hmp_parse_keys("ctrl-alt-delete", k, 16, err, sizeof(err)), 3);
    assert_int_equal(k[0].code, 0x1d);
    assert_false(k[0].e0);
    assert_int_equal(k[1].code, 0x38);
    assert_int_equal(k[2].code, 0x53);
    assert_true(k[2].e0);
    assert_int_equal(hmp_parse_keys("shift-a", k, 16, err, sizeof(err)), 2);
    assert_int_equal(k[1].code, 0x1e);
    assert_int_equal(hmp_parse_keys("0x1d-0xe053", k, 16, err, sizeof(err)), 2);
    assert_int_equal(k[0].code, 0x1d);
    assert_int_equal(k[1].code, 0x53);
    assert_true(k[1].e0);
    assert_int_equal(hmp_parse_keys("kp_enter", k, 16, err, sizeof(err)), 1);
    assert_true(k[0].e0);
    assert_int_equal(hmp_parse_keys("ctrl-bogus", k, 16, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bogus"));
    assert_int_equal(hmp_parse_keys("", k, 16, err, sizeof(err)), -1);
    assert_int_equal(hmp_parse_keys("a-", k, 16, err, sizeof(err)), -1);
    assert_int_equal(hmp_parse_keys("0x80", k, 16, err, sizeof(err)), -1);   /* a release code is no key */
    assert_int_equal(hmp_parse_keys("0x1234", k, 16, err, sizeof(err)), -1);
    assert_int_equal(hmp_parse_keys("a-b-c", k, 2, err, sizeof(err)), -1);
}

static void test_specs(void **state)
{
    struct hmp_spec s;
    char err[512];
    assert_true(hmp_parse_spec("stdio", &s, err, sizeof(err)));
    assert_int_equal(s.kind, HMP_STDIO);
    assert_true(hmp_parse_spec("unix:/tmp/m.sock,server,nowait", &s, err, sizeof(err)));
    assert_int_equal(s.kind, HMP_UNIX);
    assert_string_equal(s.path, "/tmp/m.sock");
    assert_true(s.server);
    assert_false(s.wait);
    assert_true(hmp_parse_spec("unix:/tmp/m.sock,server=on,wait=off", &s, err, sizeof(err)));
    assert_true(s.server);
    assert_false(s.wait);
    assert_true(hmp_parse_spec("unix:/tmp/m.sock", &s, err, sizeof(err)));
    assert_false(s.server);                 /* a client of PATH */
    /* Loopback unless an address is named. */
    assert_true(hmp_parse_spec("tcp::4444,server,nowait", &s, err, sizeof(err)));
    assert_int_equal(s.kind, HMP_TCP);
    assert_string_equal(s.host, "127.0.0.1");
    assert_string_equal(s.port, "4444");
    assert_true(hmp_parse_spec("tcp:0.0.0.0:1,server", &s, err, sizeof(err)));
    assert_string_equal(s.host, "0.0.0.0");
    assert_true(s.wait);
    assert_true(hmp_parse_spec("tcp:[::1]:5555,server", &s, err, sizeof(err)));
    assert_string_equal(s.host, "::1");
    const char *bad[] = { "tcp:127.0.0.1", "tcp:h:99999", "tcp:h:", "tcp:h:12a", "unix:", "pipe:x", "",
                          "unix:/tmp/x,bogus", "stdio,server" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        err[0] = 0;
        assert_false(hmp_parse_spec(bad[k], &s, err, sizeof(err)));
        assert_true(strlen(err) > 0 && !strchr(err, '\n'));
    }
}

/* Commands whose arguments are refused never reach the machine: NULL will do. */
static char *run(const char *line)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    hmp_execute(NULL, line, out);
    fclose(out);
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_dispatch_refusals(void **state)
{
    const char *lines[] = { "bogus", "stop now", "x", "xp/4x", "quit 1", "stop/4", "help/x", "loadvm",
                            "change floppy0", "sendkey ctrl-bogus", "eject", "a b c d e f g h i j k" };
    for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
        char *out = run(lines[k]);
        assert_int_equal(count_lines(out), 1);
        free(out);
    }
    char *out = run("bogus arg");
    assert_non_null(strstr(out, "unknown command: 'bogus'"));
    free(out);
    out = run("   ");
    assert_string_equal(out, "");
    free(out);
}

static void test_help(void **state)
{
    char *out = run("help");
    const char *names[] = { "help", "info", "x/FMT", "xp/FMT", "stop", "cont", "system_reset", "system_powerdown",
                            "quit", "sendkey", "screendump", "savevm", "loadvm", "delvm", "change", "eject" };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        char want[64];
        snprintf(want, sizeof(want), "\n%s", names[k]);
        assert_true(!strncmp(out, names[k], strlen(names[k])) || strstr(out, want));
    }
    free(out);
    out = run("help sendkey");
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "sendkey KEYS"));
    free(out);
}

/* ---- on a machine: paging set up by hand, commands run as the console would ---- */

#define PGDIR 0x10000u
#define PGTAB 0x20000u

static uint32_t phys32(struct machine *m, uint32_t pa)
{
    uint32_t v = 0;
    assert_true(physmem_copy_from(m->pm, pa, &v, 4));
    return v;
}

static void put32(struct machine *m, uint32_t pa, uint32_t v)
{
    assert_true(physmem_copy_to(m->pm, pa, &v, 4));
}

/* Linear 0x5000 -> 0x300000 (4 KiB, read-only, A clear), 0x400000-0x7fffff ->
 * 0x800000 (a 4 MiB page), nothing else. */
static struct machine *paged_machine(void)
{
    struct machine *m = tiny_machine_new(false, 16, false);
    assert_non_null(m);
    put32(m, PGDIR + 0, PGTAB | 0x07);
    put32(m, PGTAB + 5 * 4, 0x300000 | 0x01);
    put32(m, PGDIR + 4, 0x800000 | 0x83);
    static const uint8_t code[] = { 0x90, 0x90, 0xf4, 0xb8, 0x78, 0x56, 0x34, 0x12 };
    assert_true(physmem_copy_to(m->pm, 0x300000, code, sizeof(code)));
    put32(m, 0x800abc, 0xdeadbeef);
    struct cpu *c = &m->cpu;
    c->cr3 = PGDIR;
    c->cr4 |= CR4_PSE;
    c->cr0 |= CR0_PE | CR0_PG;
    c->seg[SEG_CS].attr |= SEG_ATTR_DB;
    return m;
}

static void test_debug_translate_has_no_side_effects(void **state)
{
    struct machine *m = paged_machine();
    uint32_t pa;
    assert_true(mmu_debug_translate(&m->cpu, 0x5123, &pa));
    assert_int_equal(pa, 0x300123);
    assert_true(mmu_debug_translate(&m->cpu, 0x400abc, &pa));
    assert_int_equal(pa, 0x800abc);
    assert_false(mmu_debug_translate(&m->cpu, 0x6000, &pa));     /* PTE not present */
    assert_false(mmu_debug_translate(&m->cpu, 0x800000, &pa));   /* PDE not present */
    /* No accessed bit was set where the CPU's own walk would set one. */
    assert_int_equal(phys32(m, PGDIR), PGTAB | 0x07);
    assert_int_equal(phys32(m, PGTAB + 5 * 4), 0x300000 | 0x01);
    assert_int_equal(phys32(m, PGDIR + 4), 0x800000 | 0x83);
    /* A CR3 outside RAM: nothing is read from a device, the page is absent. */
    m->cpu.cr3 = 0xfec00000;
    assert_false(mmu_debug_translate(&m->cpu, 0x5000, &pa));
    m->cpu.cr0 &= ~CR0_PG;
    assert_true(mmu_debug_translate(&m->cpu, 0x12345678, &pa));
    assert_int_equal(pa, 0x12345678);
    machine_free(m);
}

static char *run_on(struct machine *m, const char *line)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    hmp_execute(m, line, out);
    fclose(out);
    return text;
}

static void expect_output(struct machine *m, const char *line, const char *want)
{
    char *out = run_on(m, line);
    assert_string_equal(out, want);
    free(out);
}

static void test_x_and_xp_on_a_machine(void **state)
{
    struct machine *m = paged_machine();
    expect_output(m, "x/2xw 0x5000", "00005000: 0xb8f49090 0x12345678\n");
    expect_output(m, "xp/2xw 0x300000", "0000000000300000: 0xb8f49090 0x12345678\n");
    expect_output(m, "x/1xw 0x400abc", "00400abc: 0xdeadbeef\n");
    expect_output(m, "x/4i 0x5000",
                  "0x00005000:  nop\n0x00005001:  nop\n0x00005002:  hlt\n0x00005003:  mov eax, 0x12345678\n");
    /* The same bytes as 16-bit code. */
    expect_output(m, "x/4ih 0x5000",
                  "0x00005000:  nop\n0x00005001:  nop\n0x00005002:  hlt\n0x00005003:  mov ax, 0x5678\n");
    expect_output(m, "info mem", "00005000-00006000 00001000 -r-\n00400000-00800000 00400000 -rw\n");
    char *out = run_on(m, "x/4xw 0x5ffc");    /* runs into the unmapped 0x6000 */
    assert_non_null(strstr(out, "cannot access memory at 0x00006000"));
    free(out);
    out = run_on(m, "xp/4xb 0x1000000");      /* past the 16 MiB of RAM */
    assert_non_null(strstr(out, "cannot access memory at 0x01000000"));
    free(out);
    /* Nothing the monitor read set an accessed bit. */
    assert_int_equal(phys32(m, PGTAB + 5 * 4), 0x300000 | 0x01);
    machine_free(m);
}

static void test_run_state_and_keys_on_a_machine(void **state)
{
    struct machine *m = tiny_machine_new(false, 16, false);
    assert_non_null(m);
    expect_output(m, "info status", "VM status: running\n");
    expect_output(m, "stop", "");
    expect_output(m, "info status", "VM status: paused\n");
    expect_output(m, "cont", "");
    expect_output(m, "info status", "VM status: running\n");
    m->cpu.r[R_EAX] = 0x1234abcd;
    m->cpu.eip = 0xfff0;
    char *out = run_on(m, "info registers");
    assert_non_null(strstr(out, "EAX=1234abcd "));
    assert_non_null(strstr(out, "EIP=0000fff0 "));
    free(out);
    assert_int_equal(machine_io_read(m, 0x64, 1) & 1, 0);
    expect_output(m, "sendkey ctrl-alt-delete", "");
    assert_int_equal(machine_io_read(m, 0x64, 1) & 1, 1);   /* a byte waits for the guest */
    out = run_on(m, "change floppy0 /nonexistent.img");
    assert_int_equal(count_lines(out), 1);
    free(out);
    expect_output(m, "quit", "");
    assert_true(m->stop);
    assert_int_equal(m->exit_status, 0);
    machine_free(m);
}

static void test_system_reset_and_no_reboot(void **state)
{
    struct machine *m = tiny_machine_new(false, 16, false);
    assert_non_null(m);
    m->cpu.eip = 0x1234;
    unsigned resets = m->resets;
    expect_output(m, "system_reset", "");
    assert_int_equal(m->resets, resets + 1);
    assert_int_equal(m->cpu.eip, 0xfff0);
    assert_false(m->stop);

    m->cfg.no_reboot = true;
    m->cpu.eip = 0x1234;
    expect_output(m, "system_reset", "");
    assert_true(m->stop);
    assert_int_equal(m->exit_status, 0);
    assert_int_equal(m->resets, resets + 1);
    assert_int_equal(m->cpu.eip, 0x1234);
    machine_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_defaults_and_fields),
        cmocka_unit_test(test_format_refusals),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_dispatch_refusals),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_debug_translate_has_no_side_effects),
        cmocka_unit_test(test_x_and_xp_on_a_machine),
        cmocka_unit_test(test_run_state_and_keys_on_a_machine),
        cmocka_unit_test(test_system_reset_and_no_reboot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
