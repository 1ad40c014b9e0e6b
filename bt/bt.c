/*
 * Translation cache: block building (decoding, the block plan, emitting
 * its code), lookup, chaining and the run loop.  Creation is in cache.c,
 * invalidation in invalidate.c (bt/bt_internal.h).  See bt/bt.h for the
 * design.
 */
#include "bt/bt_internal.h"

/* ---- execution of one threaded instruction (called from generated code) ---- */

/* Returns true when the block may go on with its next instruction. */
static bool bt_step(struct cpu *c, const struct insn *in)
{
    c->eip_start = c->eip;
    c->esp_start = c->r[R_ESP];
    c->intr_shadow = false;
    uint32_t last = c->eip + in->len - 1;
    if (last > c->seg[SEG_CS].limit || last < c->eip)
        cpu_raise(c, EXC_GP, 0);
    uint32_t next = cpu_code32(c) ? c->eip + in->len : ((c->eip + in->len) & 0xffff);
    c->eip = next;
    interp_exec(c, in);
    c->budget--;
    return c->eip == next && !c->halted && c->budget > 0 && !c->bt_exit && !(c->eflags & FL_TF);
}

/* bt_step for a threaded instruction, and for a native one's slow path, counted under -d bt. */
static bool bt_step_threaded(struct cpu *c, const struct insn *in)
{
    if (c->trace & TRACE_BT)
        c->m->bt->threaded_by_op[in->op]++;
    return bt_step(c, in);
}

/* A plain threaded instruction after which chained code may not go on when
 * an interrupt became deliverable (STI, POPF): the run loop delivers it. */
static bool bt_step_guard_interrupt(struct cpu *c, const struct insn *in)
{
    return bt_step_threaded(c, in) && !((c->eflags & FL_IF) && machine_intr_pending(c->m));
}

static uint8_t segments_flat(const struct cpu *c);

/* A DS or ES load in code translated for flat segments: it goes on only if they still are. */
static bool bt_step_guard_flat(struct cpu *c, const struct insn *in)
{
    return bt_step_threaded(c, in) && segments_flat(c);
}

/* An FS or GS load: it goes on unless the segment stopped being 4 GiB (code
 * after it may have been translated for one: see FLAT_FS). */
static bool bt_step_guard_fs_gs(struct cpu *c, const struct insn *in)
{
    uint8_t before = segments_flat(c);
    return bt_step_threaded(c, in) && !(before & ~segments_flat(c) & (FLAT_FS | FLAT_GS));
}

static bool bt_step_slow(struct cpu *c, const struct insn *in)
{
    if (c->trace & TRACE_BT)
        c->m->bt->slow_by_op[in->op]++;
    return bt_step(c, in);
}

/* ---- translation ---- */

/* Instructions after which decoding stops: control transfers and anything
 * that may change how the following bytes decode or map.  The opcode table
 * holds the answer (OPA_ENDS, decode.h). */
static bool ends_block(const struct insn *in)
{
    return insn_ends_block(in);
}

/* The linear address of the page after the one that holds a flat block's
 * first byte (CS base 0: EIPs are linear): a two-page block's second page. */
static uint32_t second_page(uint32_t eip)
{
    return (eip & PAGE_MASK) + PAGE_SIZE;
}

/* JMP rel8 or rel32. */
static bool direct_jmp(const struct insn *in)
{
    return in->op == 0xe9 || in->op == 0xeb;
}

/* A direct JMP inside a block was followed (one that was not ends it). */
static bool jump_followed(const struct block *b, int k)
{
    return direct_jmp(&b->insns[k]) && k + 1 < b->ninsn;
}

/* The EIP of the instruction after instruction k (at `eip`) of the block. */
static uint32_t eip_after(const struct block *b, int k, uint32_t eip)
{
    const struct insn *in = &b->insns[k];
    if (jump_followed(b, k))
        return native_branch_target(in, eip);
    return b->code32 ? eip + in->len : ((eip + in->len) & 0xffff);
}

/* Widen [*lo, *hi] to hold [a, b]. */
static void cover(int64_t *lo, int64_t *hi, int64_t a, int64_t b)
{
    *lo = a < *lo ? a : *lo;
    *hi = b > *hi ? b : *hi;
}

/* Base-register page caching (see operands.c): the [reg + disp] operands met
 * before the register is written or anything is threaded, checked at entry
 * for each register that has at least two.  ESP stays a base across PUSH,
 * POP, CALL, RET and ADD/SUB ESP, imm, whose changes are known: its range,
 * relative to ESP at entry, also holds its stack slots and every ESP value
 * an operand adds its displacement to, so that none of those sums wraps.
 * Records the ranges in b->covered; returns the registers checked and
 * marks the cached operands in cached[]. */
