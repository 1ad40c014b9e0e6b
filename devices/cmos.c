/*
 * MC146818 RTC and CMOS RAM (see cmos.h).
 *
 * While the clock runs, the time of day is not stored but derived: the RTC
 * read `epoch` seconds at virtual time ref_ns and updates once per second
 * after that.  The time bytes in ram[] are rendered from it on access, so
 * the guest can switch BCD/binary or 12/24h at any moment and read the
 * right thing.  While the clock is stopped (SET, or divider held in reset)
 * the bytes in ram[] are the truth, exactly what the guest wrote.
 *
 * Status flags are brought up to date lazily on every access; timers only
 * exist while the guest has enabled the matching interrupt, so an idle
 * guest that does not use the RTC is never woken by it.
 */
#define _GNU_SOURCE
#include "devices/cmos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

enum {
    R_SEC = 0, R_SEC_ALARM = 1, R_MIN = 2, R_MIN_ALARM = 3, R_HOUR = 4, R_HOUR_ALARM = 5,
    R_WDAY = 6, R_MDAY = 7, R_MON = 8, R_YEAR = 9, R_A = 0x0a, R_B = 0x0b, R_C = 0x0c, R_D = 0x0d,
};

#define A_UIP 0x80
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_SQWE 0x08
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80

#define RTC_IRQ 8
/* UIP is raised this long before each update (32.768 kHz time base). */
#define UIP_NS 244000
#define OSC_HZ 32768

struct cmos {
    struct bus *bus;
    struct vclock *clock;
    uint8_t ram[128];
    uint8_t index;
    bool nmi_masked;

    bool running;           /* divider at 32.768 kHz and SET clear */
    int64_t epoch;          /* RTC seconds (Unix time) at ref_ns */
    int64_t ref_ns;         /* updates happen at ref_ns + k s, k >= 1 */
    int64_t done_k;         /* updates already accounted for */
    int64_t div_ns;         /* divider chain start: phase of periodic ticks */
    int64_t pf_checked_ns;  /* periodic ticks before this are in PF already */
    bool irq_high;

