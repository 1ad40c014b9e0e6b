/*
 * 82077AA floppy disk controller (see fdc.h).
 *
 * Phases.  A command is collected byte by byte through the FIFO (command
 * phase), then executes, then hands back its result bytes (result phase).
 * Data commands in DMA mode hold DREQ on channel 2; the DMA controller
 * calls dma_service when the guest has let the channel go (before or after
 * it sent the command), and the whole transfer, sector by sector, happens
 * in that call.  The result phase follows after RESULT_DELAY_NS, with
 * IRQ 6.  Seeks and recalibrates have no result phase: their interrupt
 * status waits for SENSE INTERRUPT STATUS.  A reset (DOR bit 2 low then
 * high, or DSR bit 7) interrupts once and leaves four "ready changed"
 * statuses, one per drive, for SENSE INTERRUPT STATUS.
 *
 * DOR bit 3 gates both the interrupt and DMA requests, as in AT mode.
 */
#include "devices/fdc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/state.h"
#include "devices/dma.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/vclock.h"
#include "hosted-driver/xalloc.h"

#define SECTOR 512
#define SIZE_CODE_512 2

#define RESULT_DELAY_NS 20000
#define SEEK_DELAY_NS 50000
#define RESET_DELAY_NS 10000

/* Data rates (DSR/CCR bits 0-1) */
#define RATE_500K 0
#define RATE_300K 1
#define RATE_250K 2
#define RATE_1M 3

/* DOR */
#define DOR_SELECT 0x03
#define DOR_NRESET 0x04
#define DOR_DMA_IRQ 0x08
#define DOR_MOTORS 0xf0

/* MSR */
#define MSR_RQM 0x80
#define MSR_DIO 0x40
#define MSR_NDMA 0x20
#define MSR_CB 0x10

/* DSR */
#define DSR_SWRESET 0x80

/* ST0 */
#define ST0_AT 0x40          /* abnormal termination */
#define ST0_IC 0x80          /* invalid command */
#define ST0_READY_CHANGED 0xc0
#define ST0_SE 0x20
#define ST0_EC 0x10
#define ST0_HEAD 0x04
/* ST1 */
#define ST1_EN 0x80
#define ST1_DE 0x20
#define ST1_ND 0x04
#define ST1_NW 0x02
#define ST1_MA 0x01
/* ST2 */
#define ST2_DD 0x20
/* ST3 */
#define ST3_WP 0x40
#define ST3_READY 0x20
#define ST3_T0 0x10
#define ST3_TWO_SIDED 0x08

/* Command bits */
#define CMD_MT 0x80
#define CMD_MFM 0x40
#define CMD_SK 0x20

enum {
    OP_SPECIFY = 0x03,
    OP_SENSE_DRIVE = 0x04,
    OP_WRITE = 0x05,
    OP_READ = 0x06,
    OP_RECALIBRATE = 0x07,
    OP_SENSE_INT = 0x08,
    OP_READ_ID = 0x0a,
    OP_FORMAT = 0x0d,
    OP_DUMPREG = 0x0e,
    OP_SEEK = 0x0f,
    OP_VERSION = 0x10,
    OP_PERPENDICULAR = 0x12,
    OP_CONFIGURE = 0x13,
    OP_LOCK = 0x14,
};

#define VERSION_82077 0x90
/* CONFIGURE's byte at reset: FIFO disabled, polling enabled, threshold 1. */
#define CONFIG_DEFAULT 0x20
#define CONFIG_EIS 0x40

enum phase { PH_COMMAND, PH_EXEC, PH_RESULT };
/* A number, not a function pointer, so that a snapshot can keep it. */
enum timer_action { ACT_NONE, ACT_INTERRUPT, ACT_RESULT, ACT_RESET_DONE };

struct fdrive {
    enum floppy_drive_type type;     /* FLOPPY_NONE: nothing connected */
    struct blockdev *bd;             /* the disk, or NULL */
    const struct floppy_format *fmt;
    bool changed;                    /* the DSKCHG line */
    uint8_t pcn;                     /* where the head is */
    uint8_t id_sector;               /* the next ID under the head, for READ ID */
    bool int_pending;                /* a seek's status waits for SENSE INTERRUPT */
    uint8_t int_st0;
};