static unsigned plan_base_cache(struct block *b, unsigned *cached)
{
    int candidate[MAX_BLOCK_INSNS];            /* the base register each instruction's operand may use */
    bool stack_candidate[MAX_BLOCK_INSNS];
    int64_t lo[8], hi[8];                       /* (64 bits: disp + ESP's change cannot overflow) */
    bool write[8] = { false };
    int uses[8] = { 0 };
    unsigned written = 0;
    for (int r = 0; r < 8; r++) {
        lo[r] = INT64_MAX;
        hi[r] = INT64_MIN;
    }
    int64_t esp = 0;                           /* ESP - ESP at entry, while esp_known */
    bool esp_known = true;
    int n = 0;
    for (; n < b->ninsn && native_supported(&b->insns[n]); n++) {
        const struct insn *in = &b->insns[n];
        int32_t d;
        bool w;
        int r = native_base_operand(in, &d, &w);
        bool known = r >= 0 && (r == R_ESP ? esp_known : !(written & (1u << r)));
        candidate[n] = known ? r : -1;
        if (candidate[n] >= 0) {
            int64_t at = r == R_ESP ? esp : 0;
            cover(&lo[r], &hi[r], at + d, at + d + 3);   /* native operands are at most 4 bytes */
            if (r == R_ESP)
                cover(&lo[r], &hi[r], at, at);
            write[r] |= w;
            uses[r]++;
        }
        struct stack_effect fx;
        bool tracked = esp_known && native_stack_effect(in, &fx);
        stack_candidate[n] = tracked && fx.access;
        if (stack_candidate[n]) {
            /* PUSH addresses its slot as the new ESP, POP and RET as the old one */
            cover(&lo[R_ESP], &hi[R_ESP], esp + fx.off, esp + fx.off + 3);
            write[R_ESP] |= fx.write;
            uses[R_ESP]++;
        }
        if (tracked)
            esp += fx.delta;
        esp_known = tracked && esp > -(int64_t)PAGE_SIZE && esp < (int64_t)PAGE_SIZE;
        written |= native_regs_written(in);
    }
    unsigned checked = 0;
    for (int r = 0; r < 8; r++) {
        if (uses[r] < 2 || hi[r] - lo[r] >= PAGE_SIZE / 2 || lo[r] < INT32_MIN || hi[r] > INT32_MAX ||
            (b->uncached & (1u << r)))
            continue;
        b->covered[b->ncovered++] = (struct covered_range){ .reg = r, .write = write[r], .lo = lo[r], .hi = hi[r] };
        checked |= 1u << r;
    }
    for (int k = 0; k < n; k++) {
        if (candidate[k] >= 0 && (checked & (1u << candidate[k])))
            cached[k] |= CACHED_RM;
        if (stack_candidate[k] && (checked & (1u << R_ESP)))
            cached[k] |= CACHED_STACK;
    }
    return checked;
}

/*
 * A flat block's entries (see native.c and flags.c): bt_run's (entry) loads the guest
 * registers; patched jumps (entry_chained) bring them loaded, with the
 * arithmetic flags in AX.  Where they go from there:
 * - a block that writes them all before anything could observe them
 *   leaves them in AX, kept in R11 across its entry checks for their ways out;
 * - a block that reads them (`reads`) puts them back into the
 *   host's EFLAGS with SAHF, after its entry checks, and its code starts
 *   with them deferred there;
 * - any other (one whose first memory operand could fault before its
 *   first flag writer) takes them into R11, as a capture would leave them
 *   (bt_run's way in loads R11 from EFLAGS), and its code starts with them
 *   captured, not yet merged: only its ways out merge them.
 * A jump to the block's own start may skip the entry checks when the block
 * writes none of their registers (loop_top), with the flags in AX, or in
 * R11 for the last kind.
 */
static void emit_flat_entry(struct block_emit *be, struct block *b, unsigned checked, bool reads)
{
    struct emitter *e = be->e;
    native_emit_load_all(be);
    bool entry_checks = checked || b->two_pages;
    bool in_ax = !be->live_in || reads;        /* the code after the entry checks takes AX */
    uint8_t *skip = NULL;
    if (in_ax && (entry_checks || reads)) {
        native_emit_entry_flags(be, ENTRY_FLAGS_FROM_EFLAGS);
    } else if (!in_ax) {
        native_emit_entry_flags(be, ENTRY_FLAGS_R11_FROM_EFLAGS);
        skip = emit_jmp32(e);
    }
    b->entry_chained = e->p;
    if (!in_ax)
        native_emit_entry_flags(be, ENTRY_FLAGS_R11_FROM_AX);
    if (skip)
        emit_patch_rel32(skip, e->p);
    if (in_ax && entry_checks) {
        native_emit_entry_flags(be, ENTRY_FLAGS_KEEP);
        be->entry_flags_r11 = true;            /* where the entry checks' ways out find them */
    }
    if (b->two_pages)
        native_emit_page2_check(be, second_page(b->eip), b->phys2);
    for (int k = 0; k < b->ncovered; k++) {
        const struct covered_range *r = &b->covered[k];
        native_emit_base_check(be, r->reg, r->lo, r->hi, r->write);
    }
    if (reads && entry_checks)
        native_emit_entry_flags(be, ENTRY_FLAGS_FROM_R11);
    unsigned written = 0;
    for (int k = 0; k < b->ninsn; k++)
        written |= native_supported(&b->insns[k]) ? native_regs_written(&b->insns[k]) : NATIVE_ALL_REGS;
    be->loop_top = (checked & written) ? NULL : e->p;
    be->loop_rdx = be->rdx_addend;             /* the last entry check leaves its page's addend in RDX */
    if (reads)
        native_emit_entry_flags(be, ENTRY_FLAGS_TO_HOST);
    if (!in_ax)
        native_emit_entry_flags(be, ENTRY_FLAGS_PENDING);
}