    struct vtimer *utimer, *ptimer;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool divider_on(const struct cmos *s)
{
    return ((s->ram[R_A] >> 4) & 7) == 2;
}

static bool is_time_reg(int idx)
{
    return idx == R_SEC || idx == R_MIN || idx == R_HOUR || idx == R_WDAY ||
           idx == R_MDAY || idx == R_MON || idx == R_YEAR || idx == CMOS_CENTURY;
}

static uint8_t enc(const struct cmos *s, int v)
{
    if (s->ram[R_B] & B_DM_BINARY)
        return (uint8_t)v;
    return (uint8_t)((v / 10) << 4 | (v % 10));
}

static int dec(const struct cmos *s, uint8_t b)
{
    if (s->ram[R_B] & B_DM_BINARY)
        return b;
    return (b >> 4) * 10 + (b & 15);
}

static uint8_t enc_hour(const struct cmos *s, int h)
{
    if (s->ram[R_B] & B_24H)
        return enc(s, h);
    int h12 = h % 12 ? h % 12 : 12;
    return enc(s, h12) | (h >= 12 ? 0x80 : 0);
}

static int dec_hour(const struct cmos *s, uint8_t b)
{
    if (s->ram[R_B] & B_24H)
        return dec(s, b);
    int h = dec(s, b & 0x7f) % 12;
    return (b & 0x80) ? h + 12 : h;
}

static int64_t current_secs(const struct cmos *s, int64_t now)
{
    return s->epoch + floor_div(now - s->ref_ns, NS_PER_SEC);
}

static void render_time(struct cmos *s, int64_t secs)
{
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return;
    int year = tm.tm_year + 1900;
    s->ram[R_SEC] = enc(s, tm.tm_sec);
    s->ram[R_MIN] = enc(s, tm.tm_min);
    s->ram[R_HOUR] = enc_hour(s, tm.tm_hour);
    s->ram[R_WDAY] = enc(s, tm.tm_wday + 1);
    s->ram[R_MDAY] = enc(s, tm.tm_mday);
    s->ram[R_MON] = enc(s, tm.tm_mon + 1);
    s->ram[R_YEAR] = enc(s, year % 100);
    s->ram[CMOS_CENTURY] = enc(s, year / 100);
}

/* Time the guest wrote into the registers.  Nonsense values (a guest
 * mistake) are normalized by timegm rather than rejected. */
static int64_t parse_time(const struct cmos *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int century = dec(s, s->ram[CMOS_CENTURY]);
    int yy = dec(s, s->ram[R_YEAR]) % 100;
    if (century < 19 || century > 99)
        century = yy < 70 ? 20 : 19;
    tm.tm_sec = dec(s, s->ram[R_SEC]);
    tm.tm_min = dec(s, s->ram[R_MIN]);
    tm.tm_hour = dec_hour(s, s->ram[R_HOUR]);
    tm.tm_mday = dec(s, s->ram[R_MDAY]);
    tm.tm_mon = dec(s, s->ram[R_MON]) - 1;
    tm.tm_year = century * 100 + yy - 1900;
    return (int64_t)timegm(&tm);
}

static bool alarm_matches(const struct cmos *s, int64_t secs)
{
    int64_t sod = secs - floor_div(secs, 86400) * 86400;
    uint8_t cur[3] = { enc(s, (int)(sod % 60)), enc(s, (int)(sod / 60 % 60)), enc_hour(s, (int)(sod / 3600)) };
    uint8_t alarm[3] = { s->ram[R_SEC_ALARM], s->ram[R_MIN_ALARM], s->ram[R_HOUR_ALARM] };
    for (int i = 0; i < 3; i++)
        if ((alarm[i] & 0xc0) != 0xc0 && alarm[i] != cur[i])   /* 0xc0-0xff: don't care */
            return false;
    return true;
}

/* Periodic interrupt period in 32.768 kHz ticks; 0 = off. */
static int64_t period_ticks(const struct cmos *s)
{
    int rate = s->ram[R_A] & 15;
    if (rate == 0)
        return 0;
    if (rate <= 2)
        return 1LL << (rate + 6);   /* rates 1, 2 alias 8, 9 with a 32 kHz base */
    return 1LL << (rate - 1);
}

static int64_t period_index(const struct cmos *s, int64_t ns, int64_t pt)
{
    int64_t ticks = (int64_t)(((__int128)(ns - s->div_ns) * OSC_HZ) / NS_PER_SEC);
    return floor_div(ticks, pt);
}

static int64_t period_start_ns(const struct cmos *s, int64_t idx, int64_t pt)
{
    __int128 t = (__int128)idx * pt * NS_PER_SEC;
    return s->div_ns + (int64_t)((t + OSC_HZ - 1) / OSC_HZ);
}

static void update_irq(struct cmos *s)
{
    uint8_t c = s->ram[R_C], b = s->ram[R_B];
    if (((c & C_PF) && (b & B_PIE)) || ((c & C_AF) && (b & B_AIE)) || ((c & C_UF) && (b & B_UIE))) {
        s->ram[R_C] |= C_IRQF;
        if (!s->irq_high) {
            s->irq_high = true;
            irq_set(s->bus, RTC_IRQ, 1);
        }
    }
}

/* Account for every update cycle and periodic tick up to now. */
static void sync(struct cmos *s)
{
    int64_t now = vclock_now(s->clock);
    if (s->running) {
        int64_t k_now = floor_div(now - s->ref_ns, NS_PER_SEC);
        if (k_now > s->done_k) {
            /* Alarm matches older than a day ago are past caring about. */
            if (k_now - s->done_k > 86400)
                s->done_k = k_now - 86400;
            for (int64_t k = s->done_k + 1; k <= k_now; k++) {
                s->ram[R_C] |= C_UF;
                if (alarm_matches(s, s->epoch + k))
                    s->ram[R_C] |= C_AF;
            }
            s->done_k = k_now;
        }
    }
    int64_t pt = period_ticks(s);
    if (divider_on(s) && pt) {
        if (period_index(s, now, pt) > period_index(s, s->pf_checked_ns, pt))
            s->ram[R_C] |= C_PF;
    }
    s->pf_checked_ns = now;
    update_irq(s);
}

static void rearm(struct cmos *s)
{
    if (s->running && (s->ram[R_B] & (B_UIE | B_AIE)))
        vtimer_mod(s->utimer, s->ref_ns + (s->done_k + 1) * NS_PER_SEC);
    else
        vtimer_del(s->utimer);
    int64_t pt = period_ticks(s);
    if (divider_on(s) && pt && (s->ram[R_B] & B_PIE)) {
        int64_t idx = period_index(s, vclock_now(s->clock), pt);
        vtimer_mod(s->ptimer, period_start_ns(s, idx + 1, pt));
    } else {
        vtimer_del(s->ptimer);
    }
}

static void timer_cb(void *opaque)
{
    struct cmos *s = opaque;
    sync(s);
    rearm(s);
}

static bool uip(const struct cmos *s, int64_t now)
{
    if (!s->running)
        return false;
    int64_t phase = (now - s->ref_ns) - floor_div(now - s->ref_ns, NS_PER_SEC) * NS_PER_SEC;
    return phase >= NS_PER_SEC - UIP_NS;
}

/* Enter or leave the running state after a change to register A or B. */
static void clock_transition(struct cmos *s, int64_t now, bool divider_released)
{
    bool run = divider_on(s) && !(s->ram[R_B] & B_SET);
    if (run == s->running)
        return;
    if (!run) {
        render_time(s, current_secs(s, now));
    } else {
        s->epoch = parse_time(s);
        /* Out of divider reset the first update comes after half a second;
         * after SET is cleared, a full second. */
        s->ref_ns = divider_released ? now - NS_PER_SEC / 2 : now;
        s->done_k = 0;
    }
    s->running = run;
}

static uint8_t reg_read(struct cmos *s, int idx)
{
    int64_t now = vclock_now(s->clock);
    sync(s);
    switch (idx) {
    case R_A:
        return (s->ram[R_A] & 0x7f) | (uip(s, now) ? A_UIP : 0);
    case R_C: {
        uint8_t v = s->ram[R_C];
        s->ram[R_C] = 0;
        if (s->irq_high) {
            s->irq_high = false;
            irq_set(s->bus, RTC_IRQ, 0);
        }
        return v;
    }
    case R_D:
        return D_VRT;
    default:
        if (is_time_reg(idx) && s->running)
            render_time(s, current_secs(s, now));
        return s->ram[idx];
    }
}

static void reg_write(struct cmos *s, int idx, uint8_t v)
{
    int64_t now = vclock_now(s->clock);
    sync(s);
    switch (idx) {
    case R_A: {
        bool was_on = divider_on(s);
        s->ram[R_A] = v & 0x7f;
        if (!was_on && divider_on(s)) {
            s->div_ns = now;
            s->pf_checked_ns = now;
        }
        clock_transition(s, now, !was_on);
        break;
    }
    case R_B:
        /* Setting SET ends update cycles and, with them, update interrupts. */
        if (v & B_SET)
            v &= ~B_UIE;
        s->ram[R_B] = v;
        clock_transition(s, now, false);
        update_irq(s);
        break;
    case R_C:
    case R_D:
        break;  /* read-only */
    default:
        if (is_time_reg(idx) && s->running) {
            /* Keep the update phase: only the seconds count moves. */
            render_time(s, current_secs(s, now));
            s->ram[idx] = v;
            s->epoch = parse_time(s) - floor_div(now - s->ref_ns, NS_PER_SEC);
        } else {
            s->ram[idx] = v;
        }
        break;
    }
    rearm(s);
}

static uint32_t cmos_read(void *opaque, uint16_t port, int size)
{
    struct cmos *s = opaque;
    if (port == 0x70)
        return 0xff;    /* the index register is write-only */
    return reg_read(s, s->index);
}

static void cmos_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct cmos *s = opaque;
    if (port == 0x70) {
        s->index = val & 0x7f;
        s->nmi_masked = val & 0x80;
    } else {
        reg_write(s, s->index, val);
    }
}