struct xfer {
    uint8_t op;                      /* OP_READ, OP_WRITE, OP_FORMAT */
    int unit;
    uint8_t head;                    /* physical head (HD bit) */
    uint8_t c, h, r, n, eot;         /* the ID being transferred, EOT */
    bool mt;
    uint8_t st0, st1, st2;
    uint8_t sectors_left;            /* FORMAT: IDs still to come */
    uint8_t fill;                    /* FORMAT's filler byte */
    uint32_t pos;                    /* non-DMA: bytes of buf done */
    uint8_t buf[SECTOR];
};

struct fdc {
    struct bus *bus;
    struct dma *dma;
    struct vtimer *timer;
    uint8_t timer_action;            /* what the timer does when it fires (enum timer_action) */
    struct fdrive drive[2];

    uint8_t dor, tdr, rate;
    bool in_reset;
    bool irq;                        /* the interrupt output (before the DOR gate) */
    bool line;
    bool dreq;

    enum phase phase;
    uint8_t cmd[16];
    int cmd_len, cmd_need;
    uint8_t res[16];
    int res_len, res_pos;
    bool pio_exec;                   /* execution phase through the FIFO */

    int reset_statuses;              /* "ready changed" statuses left after a reset */
    uint8_t specify[2];
    uint8_t config, pretrk, perpendicular, last_eot;
    bool lock;

    struct xfer x;
};

static const struct floppy_format formats[] = {
    { 163840, 40, 1, 8, RATE_250K, FLOPPY_360K, "160K" },
    { 184320, 40, 1, 9, RATE_250K, FLOPPY_360K, "180K" },
    { 327680, 40, 2, 8, RATE_250K, FLOPPY_360K, "320K" },
    { 368640, 40, 2, 9, RATE_250K, FLOPPY_360K, "360K" },
    { 737280, 80, 2, 9, RATE_250K, FLOPPY_720K, "720K" },
    { 1228800, 80, 2, 15, RATE_500K, FLOPPY_1200K, "1.2M" },
    { 1474560, 80, 2, 18, RATE_500K, FLOPPY_1440K, "1.44M" },
    { 2949120, 80, 2, 36, RATE_1M, FLOPPY_2880K, "2.88M" },
};

const struct floppy_format *floppy_format_by_size(uint64_t bytes)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (formats[i].bytes == bytes)
            return &formats[i];
    return NULL;
}

const char *floppy_known_sizes(void)
{
    return "160K, 180K, 320K, 360K, 720K, 1.2M, 1.44M or 2.88M";
}

/* A 5.25" double-density disk is read at 250 kb/s in its own drive and at
 * 300 kb/s in a high-density drive: either is right. */
static bool rate_fits(const struct floppy_format *fmt, uint8_t rate)
{
    if (fmt->rate == RATE_250K && fmt->tracks == 40)
        return rate == RATE_250K || rate == RATE_300K;
    return rate == fmt->rate;
}

/* ---- interrupt and DMA request, gated by DOR bit 3 ---- */

static void update_lines(struct fdc *f)
{
    bool gate = (f->dor & DOR_DMA_IRQ) != 0;
    bool level = f->irq && gate;
    if (level != f->line) {
        f->line = level;
        irq_set(f->bus, FDC_IRQ, level);
    }
    bool dreq = f->dreq && gate;
    dma_set_dreq(f->dma, FDC_DMA_CHANNEL, dreq);
}

static void set_irq(struct fdc *f, bool level)
{
    f->irq = level;
    update_lines(f);
}

static void set_dreq(struct fdc *f, bool held)
{
    f->dreq = held;
    update_lines(f);
}

static void after(struct fdc *f, int64_t ns, enum timer_action action)
{
    f->timer_action = action;
    vtimer_mod(f->timer, vclock_now(bus_clock(f->bus)) + ns);
}

static void interrupt_now(struct fdc *f);
static void enter_result(struct fdc *f);
static void interrupt_after_reset(struct fdc *f);

static void timer_fired(void *opaque)
{
    struct fdc *f = opaque;
    enum timer_action action = f->timer_action;
    f->timer_action = ACT_NONE;
    switch (action) {
    case ACT_INTERRUPT: interrupt_now(f); break;
    case ACT_RESULT: enter_result(f); break;
    case ACT_RESET_DONE: interrupt_after_reset(f); break;
    case ACT_NONE: break;
    }
}

/* ---- phases ---- */

static void to_command_phase(struct fdc *f)
{
    f->phase = PH_COMMAND;
    f->cmd_len = 0;
    f->cmd_need = 0;
    f->pio_exec = false;
}

