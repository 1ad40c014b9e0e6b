/*
 * ATAPI CD-ROM packet commands (see atapi.h).
 *
 * A command either fails at once (CHECK CONDITION), or completes with no
 * data, or leaves a data phase for ide.c to move.  Data-in comes from one
 * of two places: a reply built here in `reply` (INQUIRY, MODE SENSE, TOC...)
 * or a run of disc sectors (READ), read from the image a stretch at a time
 * as the host asks for bytes, so a 64 MiB READ(12) needs no 64 MiB buffer.
 *
 * The reply is cut to the command's allocation length; the disc sectors are
 * checked against the disc's size before any byte moves.
 */
#include "devices/atapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/state.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/xalloc.h"

/* Additional sense codes (ASC, ASCQ) */
#define ASC_INVALID_OPCODE 0x20, 0x00
#define ASC_LBA_OUT_OF_RANGE 0x21, 0x00
#define ASC_INVALID_FIELD 0x24, 0x00
#define ASC_MEDIUM_CHANGED 0x28, 0x00
#define ASC_SAVING_NOT_SUPPORTED 0x39, 0x00
#define ASC_NO_MEDIUM_TRAY_CLOSED 0x3a, 0x01
#define ASC_NO_MEDIUM_TRAY_OPEN 0x3a, 0x02
#define ASC_UNRECOVERED_READ 0x11, 0x00
#define ASC_REMOVAL_PREVENTED 0x53, 0x02
#define ASC_ILLEGAL_MODE_FOR_TRACK 0x64, 0x00

/* GET EVENT STATUS NOTIFICATION media event codes */
#define EV_NONE 0
#define EV_EJECT_REQUEST 1
#define EV_NEW_MEDIA 2
#define EV_MEDIA_REMOVAL 3

#define REPLY_MAX 512
/* Sectors read from the image at once while a READ streams out. */
#define STRETCH_SECTORS 32
#define LEAD_OUT_TRACK 0xaa
#define PROFILE_CDROM 0x0008

struct atapi {
    struct blockdev *bd;        /* the disc, NULL when the drive is empty */
    char *path;
    uint32_t sectors;           /* 2048-byte sectors on the disc */
    bool tray_open;
    bool locked;                /* PREVENT ALLOW MEDIUM REMOVAL */
    bool unit_attention;        /* the disc changed since the guest last looked */
    uint8_t media_event;        /* pending GESN media event (EV_*) */
    uint32_t medium_gen;        /* counts the tray's openings and disc changes */

    uint8_t key, asc, ascq;     /* sense data */
    bool failed;                /* the last command ended in CHECK CONDITION */

    /* The data phase of the current command. */
    uint64_t in_left;           /* bytes the host still has to read */
    uint32_t out_left;          /* bytes the host still has to write */
    bool from_disc;             /* data-in is disc sectors, else `reply` */
    uint64_t disc_pos;          /* byte offset on the disc of the next byte */
    uint32_t read_gen;          /* medium_gen when the READ began */
    uint32_t reply_pos;
    uint8_t reply[REPLY_MAX];

    uint32_t stretch_lba, stretch_count;
    uint8_t stretch[STRETCH_SECTORS * ATAPI_SECTOR];
};

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }

/* ---- sense ---- */

static void set_sense(struct atapi *a, uint8_t key, uint8_t asc, uint8_t ascq)
{
    a->key = key;
    a->asc = asc;
    a->ascq = ascq;
}

static void check_condition(struct atapi *a, uint8_t key, uint8_t asc, uint8_t ascq)
{
    set_sense(a, key, asc, ascq);
    a->failed = true;
    a->in_left = 0;
    a->out_left = 0;
}

static void not_ready(struct atapi *a)
{
    if (a->tray_open)
        check_condition(a, SENSE_NOT_READY, ASC_NO_MEDIUM_TRAY_OPEN);
    else
        check_condition(a, SENSE_NOT_READY, ASC_NO_MEDIUM_TRAY_CLOSED);
}

static void illegal(struct atapi *a, uint8_t asc, uint8_t ascq)
{
    check_condition(a, SENSE_ILLEGAL_REQUEST, asc, ascq);
}

static bool medium_ready(const struct atapi *a)
{
    return a->bd && !a->tray_open;
}

/* ---- data phases ---- */

/* Send the first `len` bytes of the reply, cut to the allocation length. */
static void reply_in(struct atapi *a, uint32_t len, uint32_t alloc)
{
    a->from_disc = false;
    a->reply_pos = 0;
    a->in_left = len < alloc ? len : alloc;
}