/* Instruction k is a shift of a register by an immediate whose OF nothing
 * but a later instruction's stub could observe before an instruction
 * overwrites it (see bodies_alu.c, emit_shift). */
static bool of_observed_by_stubs_only(const struct block *b, int k)
{
    const struct insn *in = &b->insns[k];
    if ((in->op != 0xc0 && in->op != 0xc1) || in->mod != 3 || !b->code32)
        return false;
    for (int j = k + 1; j < b->ninsn; j++) {
        if (jump_followed(b, j))
            continue;
        if (ends_block(&b->insns[j]))
            return false;
        int r = native_of_blocker(&b->insns[j], in->rm);
        if (r)
            return r > 0;
    }
    return false;
}

/* The step a threaded instruction calls: with its guard, where code after it relies on one. */
static bool (*threaded_step(const struct insn *in, bool flat))(struct cpu *, const struct insn *)
{
    if (!native_threaded_is_plain(in))
        return bt_step_threaded;
    switch (native_threaded_guard(in)) {
    case GUARD_INTERRUPT:
        return bt_step_guard_interrupt;
    case GUARD_FLAT:
        return flat ? bt_step_guard_flat : bt_step_threaded;
    case GUARD_FS_GS:
        return flat ? bt_step_guard_fs_gs : bt_step_threaded;
    case GUARD_NONE:
        break;
    }
    return bt_step_threaded;
}

/* What a block's translation decides before it emits anything, per instruction. */
struct block_plan {
    unsigned cached[MAX_BLOCK_INSNS];      /* CACHED_RM, CACHED_STACK (plan_base_cache) */
    bool dead[MAX_BLOCK_INSNS];            /* its flags never reach EFLAGS */
    uint32_t live_after[MAX_BLOCK_INSNS];  /* flags possibly observed after it */
    int probes_ahead[MAX_BLOCK_INSNS];
    uint32_t live_in, read_live;
    unsigned checked;                      /* base registers checked at the flat entry */
};

/* Only blocks whose instructions are native or plain threaded ones chain:
 * those cannot change interrupt state, mappings or the mode.  The guest
 * registers native instructions use are loaded at the entry. */
static void plan_chain_and_regs(struct block *b, struct block_emit *be)
{
    bool all_native = b->code32;
    for (int k = 0; k < b->ninsn && all_native; k++)
        all_native = native_supported(&b->insns[k]) || native_threaded_is_plain(&b->insns[k]);
    if (all_native)
        be->chain = b->chain;
    if (b->code32)
        for (int k = 0; k < b->ninsn; k++)
            if (native_supported(&b->insns[k]))
                be->regs_used |= native_regs_used(&b->insns[k]);
}

/* Backward pass: an instruction's flags need not reach EFLAGS when the
 * following ones overwrite them before anything reads them or can leave
 * for the interpreter. */
static void plan_flag_liveness(const struct block *b, struct block_plan *p)
{
    uint32_t live = FL_ARITH;
    /* The same pass for flags read, not only possibly observed by a fault
     * or an exit: a flag read before the block writes it, a side exit, a
     * partial writer (INC/DEC keep CF), a threaded instruction. */
    uint32_t read_live = FL_ARITH;
    for (int k = b->ninsn - 1; k >= 0; k--) {
        uint32_t w = native_flags_written(&b->insns[k]);
        p->live_after[k] = live;
        p->dead[k] = b->code32 && w && !(w & live);
        bool followed = jump_followed(b, k);
        live = (live & ~w) | (followed ? 0 : native_flags_needed(&b->insns[k], p->cached[k]));
        read_live = (read_live & ~w) | (followed ? 0 : native_flags_read(&b->insns[k]));
    }
    p->live_in = live;
    p->read_live = read_live;
}

/* Probes from each instruction until deferred flags pending at it are
 * gone: overwritten whole (after its probes), or captured before a
 * threaded instruction. */
static void plan_probes_ahead(const struct block *b, struct block_plan *p)
{
    int next = 0;
    for (int k = b->ninsn - 1; k >= 0; k--) {
        const struct insn *in = &b->insns[k];
        if (!native_supported(in))
            p->probes_ahead[k] = 0;
        else
            p->probes_ahead[k] = native_probes(in, p->cached[k]) +
                                 (native_flags_written(in) == FL_ARITH ? 0 : next);
        next = p->probes_ahead[k];
    }
}

static void plan_block(struct bt *bt, struct block *b, struct block_emit *be, struct block_plan *p)
{
    plan_chain_and_regs(b, be);
    /* A block at a debugger's breakpoint must not loop back into itself (a
     * self jump) past the check bt_run's step makes: its exits go to bt_run. */
    if (bt_breakpoint_at(bt, bt->cpu->seg[SEG_CS].base + b->eip))
        be->chain = NULL;
    /* A flat block's CS limit is 4 GiB (part of its key), and nothing that
     * changes CS stays in a block: every direct target is within it. */
    be->limit_checked = b->flat ? 0xffffffffu : b->last;
    p->checked = b->flat && b->code32 ? plan_base_cache(b, p->cached) : 0;
    for (int k = 0; k < b->ninsn; k++) {
        bt->stats.operands_cached += !!(p->cached[k] & CACHED_RM);
        bt->stats.stack_slots_cached += !!(p->cached[k] & CACHED_STACK);
    }
    plan_flag_liveness(b, p);
    be->live_in = p->live_in;
    plan_probes_ahead(b, p);
}

