#include "hosted-driver/guest_ram.h"

#include "hosted-driver/hugemap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

uint8_t *guest_ram_alloc(uint32_t size)
{
    void *p = hugemap(size, PROT_READ | PROT_WRITE, MAP_NORESERVE);
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