/* A result phase at once, without an interrupt (commands that do not execute). */
static void start_result(struct fdc *f, const uint8_t *bytes, int n)
{
    memcpy(f->res, bytes, n);
    f->res_len = n;
    f->res_pos = 0;
    f->phase = PH_RESULT;
    f->pio_exec = false;
}

static void invalid_command(struct fdc *f)
{
    uint8_t st0 = ST0_IC;
    start_result(f, &st0, 1);
}

static void interrupt_now(struct fdc *f)
{
    set_irq(f, true);
}

static void enter_result(struct fdc *f)
{

    f->phase = PH_RESULT;
    f->res_pos = 0;
    set_irq(f, true);
}

/* The seven result bytes of a data command, readable after the delay. */
static void finish_xfer(struct fdc *f)
{
    struct xfer *x = &f->x;
    set_dreq(f, false);
    uint8_t r[7] = { x->st0 | (x->head << 2) | x->unit, x->st1, x->st2, x->c, x->h, x->r, x->n };
    memcpy(f->res, r, sizeof(r));
    f->res_len = 7;
    f->last_eot = x->eot;
    f->phase = PH_EXEC;
    f->pio_exec = false;
    set_irq(f, false);
    after(f, RESULT_DELAY_NS, ACT_RESULT);
}

static void fail_xfer(struct fdc *f, uint8_t st1, uint8_t st2)
{
    f->x.st0 = ST0_AT;
    f->x.st1 = st1;
    f->x.st2 = st2;
    finish_xfer(f);
}

/* ---- drives ---- */

static struct fdrive *unit_drive(struct fdc *f, int unit)
{
    if (unit < 0 || unit > 1 || f->drive[unit].type == FLOPPY_NONE)
        return NULL;
    return &f->drive[unit];
}

static bool drive_readonly(const struct fdrive *d)
{
    return !d->bd || blockdev_readonly(d->bd);
}

static uint64_t sector_offset(const struct floppy_format *fmt, uint8_t c, uint8_t h, uint8_t r)
{
    return (((uint64_t)c * fmt->heads + h) * fmt->spt + (r - 1)) * SECTOR;
}

/* Why the sector C/H/R/N cannot be found on the medium, as ST1 (0: found). */
static uint8_t locate(struct fdc *f, const struct fdrive *d, uint8_t head, uint8_t c, uint8_t h, uint8_t r, uint8_t n)
{
    if (!d || !d->bd || !rate_fits(d->fmt, f->rate) || c >= d->fmt->tracks || head >= d->fmt->heads)
        return ST1_MA;
    if (h != head || r < 1 || r > d->fmt->spt || n != SIZE_CODE_512)
        return ST1_ND;
    return 0;
}

/* The ID after the one just transferred (the 82077's result rules). */
static bool next_sector(struct xfer *x)
{
    if (x->r < x->eot) {
        x->r++;
        return true;
    }
    x->r = 1;
    if (x->mt && x->head == 0) {
        x->head = 1;
        x->h = 1;
        return true;
    }
    x->c++;
    if (x->mt) {
        x->head = 0;
        x->h = 0;
    }
    return false;
}

/* Reads the sector at x's ID into buf; false (with the status set) when it cannot. */
static bool load_sector(struct fdc *f, struct xfer *x)
{
    struct fdrive *d = unit_drive(f, x->unit);
    uint8_t st1 = locate(f, d, x->head, x->c, x->h, x->r, x->n);
    if (st1) {
        fail_xfer(f, st1, 0);
        return false;
    }
    if (blockdev_read(d->bd, sector_offset(d->fmt, x->c, x->h, x->r), x->buf, SECTOR) < 0) {
        fail_xfer(f, ST1_DE, ST2_DD);
        return false;
    }
    return true;
}

static bool store_sector(struct fdc *f, struct xfer *x, const uint8_t *buf)
{
    struct fdrive *d = unit_drive(f, x->unit);
    uint8_t st1 = locate(f, d, x->head, x->c, x->h, x->r, x->n);
    if (st1) {
        fail_xfer(f, st1, 0);
        return false;
    }
    if (blockdev_write(d->bd, sector_offset(d->fmt, x->c, x->h, x->r), buf, SECTOR) < 0) {
        fail_xfer(f, ST1_DE, ST2_DD);
        return false;
    }
    return true;
}

/* After a sector moved: ends the command at the terminal count, or at the
 * end of the track (then "end of cylinder"); true when another sector follows. */
static bool advance(struct fdc *f, bool tc)
{
    struct xfer *x = &f->x;
    bool more = next_sector(x);
    if (tc) {
        finish_xfer(f);
        return false;
    }
    if (!more) {
        x->st0 = ST0_AT;
        x->st1 = ST1_EN;
        finish_xfer(f);
        return false;
    }
    return true;
}

