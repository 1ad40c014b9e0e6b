/*
 * Segmentation: descriptor tables, segment register loads with the
 * protected-mode checks, and the limit/type checks of each access.
 */
#include "monitor/interp.h"

uint32_t sel_error(struct cpu *c, uint16_t sel)
{
    return (sel & 0xfffc) | (c->exc_ext ? 1 : 0);
}

static bool table_of(struct cpu *c, uint16_t sel, uint32_t *base, uint32_t *limit)
{
    if (sel & 4) {
        if (!(c->ldtr.attr & SEG_ATTR_P) || (c->ldtr.sel & 0xfffc) == 0)
            return false;
        *base = c->ldtr.base;
        *limit = c->ldtr.limit;
    } else {
        *base = c->gdtr.base;
        *limit = c->gdtr.limit;
    }
    return true;
}

bool desc_read(struct cpu *c, uint16_t sel, struct desc *d)
{
    uint32_t base, limit;
    if (!table_of(c, sel, &base, &limit))
        return false;
    uint32_t off = sel & 0xfff8;
    if (off + 7 > limit)
        return false;
    d->lo = sys_read(c, base + off, 4);
    d->hi = sys_read(c, base + off + 4, 4);
    return true;
}

void desc_write_hi(struct cpu *c, uint16_t sel, uint32_t hi)
{
    uint32_t base, limit;
    if (table_of(c, sel, &base, &limit))
        sys_write(c, base + (sel & 0xfff8) + 4, hi, 4);
}

void desc_set_accessed(struct cpu *c, uint16_t sel, struct desc *d)
{
    if (!(d->hi & 0x100)) {
        d->hi |= 0x100;
        desc_write_hi(c, sel, d->hi);
    }
}

void seg_from_desc(struct seg *s, uint16_t sel, struct desc d)
{
    s->sel = sel;
    s->base = desc_base(d);
    s->limit = desc_limit(d);
    s->attr = desc_attr(d);
}

void seg_load_real(struct cpu *c, int sr, uint16_t sel)
{
    struct seg *s = &c->seg[sr];
    s->sel = sel;
    s->base = (uint32_t)sel << 4;
    if (cpu_v86(c)) {
        /* v86 segments are always 64 KiB read/write data at DPL 3 (code for CS). */
        s->limit = 0xffff;
        s->attr = SEG_ATTR_P | SEG_ATTR_S | (3 << 5) | (sr == SEG_CS ? 0xb : 0x3);
    } else if (!(s->attr & SEG_ATTR_P)) {
        /* A segment nulled in protected mode becomes usable again in real mode. */
        s->attr |= SEG_ATTR_P | SEG_ATTR_S | 0x3;
    }
}

static _Noreturn void seg_fault(struct cpu *c, int vec, uint16_t sel)
{
    cpu_raise(c, vec, sel_error(c, sel));
}

void seg_load(struct cpu *c, int sr, uint16_t sel)
{
    if (!cpu_protected(c) || cpu_v86(c)) {
        seg_load_real(c, sr, sel);
        return;
    }
    struct desc d;
    if ((sel & 0xfffc) == 0) {
        if (sr == SEG_SS)
            cpu_raise(c, EXC_GP, 0);
        /* A null selector loads fine; using it faults. */
        c->seg[sr].sel = sel;
        c->seg[sr].base = 0;
        c->seg[sr].limit = 0;
        c->seg[sr].attr = 0;
        return;
    }
    if (!desc_read(c, sel, &d))
        seg_fault(c, EXC_GP, sel);
    int rpl = sel & 3, dpl = desc_dpl(d);
    if (sr == SEG_SS) {
        bool writable_data = desc_is_data(d) && (desc_type(d) & 2);
        if (rpl != c->cpl || dpl != c->cpl || !writable_data)
            seg_fault(c, EXC_GP, sel);
        if (!desc_present(d))
            seg_fault(c, EXC_SS, sel);
    } else {
        bool readable = desc_is_data(d) || (desc_is_code(d) && (desc_type(d) & 2));
        if (!readable)
            seg_fault(c, EXC_GP, sel);
        bool conforming_code = desc_is_code(d) && (desc_type(d) & 4);
        if (!conforming_code && (rpl > dpl || c->cpl > dpl))
            seg_fault(c, EXC_GP, sel);
        if (!desc_present(d))
            seg_fault(c, EXC_NP, sel);
    }
    desc_set_accessed(c, sel, &d);
    seg_from_desc(&c->seg[sr], sel, d);
}

void seg_invalidate_for_cpl(struct cpu *c)
{
    static const int data_segs[] = { SEG_ES, SEG_DS, SEG_FS, SEG_GS };
    for (int k = 0; k < 4; k++) {
        struct seg *s = &c->seg[data_segs[k]];
        bool conforming_code = (s->attr & 0x18) == 0x18 && (s->attr & 4);
        if (!conforming_code && SEG_ATTR_DPL(s->attr) < c->cpl) {
            s->sel = 0;
            s->attr = 0;
            s->base = 0;
            s->limit = 0;
        }
    }
}

uint32_t seg_check_slow(struct cpu *c, int sr, uint32_t off, int size, bool write)
{
    const struct seg *s = &c->seg[sr];
    int vec = sr == SEG_SS ? EXC_SS : EXC_GP;
    uint32_t last = off + (uint32_t)(size - 1);
    bool real = !cpu_protected(c) || cpu_v86(c);
    if (!real) {
        if (!(s->attr & SEG_ATTR_P))
            cpu_raise(c, vec, 0);
        bool code = (s->attr & 0x18) == 0x18;
        if (code ? (write || !(s->attr & 2)) : (write && !(s->attr & 2)))
            cpu_raise(c, EXC_GP, 0);
    }
    bool expand_down = (s->attr & 0x1c) == 0x14;
    if (expand_down) {
        uint32_t upper = (s->attr & SEG_ATTR_DB) ? 0xffffffffu : 0xffffu;
        if (off <= s->limit || last > upper || last < off)
            cpu_raise(c, vec, 0);
    } else if (off > s->limit || last > s->limit || last < off) {
        cpu_raise(c, vec, 0);
    }
    return s->base + off;
}

/* ---- stack ---- */

void push(struct cpu *c, uint32_t v, int size)
{
    uint32_t sp = (c->r[R_ESP] - size) & sp_mask(c);
    vm_write(c, SEG_SS, sp, size, v);
    set_sp(c, sp);
}

uint32_t pop(struct cpu *c, int size)
{
    uint32_t sp = c->r[R_ESP] & sp_mask(c);
    uint32_t v = vm_read(c, SEG_SS, sp, size);
    set_sp(c, sp + size);
    return v;
}

uint32_t stack_peek(struct cpu *c, uint32_t offset, int size)
{
    uint32_t sp = (c->r[R_ESP] + offset) & sp_mask(c);
    return vm_read(c, SEG_SS, sp, size);
}