static void disc_in(struct atapi *a, uint32_t lba, uint32_t count)
{
    a->from_disc = true;
    a->read_gen = a->medium_gen;
    a->disc_pos = (uint64_t)lba * ATAPI_SECTOR;
    a->in_left = (uint64_t)count * ATAPI_SECTOR;
}

/* The stretch holding `lba`, reading it from the image if needed. */
static const uint8_t *disc_sector(struct atapi *a, uint32_t lba)
{
    if (lba < a->stretch_lba || lba >= a->stretch_lba + a->stretch_count) {
        uint32_t n = a->sectors - lba < STRETCH_SECTORS ? a->sectors - lba : STRETCH_SECTORS;
        a->stretch_count = 0;
        /* A failing stretch is read again as the one sector: the error
         * belongs to the sector that cannot be read, not its neighbours. */
        if (blockdev_read(a->bd, (uint64_t)lba * ATAPI_SECTOR, a->stretch, (size_t)n * ATAPI_SECTOR) < 0) {
            n = 1;
            if (blockdev_read(a->bd, (uint64_t)lba * ATAPI_SECTOR, a->stretch, ATAPI_SECTOR) < 0)
                return NULL;
        }
        a->stretch_lba = lba;
        a->stretch_count = n;
    }
    return a->stretch + (size_t)(lba - a->stretch_lba) * ATAPI_SECTOR;
}

bool atapi_data_in(struct atapi *a, uint8_t *buf, uint32_t n)
{
    if (n > a->in_left)
        n = (uint32_t)a->in_left;
    if (!a->from_disc) {
        memcpy(buf, a->reply + a->reply_pos, n);
        a->reply_pos += n;
        a->in_left -= n;
        return true;
    }
    if (a->read_gen != a->medium_gen) {
        /* The disc changed between two blocks of a READ: the rest of it
         * would come from another disc.  The change is what the guest hears. */
        a->unit_attention = false;
        check_condition(a, SENSE_UNIT_ATTENTION, ASC_MEDIUM_CHANGED);
        return false;
    }
    while (n) {
        uint32_t lba = (uint32_t)(a->disc_pos / ATAPI_SECTOR), off = a->disc_pos % ATAPI_SECTOR;
        const uint8_t *s = a->bd && lba < a->sectors ? disc_sector(a, lba) : NULL;
        if (!s) {
            /* The disc went away or the host cannot read the image. */
            if (!a->bd)
                not_ready(a);
            else
                check_condition(a, SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ);
            return false;
        }
        uint32_t k = ATAPI_SECTOR - off < n ? ATAPI_SECTOR - off : n;
        memcpy(buf, s + off, k);
        buf += k;
        n -= k;
        a->disc_pos += k;
        a->in_left -= k;
    }
    return true;
}

void atapi_data_out(struct atapi *a, const uint8_t *buf, uint32_t n)
{
    /* MODE SELECT: the pages we report are not changeable, so the list is
     * taken and dropped, as a drive with no changeable parameters does. */
    (void)buf;
    a->out_left -= n < a->out_left ? n : a->out_left;
}

uint64_t atapi_data_in_left(const struct atapi *a) { return a->in_left; }
uint32_t atapi_data_out_left(const struct atapi *a) { return a->out_left; }

bool atapi_failed(const struct atapi *a, uint8_t *sense_key)
{
    if (a->failed && sense_key)
        *sense_key = a->key;
    return a->failed;
}

void atapi_sense(const struct atapi *a, uint8_t *key, uint8_t *asc, uint8_t *ascq)
{
    *key = a->key;
    *asc = a->asc;
    *ascq = a->ascq;
}

/* ---- addresses ---- */

static void lba_to_msf(uint8_t *p, uint32_t lba)
{
    lba += 150;                 /* the 2-second pregap before track 1 */
    p[0] = 0;
    p[1] = (uint8_t)(lba / (75 * 60));
    p[2] = (uint8_t)(lba / 75 % 60);
    p[3] = (uint8_t)(lba % 75);
}

static void put_address(uint8_t *p, uint32_t lba, bool msf)
{
    if (msf)
        lba_to_msf(p, lba);
    else
        put32(p, lba);
}

/* ---- commands ---- */

static void test_unit_ready(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a))
        not_ready(a);
}