/* FORMAT: one 4-byte ID (C, H, R, N) received; fills that sector. */
static bool format_one(struct fdc *f, const uint8_t *id)
{
    struct xfer *x = &f->x;
    struct fdrive *d = unit_drive(f, x->unit);
    if (!d || !d->bd) {              /* taken out while the guest was still sending IDs */
        fail_xfer(f, ST1_MA, 0);
        return false;
    }
    x->c = id[0];
    x->h = id[1];
    x->r = id[2];
    x->n = id[3];
    if (x->h == x->head && x->n == SIZE_CODE_512 && x->r >= 1 && x->r <= d->fmt->spt && x->c < d->fmt->tracks) {
        uint8_t sector[SECTOR];
        memset(sector, x->fill, SECTOR);
        if (blockdev_write(d->bd, sector_offset(d->fmt, x->c, x->h, x->r), sector, SECTOR) < 0) {
            fail_xfer(f, ST1_DE, ST2_DD);
            return false;
        }
    }
    if (--x->sectors_left == 0) {
        finish_xfer(f);
        return false;
    }
    return true;
}

/* The DMA controller lets channel 2 go: move the whole transfer. */
static void dma_service(void *opaque, int channel)
{
    struct fdc *f = opaque;
    struct xfer *x = &f->x;
    if (f->phase != PH_EXEC || f->pio_exec || !f->dreq)
        return;
    bool tc = false;
    for (;;) {
        if (x->op == OP_READ) {
            if (!load_sector(f, x))
                return;
            dma_to_memory(f->dma, channel, x->buf, SECTOR, &tc);
            if (!advance(f, tc))
                return;
        } else if (x->op == OP_WRITE) {
            uint8_t buf[SECTOR] = { 0 };   /* a sector cut short by TC is padded with zeros */
            dma_from_memory(f->dma, channel, buf, SECTOR, &tc);
            if (!store_sector(f, x, buf) || !advance(f, tc))
                return;
        } else {
            uint8_t id[4] = { 0 };
            dma_from_memory(f->dma, channel, id, 4, &tc);
            if (!format_one(f, id))
                return;
            if (tc) {
                finish_xfer(f);
                return;
            }
        }
    }
}

/* ---- non-DMA execution phase: bytes through the FIFO ---- */

static uint8_t pio_read_byte(struct fdc *f)
{
    struct xfer *x = &f->x;
    if (x->op != OP_READ)
        return 0xff;
    uint8_t v = x->buf[x->pos++];
    if (x->pos == SECTOR && advance(f, false)) {
        x->pos = 0;
        load_sector(f, x);
    }
    return v;
}

static void pio_write_byte(struct fdc *f, uint8_t v)
{
    struct xfer *x = &f->x;
    if (x->op == OP_READ)
        return;
    x->buf[x->pos++] = v;
    if (x->op == OP_FORMAT) {
        if (x->pos == 4) {
            x->pos = 0;
            format_one(f, x->buf);
        }
        return;
    }
    if (x->pos == SECTOR) {
        x->pos = 0;
        if (store_sector(f, x, x->buf))
            advance(f, false);
    }
}

/* ---- commands ---- */

static int command_length(uint8_t b)
{
    switch (b) {
    case OP_VERSION: case OP_DUMPREG: case OP_LOCK: case OP_LOCK | 0x80:
        return 1;
    case OP_CONFIGURE:
        return 4;
    case OP_PERPENDICULAR:
        return 2;
    case OP_SEEK | 0x80: case OP_SEEK | 0xc0:
        return 3;
    }
    switch (b & 0x1f) {
    case OP_READ:
        return 9;
    case OP_WRITE:
        return (b & CMD_SK) ? 0 : 9;
    case OP_READ_ID:
        return (b & ~CMD_MFM) == OP_READ_ID ? 2 : 0;
    case OP_FORMAT:
        return (b & ~CMD_MFM) == OP_FORMAT ? 6 : 0;
    }
    switch (b) {
    case OP_SPECIFY:
        return 3;
    case OP_SENSE_DRIVE: case OP_RECALIBRATE:
        return 2;
    case OP_SENSE_INT:
        return 1;
    case OP_SEEK:
        return 3;
    }
    return 0;
}

