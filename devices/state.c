/* Device state tables: saving, checking, loading and comparing records. */
#include "devices/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

void state_buf_put(struct state_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void state_buf_free(struct state_buf *b)
{
    free(b->data);
    *b = (struct state_buf){0};
}

static void put_u16(struct state_buf *b, uint16_t v) { state_buf_put(b, &v, 2); }
static void put_u32(struct state_buf *b, uint32_t v) { state_buf_put(b, &v, 4); }

static void put_name(struct state_buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u16(b, (uint16_t)n);
    state_buf_put(b, s, n);
}

static void save_timer(const void *member, struct state_buf *out)
{
    struct vtimer *t = *(struct vtimer *const *)member;
    uint8_t armed = t && vtimer_pending(t);
    int64_t when = armed ? vtimer_expiry(t) : 0;
    state_buf_put(out, &armed, 1);
    state_buf_put(out, &when, 8);
}

void state_save(const struct state_table *t, const char *name, const void *opaque, struct state_buf *out)
{
    const uint8_t *base = opaque;
    put_name(out, name ? name : t->name);
    put_u16(out, t->version);
    put_u32(out, (uint32_t)t->nfields);
    for (int i = 0; i < t->nfields; i++) {
        const struct state_field *f = &t->fields[i];
        put_name(out, f->name);
        put_u32(out, f->size);
        switch (f->kind) {
        case STATE_PLAIN:
            state_buf_put(out, base + f->offset, f->size);
            break;
        case STATE_INDIRECT:
            state_buf_put(out, *(void *const *)(base + f->offset), f->size);
            break;
        case STATE_TIMER:
            save_timer(base + f->offset, out);
            break;
        case STATE_X87:
            for (uint32_t k = 0; k < f->size / 10; k++)
                state_buf_put(out, base + f->offset + k * sizeof(long double), 10);
            break;
        }
    }
}

/* ---- reading records ---- */

static bool take(struct state_reader *r, void *dst, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    memcpy(dst, r->p, n);
    r->p += n;
    return true;
}

static bool take_name(struct state_reader *r, char *dst, size_t cap)
{
    uint16_t n;
    if (!take(r, &n, 2) || n >= cap || (size_t)(r->end - r->p) < n)
        return false;
    memcpy(dst, r->p, n);
    dst[n] = 0;
    r->p += n;
    return memchr(dst, 0, n) == NULL;
}

bool state_reader_open(struct state_reader *r, const uint8_t *rec, size_t len, char *err, size_t errlen)
{
    *r = (struct state_reader){ .p = rec, .end = rec + len };
    if (!take_name(r, r->name, sizeof(r->name)) || !take(r, &r->version, 2) || !take(r, &r->nfields, 4)) {
        snprintf(err, errlen, "a device record's header is truncated or malformed");
        return false;
    }
    return true;
}

int state_reader_next(struct state_reader *r, char *fname, size_t fname_cap, uint32_t *size,
                      const uint8_t **data)
{
    if (r->next == r->nfields)
        return 0;
    if (!take_name(r, fname, fname_cap) || !take(r, size, 4) || (size_t)(r->end - r->p) < *size)
        return -1;
    *data = r->p;
    r->p += *size;
    r->next++;
    return 1;
}

static const struct state_field *find_field(const struct state_table *t, const char *name)
{
    for (int i = 0; i < t->nfields; i++)
        if (!strcmp(t->fields[i].name, name))
            return &t->fields[i];
    return NULL;
}

int state_check(const struct state_table *t, const char *name, const uint8_t *rec, size_t len,
                char *err, size_t errlen)
{
    const char *want = name ? name : t->name;
    struct state_reader r;
    if (!state_reader_open(&r, rec, len, err, errlen))
        return -1;
    if (strcmp(r.name, want)) {
        snprintf(err, errlen, "record '%s' found where '%s' was expected", r.name, want);
        return -1;
    }
    if (r.version > t->version) {
        snprintf(err, errlen, "'%s' was saved as version %u, this build knows up to %u", want,
                 r.version, t->version);
        return -1;
    }
    bool seen[t->nfields > 0 ? t->nfields : 1];     /* a table may have no fields */
    memset(seen, 0, sizeof(seen));
    char fname[64];
    uint32_t size;
    const uint8_t *data;
    int rc;
    while ((rc = state_reader_next(&r, fname, sizeof(fname), &size, &data)) > 0) {
        const struct state_field *f = find_field(t, fname);
        if (!f) {
            snprintf(err, errlen, "'%s' has a field '%s' this build does not know", want, fname);
            return -1;
        }
        if (f->size != size) {
            snprintf(err, errlen, "'%s' field '%s' is %u bytes, this build expects %u", want, fname,
                     size, f->size);
            return -1;
        }
        if (seen[f - t->fields]) {
            snprintf(err, errlen, "'%s' field '%s' appears twice", want, fname);
            return -1;
        }
        seen[f - t->fields] = true;
    }
    if (rc < 0 || r.p != r.end) {
        snprintf(err, errlen, "'%s' is truncated or has trailing bytes", want);
        return -1;
    }
    for (int i = 0; i < t->nfields; i++)
        if (!seen[i] && t->fields[i].version <= r.version) {
            snprintf(err, errlen, "'%s' lacks field '%s'", want, t->fields[i].name);
            return -1;
        }
    return 0;
}

static void load_timer(void *member, const uint8_t *data)
{
    struct vtimer *t = *(struct vtimer **)member;
    int64_t when;
    memcpy(&when, data + 1, 8);
    if (!t)
        return;
    if (data[0])
        vtimer_mod(t, when);
    else
        vtimer_del(t);
}

void state_apply(const struct state_table *t, void *opaque, const uint8_t *rec, size_t len)
{
    uint8_t *base = opaque;
    char err[8];
    struct state_reader r;
    if (!state_reader_open(&r, rec, len, err, sizeof(err)))
        return;
    char fname[64];
    uint32_t size;
    const uint8_t *data;
    while (state_reader_next(&r, fname, sizeof(fname), &size, &data) > 0) {
        const struct state_field *f = find_field(t, fname);
        if (!f || f->size != size)
            continue;       /* state_check refused such records already */
        switch (f->kind) {
        case STATE_PLAIN:
            memcpy(base + f->offset, data, size);
            break;
        case STATE_INDIRECT:
            memcpy(*(void **)(base + f->offset), data, size);
            break;
        case STATE_TIMER:
            load_timer(base + f->offset, data);
            break;
        case STATE_X87:
            for (uint32_t k = 0; k < size / 10; k++) {
                long double v = 0;
                memcpy(&v, data + k * 10, 10);
                memcpy(base + f->offset + k * sizeof(long double), &v, sizeof(v));
            }
            break;
        }
    }
}

void state_zero(const struct state_table *t, void *opaque)
{
    uint8_t *base = opaque;
    for (int i = 0; i < t->nfields; i++) {
        const struct state_field *f = &t->fields[i];
        switch (f->kind) {
        case STATE_PLAIN:
            memset(base + f->offset, 0, f->size);
            break;
        case STATE_INDIRECT:
            memset(*(void **)(base + f->offset), 0, f->size);
            break;
        case STATE_TIMER:
            if (*(struct vtimer **)(base + f->offset))
                vtimer_del(*(struct vtimer **)(base + f->offset));
            break;
        case STATE_X87:
            memset(base + f->offset, 0, f->size / 10 * sizeof(long double));
            break;
        }
    }
}

/* ---- comparing ---- */

struct field_ref {
    char name[64];
    uint32_t size;
    const uint8_t *data;
};

static int read_all(const uint8_t *rec, size_t len, struct state_reader *r, struct field_ref **out)
{
    char err[8];
    if (!state_reader_open(r, rec, len, err, sizeof(err)))
        return -1;
    struct field_ref *v = xcalloc(r->nfields ? r->nfields : 1, sizeof(*v));
    int n = 0, rc;
    while ((rc = state_reader_next(r, v[n].name, sizeof(v[n].name), &v[n].size, &v[n].data)) > 0)
        n++;
    if (rc < 0) {
        free(v);
        return -1;
    }
    *out = v;
    return n;
}

static const struct field_ref *find_ref(const struct field_ref *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    return NULL;
}

int state_compare_records(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                          state_diff_fn report, void *ctx)
{
    struct state_reader ra, rb;
    struct field_ref *va = NULL, *vb = NULL;
    int na = read_all(a, alen, &ra, &va), nb = read_all(b, blen, &rb, &vb);
    int diffs = 0;
    if (na < 0 || nb < 0) {
        report(na < 0 ? "?" : ra.name, "", "malformed record", ctx);
        diffs = 1;
        goto out;
    }
    if (strcmp(ra.name, rb.name) || ra.version != rb.version) {
        report(ra.name, "", "records differ in name or version", ctx);
        diffs = 1;
        goto out;
    }
    for (int i = 0; i < na; i++) {
        const struct field_ref *o = find_ref(vb, nb, va[i].name);
        if (!o) {
            report(ra.name, va[i].name, "only in the first", ctx);
            diffs++;
        } else if (o->size != va[i].size) {
            report(ra.name, va[i].name, "sizes differ", ctx);
            diffs++;
        } else if (memcmp(o->data, va[i].data, o->size)) {
            report(ra.name, va[i].name, "values differ", ctx);
            diffs++;
        }
    }
    for (int i = 0; i < nb; i++)
        if (!find_ref(va, na, vb[i].name)) {
            report(ra.name, vb[i].name, "only in the second", ctx);
            diffs++;
        }
out:
    free(va);
    free(vb);
    return diffs;
}