static void cmos_reset(void *opaque)
{
    struct cmos *s = opaque;
    /* The RESET pin leaves time and RAM alone, clears interrupt enables and flags. */
    sync(s);
    s->ram[R_B] &= ~(B_PIE | B_AIE | B_UIE | B_SQWE);
    s->ram[R_C] = 0;
    if (s->irq_high) {
        s->irq_high = false;
        irq_set(s->bus, RTC_IRQ, 0);
    }
    rearm(s);
}

static void cmos_post_load(void *opaque)
{
    struct cmos *s = opaque;
    irq_set(s->bus, RTC_IRQ, s->irq_high);
}

/* The clock's time base and the divider's phase are virtual-clock times,
 * restored before the records: the RTC goes on from the saved moment. */
static const struct state_field cmos_fields[] = {
    STATE_FIELD(struct cmos, ram), STATE_FIELD(struct cmos, index), STATE_FIELD(struct cmos, nmi_masked),
    STATE_FIELD(struct cmos, running), STATE_FIELD(struct cmos, epoch), STATE_FIELD(struct cmos, ref_ns),
    STATE_FIELD(struct cmos, done_k), STATE_FIELD(struct cmos, div_ns), STATE_FIELD(struct cmos, pf_checked_ns),
    STATE_FIELD(struct cmos, irq_high), STATE_TIMER(struct cmos, utimer), STATE_TIMER(struct cmos, ptimer),
};
static const struct state_table cmos_state = { "rtc", 1, cmos_fields, STATE_COUNT(cmos_fields), cmos_post_load };