static void seek_done(struct fdc *f, int unit, uint8_t head, uint8_t st0)
{
    if (unit < 2) {
        struct fdrive *d = &f->drive[unit];
        d->int_pending = true;
        d->int_st0 = st0 | (head << 2) | unit;
        if (d->bd)
            d->changed = false;
    }
    after(f, SEEK_DELAY_NS, ACT_INTERRUPT);
}

static void cmd_seek(struct fdc *f, bool relative, bool outward_in)
{
    int unit = f->cmd[1] & 3;
    uint8_t head = (f->cmd[1] >> 2) & 1;
    struct fdrive *d = unit_drive(f, unit);
    if (d) {
        int target = f->cmd[2];
        if (relative)
            target = outward_in ? d->pcn + f->cmd[2] : d->pcn - f->cmd[2];
        d->pcn = target < 0 ? 0 : target > 255 ? 255 : target;
    }
    to_command_phase(f);
    seek_done(f, unit, head, ST0_SE);
}

static void cmd_recalibrate(struct fdc *f)
{
    int unit = f->cmd[1] & 3;
    struct fdrive *d = unit_drive(f, unit);
    if (d)
        d->pcn = 0;
    to_command_phase(f);
    /* Without a drive, track 0 never shows up: "equipment check". */
    seek_done(f, unit, 0, d ? ST0_SE : ST0_SE | ST0_AT | ST0_EC);
}

static void cmd_sense_interrupt(struct fdc *f)
{
    set_irq(f, false);
    if (f->reset_statuses > 0) {
        int unit = 4 - f->reset_statuses--;
        uint8_t r[2] = { ST0_READY_CHANGED | unit, unit < 2 ? f->drive[unit].pcn : 0 };
        start_result(f, r, 2);
        return;
    }
    for (int unit = 0; unit < 2; unit++) {
        struct fdrive *d = &f->drive[unit];
        if (d->int_pending) {
            d->int_pending = false;
            uint8_t r[2] = { d->int_st0, d->pcn };
            start_result(f, r, 2);
            return;
        }
    }
    invalid_command(f);
}

static void cmd_sense_drive(struct fdc *f)
{
    int unit = f->cmd[1] & 3;
    uint8_t head = (f->cmd[1] >> 2) & 1;
    struct fdrive *d = unit_drive(f, unit);
    uint8_t st3 = ST3_READY | ST3_TWO_SIDED | (head << 2) | unit;
    if (d && d->pcn == 0)
        st3 |= ST3_T0;
    if (d && drive_readonly(d))
        st3 |= ST3_WP;
    start_result(f, &st3, 1);
}

static void cmd_read_id(struct fdc *f)
{
    struct xfer *x = &f->x;
    memset(x, 0, offsetof(struct xfer, buf));
    x->unit = f->cmd[1] & 3;
    x->head = (f->cmd[1] >> 2) & 1;
    x->op = OP_READ_ID;
    f->phase = PH_EXEC;
    struct fdrive *d = unit_drive(f, x->unit);
    x->h = x->head;
    x->n = SIZE_CODE_512;
    if (d)
        x->c = d->pcn;
    if (!(f->cmd[0] & CMD_MFM) || !d || !d->bd || !rate_fits(d->fmt, f->rate) || d->pcn >= d->fmt->tracks ||
        x->head >= d->fmt->heads) {
        fail_xfer(f, ST1_MA, 0);
        return;
    }
    x->r = d->id_sector % d->fmt->spt + 1;
    d->id_sector = x->r;
    finish_xfer(f);
}