static void request_sense(struct atapi *a, const uint8_t *cdb)
{
    uint8_t *r = a->reply;
    memset(r, 0, 18);
    r[0] = 0x70;                /* current error, fixed format */
    r[2] = a->key;
    r[7] = 10;                  /* additional sense length */
    r[12] = a->asc;
    r[13] = a->ascq;
    reply_in(a, 18, cdb[4]);
    set_sense(a, SENSE_NONE, 0, 0);
}

static void pad_string(uint8_t *p, size_t n, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < n; i++)
        p[i] = i < len ? (uint8_t)s[i] : ' ';
}

static void inquiry(struct atapi *a, const uint8_t *cdb)
{
    uint8_t *r = a->reply;
    uint16_t alloc = be16(cdb + 3);
    if (cdb[1] & 1) {           /* vital product data: only the list of pages */
        if (cdb[2] != 0x00) {
            illegal(a, ASC_INVALID_FIELD);
            return;
        }
        memset(r, 0, 5);
        r[0] = 0x05;
        r[3] = 1;
        r[4] = 0x00;
        reply_in(a, 5, alloc);
        return;
    }
    if (cdb[2]) {
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    memset(r, 0, 36);
    r[0] = 0x05;                /* CD/DVD device */
    r[1] = 0x80;                /* removable */
    r[2] = 0x00;                /* no claimed SCSI version, as ATAPI drives report */
    r[3] = 0x21;                /* ATAPI, response data format 1 */
    r[4] = 36 - 5;
    pad_string(r + 8, 8, "RETROVSR");
    pad_string(r + 16, 16, "CD-ROM");
    pad_string(r + 32, 4, "1.0");
    reply_in(a, 36, alloc);
}

static void read_capacity(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a)) {
        not_ready(a);
        return;
    }
    put32(a->reply, a->sectors - 1);
    put32(a->reply + 4, ATAPI_SECTOR);
    reply_in(a, 8, 8);
}

/* A read of `count` sectors from `lba`: checked against the disc first. */
static bool read_range_ok(struct atapi *a, uint64_t lba, uint64_t count)
{
    if (!medium_ready(a)) {
        not_ready(a);
        return false;
    }
    if (lba >= a->sectors || count > a->sectors - lba) {
        illegal(a, ASC_LBA_OUT_OF_RANGE);
        return false;
    }
    return true;
}

static void read_sectors(struct atapi *a, uint32_t lba, uint32_t count)
{
    if (!read_range_ok(a, lba, count))
        return;
    if (count)
        disc_in(a, lba, count);
}

static void read10(struct atapi *a, const uint8_t *cdb)
{
    read_sectors(a, be32(cdb + 2), be16(cdb + 7));
}

static void read12(struct atapi *a, const uint8_t *cdb)
{
    read_sectors(a, be32(cdb + 2), be32(cdb + 6));
}

/* READ CD: data tracks only, and only the user data of each sector (what
 * Linux and Windows ask of a data disc); a request for headers, sync or
 * sub-channel bytes is refused rather than answered with invented bytes. */