struct cmos *cmos_new(struct bus *b, time_t base)
{
    struct cmos *s = xcalloc(1, sizeof(*s));
    s->bus = b;
    s->clock = bus_clock(b);
    int64_t now = vclock_now(s->clock);
    s->ram[R_A] = 0x26;             /* 32.768 kHz, 1024 Hz periodic rate */
    s->ram[R_B] = B_24H;
    s->ram[R_D] = D_VRT;
    s->epoch = base;
    s->ref_ns = now;
    s->div_ns = now;
    s->pf_checked_ns = now;
    s->running = true;
    render_time(s, base);
    s->utimer = vtimer_new(s->clock, timer_cb, s);
    s->ptimer = vtimer_new(s->clock, timer_cb, s);
    bus_register_pio(b, 0x70, 2, s, cmos_read, cmos_write);
    bus_add_device(b, &(struct device){ .name = "rtc", .opaque = s, .reset = cmos_reset, .state = &cmos_state });
    return s;
}

void cmos_free(struct cmos *s)
{
    if (!s)
        return;
    vtimer_free(s->utimer);
    vtimer_free(s->ptimer);
    free(s);
}

void cmos_set(struct cmos *s, int idx, uint8_t v)
{
    s->ram[idx & 0x7f] = v;
}

uint8_t cmos_get(struct cmos *s, int idx)
{
    idx &= 0x7f;
    if (is_time_reg(idx) && s->running)
        render_time(s, current_secs(s, vclock_now(s->clock)));
    return s->ram[idx];
}

void cmos_update_checksum(struct cmos *s)
{
    unsigned sum = 0;
    for (int i = 0x10; i <= 0x2d; i++)
        sum += s->ram[i];
    s->ram[0x2e] = (uint8_t)(sum >> 8);
    s->ram[0x2f] = (uint8_t)sum;
}

bool cmos_nmi_masked(struct cmos *s)
{
    return s->nmi_masked;
}
