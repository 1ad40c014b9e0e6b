#include "hosted-driver/guest_ram.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

uint8_t *guest_ram_alloc(uint32_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "retrovisor: cannot allocate %u MiB of guest RAM: %s\n", size >> 20, strerror(errno));
        exit(1);
    }
    return p;
}

void guest_ram_free(uint8_t *ram, uint32_t size)
{
    if (ram)
        munmap(ram, size);
}
