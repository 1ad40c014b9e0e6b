/* The Linux boot option ROM (monitor/linuxboot.asm) has the layout SeaBIOS
 * needs to list it as a boot entry: an option ROM header, whole 512-byte
 * blocks, and a $PnP header whose boot entry vector points into the ROM. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

extern const unsigned char linuxboot_rom[];
extern const unsigned int linuxboot_rom_len;

static uint16_t rd16(const unsigned char *p) { return p[0] | p[1] << 8; }

static void test_rom_header(void **state)
{
    assert_int_equal(linuxboot_rom[0], 0x55);
    assert_int_equal(linuxboot_rom[1], 0xaa);
    assert_true(linuxboot_rom_len >= 512 && linuxboot_rom_len % 512 == 0);
    assert_int_equal(linuxboot_rom[2] * 512, linuxboot_rom_len);
    /* The init entry at offset 3 is a jump. */
    assert_true(linuxboot_rom[3] == 0xe9 || linuxboot_rom[3] == 0xeb);
    /* The checksum byte is left 0 for the monitor to fill in. */
    assert_int_equal(linuxboot_rom[linuxboot_rom_len - 1], 0);
}

static void test_pnp_header(void **state)
{
    uint16_t pnp = rd16(linuxboot_rom + 0x1a);
    assert_true(pnp + 0x20 <= linuxboot_rom_len);
    const unsigned char *h = linuxboot_rom + pnp;
    assert_memory_equal(h, "$PnP", 4);
    assert_int_equal(h[5] * 16, 0x20);
    uint16_t bev = rd16(h + 0x1a);
    assert_true(bev > pnp && bev < linuxboot_rom_len - 1);
    assert_int_equal(rd16(h + 0x16), 0);      /* no BCV: SeaBIOS would take it for a disk */
    uint16_t product = rd16(h + 0x10);
    assert_true(product < linuxboot_rom_len);
    assert_non_null(memchr(linuxboot_rom + product, 0, linuxboot_rom_len - product));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rom_header),
        cmocka_unit_test(test_pnp_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
