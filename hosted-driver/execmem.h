/* Executable memory for the translation cache: one host mapping, read/write/execute. */
#ifndef RV_EXECMEM_H
#define RV_EXECMEM_H
#include <stddef.h>
#include <stdint.h>
/* Exits with a clear message if the host refuses executable anonymous memory. */
uint8_t *execmem_alloc(size_t size);
void execmem_free(uint8_t *p, size_t size);
#endif
