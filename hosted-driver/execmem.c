#include "hosted-driver/execmem.h"

#include "hosted-driver/hugemap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

uint8_t *execmem_alloc(size_t size)
{
    void *p = hugemap(size, PROT_READ | PROT_WRITE | PROT_EXEC, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "retrovisor: cannot map %zu MiB of executable memory for the translation cache: %s "
                        "(use -accel interp)\n", size >> 20, strerror(errno));
        exit(1);
    }
    return p;
}

void execmem_free(uint8_t *p, size_t size)
{
    if (p)
        munmap(p, size);
}