/* READ DATA, WRITE DATA and FORMAT TRACK: checks, then the execution phase. */
static void start_data_command(struct fdc *f, uint8_t op)
{
    struct xfer *x = &f->x;
    memset(x, 0, offsetof(struct xfer, buf));
    x->op = op;
    x->unit = f->cmd[1] & 3;
    x->head = (f->cmd[1] >> 2) & 1;
    x->mt = op != OP_FORMAT && (f->cmd[0] & CMD_MT);
    if (op == OP_FORMAT) {
        x->n = f->cmd[2];
        x->sectors_left = f->cmd[3];
        x->fill = f->cmd[5];
        x->h = x->head;
    } else {
        x->c = f->cmd[2];
        x->h = f->cmd[3];
        x->r = f->cmd[4];
        x->n = f->cmd[5];
        x->eot = f->cmd[6];
    }
    f->phase = PH_EXEC;
    struct fdrive *d = unit_drive(f, x->unit);
    if (d && (f->config & CONFIG_EIS) && op != OP_FORMAT)
        d->pcn = x->c;
    if (!(f->cmd[0] & CMD_MFM) || !d || !d->bd || !rate_fits(d->fmt, f->rate) || x->head >= d->fmt->heads ||
        (op == OP_FORMAT && d->pcn >= d->fmt->tracks)) {
        fail_xfer(f, ST1_MA, 0);
        return;
    }
    if (op != OP_READ && drive_readonly(d)) {
        fail_xfer(f, ST1_NW, 0);
        return;
    }
    if (op == OP_FORMAT) {
        if (x->n != SIZE_CODE_512 || x->sectors_left == 0) {
            fail_xfer(f, ST1_ND, 0);
            return;
        }
    } else {
        uint8_t st1 = locate(f, d, x->head, x->c, x->h, x->r, x->n);
        if (st1) {
            fail_xfer(f, st1, 0);
            return;
        }
    }
    if (f->specify[1] & 1) {
        /* Non-DMA: the FIFO carries the data; the interrupt asks for it. */
        f->pio_exec = true;
        if (op == OP_READ && !load_sector(f, x))
            return;
        set_irq(f, true);
        return;
    }
    set_dreq(f, true);
}

static void cmd_dumpreg(struct fdc *f)
{
    uint8_t r[10] = {
        f->drive[0].pcn, f->drive[1].pcn, 0, 0,
        f->specify[0], f->specify[1], f->last_eot,
        (f->lock ? 0x80 : 0) | (f->perpendicular & 0x7f),
        f->config, f->pretrk,
    };
    start_result(f, r, 10);
}

static void execute(struct fdc *f)
{
    uint8_t b = f->cmd[0];

    switch (b) {
    case OP_VERSION: {
        uint8_t v = VERSION_82077;
        start_result(f, &v, 1);
        return;
    }
    case OP_DUMPREG:
        cmd_dumpreg(f);
        return;
    case OP_LOCK: case OP_LOCK | 0x80: {
        f->lock = b & 0x80;
        uint8_t v = f->lock ? 0x10 : 0;
        start_result(f, &v, 1);
        return;
    }
    case OP_CONFIGURE:
        f->config = f->cmd[2];
        f->pretrk = f->cmd[3];
        to_command_phase(f);
        return;
    case OP_PERPENDICULAR:
        /* Bit 7 (OW) says whether D0-D3 are to be overwritten. */
        if (f->cmd[1] & 0x80)
            f->perpendicular = f->cmd[1] & 0x3f;
        else
            f->perpendicular = (f->perpendicular & 0x3c) | (f->cmd[1] & 0x03);
        to_command_phase(f);
        return;
    case OP_SEEK | 0x80: case OP_SEEK | 0xc0:
        cmd_seek(f, true, b & 0x40);
        return;
    case OP_SPECIFY:
        f->specify[0] = f->cmd[1];
        f->specify[1] = f->cmd[2];
        to_command_phase(f);
        return;
    case OP_SENSE_DRIVE:
        cmd_sense_drive(f);
        return;
    case OP_RECALIBRATE:
        cmd_recalibrate(f);
        return;
    case OP_SENSE_INT:
        cmd_sense_interrupt(f);
        return;
    case OP_SEEK:
        cmd_seek(f, false, false);
        return;
    }
    switch (b & 0x1f) {
    case OP_READ:
        start_data_command(f, OP_READ);
        return;
    case OP_WRITE:
        start_data_command(f, OP_WRITE);
        return;
    case OP_READ_ID:
        cmd_read_id(f);
        return;
    case OP_FORMAT:
        start_data_command(f, OP_FORMAT);
        return;
    }
    invalid_command(f);
}

static void command_byte(struct fdc *f, uint8_t v)
{
    if (f->cmd_len == 0) {
        f->cmd_need = command_length(v);
        if (f->cmd_need == 0) {
            invalid_command(f);
            return;
        }
        /* A new command takes over from an unanswered interrupt (not SENSE INTERRUPT's). */
        if (v != OP_SENSE_INT && !f->reset_statuses && !f->drive[0].int_pending && !f->drive[1].int_pending)
            set_irq(f, false);
    }
    f->cmd[f->cmd_len++] = v;
    if (f->cmd_len == f->cmd_need)
        execute(f);
}

/* ---- reset ---- */

static void interrupt_after_reset(struct fdc *f)
{
    f->reset_statuses = 4;
    set_irq(f, true);
}

