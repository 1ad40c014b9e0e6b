/*
 * Device state, declared once.  Each device (and the CPU, the clock) lists
 * the fields that make up its state in one table; the same table drives
 * saving, loading and comparing two machines field by field.  Add a field to
 * the table and save, load and compare all follow.
 *
 * What a table does not list is not state: host pointers, handles, caches
 * that post_load rebuilds (bus mappings, IRQ levels that follow from the
 * registers, the TLB).
 *
 * The saved form of one table (a "record") names every field, so a record
 * can be checked against a table before anything is copied, and two records
 * can be compared without the table (retrovisor-img compares snapshot files).
 * Integers are kept in the host's byte order: snapshots move between
 * x86-64 hosts only.
 *
 *   u16 name length, name, u16 table version, u32 field count,
 *   then per field: u16 name length, name, u32 size, the bytes.
 */
#ifndef RV_STATE_H
#define RV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vclock;

enum state_kind {
    STATE_PLAIN,        /* bytes inside the structure: integers, arrays, bools */
    STATE_INDIRECT,     /* a pointer member to `size` bytes held elsewhere (video memory) */
    STATE_TIMER,        /* a struct vtimer * member: saved as armed + expiry, re-armed on load */
    STATE_X87,          /* an array of long double: 10 bytes each (the 6 bytes of padding are not state) */
};

struct state_field {
    const char *name;
    uint32_t offset;
    uint32_t size;          /* bytes saved (for a timer: the 9-byte armed+expiry form) */
    uint16_t version;       /* the table version that added the field */
    uint8_t kind;
};

struct state_table {
    const char *name;       /* the record's name: unique within a machine */
    uint16_t version;
    const struct state_field *fields;
    int nfields;
    /* After a load: recompute what follows from the fields (bus mappings,
     * IRQ lines, host-side caches).  May be NULL. */
    void (*post_load)(void *opaque);
};

#define STATE_TIMER_SIZE 9

#define STATE_FIELD_V(type, member, ver) \
    { #member, (uint32_t)offsetof(type, member), (uint32_t)sizeof(((type *)0)->member), (ver), STATE_PLAIN }
#define STATE_FIELD(type, member) STATE_FIELD_V(type, member, 1)
/* A pointer member whose target holds `bytes` bytes of state. */
#define STATE_INDIRECT(type, member, bytes) \
    { #member, (uint32_t)offsetof(type, member), (uint32_t)(bytes), 1, STATE_INDIRECT }
#define STATE_TIMER(type, member) \
    { #member, (uint32_t)offsetof(type, member), STATE_TIMER_SIZE, 1, STATE_TIMER }
#define STATE_X87(type, member) \
    { #member, (uint32_t)offsetof(type, member), \
      (uint32_t)(sizeof(((type *)0)->member) / sizeof(long double) * 10), 1, STATE_X87 }
#define STATE_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* A growable byte buffer records are written into. */
struct state_buf {
    uint8_t *data;
    size_t len, cap;
};
void state_buf_put(struct state_buf *b, const void *p, size_t n);
void state_buf_free(struct state_buf *b);

/* Append the record of `opaque` described by `t` (record name `name`, or
 * t->name when NULL: several instances of one device get their own names). */
void state_save(const struct state_table *t, const char *name, const void *opaque, struct state_buf *out);

/* Check a record against a table without touching anything: the name, a
 * version no newer than the table's, every field known with the size the
 * table gives it, every field of that version present, no trailing bytes.
 * Returns 0, or -1 with one line in err naming the record and field. */
int state_check(const struct state_table *t, const char *name, const uint8_t *rec, size_t len,
                char *err, size_t errlen);
/* Apply a record that state_check accepted.  Timers are re-armed on their
 * clock, which must already hold the saved time.  post_load is not run here:
 * the snapshot code runs every table's post_load once all records are in,
 * in registration order, because one device's view may depend on another's
 * fields (IRQ lines, PCI mappings). */
void state_apply(const struct state_table *t, void *opaque, const uint8_t *rec, size_t len);

/* Walk a record: the record's name and version, then each field. */
struct state_reader {
    const uint8_t *p, *end;
    char name[64];
    uint16_t version;
    uint32_t nfields, next;
};
/* False (with err) when the header is malformed. */
bool state_reader_open(struct state_reader *r, const uint8_t *rec, size_t len, char *err, size_t errlen);
/* The next field: its name, size and bytes; 0 at the end, -1 when malformed. */
int state_reader_next(struct state_reader *r, char *fname, size_t fname_cap, uint32_t *size,
                      const uint8_t **data);

/* Compare two records field by field; report(field, ctx) for each field
 * whose bytes differ or that only one side has.  Returns the number reported. */
typedef void (*state_diff_fn)(const char *record, const char *field, const char *why, void *ctx);
int state_compare_records(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                          state_diff_fn report, void *ctx);

/* Reset what a table lists to zero (the fields of a device whose reset is
 * "everything zero"); timers are disarmed. */
void state_zero(const struct state_table *t, void *opaque);

#endif