/* The block's instructions, native or threaded, in order; returns whether
 * the last one left the block. */
static bool emit_block_insns(struct block_emit *be, const struct block *b, const struct block_plan *p)
{
    uint32_t eip = b->eip;
    bool ended = false;
    uint8_t flat_so_far = b->flat;             /* the key's bits, while they hold */
    for (int k = 0; k < b->ninsn; k++) {
        const struct insn *in = &b->insns[k];
        bool last = k + 1 == b->ninsn;
        be->flags_dead = p->dead[k];
        be->flags_live = p->live_after[k];
        be->base_cached = (p->cached[k] & CACHED_RM) ? in->ea_base : -1;
        be->stack_cached = p->cached[k] & CACHED_STACK;
        be->probes_ahead = p->probes_ahead[k];
        be->jump_followed = jump_followed(b, k);
        be->last = last;
        be->of_lazy = of_observed_by_stubs_only(b, k);
        be->flat = flat_so_far != 0;
        be->flat_key = flat_so_far;
        if (b->code32 && be->nstubs < NATIVE_MAX_STUBS && native_supported(in)) {
            ended = native_emit(be, in, eip);
        } else {
            native_emit_threaded(be, in, eip, last, threaded_step(in, flat_so_far));
            ended = last;
            if (!native_threaded_is_plain(in))
                flat_so_far = 0;       /* it may have loaded a segment register */
        }
        eip = eip_after(b, k, eip);
    }
    if (!ended)
        native_emit_exit(be, eip);
    return ended;
}

static void emit_block_code(struct bt *bt, struct block *b)
{
    struct emitter *e = &bt->em;
    struct block_emit be = { .e = e, .hot = e, .cold = &bt->cold, .self = b, .user = b->user, .block_eip = b->eip, .jump_cache = bt->jump_cache,
                             .intr_line = machine_intr_line(bt->cpu->m), .interrupt_step = bt_step_guard_interrupt,
                             .rdx_addend = -1, .loop_rdx = -1, .of_rm = -1, .logic_reg = -1,
                             .leave_below = bt->exact_budget ? MAX_BLOCK_INSNS : 0 };
    struct block_plan plan = { .cached = { 0 } };
    plan_block(bt, b, &be, &plan);
    uint8_t *start = e->p;
    native_emit_prologue(e);
    b->entry = e->p;
    if (b->flat && b->code32)
        emit_flat_entry(&be, b, plan.checked, plan.read_live != 0);
    emit_block_insns(&be, b, &plan);
    be.e = be.cold;
    native_emit_stubs(&be, bt_step_slow);
    be.e = be.hot;
    b->code = (void (*)(struct cpu *))start;
}

/* Stretches of one page decoded into a block, as [start, end) offsets. */
#define MAX_FOLLOWED 8
struct decoded_runs {
    uint32_t start[MAX_FOLLOWED + 1], end[MAX_FOLLOWED + 1];
    int n;                     /* stretches before the current one, which starts at start[n] */
};

static bool already_decoded(const struct decoded_runs *runs, int nruns, uint32_t off)
{
    for (int k = 0; k < nruns; k++)
        if (off >= runs->start[k] && off < runs->end[k])
            return true;
    return false;
}

/* Decoding goes on at a direct JMP's target when that lies in the same page
 * and has not been decoded into this block yet: the JMP then costs nothing,
 * and a loop whose back edge is such a JMP becomes a block that jumps to its
 * own start.  Only in flat 32-bit code, where an EIP is the linear address
 * (CS, which cannot change inside a block, has base 0 and a 4 GiB limit). */
static bool follow_jump(const struct insn *in, uint32_t page_lin, uint32_t *off, struct decoded_runs *runs)
{
    if (!direct_jmp(in) || !in->op32 || runs->n == MAX_FOLLOWED)
        return false;
    uint32_t target = native_branch_target(in, page_lin + *off - in->len);
    runs->end[runs->n] = *off;               /* the current stretch, up to here */
    if ((target & PAGE_MASK) != page_lin || already_decoded(runs, runs->n + 1, target & 0xfff))
        return false;
    *off = runs->start[++runs->n] = target & 0xfff;
    return true;
}

/* A conditional jump need not end a flat 32-bit block: decoding goes on
 * with the instruction after it, and the jump becomes a side exit, taken
 * or not inline.  Up to MAX_SIDE_EXITS per block, each with a chain slot,
 * and two slots for the block's end. */
#define MAX_SIDE_EXITS (BT_CHAIN_SLOTS - 2)
static bool side_exit(const struct insn *in, uint32_t eip, uint32_t block_eip, int *count)
{
    if (!insn_is_jcc(in) || *count == MAX_SIDE_EXITS)
        return false;
    if (native_branch_target(in, eip) == block_eip)
        return false;          /* a loop's back edge: the block ends there, its self jump skips the entry checks */
    ++*count;
    return true;
}