/* The controller's own reset (DOR, DSR); drives keep their heads and disks. */
static void controller_reset(struct fdc *f)
{
    vtimer_del(f->timer);
    f->timer_action = ACT_NONE;
    set_dreq(f, false);
    set_irq(f, false);
    to_command_phase(f);
    f->res_len = f->res_pos = 0;
    f->reset_statuses = 0;
    for (int unit = 0; unit < 2; unit++)
        f->drive[unit].int_pending = false;
    if (!f->lock) {
        f->config = CONFIG_DEFAULT;
        f->pretrk = 0;
    }
    f->perpendicular &= 0x3c;
}

static void fdc_reset(void *opaque)
{
    struct fdc *f = opaque;
    f->lock = false;
    f->specify[0] = f->specify[1] = 0;
    f->perpendicular = 0;
    f->last_eot = 0;
    f->dor = DOR_NRESET | DOR_DMA_IRQ;
    f->in_reset = false;
    f->tdr = 0;
    f->rate = RATE_500K;
    controller_reset(f);
    f->line = false;
    irq_set(f->bus, FDC_IRQ, 0);
    for (int unit = 0; unit < 2; unit++)
        f->drive[unit].pcn = 0;
}

/* ---- ports ---- */

static uint8_t msr(struct fdc *f)
{
    if (f->in_reset)
        return 0;
    uint8_t busy = 0;
    for (int unit = 0; unit < 2; unit++)
        if (f->drive[unit].int_pending)
            busy |= 1u << unit;
    switch (f->phase) {
    case PH_COMMAND:
        return MSR_RQM | busy | (f->cmd_len ? MSR_CB : 0);
    case PH_RESULT:
        return MSR_RQM | MSR_DIO | MSR_CB | busy;
    case PH_EXEC:
        if (f->pio_exec)
            return MSR_RQM | MSR_NDMA | MSR_CB | (f->x.op == OP_READ ? MSR_DIO : 0) | busy;
        return MSR_CB | busy;
    }
    return 0;
}

static uint8_t fifo_read(struct fdc *f)
{
    if (f->in_reset)
        return 0xff;
    if (f->phase == PH_EXEC && f->pio_exec)
        return pio_read_byte(f);
    if (f->phase != PH_RESULT)
        return 0xff;
    if (f->res_pos == 0 && f->irq && !f->reset_statuses && !f->drive[0].int_pending && !f->drive[1].int_pending)
        set_irq(f, false);
    uint8_t v = f->res[f->res_pos++];
    if (f->res_pos >= f->res_len)
        to_command_phase(f);
    return v;
}

static void fifo_write(struct fdc *f, uint8_t v)
{
    if (f->in_reset)
        return;
    if (f->phase == PH_EXEC && f->pio_exec)
        pio_write_byte(f, v);
    else if (f->phase == PH_COMMAND)
        command_byte(f, v);
}

static void dor_write(struct fdc *f, uint8_t v)
{
    bool was_reset = f->in_reset;
    f->dor = v;
    f->in_reset = !(v & DOR_NRESET);
    if (f->in_reset && !was_reset)
        controller_reset(f);
    else if (!f->in_reset && was_reset)
        after(f, RESET_DELAY_NS, ACT_RESET_DONE);
    update_lines(f);
}

static uint32_t fdc_read(void *opaque, uint16_t port, int size)
{
    struct fdc *f = opaque;
    switch (port & 7) {
    case 0:   /* SRA: the interrupt pending bit */
        return f->line ? 0x80 : 0x00;
    case 1:   /* SRB: drive select 0, and the motor bits */
        return 0xc0 | ((f->dor & DOR_SELECT) ? 0x20 : 0) | ((f->dor >> 4) & 3);
    case 2:
        return f->dor;
    case 3:
        return f->tdr;
    case 4:
        return msr(f);
    case 5:
        return fifo_read(f);
    case 7: {
        struct fdrive *d = unit_drive(f, f->dor & DOR_SELECT);
        return d && d->changed ? 0x80 : 0x00;
    }
    }
    return 0xff;
}

static void fdc_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct fdc *f = opaque;
    uint8_t v = val;
    switch (port & 7) {
    case 2:
        dor_write(f, v);
        break;
    case 3:
        f->tdr = v & 3;
        break;
    case 4:   /* DSR */
        f->rate = v & 3;
        if (v & DSR_SWRESET) {
            controller_reset(f);
            after(f, RESET_DELAY_NS, ACT_RESET_DONE);
        }
        break;
    case 5:
        fifo_write(f, v);
        break;
    case 7:   /* CCR */
        f->rate = v & 3;
        break;
    }
}