static void read_cd(struct atapi *a, const uint8_t *cdb)
{
    uint32_t lba = be32(cdb + 2);
    uint32_t count = (uint32_t)cdb[6] << 16 | be16(cdb + 7);
    uint8_t type = (cdb[1] >> 2) & 7, fields = cdb[9] & 0xf8;
    if (cdb[10] & 7) {
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    if (type != 0 && type != 2) {   /* any, or mode 1: what the one data track is */
        illegal(a, ASC_ILLEGAL_MODE_FOR_TRACK);
        return;
    }
    if (fields == 0) {          /* nothing asked: a seek */
        read_range_ok(a, lba, 0);
        return;
    }
    if (fields != 0x10) {
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    read_sectors(a, lba, count);
}

static void seek10(struct atapi *a, const uint8_t *cdb)
{
    read_range_ok(a, be32(cdb + 2), 0);
}

static uint32_t toc_entry(uint8_t *p, uint8_t track, uint32_t lba, bool msf)
{
    p[0] = 0;
    p[1] = 0x14;                /* ADR 1 (position), control 4 (data track) */
    p[2] = track;
    p[3] = 0;
    put_address(p + 4, lba, msf);
    return 8;
}

/* Format 0: track 1 and the lead-out from the requested track on. */
static uint32_t toc_tracks(struct atapi *a, uint8_t start, bool msf)
{
    uint8_t *r = a->reply;
    uint32_t len = 4;
    if (start <= 1)
        len += toc_entry(r + len, 1, 0, msf);
    len += toc_entry(r + len, LEAD_OUT_TRACK, a->sectors, msf);
    return len;
}

/* Format 1: one session, whose first track starts at 0. */
static uint32_t toc_sessions(struct atapi *a, bool msf)
{
    uint8_t *r = a->reply;
    return 4 + toc_entry(r + 4, 1, 0, msf);
}

/* Format 2: the raw Q-channel entries of the lead-in (A0, A1, A2, track 1). */
static uint32_t toc_raw(struct atapi *a)
{
    uint8_t *r = a->reply;
    uint32_t len = 4;
    static const uint8_t points[4] = { 0xa0, 0xa1, 0xa2, 0x01 };
    for (int i = 0; i < 4; i++) {
        uint8_t *p = r + len;
        memset(p, 0, 11);
        p[0] = 1;               /* session */
        p[1] = 0x14;
        p[3] = points[i];
        if (points[i] == 0xa0) {
            p[8] = 1;           /* first track */
            p[9] = 0x00;        /* disc type: CD-DA or CD-ROM */
        } else if (points[i] == 0xa1) {
            p[8] = 1;           /* last track */
        } else {
            lba_to_msf(p + 7, points[i] == 0xa2 ? a->sectors : 0);
        }
        len += 11;
    }
    return len;
}

static void read_toc(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a)) {
        not_ready(a);
        return;
    }
    bool msf = cdb[1] & 2;
    uint8_t format = cdb[2] & 0x0f;
    if (!format)
        format = cdb[9] >> 6;   /* the older place of the format (SFF-8020) */
    uint32_t len;
    switch (format) {
    case 0:
        if (cdb[6] > 1 && cdb[6] != LEAD_OUT_TRACK) {
            illegal(a, ASC_INVALID_FIELD);
            return;
        }
        len = toc_tracks(a, cdb[6], msf);
        break;
    case 1:
        len = toc_sessions(a, msf);
        break;
    case 2:
        len = toc_raw(a);
        break;
    default:
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    put16(a->reply, (uint16_t)(len - 2));
    a->reply[2] = 1;            /* first track (session for format 1 and 2) */
    a->reply[3] = 1;            /* last */
    reply_in(a, len, be16(cdb + 7));
}

static void read_subchannel(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a)) {
        not_ready(a);
        return;
    }
    bool msf = cdb[1] & 2, subq = cdb[2] & 0x40;
    uint8_t format = cdb[3];
    uint8_t *r = a->reply;
    memset(r, 0, 24);
    r[1] = 0x15;                /* audio status: none to report */
    uint32_t len = 4;
    if (subq) {
        switch (format) {
        case 1:                 /* current position: the start of track 1 */
            r[4] = 1;
            r[5] = 0x14;
            r[6] = 1;
            r[7] = 1;
            put_address(r + 8, 0, msf);
            /* the track-relative address: 0 in either form */
            len = 16;
            break;
        case 2:                 /* media catalogue number: none (MCVal 0) */
        case 3:                 /* track's ISRC: none (TCVal 0) */
            r[4] = format;
            len = 24;
            break;
        default:
            illegal(a, ASC_INVALID_FIELD);
            return;
        }
    }
    put16(r + 2, (uint16_t)(len - 4));
    reply_in(a, len, be16(cdb + 7));
}

static void read_disc_information(struct atapi *a, const uint8_t *cdb)
{
    if (cdb[1] & 7) {
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    if (!medium_ready(a)) {
        not_ready(a);
        return;
    }
    uint8_t *r = a->reply;
    memset(r, 0, 34);
    put16(r, 32);
    r[2] = 0x0e;                /* last session complete, disc complete */
    r[3] = 1;                   /* first track */
    r[4] = 1;                   /* sessions */
    r[5] = 1;                   /* first track of the last session */
    r[6] = 1;                   /* last track of the last session */
    r[8] = 0x00;                /* CD-DA or CD-ROM */
    put32(r + 16, 0xffffffffu); /* no lead-in for a next session */
    put32(r + 20, 0xffffffffu);
    reply_in(a, 34, be16(cdb + 7));
}

static void read_track_information(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a)) {
        not_ready(a);
        return;
    }
    uint32_t which = be32(cdb + 2);
    switch (cdb[1] & 3) {
    case 0:                     /* by LBA */
        if (which >= a->sectors) {
            illegal(a, ASC_LBA_OUT_OF_RANGE);
            return;
        }
        break;
    case 1:                     /* by track number */
        if (which != 1) {
            illegal(a, ASC_INVALID_FIELD);
            return;
        }
        break;
    default:
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    uint8_t *r = a->reply;
    memset(r, 0, 36);
    put16(r, 34);
    r[2] = 1;                   /* track */
    r[3] = 1;                   /* session */
    r[5] = 0x04;                /* data track, recorded uninterrupted */
    r[6] = 0x01;                /* data mode 1 */
    put32(r + 8, 0);            /* start */
    put32(r + 24, a->sectors);  /* size */
    reply_in(a, 36, be16(cdb + 7));
}