/* Decode up to MAX_BLOCK_INSNS from host bytes of one page, starting at
 * `off`; `follow`: direct JMPs may be followed (page_lin is the page's
 * linear address).  *off ends after the last instruction decoded; `bytes`
 * gets the granules of the bytes decoded and their hull (bytes->hi: after
 * the instruction that ends highest in the page); *crosses: decoding
 * stopped at an instruction that continues in the next page. */
struct code_bytes {
    uint32_t lo, hi;
    uint64_t gran;
};
static int decode_run(const struct bt *bt, uint32_t code_page_lin, const uint8_t *page_bytes, uint32_t *off,
                      bool follow, uint32_t page_lin, bool code32, struct insn *out, struct code_bytes *bytes,
                      bool *crosses)
{
    struct decoded_runs runs = { .start = { *off } };
    int n = 0, side_exits = 0;
    *crosses = false;
    *bytes = (struct code_bytes){ .lo = *off, .hi = *off };
    while (n < MAX_BLOCK_INSNS && *off < PAGE_SIZE) {
        if (n && bt_breakpoint_at(bt, code_page_lin + *off))
            break;             /* the run loop must see the breakpoint before its instruction runs */
        int avail = PAGE_SIZE - *off < INSN_MAX_LEN ? PAGE_SIZE - *off : INSN_MAX_LEN;
        int len = decode(page_bytes + *off, avail, code32, &out[n]);
        if (len <= 0) {
            *crosses = len == DECODE_NEED_MORE;
            break;             /* too long: the interpreter raises #GP */
        }
        if (side_exits && !native_supported(&out[n]) && !native_threaded_is_plain(&out[n]))
            break;             /* it would keep the whole block from chaining: the code past a side exit waits */
        bytes->gran |= code_granules(*off, *off + len);
        bytes->lo = *off < bytes->lo ? *off : bytes->lo;
        *off += len;
        bytes->hi = *off > bytes->hi ? *off : bytes->hi;
        const struct insn *in = &out[n++];
        if (ends_block(in) && !(follow && n < MAX_BLOCK_INSNS &&
                                (follow_jump(in, page_lin, off, &runs) ||
                                 side_exit(in, page_lin + *off - in->len, page_lin + runs.start[0], &side_exits))))
            break;
        if (runs.n && already_decoded(&runs, runs.n, *off))
            break;             /* back into code this block has: its own start is a loop */
    }
    return n;
}

/* The instruction at `off` of page_bytes that continues in page2_bytes,
 * decoded from a copy of both parts; false if it is too long. */
static bool decode_crossing(const uint8_t *page_bytes, uint32_t off, const uint8_t *page2_bytes, bool code32,
                            struct insn *out)
{
    uint8_t buf[INSN_MAX_LEN];
    uint32_t first = PAGE_SIZE - off;
    memcpy(buf, page_bytes + off, first);
    memcpy(buf + first, page2_bytes, INSN_MAX_LEN - first);
    return decode(buf, INSN_MAX_LEN, code32, out) > 0;
}

/* -d out_asm: the block's instructions in block order (a followed JMP's
 * target next), read from its page(s), then the host code. */
static void trace_block(const struct block *b, const uint8_t *page_bytes, const uint8_t *page2_bytes,
                        const uint8_t *code, size_t code_len, const uint8_t *stubs, size_t stubs_len)
{
    trace_block_head(b->code32, b->eip, b->phys);
    uint32_t eip = b->eip, off = b->phys & 0xfff;
    for (int k = 0; k < b->ninsn; k++) {
        const struct insn *in = &b->insns[k];
        uint8_t bytes[INSN_MAX_LEN];
        for (int i = 0; i < in->len; i++)
            bytes[i] = off + i < PAGE_SIZE ? page_bytes[off + i] : page2_bytes[off + i - PAGE_SIZE];
        trace_block_insn(b->code32, eip, bytes, in->len);
        uint32_t next = eip_after(b, k, eip);
        off = jump_followed(b, k) ? (next & 0xfff) : off + in->len;
        eip = next;
    }
    trace_block_host(code, code_len);
    trace_block_host(stubs, stubs_len);
}

/* Present, writable, expand-up data covering 4 GiB of offsets. */
static bool data_4g(const struct seg *s)
{
    return s->limit == 0xffffffffu && (s->attr & 0x9e) == 0x92;
}

/*
 * The `flat` key of code translated now (FLAT_*): DS, ES and SS are base 0,
 * 4 GiB, present writable expand-up data, SS is a 32-bit stack and CS is
 * base 0, 4 GiB; translated code may then take offsets as linear, and its
 * fixed exits chain by patched jumps.  With that, FS or GS data of 4 GiB
 * at any base: translated code just adds the base.
 */
static uint8_t segments_flat(const struct cpu *c)
{
    static const int segs[3] = { SEG_DS, SEG_ES, SEG_SS };
    for (int k = 0; k < 3; k++) {
        const struct seg *s = &c->seg[segs[k]];
        if (s->base || !data_4g(s))
            return 0;
    }
    if (c->seg[SEG_CS].base || c->seg[SEG_CS].limit != 0xffffffffu || !(c->seg[SEG_SS].attr & SEG_ATTR_DB))
        return 0;
    return FLAT_BASE | (c->cpl == 0 && data_4g(&c->seg[SEG_FS]) ? FLAT_FS : 0) |
           (c->cpl == 3 && data_4g(&c->seg[SEG_GS]) ? FLAT_GS : 0);
}

