/*
 * QEMU's isa-debug-exit: a write of value v to [iobase, iobase+iosize)
 * asks the machine to exit with status (v << 1) | 1, so a guest test can
 * report pass/fail (the status is always odd, never 0).  QEMU's defaults
 * are iobase 0x501, iosize 2; test suites commonly use 0xf4, size 4.
 */
#ifndef RV_DEBUGEXIT_H
#define RV_DEBUGEXIT_H

#include <stdint.h>

struct bus;
struct debugexit;

#define DEBUGEXIT_DEFAULT_BASE 0xf4
#define DEBUGEXIT_DEFAULT_SIZE 4

/* iosize DEBUGEXIT_DEFAULT_SIZE (4). */
struct debugexit *debugexit_new(struct bus *b, uint16_t iobase);
struct debugexit *debugexit_new_sized(struct bus *b, uint16_t iobase, uint16_t iosize);
void debugexit_free(struct debugexit *d);

#endif