/* ---- mode pages ---- */

static uint32_t page_error_recovery(uint8_t *p)
{
    memset(p, 0, 8);
    p[0] = 0x01;
    p[1] = 6;
    p[3] = 5;                   /* read retry count */
    return 8;
}

static uint32_t page_cd_parameters(uint8_t *p)
{
    memset(p, 0, 8);
    p[0] = 0x0d;
    p[1] = 6;
    p[5] = 60;                  /* seconds per minute */
    p[7] = 75;                  /* frames per second */
    return 8;
}

static uint32_t page_audio_control(uint8_t *p)
{
    memset(p, 0, 16);
    p[0] = 0x0e;
    p[1] = 14;
    p[2] = 0x04;                /* immediate */
    p[8] = 1;                   /* port 0: channel 0 at full volume */
    p[9] = 0xff;
    p[10] = 2;                  /* port 1: channel 1 */
    p[11] = 0xff;
    return 16;
}

static uint32_t page_power_condition(uint8_t *p)
{
    memset(p, 0, 12);
    p[0] = 0x1a;
    p[1] = 10;
    return 12;
}

static uint32_t page_capabilities(const struct atapi *a, uint8_t *p)
{
    memset(p, 0, 22);
    p[0] = 0x2a;
    p[1] = 20;
    p[2] = 0x03;                /* reads CD-R and CD-RW */
    p[4] = 0x71;                /* audio play, composite, digital ports 1 and 2 */
    p[5] = 0x5b;                /* CD-DA commands, accurate stream, UPC, ISRC */
    p[6] = 0x29 | (a->locked ? 0x02 : 0);   /* lock, eject, tray loader; lock state */
    p[7] = 0x03;                /* separate volume and mute per channel */
    put16(p + 8, 5644);         /* maximum speed, kB/s (32x) */
    put16(p + 10, 256);         /* volume levels */
    put16(p + 12, 512);         /* buffer, KiB */
    put16(p + 14, 5644);        /* current speed */
    return 22;
}

static uint32_t mode_page(const struct atapi *a, uint8_t code, uint8_t *p)
{
    switch (code) {
    case 0x01: return page_error_recovery(p);
    case 0x0d: return page_cd_parameters(p);
    case 0x0e: return page_audio_control(p);
    case 0x1a: return page_power_condition(p);
    case 0x2a: return page_capabilities(a, p);
    default: return 0;
    }
}

/* Medium type in the mode parameter header (SFF-8020). */
static uint8_t medium_type(const struct atapi *a)
{
    if (a->tray_open)
        return 0x71;            /* door open */
    if (!a->bd)
        return 0x70;            /* door closed, no disc */
    return 0x01;                /* 120 mm CD-ROM, data only */
}

static void mode_sense(struct atapi *a, const uint8_t *cdb, bool ten)
{
    uint8_t control = cdb[2] >> 6, code = cdb[2] & 0x3f;
    if (control == 3) {
        illegal(a, ASC_SAVING_NOT_SUPPORTED);
        return;
    }
    uint8_t *r = a->reply;
    uint32_t header = ten ? 8 : 4, len = header;
    memset(r, 0, header);
    if (code == 0x3f) {
        static const uint8_t all[] = { 0x01, 0x0d, 0x0e, 0x1a, 0x2a };
        for (size_t i = 0; i < sizeof(all); i++)
            len += mode_page(a, all[i], r + len);
    } else {
        uint32_t n = mode_page(a, code, r + len);
        if (!n) {
            illegal(a, ASC_INVALID_FIELD);
            return;
        }
        len += n;
    }
    /* Changeable values: none of ours is; the page shapes stay. */
    if (control == 1)
        for (uint32_t i = header; i < len; i += r[i + 1] + 2)
            memset(r + i + 2, 0, r[i + 1]);
    if (ten) {
        put16(r, (uint16_t)(len - 2));
        r[2] = medium_type(a);
        reply_in(a, len, be16(cdb + 7));
    } else {
        r[0] = (uint8_t)(len - 1);
        r[1] = medium_type(a);
        reply_in(a, len, cdb[4]);
    }
}

