/* Host allocations that cannot fail: out of host memory, retrovisor says so and exits. */
#ifndef RV_XALLOC_H
#define RV_XALLOC_H
#include <stddef.h>
void *xcalloc(size_t n, size_t size);
void *xmalloc(size_t size);     /* size 0 gives a valid, unique pointer */
void *xrealloc(void *p, size_t size);
#endif
