/*
 * Anonymous memory for large areas touched a little at a time (guest RAM,
 * the translation cache): aligned to 2 MiB and offered to transparent huge
 * pages.  On a virtualized host each first touch of a 4 KiB page is a fault
 * that costs microseconds, and a booting Linux guest touches tens of MiB.
 */
#ifndef RV_HUGEMAP_H
#define RV_HUGEMAP_H

#include <stddef.h>

/* mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags): MAP_FAILED
 * on failure (errno set); munmap(p, size) releases it. */
void *hugemap(size_t size, int prot, int flags);

#endif