/* -d out_asm and the perf map learn of a new block's code. */
static void announce_block(struct bt *bt, const struct block *b, const uint8_t *page_bytes,
                           const uint8_t *page2_bytes, const uint8_t *code_start, const uint8_t *cold_start)
{
    if (bt->cpu->trace & TRACE_OUT_ASM)
        trace_block(b, page_bytes, page2_bytes, code_start, bt->em.p - code_start, cold_start,
                    bt->cold.p - cold_start);
    if (bt->perf_map) {
        fprintf(bt->perf_map, "%lx %lx guest_%08x%s\n", (unsigned long)(uintptr_t)code_start,
                (unsigned long)(bt->em.p - code_start), b->eip, b->user ? "_user" : "");
        fprintf(bt->perf_map, "%lx %lx guest_%08x%s_stubs\n", (unsigned long)(uintptr_t)cold_start,
                (unsigned long)(bt->cold.p - cold_start), b->eip, b->user ? "_user" : "");
    }
}

/* A new block into the lookup hash and its page(s)' lists; its pages are code pages. */
static void register_block(struct bt *bt, struct block *b)
{
    unsigned h = hash_of(b->phys, b->code32);
    b->hash_next = bt->hash[h];
    bt->hash[h] = b;
    b->page_next = bt->page_blocks[b->phys >> 12];
    bt->page_blocks[b->phys >> 12] = b;
    bt->code_granules[b->phys >> 12] |= b->gran;
    mark_code_page(bt, b->phys);
    if (b->two_pages) {
        b->page2_next = bt->page_blocks[b->phys2 >> 12];
        bt->page_blocks[b->phys2 >> 12] = b;
        bt->code_granules[b->phys2 >> 12] |= b->gran2;
        mark_code_page(bt, b->phys2);
    }
}

static struct block *translate(struct bt *bt, const uint8_t *host, uint32_t phys, bool code32, bool user,
                               uint8_t flat, uint8_t uncached)
{
    if (bt->nblocks >= MAX_BLOCKS || bt->ninsns + MAX_BLOCK_INSNS > MAX_BLOCKS * 8 ||
        !emit_room(&bt->em, 64 + MAX_BLOCK_INSNS * CODE_PER_INSN) ||
        !emit_room(&bt->cold, 64 + MAX_BLOCK_INSNS * CODE_PER_INSN))
        bt_flush(bt);
    const uint8_t *page_bytes = host - (phys & 0xfff);
    struct insn *insns = &bt->insn_arena[bt->ninsns];
    bool crosses;
    uint32_t off = phys & 0xfff;
    struct code_bytes bytes;
    uint32_t code_page_lin = (bt->cpu->seg[SEG_CS].base + bt->cpu->eip) & PAGE_MASK;
    int n = decode_run(bt, code_page_lin, page_bytes, &off, flat && code32, bt->cpu->eip & PAGE_MASK, code32, insns,
                       &bytes, &crosses);
    /* An instruction that continues in the next page ends the block, if
     * that page can be fetched from now: the block then depends on both
     * pages (it checks the second one's mapping at entry).  Only in flat
     * code, whose linear addresses are EIPs; elsewhere the interpreter
     * takes the instruction. */
    uint32_t lin2 = second_page(bt->cpu->eip), phys2 = 0;
    const uint8_t *page2_bytes = NULL;
    if (crosses && flat && code32 && n < MAX_BLOCK_INSNS && lin2 != 0 && !bt_breakpoint_at(bt, code_page_lin + off)) {
        page2_bytes = mem_code_ptr_nofault(bt->cpu, lin2, &phys2);
        if (page2_bytes && ((phys2 ^ phys) & PAGE_MASK) && physmem_page_tracked(bt->pm, phys2) &&
            decode_crossing(page_bytes, off, page2_bytes, code32, &insns[n])) {
            bytes.gran |= code_granules(off, PAGE_SIZE);
            bytes.hi = off + insns[n++].len;   /* past the page: the rest is in page 2 */
        } else {
            page2_bytes = NULL;
        }
    }
    if (n == 0)
        return NULL;
    bt->ninsns += n;
    struct block *b = &bt->blocks[bt->nblocks++];
    memset(b, 0, sizeof(*b));
    if (page2_bytes) {
        b->two_pages = true;
        b->phys2 = phys2 & PAGE_MASK;
        b->host_page2 = bt->pm->rd[phys2 >> 12];
    }
    b->valid = true;
    b->phys = phys;
    b->host_page = bt->pm->rd[phys >> 12];
    b->eip = bt->cpu->eip;
    b->code32 = code32;
    b->user = user;
    b->flat = flat;
    b->uncached = uncached;
    b->ninsn = n;
    b->last = b->eip + (bytes.hi - (phys & 0xfff)) - 1;
    b->lo = (uint16_t)bytes.lo;
    b->hi = (uint16_t)(bytes.hi < PAGE_SIZE ? bytes.hi : PAGE_SIZE);
    b->gran = bytes.gran;
    if (b->two_pages) {
        b->hi2 = (uint16_t)(bytes.hi - PAGE_SIZE);
        b->gran2 = code_granules(0, b->hi2);
    }
    b->insns = insns;
    uint8_t *code_start = bt->em.p, *cold_start = bt->cold.p;
    emit_block_code(bt, b);
    announce_block(bt, b, page_bytes, page2_bytes, code_start, cold_start);
    register_block(bt, b);
    bt->stats.blocks_translated++;
    prefault_note(bt->prefault, bt->prefault_area[0], bt->em.p);
    prefault_note(bt->prefault, bt->prefault_area[1], bt->cold.p);
    prefault_note(bt->prefault, bt->prefault_area[2], (const uint8_t *)&bt->blocks[bt->nblocks]);
    prefault_note(bt->prefault, bt->prefault_area[3], (const uint8_t *)&bt->insn_arena[bt->ninsns]);
    for (int k = 0; k + 1 < n; k++)
        bt->stats.jumps_followed += jump_followed(b, k);
    return b;
}

