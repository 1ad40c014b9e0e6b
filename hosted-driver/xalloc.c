#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>

static void *checked(void *p)
{
    if (!p) {
        fprintf(stderr, "retrovisor: out of host memory\n");
        exit(1);
    }
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    return checked(calloc(n, size));
}

void *xmalloc(size_t size)
{
    return checked(malloc(size ? size : 1));
}

void *xrealloc(void *p, size_t size)
{
    return checked(realloc(p, size ? size : 1));
}
