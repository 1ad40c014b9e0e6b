/* Guest RAM: one anonymous host mapping, zero-filled, released on exit. */
#ifndef RV_GUEST_RAM_H
#define RV_GUEST_RAM_H
#include <stdint.h>
uint8_t *guest_ram_alloc(uint32_t size);   /* exits with a clear message on failure */
void guest_ram_free(uint8_t *ram, uint32_t size);
#endif