/* What a lookup asks of a block. */
struct block_key {
    uint32_t phys, eip;
    bool code32, user;
    uint8_t flat;
    uint8_t uncached;
};

/* Block b was translated for what `want` describes (a variant that caches
 * fewer base registers' pages fits too). */
static bool block_fits(const struct block *b, const struct block_key *want)
{
    return b->phys == want->phys && b->eip == want->eip && b->code32 == want->code32 && b->user == want->user &&
           b->flat == want->flat && !(want->uncached & ~b->uncached);
}

/* A two-page block's second page maps where it did (filling the TLB entry its entry check reads). */
static bool page2_maps(struct cpu *c, const struct block *b)
{
    uint32_t phys2;
    return !b->two_pages ||
           (mem_code_ptr_nofault(c, second_page(b->eip), &phys2) && (phys2 & PAGE_MASK) == b->phys2);
}

/* The block for CS:EIP, translating it if needed; NULL when the interpreter must take this instruction. */
static struct block *lookup(struct bt *bt)
{
    struct cpu *c = bt->cpu;
    if (bt->pm_rom_generation != bt->pm->rom_generation || bt->flush_pending)
        bt_flush(bt);
    else if (bt->pm_generation != bt->pm->generation)
        drop_remapped(bt);
    if (c->eip > c->seg[SEG_CS].limit)
        return NULL;
    uint32_t phys;
    const uint8_t *host = mem_code_ptr(c, c->seg[SEG_CS].base + c->eip, &phys);
    if (!host)
        return NULL;
    bool code32 = cpu_code32(c);
    bool user = c->cpl == 3;
    uint8_t flat = segments_flat(c);
    uint8_t uncached = bt->want_uncached;      /* a caching variant here failed its entry checks */
    bt->want_uncached = 0;
    const struct block_key want = { .phys = phys, .eip = c->eip, .code32 = code32, .user = user, .flat = flat,
                                    .uncached = uncached };
    struct block *b = bt->jump_cache[bt_jump_cache_index(c->eip)];
    if (b && b->valid && block_fits(b, &want) && page2_maps(c, b))
        goto found;
    b = bt->hash[hash_of(phys, code32)];
    while (b && !(block_fits(b, &want) && page2_maps(c, b)))
        b = b->hash_next;
    if (!b && !bt->no_hot_pages && code_heat_is_hot(bt->heat, phys & PAGE_MASK, cpu_icount(c)))
        return NULL;               /* rewritten too often to be worth translating: interpreted for now */
    if (!b && !physmem_page_tracked(bt->pm, phys))
        return NULL;               /* device memory: its writes could not invalidate a translation */
    if (!b)
        b = translate(bt, host, phys, code32, user, flat, uncached);
    /* (Translated code jumps through the jump cache without bt_run's loop seeing it.) */
    if (b && !bt_breakpoint_at(bt, c->seg[SEG_CS].base + c->eip))
        bt->jump_cache[bt_jump_cache_index(c->eip)] = b;
found:
    /* The same bytes under a shorter CS: the interpreter raises the #GP where it belongs. */
    if (b && (b->last > c->seg[SEG_CS].limit || b->last < b->eip))
        return NULL;
    return b;
}

/* The exit in `slot` just left for its static target: if the block there
 * lies in the same page (so the same mapping holds whenever the owner runs),
 * or the exit checks the TLB's mapping of the target's page itself (slot
 * phys: exits to another page of flat blocks), later runs jump straight
 * into it. */
static void chain_to_next(struct bt *bt, struct chain_slot *slot)
{
    struct cpu *c = bt->cpu;
    if (c->halted || interp_interrupt_ready(c) || (c->eflags & FL_TF) || (c->trace & (TRACE_IN_ASM | TRACE_CPU)))
        return;
    bool other_page = (slot->eip ^ slot->owner->eip) & PAGE_MASK;
    if ((c->seg[SEG_CS].base & 0xfff) || (other_page && !slot->phys))
        return;
    if (bt_breakpoint_at(bt, c->seg[SEG_CS].base + slot->eip))
        return;                    /* a chained jump would run past the debugger's breakpoint */
    uint32_t phys;
    if (other_page && !mem_code_ptr_nofault(c, slot->eip, &phys))
        return;                    /* fetching there faults (or sets an A bit): bt_run's lookup does it */
    uint64_t flushes = bt->stats.flushes;
    struct block *next = lookup(bt);
    if (bt->stats.flushes != flushes)
        return;                    /* the slot went with the flushed blocks */
    if (next && next->eip == slot->eip && next->user == slot->owner->user &&
        next->code32 == slot->owner->code32 && next->flat == slot->owner->flat &&
        (other_page || !((next->phys ^ slot->owner->phys) & PAGE_MASK))) {
        slot->target = next;
        if (slot->jump && next->entry_chained) {
            if (slot->phys) {
                uint32_t page = next->phys & PAGE_MASK;
                memcpy(slot->phys, &page, 4);
            }
            emit_patch_rel32(slot->jump, next->entry_chained);
            slot->next_in = next->incoming;
            next->incoming = slot;
        }
    }
}

