/*
 * QEMU/Bochs debug console: bytes written to one port (0x402 for SeaBIOS,
 * 0xE9 for Bochs-style guests) go to a chardev; reads return 0xE9 so a
 * guest can detect the port.
 */
#ifndef RV_DEBUGCON_H
#define RV_DEBUGCON_H

#include <stdint.h>

struct bus;
struct chardev;
struct debugcon;

#define DEBUGCON_SEABIOS_PORT 0x402
#define DEBUGCON_BOCHS_PORT 0xe9

struct debugcon *debugcon_new(struct bus *b, uint16_t port, struct chardev *cd);
void debugcon_free(struct debugcon *d);

#endif