static void mode_select(struct atapi *a, const uint8_t *cdb, bool ten)
{
    if (cdb[1] & 1) {           /* save pages: there is nowhere to save them */
        illegal(a, ASC_SAVING_NOT_SUPPORTED);
        return;
    }
    a->out_left = ten ? be16(cdb + 7) : cdb[4];
}

/* ---- the tray ---- */

static void close_tray(struct atapi *a)
{
    if (!a->tray_open)
        return;
    a->tray_open = false;
    if (a->bd) {
        a->unit_attention = true;
        a->media_event = EV_NEW_MEDIA;
    }
}

static void open_tray(struct atapi *a)
{
    if (a->tray_open)
        return;
    a->tray_open = true;
    a->stretch_count = 0;
    a->medium_gen++;
    a->media_event = EV_MEDIA_REMOVAL;
}

static void start_stop_unit(struct atapi *a, const uint8_t *cdb)
{
    bool load_eject = cdb[4] & 2, start = cdb[4] & 1;
    if ((cdb[4] >> 4) != 0 || !load_eject)
        return;                 /* power conditions and spin up/down: nothing to do */
    if (start) {
        close_tray(a);
        return;
    }
    if (a->locked) {
        illegal(a, ASC_REMOVAL_PREVENTED);
        return;
    }
    open_tray(a);
}

static void prevent_allow(struct atapi *a, const uint8_t *cdb)
{
    a->locked = cdb[4] & 1;
}

static void mechanism_status(struct atapi *a, const uint8_t *cdb)
{
    uint8_t *r = a->reply;
    memset(r, 0, 8);
    r[1] = a->tray_open ? 0x10 : 0;
    reply_in(a, 8, be16(cdb + 8));
}

/* ---- GET CONFIGURATION ---- */

static uint32_t feature_header(uint8_t *p, uint16_t code, uint8_t version, bool current, uint8_t len)
{
    bool persistent = code <= 0x0003;   /* profile list, core, morphing, removable medium */
    put16(p, code);
    p[2] = (uint8_t)(version << 2 | (persistent ? 0x02 : 0) | (current ? 1 : 0));
    p[3] = len;
    return 4;
}

/* One feature descriptor at p; returns its length.  *current tells whether
 * the feature is current (applies to the disc in the drive). */
static uint32_t feature(const struct atapi *a, uint16_t code, uint8_t *p, bool *current)
{
    bool disc = medium_ready(a);
    switch (code) {
    case 0x0000:                /* profile list: CD-ROM only */
        *current = true;
        feature_header(p, code, 0, true, 4);
        put16(p + 4, PROFILE_CDROM);
        p[6] = disc ? 1 : 0;
        p[7] = 0;
        return 8;
    case 0x0001:                /* core: ATAPI */
        *current = true;
        feature_header(p, code, 0, true, 8);
        put32(p + 4, 2);
        memset(p + 8, 0, 4);
        return 12;
    case 0x0002:                /* morphing: no asynchronous events, polled GESN */
        *current = true;
        feature_header(p, code, 0, true, 4);
        memset(p + 4, 0, 4);
        return 8;
    case 0x0003:                /* removable medium: tray, eject, lock */
        *current = true;
        feature_header(p, code, 0, true, 4);
        p[4] = 0x29;
        memset(p + 5, 0, 3);
        return 8;
    case 0x0010:                /* random readable */
        *current = disc;
        feature_header(p, code, 0, disc, 8);
        put32(p + 4, ATAPI_SECTOR);
        put16(p + 8, 1);
        p[10] = 0;
        p[11] = 0;
        return 12;
    case 0x001e:                /* CD read */
        *current = disc;
        feature_header(p, code, 0, disc, 4);
        memset(p + 4, 0, 4);
        return 8;
    default:
        return 0;
    }
}

static void get_configuration(struct atapi *a, const uint8_t *cdb)
{
    static const uint16_t codes[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e };
    uint8_t rt = cdb[1] & 3;
    uint16_t start = be16(cdb + 2);
    if (rt == 3) {
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    uint8_t *r = a->reply;
    memset(r, 0, 8);
    uint32_t len = 8;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i] < start || (rt == 2 && codes[i] != start))
            continue;
        bool current = false;
        uint32_t n = feature(a, codes[i], r + len, &current);
        if (rt == 1 && !current)
            continue;
        len += n;
    }
    put32(r, len - 4);
    put16(r + 6, medium_ready(a) ? PROFILE_CDROM : 0);
    reply_in(a, len, be16(cdb + 7));
}

/* ---- GET EVENT STATUS NOTIFICATION (polled) ---- */

