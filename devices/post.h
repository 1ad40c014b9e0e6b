/*
 * POST diagnostic ports: port 0x80 and optionally one more (e.g. 0x190 for
 * the test386 ROM).  Writes are remembered (post_last) and, with tracing
 * on, printed to stderr as "POST xx"; reads return the last value.
 */
#ifndef RV_POST_H
#define RV_POST_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct post;

/* extra_port 0 = none. */
struct post *post_new(struct bus *b, uint16_t extra_port, bool trace);
void post_free(struct post *p);
uint8_t post_last(const struct post *p);
/* Number of writes seen since power-on (lets the machine notice progress). */
uint64_t post_count(const struct post *p);
void post_set_trace(struct post *p, bool on);

#endif