/* Each range a block's entry checks cover lies in one page now, and a
 * quiet walk has put it in the TLB: the check will pass. */
static bool covered_ranges_fill(struct cpu *c, const struct block *b)
{
    for (int k = 0; k < b->ncovered; k++) {
        const struct covered_range *r = &b->covered[k];
        int64_t lo = (int64_t)c->r[r->reg] + r->lo, hi = (int64_t)c->r[r->reg] + r->hi;
        if (lo < 0 || hi > 0xffffffff || (lo & PAGE_MASK) != (hi & PAGE_MASK) ||
            !mmu_fill_quiet(c, (uint32_t)lo, r->write ? ACC_WRITE : ACC_READ, b->user))
            return false;
    }
    return true;
}

/* Entry checks that failed more often than this, where a TLB fill could
 * not help, make a block give way to a variant that caches less. */
#define CHECK_MISSES_TOLERATED 16

/*
 * Block b left at its entry checks, before running anything.  Most often
 * its pages had just left the TLB (a context switch, a conflicting entry):
 * then they are walked in quietly and b runs again next.  Otherwise (a
 * range across a page, a page not present or with its A or D bit to set)
 * the interpreter takes its first instruction, faulting or setting the bit
 * where the guest expects; a block that keeps failing so is replaced, for
 * good, by a variant that does not cache the page of the register whose
 * check failed last (its other base registers' pages still are).
 */
static void entry_check_failed(struct bt *bt, struct block *b)
{
    struct cpu *c = bt->cpu;
    c->bt_nocache = NULL;
    /* (Failing again right after a fill would loop: the interpreter goes on then.) */
    bool again = bt->refilled == b;
    bt->refilled = NULL;
    if (!again && covered_ranges_fill(c, b)) {
        bt->refilled = b;
        return;
    }
    if (++b->check_misses > CHECK_MISSES_TOLERATED) {
        bt->want_uncached = (uint8_t)(b->uncached | 1u << (c->bt_nocache_reg & 7));
        drop_block(bt, b);
        return;
    }
    interp_step(c);
}

/* One step of the run loop: the block at CS:EIP, or one interpreted instruction. */
static void run_block(void *opaque)
{
    struct bt *bt = opaque;
    struct cpu *c = bt->cpu;
    /* Fetching may fault (#PF, #GP) before any instruction of a block
     * runs: the fault must report this instruction, not the last one. */
    c->eip_start = c->eip;
    c->esp_start = c->r[R_ESP];
    /* Single-stepping and instruction traces are the interpreter's job, and
     * so is the one instruction in an STI/MOV SS shadow while an interrupt
     * waits behind it: the run loop must take it right after that
     * instruction (`sti; nop; cli` takes one there), not after a block. */
    bool shadowed = c->intr_shadow && (((c->eflags & FL_IF) && *c->m->intr_line) ||
                                       (*c->m->nmi_line && !c->nmi_blocked));
    struct block *b = (c->eflags & FL_TF) || shadowed || (c->trace & (TRACE_IN_ASM | TRACE_CPU)) ? NULL : lookup(bt);
    if (b && bt->exact_budget && b->ninsn > c->budget)
        b = NULL;           /* the slice ends inside this block: one instruction at a time */
    if (!b) {
        interp_step(c);
        return;
    }
    c->bt_exit = false;
    /* The interrupt check this block's first instruction was shadowed from
     * (STI, MOV SS) has been skipped: as in interp_step, the shadow ends
     * here.  Native code never clears it, so a native loop would otherwise
     * keep interrupts out for good. */
    c->intr_shadow = false;
    bt->stats.block_entries++;
    b->code(c);
    if (c->bt_nocache)
        entry_check_failed(bt, c->bt_nocache);
    else
        bt->refilled = NULL;
    struct chain_slot *slot = c->bt_chain_slot;
    c->bt_chain_slot = NULL;
    if (slot && (!slot->target || !slot->target->valid) && slot->eip == c->eip)
        chain_to_next(bt, slot);
}

void bt_run(struct bt *bt)
{
    cpu_run_loop(bt->cpu, run_block, bt);
}

void bt_run_one(struct bt *bt)
{
    run_block(bt);
}

void bt_set_breakpoints(struct bt *bt, bool (*is_breakpoint)(void *opaque, uint32_t lin), void *opaque)
{
    bt->is_breakpoint = is_breakpoint;
    bt->breakpoint_opaque = opaque;
    bt->flush_pending = true;      /* blocks translated before may run across a new breakpoint */
}