static void get_event_status(struct atapi *a, const uint8_t *cdb)
{
    if (!(cdb[1] & 1)) {        /* asynchronous operation is not supported */
        illegal(a, ASC_INVALID_FIELD);
        return;
    }
    uint8_t *r = a->reply;
    memset(r, 0, 8);
    r[3] = 0x10;                /* supported classes: media */
    if (!(cdb[4] & 0x10)) {
        r[2] = 0x80;            /* no event available in the classes asked */
        put16(r, 2);
        reply_in(a, 4, be16(cdb + 7));
        return;
    }
    r[2] = 0x04;                /* media class */
    put16(r, 6);
    r[4] = a->media_event;
    r[5] = (a->tray_open ? 0x01 : 0) | (a->bd && !a->tray_open ? 0x02 : 0);
    a->media_event = EV_NONE;
    reply_in(a, 8, be16(cdb + 7));
}

/* ---- dispatch ---- */

/* Commands a drive answers even while a unit attention is pending. */
static bool ignores_unit_attention(uint8_t op)
{
    return op == 0x03 || op == 0x12 || op == 0x46 || op == 0x4a;
}

static void audio_refused(struct atapi *a, const uint8_t *cdb)
{
    if (!medium_ready(a))
        not_ready(a);
    else
        illegal(a, ASC_ILLEGAL_MODE_FOR_TRACK);
}

static void nothing_to_do(struct atapi *a, const uint8_t *cdb)
{
}

static void dispatch(struct atapi *a, const uint8_t *cdb)
{
    switch (cdb[0]) {
    case 0x00: test_unit_ready(a, cdb); break;
    case 0x03: request_sense(a, cdb); break;
    case 0x12: inquiry(a, cdb); break;
    case 0x15: mode_select(a, cdb, false); break;
    case 0x55: mode_select(a, cdb, true); break;
    case 0x1a: mode_sense(a, cdb, false); break;
    case 0x5a: mode_sense(a, cdb, true); break;
    case 0x1b: start_stop_unit(a, cdb); break;
    case 0x1e: prevent_allow(a, cdb); break;
    case 0x25: read_capacity(a, cdb); break;
    case 0x28: read10(a, cdb); break;
    case 0xa8: read12(a, cdb); break;
    case 0xbe: read_cd(a, cdb); break;
    case 0x2b: seek10(a, cdb); break;
    case 0x42: read_subchannel(a, cdb); break;
    case 0x43: read_toc(a, cdb); break;
    case 0x46: get_configuration(a, cdb); break;
    case 0x4a: get_event_status(a, cdb); break;
    case 0x51: read_disc_information(a, cdb); break;
    case 0x52: read_track_information(a, cdb); break;
    case 0xbd: mechanism_status(a, cdb); break;
    case 0x45: case 0x47: case 0xa5: audio_refused(a, cdb); break;   /* PLAY AUDIO (10), MSF, (12) */
    case 0x4b: case 0x4e:                                            /* PAUSE/RESUME, STOP PLAY/SCAN */
    case 0xbb: case 0xb6:                                            /* SET CD SPEED, SET STREAMING */
    case 0x35: case 0x01:                                            /* SYNCHRONIZE CACHE, REZERO */
        nothing_to_do(a, cdb);
        break;
    default:
        illegal(a, ASC_INVALID_OPCODE);
        break;
    }
}

void atapi_packet(struct atapi *a, const uint8_t cdb[ATAPI_PACKET_SIZE])
{
    a->failed = false;
    a->in_left = 0;
    a->out_left = 0;
    if (a->unit_attention && !ignores_unit_attention(cdb[0])) {
        a->unit_attention = false;
        check_condition(a, SENSE_UNIT_ATTENTION, ASC_MEDIUM_CHANGED);
        return;
    }
    if (cdb[0] == 0x03 && a->unit_attention) {
        /* REQUEST SENSE is how a driver learns of the attention without
         * first failing a command: it reports it and clears it. */
        a->unit_attention = false;
        set_sense(a, SENSE_UNIT_ATTENTION, ASC_MEDIUM_CHANGED);
    } else if (cdb[0] != 0x03) {
        set_sense(a, SENSE_NONE, 0, 0);
    }
    dispatch(a, cdb);
}

/* ---- resets ---- */

void atapi_soft_reset(struct atapi *a)
{
    a->failed = false;
    a->in_left = 0;
    a->out_left = 0;
}