/* ---- machine side ---- */

void fdc_add_drive(struct fdc *f, int unit, enum floppy_drive_type type)
{
    if (unit < 0 || unit > 1)
        return;
    f->drive[unit].type = type;
    f->drive[unit].changed = true;
}

enum floppy_drive_type fdc_drive_type(const struct fdc *f, int unit)
{
    return unit < 0 || unit > 1 ? FLOPPY_NONE : f->drive[unit].type;
}

int fdc_insert(struct fdc *f, int unit, struct blockdev *bd, char *err, size_t errlen)
{
    struct fdrive *d = unit_drive(f, unit);
    if (!d) {
        snprintf(err, errlen, "there is no floppy drive %c:", 'A' + unit);
        return -1;
    }
    const struct floppy_format *fmt = floppy_format_by_size(blockdev_size(bd));
    if (!fmt) {
        snprintf(err, errlen, "%s: %llu bytes is not the size of a floppy image (%s)", blockdev_path(bd),
                 (unsigned long long)blockdev_size(bd), floppy_known_sizes());
        return -1;
    }
    d->bd = bd;
    d->fmt = fmt;
    d->changed = true;
    return 0;
}

struct blockdev *fdc_eject(struct fdc *f, int unit)
{
    struct fdrive *d = unit_drive(f, unit);
    if (!d || !d->bd)
        return NULL;
    struct blockdev *bd = d->bd;
    d->bd = NULL;
    d->fmt = NULL;
    d->changed = true;
    return bd;
}

/* DREQ is in the DMA controller's record; only the IRQ line is driven again. */
static void fdc_post_load(void *opaque)
{
    struct fdc *f = opaque;
    if (f->line)
        irq_set(f->bus, FDC_IRQ, 1);
}

/* Drive type, disk and format are configuration (the image decides them). */
#define FDC_DRIVE(n) \
    STATE_FIELD(struct fdc, drive[n].changed), STATE_FIELD(struct fdc, drive[n].pcn), \
    STATE_FIELD(struct fdc, drive[n].id_sector), STATE_FIELD(struct fdc, drive[n].int_pending), \
    STATE_FIELD(struct fdc, drive[n].int_st0)
static const struct state_field fdc_fields[] = {
    STATE_TIMER(struct fdc, timer), STATE_FIELD(struct fdc, timer_action), FDC_DRIVE(0), FDC_DRIVE(1),
    STATE_FIELD(struct fdc, dor), STATE_FIELD(struct fdc, tdr), STATE_FIELD(struct fdc, rate),
    STATE_FIELD(struct fdc, in_reset), STATE_FIELD(struct fdc, irq), STATE_FIELD(struct fdc, line),
    STATE_FIELD(struct fdc, dreq), STATE_FIELD(struct fdc, phase), STATE_FIELD(struct fdc, cmd),
    STATE_FIELD(struct fdc, cmd_len), STATE_FIELD(struct fdc, cmd_need), STATE_FIELD(struct fdc, res),
    STATE_FIELD(struct fdc, res_len), STATE_FIELD(struct fdc, res_pos), STATE_FIELD(struct fdc, pio_exec),
    STATE_FIELD(struct fdc, reset_statuses), STATE_FIELD(struct fdc, specify), STATE_FIELD(struct fdc, config),
    STATE_FIELD(struct fdc, pretrk), STATE_FIELD(struct fdc, perpendicular), STATE_FIELD(struct fdc, last_eot),
    STATE_FIELD(struct fdc, lock), STATE_FIELD(struct fdc, x),
};
static const struct state_table fdc_state = { "fdc", 1, fdc_fields, STATE_COUNT(fdc_fields), fdc_post_load };

struct fdc *fdc_new(struct bus *b, struct dma *dma)
{
    struct fdc *f = xcalloc(1, sizeof(*f));
    f->bus = b;
    f->dma = dma;
    f->timer = vtimer_new(bus_clock(b), timer_fired, f);
    bus_register_pio(b, 0x3f0, 6, f, fdc_read, fdc_write);
    bus_register_pio(b, 0x3f7, 1, f, fdc_read, fdc_write);
    dma_attach(dma, FDC_DMA_CHANNEL, dma_service, f);
    bus_add_device(b, &(struct device){ .name = "fdc", .opaque = f, .reset = fdc_reset, .state = &fdc_state });
    fdc_reset(f);
    return f;
}

void fdc_free(struct fdc *f)
{
    if (!f)
        return;
    vtimer_free(f->timer);
    free(f);
}