void atapi_power_on(struct atapi *a)
{
    atapi_soft_reset(a);
    a->locked = false;
    a->unit_attention = false;
    a->media_event = EV_NONE;
    set_sense(a, SENSE_NONE, 0, 0);
    /* A machine reset closes an open tray, as a drive's power cycle does. */
    a->tray_open = false;
}

/* ---- media ---- */

/* The read cache holds what the image had: the disk state a snapshot
 * brings back may differ, so it is read again. */
static void atapi_post_load(void *opaque)
{
    struct atapi *a = opaque;
    a->stretch_count = 0;
}

static const struct state_field atapi_fields[] = {
    STATE_FIELD(struct atapi, tray_open), STATE_FIELD(struct atapi, locked),
    STATE_FIELD(struct atapi, unit_attention), STATE_FIELD(struct atapi, media_event),
    STATE_FIELD(struct atapi, medium_gen), STATE_FIELD(struct atapi, key), STATE_FIELD(struct atapi, asc),
    STATE_FIELD(struct atapi, ascq), STATE_FIELD(struct atapi, failed), STATE_FIELD(struct atapi, in_left),
    STATE_FIELD(struct atapi, out_left), STATE_FIELD(struct atapi, from_disc), STATE_FIELD(struct atapi, disc_pos),
    STATE_FIELD(struct atapi, read_gen), STATE_FIELD(struct atapi, reply_pos), STATE_FIELD(struct atapi, reply),
};
static const struct state_table atapi_state = { "atapi", 1, atapi_fields, STATE_COUNT(atapi_fields), atapi_post_load };

const struct state_table *atapi_state_table(void)
{
    return &atapi_state;
}

struct atapi *atapi_new(void)
{
    struct atapi *a = xcalloc(1, sizeof(*a));
    return a;
}

static void drop_medium(struct atapi *a)
{
    if (a->bd)
        blockdev_close(a->bd);
    free(a->path);
    a->bd = NULL;
    a->path = NULL;
    a->sectors = 0;
    a->stretch_count = 0;
    a->medium_gen++;
}

void atapi_free(struct atapi *a)
{
    if (!a)
        return;
    drop_medium(a);
    free(a);
}

static bool refuse_if_locked(struct atapi *a, bool force, char *err, size_t errlen)
{
    if (!a->locked || force)
        return false;
    a->media_event = EV_EJECT_REQUEST;
    snprintf(err, errlen, "the guest has locked the CD-ROM tray (it was asked to release the disc)");
    return true;
}

int atapi_insert(struct atapi *a, const char *path, bool force, char *err, size_t errlen)
{
    if (refuse_if_locked(a, force, err, errlen))
        return -1;
    char why[512];
    struct blockdev *bd = blockdev_open(path, true, false, why, sizeof(why));
    if (!bd) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    uint64_t bytes = blockdev_size(bd);
    if (bytes < ATAPI_SECTOR) {
        snprintf(err, errlen, "%s: %llu bytes is less than one 2048-byte CD sector", path,
                 (unsigned long long)bytes);
        blockdev_close(bd);
        return -1;
    }
    /* blockdev has already cut (and reported) a tail short of 512 bytes. */
    struct stat st;
    uint64_t file_bytes = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : bytes;
    if (bytes % ATAPI_SECTOR)
        fprintf(stderr, "retrovisor: warning: %s: size %llu is not a multiple of 2048; the last %llu bytes are ignored\n",
                path, (unsigned long long)file_bytes, (unsigned long long)(file_bytes % ATAPI_SECTOR));
    drop_medium(a);
    a->bd = bd;
    a->path = xmalloc(strlen(path) + 1);
    strcpy(a->path, path);
    uint64_t sectors = bytes / ATAPI_SECTOR;
    a->sectors = sectors > 0xffffffffu ? 0xffffffffu : (uint32_t)sectors;
    a->tray_open = true;        /* the disc goes in through the tray... */
    close_tray(a);              /* ...which closes: unit attention, new media */
    return 0;
}

int atapi_eject(struct atapi *a, bool force, char *err, size_t errlen)
{
    if (refuse_if_locked(a, force, err, errlen))
        return -1;
    if (force)
        a->locked = false;
    open_tray(a);
    drop_medium(a);
    return 0;
}

bool atapi_has_medium(const struct atapi *a) { return a->bd != NULL; }
bool atapi_tray_open(const struct atapi *a) { return a->tray_open; }
bool atapi_locked(const struct atapi *a) { return a->locked; }
const char *atapi_medium_path(const struct atapi *a) { return a->path; }
uint32_t atapi_medium_sectors(const struct atapi *a) { return a->sectors; }
