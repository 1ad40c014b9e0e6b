/*
 * PIIX3 IDE (see ide.h).
 *
 * Register model.  Each drive keeps its own task file, as real drives do:
 * the host's writes to the command block land in both drives of a channel,
 * but a drive updates only its own copy when it completes a command or a
 * reset (so an ATA master and an ATAPI slave show different signatures).
 * Reads come from the selected drive.  When the selected drive is absent
 * and the other one present, the present drive answers for it (ATA's
 * "device 0 responds for device 1"), except that Status and Alternate
 * Status read 0: that is what SeaBIOS and Linux (ata_sff_dev_classify)
 * take as "no device".  A channel without drives reads 0 everywhere.
 *
 * The LBA48 registers are two-deep FIFOs: each write pushes the previous
 * value into the "high order byte" copy, which reads back while HOB is set
 * in the Device Control register.
 *
 * Interrupts.  A drive's INTRQ is a latch: set when the command reaches a
 * point where the host must act (a PIO block ready, a PIO block consumed,
 * completion), cleared by reading Status, by writing Command, and by reset.
 * The channel's IRQ line is the selected drive's INTRQ gated by nIEN.  The
 * PIIX copies every rising edge of the line into the bus-master Interrupt
 * bit, for PIO commands too.
 *
 * Bus master.  A DMA command parks the drive with DRQ set until the guest
 * sets Start in the bus-master command register (Linux issues the command
 * first, other drivers may start first: either order works), then the whole
 * transfer happens at once through the PRD table and the command completes.
 *
 * Reads from the image.  A PIO read takes the image a 128 KiB stretch at a
 * time (read_ahead), since without READ MULTIPLE each sector is its own DRQ
 * block; any write drops the stretch.
 */
#include "devices/ide.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/atapi.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "devices/pci.h"
#include "hosted-driver/blockdev.h"
#include "hosted-driver/xalloc.h"

#define SECTOR 512

/* Status register */
#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DSC 0x10
#define ST_DRDY 0x40
#define ST_BSY 0x80
#define ST_IDLE (ST_DRDY | ST_DSC)

/* Error register */
#define ER_ABRT 0x04
#define ER_IDNF 0x10
#define ER_UNC 0x40
#define ER_DIAG_PASSED 0x01

/* Device Control register */
#define DC_NIEN 0x02
#define DC_SRST 0x04
#define DC_HOB 0x80

/* Device/Head register */
#define DEV_SLAVE 0x10
#define DEV_LBA 0x40

/* Bus-master registers (SFF-8038i as implemented by the PIIX) */
#define BM_CMD_START 0x01
#define BM_CMD_TO_MEMORY 0x08
#define BM_ST_ACTIVE 0x01
#define BM_ST_ERROR 0x02
#define BM_ST_INTR 0x04
#define BM_ST_DRIVE_DMA 0x60     /* "drive 0/1 DMA capable": scratch bits for the BIOS */
#define BM_PRD_EOT 0x80000000u
/* A PRD table may not cross a 64 KiB boundary, so it holds at most 8192 entries. */
#define BM_MAX_PRD 8192

#define MAX_MULTIPLE 16
/* Without READ MULTIPLE a PIO read moves one sector per DRQ block, and a
 * read of the image per sector cost a system call each (15k while the
 * BIOS loads a Linux kernel): the drive reads ahead instead. */
#define READ_AHEAD_SECTORS 256
#define DMA_CHUNK_SECTORS 128
#define LBA28_LIMIT 0x0fffffffull
#define LBA48_LIMIT 0xffffffffffffull

/* PCI config: IDE timing registers. */
#define PCI_IDETIM_PRI 0x40
#define PCI_IDETIM_SEC 0x42
#define PCI_SIDETIM 0x44
#define IDETIM_DECODE_ENABLE 0x8000

enum drive_kind {
    DRIVE_NONE,
    DRIVE_DISK,
    DRIVE_CDROM,        /* ATAPI: signature 14h/EBh, IDENTIFY PACKET DEVICE, PACKET (devices/atapi.c) */
};

/* Where a PACKET command is: receiving its 12 bytes, or moving its data. */
enum packet_phase { PKT_NONE, PKT_COMMAND, PKT_DATA_IN, PKT_DATA_OUT };

/* Interrupt reason, in the Sector Count register during PACKET */
#define IR_COD 0x01     /* command packet or status, not data */
#define IR_IO 0x02      /* to the host */
/* Features register bits of PACKET */
#define PKT_FEAT_DMA 0x01

/* A packet data block is at most the byte count limit, 0xFFFE. */
#define PACKET_BLOCK_MAX 0x10000

enum xfer { XFER_IDLE, XFER_PIO_IN, XFER_PIO_OUT, XFER_DMA };
enum addressing { ADDR_CHS, ADDR_LBA28, ADDR_LBA48 };

struct taskfile {
    uint8_t feature, count, lbal, lbam, lbah;
    uint8_t hob_feature, hob_count, hob_lbal, hob_lbam, hob_lbah;
    uint8_t device;
};

struct drive {
    enum drive_kind kind;
    struct blockdev *bd;
    struct atapi *cd;               /* DRIVE_CDROM: the packet command layer and its disc */
    char cd_name[16];               /* its registry name, for snapshots */
    uint64_t sectors;
    int number;                     /* 1-4, for the serial number */
    bool io_error_logged;

    struct taskfile tf;
    uint8_t status, error;
    bool intrq;

    uint16_t cyls, heads, spt;              /* default geometry */
    uint16_t cur_cyls, cur_heads, cur_spt;  /* INITIALIZE DEVICE PARAMETERS */
    uint8_t multiple;                       /* sectors per block, 0 = disabled */
    bool write_cache, look_ahead;
    uint8_t xfer_mode;                      /* SET FEATURES 03h value */

    struct {
        enum xfer kind;
        bool disk_data;             /* false: IDENTIFY data in buf */
        bool write, fua;
        enum addressing addr;
        uint64_t lba;               /* next sector to transfer */
        uint32_t remaining;         /* sectors */
        uint32_t block;             /* sectors per DRQ block */
        uint32_t pos, len;          /* bytes in buf */
        enum packet_phase packet;
        bool dma;                   /* PACKET's data moves by bus-master DMA */
        uint16_t byte_limit;        /* PACKET's byte count limit for PIO blocks */
    } x;
    uint8_t buf[PACKET_BLOCK_MAX];  /* a PIO block: at most 16 sectors, or a packet's block */
    /* PIO reads come from the image a stretch at a time (see read_ahead):
     * sectors ahead_lba .. ahead_lba + ahead_count - 1, dropped by any write. */
    uint64_t ahead_lba;
    uint32_t ahead_count;
    uint8_t ahead[READ_AHEAD_SECTORS * SECTOR];
};

struct channel {
    struct ide *ide;
    int irq;
    struct drive drive[2];
    int sel;
    uint8_t devctl;
    bool line;
    uint8_t bm_cmd, bm_status;
    uint32_t bm_prd;
};

struct ide {
    struct bus *bus;
    struct pci_dev pci;
    guest_phys_rw_fn rw;
    void *rw_opaque;
    struct channel ch[2];
    uint32_t bm_base;
    uint8_t dma_buf[DMA_CHUNK_SECTORS * SECTOR];
};

static const struct {
    uint16_t cmd, ctl;
    int irq;
} legacy[2] = { { 0x1f0, 0x3f6, 14 }, { 0x170, 0x376, 15 } };

static uint32_t ones(int size)
{
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static bool present(const struct drive *d)
{
    return d->kind != DRIVE_NONE;
}

static struct drive *selected(struct channel *c)
{
    return &c->drive[c->sel];
}

/* ---- interrupts ---- */

static void update_irq(struct channel *c)
{
    struct drive *d = selected(c);
    bool level = present(d) && d->intrq && !(c->devctl & DC_NIEN);
    if (level && !c->line)
        c->bm_status |= BM_ST_INTR;
    if (level != c->line) {
        c->line = level;
        irq_set(c->ide->bus, c->irq, level);
    }
}

static void raise_irq(struct channel *c, struct drive *d)
{
    d->intrq = true;
    update_irq(c);
}

static void lower_irq(struct channel *c, struct drive *d)
{
    d->intrq = false;
    update_irq(c);
}

/* ---- command endings ---- */

static void complete(struct channel *c, struct drive *d)
{
    d->x.kind = XFER_IDLE;
    d->status = ST_IDLE;
    raise_irq(c, d);
}

static void fail(struct channel *c, struct drive *d, uint8_t error)
{
    d->x.kind = XFER_IDLE;
    d->error = error;
    d->status = ST_IDLE | ST_ERR;
    raise_irq(c, d);
}

static void log_io_error_once(struct drive *d, const char *what, uint64_t lba, int err)
{
    if (d->io_error_logged)
        return;
    d->io_error_logged = true;
    fprintf(stderr, "retrovisor: ide: %s: %s error at sector %llu: %s\n", blockdev_path(d->bd), what,
            (unsigned long long)lba, strerror(-err));
}

/* ---- addresses ---- */

static uint32_t sector_count(const struct taskfile *t, bool ext)
{
    if (ext) {
        uint32_t n = (uint32_t)t->hob_count << 8 | t->count;
        return n ? n : 65536;
    }
    return t->count ? t->count : 256;
}

static enum addressing addressing_of(const struct taskfile *t, bool ext)
{
    if (ext)
        return ADDR_LBA48;
    return (t->device & DEV_LBA) ? ADDR_LBA28 : ADDR_CHS;
}

/* The first sector a command names; false if its CHS address is invalid. */
static bool decode_address(const struct drive *d, enum addressing a, uint64_t *lba)
{
    const struct taskfile *t = &d->tf;
    switch (a) {
    case ADDR_LBA48:
        *lba = (uint64_t)t->hob_lbah << 40 | (uint64_t)t->hob_lbam << 32 | (uint64_t)t->hob_lbal << 24 |
               (uint32_t)t->lbah << 16 | (uint32_t)t->lbam << 8 | t->lbal;
        return true;
    case ADDR_LBA28:
        *lba = (uint32_t)(t->device & 0x0f) << 24 | (uint32_t)t->lbah << 16 | (uint32_t)t->lbam << 8 | t->lbal;
        return true;
    case ADDR_CHS: {
        uint32_t cyl = (uint32_t)t->lbah << 8 | t->lbam;
        uint32_t head = t->device & 0x0f, sect = t->lbal;
        if (sect < 1 || sect > d->cur_spt || head >= d->cur_heads || cyl >= d->cur_cyls)
            return false;
        *lba = ((uint64_t)cyl * d->cur_heads + head) * d->cur_spt + sect - 1;
        return true;
    }
    }
    return false;
}

/* Leave `lba` in the address registers, in the command's addressing form:
 * the last sector transferred on success, the failing one on error. */
static void report_address(struct drive *d, enum addressing a, uint64_t lba)
{
    struct taskfile *t = &d->tf;
    switch (a) {
    case ADDR_LBA48:
        t->hob_lbah = lba >> 40;
        t->hob_lbam = lba >> 32;
        t->hob_lbal = lba >> 24;
        /* fall through */
    case ADDR_LBA28:
        t->lbah = lba >> 16;
        t->lbam = lba >> 8;
        t->lbal = lba;
        if (a == ADDR_LBA28)
            t->device = (t->device & 0xf0) | ((lba >> 24) & 0x0f);
        break;
    case ADDR_CHS: {
        uint32_t per_cyl = (uint32_t)d->cur_heads * d->cur_spt;
        uint64_t cyl = lba / per_cyl;
        uint32_t rest = lba % per_cyl;
        t->lbah = cyl >> 8;
        t->lbam = cyl;
        t->device = (t->device & 0xf0) | (rest / d->cur_spt);
        t->lbal = rest % d->cur_spt + 1;
        break;
    }
    }
}

/*
 * Decode and check a read/write command's range, filling d->x.  On a bad
 * address the command fails with IDNF and false is returned.
 */
static bool setup_transfer(struct channel *c, struct drive *d, bool ext, bool write)
{
    enum addressing a = addressing_of(&d->tf, ext);
    uint64_t lba;
    uint32_t n = sector_count(&d->tf, ext);
    if (!decode_address(d, a, &lba) || lba >= d->sectors || n > d->sectors - lba) {
        fail(c, d, ER_IDNF);
        return false;
    }
    memset(&d->x, 0, sizeof(d->x));
    d->x.addr = a;
    d->x.lba = lba;
    d->x.remaining = n;
    d->x.write = write;
    d->x.disk_data = true;
    return true;
}

/* Make a completed write durable when the guest cannot rely on a later FLUSH. */
static int settle_write(struct drive *d)
{
    if (d->x.fua || !d->write_cache)
        return blockdev_flush(d->bd);
    return 0;
}

/* The PACKET protocol's ends of the PIO and DMA paths (below). */
static void packet_in_block_done(struct channel *c, struct drive *d);
static void packet_out_block_done(struct channel *c, struct drive *d);
static void run_packet_dma(struct channel *c, struct drive *d);

/* ---- PIO ---- */

static void expose_block(struct channel *c, struct drive *d, uint32_t bytes)
{
    d->x.pos = 0;
    d->x.len = bytes;
    d->status = ST_IDLE | ST_DRQ;
}

static uint32_t next_block_sectors(const struct drive *d)
{
    return d->x.remaining < d->x.block ? d->x.remaining : d->x.block;
}

/* n sectors from lba into buf, through the read-ahead stretch. */
static int read_ahead(struct drive *d, uint64_t lba, uint32_t n, uint8_t *buf)
{
    if (lba < d->ahead_lba || lba + n > d->ahead_lba + d->ahead_count) {
        uint64_t left = d->sectors > lba ? d->sectors - lba : 0;
        uint32_t want = left < READ_AHEAD_SECTORS ? (uint32_t)left : READ_AHEAD_SECTORS;
        d->ahead_count = 0;
        /* A failing stretch is read again as just these sectors: an error
         * belongs to the block that holds the bad sector. */
        if (want < n || blockdev_read(d->bd, lba * SECTOR, d->ahead, (size_t)want * SECTOR) < 0)
            return blockdev_read(d->bd, lba * SECTOR, buf, (size_t)n * SECTOR);
        d->ahead_lba = lba;
        d->ahead_count = want;
    }
    memcpy(buf, d->ahead + (lba - d->ahead_lba) * SECTOR, (size_t)n * SECTOR);
    return 0;
}

/* Write to the image; the read-ahead stretch may hold older sectors: it goes. */
static int write_image(struct drive *d, uint64_t lba, const uint8_t *buf, size_t bytes)
{
    d->ahead_count = 0;
    return blockdev_write(d->bd, lba * SECTOR, buf, bytes);
}

/* Read the next block from the image and interrupt: data is ready. */
static void load_read_block(struct channel *c, struct drive *d)
{
    uint32_t n = next_block_sectors(d);
    int r = read_ahead(d, d->x.lba, n, d->buf);
    if (r < 0) {
        log_io_error_once(d, "read", d->x.lba, r);
        report_address(d, d->x.addr, d->x.lba);
        fail(c, d, ER_UNC);
        return;
    }
    d->x.kind = XFER_PIO_IN;
    expose_block(c, d, n * SECTOR);
    raise_irq(c, d);
}

static void start_pio(struct channel *c, struct drive *d, bool ext, bool write, bool multiple, bool fua)
{
    if (multiple && !d->multiple) {
        fail(c, d, ER_ABRT);
        return;
    }
    if (write && blockdev_readonly(d->bd)) {
        fail(c, d, ER_ABRT);
        return;
    }
    if (!setup_transfer(c, d, ext, write))
        return;
    d->x.block = multiple ? d->multiple : 1;
    d->x.fua = fua;
    if (write) {
        /* The first block of a write is requested without an interrupt. */
        d->x.kind = XFER_PIO_OUT;
        expose_block(c, d, next_block_sectors(d) * SECTOR);
    } else {
        load_read_block(c, d);
    }
}

static void pio_in_block_done(struct channel *c, struct drive *d)
{
    if (d->x.packet != PKT_NONE) {
        packet_in_block_done(c, d);
        return;
    }
    if (!d->x.disk_data) {
        d->x.kind = XFER_IDLE;
        d->status = ST_IDLE;
        return;
    }
    uint32_t n = d->x.len / SECTOR;
    d->x.lba += n;
    d->x.remaining -= n;
    if (d->x.remaining) {
        load_read_block(c, d);
        return;
    }
    /* After the last block of a read there is no interrupt: the host reads Status. */
    report_address(d, d->x.addr, d->x.lba - 1);
    d->x.kind = XFER_IDLE;
    d->status = ST_IDLE;
}

static void pio_out_block_done(struct channel *c, struct drive *d)
{
    if (d->x.packet != PKT_NONE) {
        packet_out_block_done(c, d);
        return;
    }
    uint32_t n = d->x.len / SECTOR;
    int r = write_image(d, d->x.lba, d->buf, d->x.len);
    if (r < 0) {
        log_io_error_once(d, "write", d->x.lba, r);
        report_address(d, d->x.addr, d->x.lba);
        fail(c, d, ER_ABRT);
        return;
    }
    d->x.lba += n;
    d->x.remaining -= n;
    if (d->x.remaining) {
        expose_block(c, d, next_block_sectors(d) * SECTOR);
        raise_irq(c, d);
        return;
    }
    r = settle_write(d);
    report_address(d, d->x.addr, d->x.lba - 1);
    if (r < 0) {
        log_io_error_once(d, "flush", d->x.lba - 1, r);
        fail(c, d, ER_ABRT);
        return;
    }
    complete(c, d);
}

static uint32_t data_read(struct channel *c, int size)
{
    struct drive *d = selected(c);
    if (!present(d) || d->x.kind != XFER_PIO_IN)
        return ones(size);
    uint32_t v = 0;
    for (int i = 0; i < size && d->x.pos < d->x.len; i++)
        v |= (uint32_t)d->buf[d->x.pos++] << (8 * i);
    if (d->x.pos >= d->x.len)
        pio_in_block_done(c, d);
    return v;
}

static void data_write(struct channel *c, uint32_t v, int size)
{
    struct drive *d = selected(c);
    if (!present(d) || d->x.kind != XFER_PIO_OUT)
        return;
    for (int i = 0; i < size && d->x.pos < d->x.len; i++)
        d->buf[d->x.pos++] = v >> (8 * i);
    if (d->x.pos >= d->x.len)
        pio_out_block_done(c, d);
}

/* ---- bus-master DMA ---- */

enum dma_result { DMA_OK, DMA_BUS_ERROR, DMA_TABLE_SHORT };

struct prd_cursor {
    uint32_t table;         /* next entry's guest-physical address */
    uint32_t addr, left;    /* current entry's remaining buffer */
    bool eot;
    int entries;
};

static enum dma_result prd_load(struct ide *s, struct prd_cursor *p)
{
    uint32_t e[2];
    if (p->entries >= BM_MAX_PRD || !s->rw(s->rw_opaque, p->table, e, sizeof(e), false))
        return DMA_BUS_ERROR;
    p->entries++;
    p->table += 8;
    p->addr = e[0] & ~1u;
    p->left = (e[1] & 0xfffe) ? (e[1] & 0xfffe) : 0x10000;
    p->eot = (e[1] & BM_PRD_EOT) != 0;
    return DMA_OK;
}

/* Move len bytes between buf and the guest buffers the PRD table describes. */
static enum dma_result prd_copy(struct ide *s, struct prd_cursor *p, uint8_t *buf, uint32_t len, bool to_guest)
{
    while (len) {
        if (!p->left) {
            if (p->eot)
                return DMA_TABLE_SHORT;
            enum dma_result r = prd_load(s, p);
            if (r != DMA_OK)
                return r;
        }
        uint32_t n = p->left < len ? p->left : len;
        if (!s->rw(s->rw_opaque, p->addr, buf, n, to_guest))
            return DMA_BUS_ERROR;
        p->addr += n;
        p->left -= n;
        buf += n;
        len -= n;
    }
    return DMA_OK;
}

static struct drive *dma_drive(struct channel *c)
{
    for (int k = 0; k < 2; k++)
        if (c->drive[k].x.kind == XFER_DMA)
            return &c->drive[k];
    return NULL;
}

/* The bus master gave up: the ATA command fails too. */
static void dma_abort(struct channel *c, struct drive *d)
{
    c->bm_status = (c->bm_status & ~BM_ST_ACTIVE) | BM_ST_ERROR | BM_ST_INTR;
    report_address(d, d->x.addr, d->x.lba);
    fail(c, d, ER_ABRT);
}

/* One chunk between the image and guest memory; false when the command has ended in an error. */
static bool dma_chunk(struct channel *c, struct drive *d, struct prd_cursor *p, uint32_t n)
{
    struct ide *s = c->ide;
    size_t bytes = (size_t)n * SECTOR;
    int r;
    if (d->x.write) {
        if (prd_copy(s, p, s->dma_buf, bytes, false) != DMA_OK) {
            dma_abort(c, d);
            return false;
        }
        r = write_image(d, d->x.lba, s->dma_buf, bytes);
    } else {
        r = blockdev_read(d->bd, d->x.lba * SECTOR, s->dma_buf, bytes);
        if (r >= 0 && prd_copy(s, p, s->dma_buf, bytes, true) != DMA_OK) {
            dma_abort(c, d);
            return false;
        }
    }
    if (r < 0) {
        log_io_error_once(d, d->x.write ? "write" : "read", d->x.lba, r);
        c->bm_status = (c->bm_status & ~BM_ST_ACTIVE) | BM_ST_INTR;
        report_address(d, d->x.addr, d->x.lba);
        fail(c, d, d->x.write ? ER_ABRT : ER_UNC);
        return false;
    }
    d->x.lba += n;
    d->x.remaining -= n;
    return true;
}

static void run_dma(struct channel *c, struct drive *d)
{
    if (d->kind == DRIVE_CDROM) {
        run_packet_dma(c, d);
        return;
    }
    struct prd_cursor p = { .table = c->bm_prd };
    while (d->x.remaining) {
        uint32_t n = d->x.remaining < DMA_CHUNK_SECTORS ? d->x.remaining : DMA_CHUNK_SECTORS;
        if (!dma_chunk(c, d, &p, n))
            return;
    }
    int r = d->x.write ? settle_write(d) : 0;
    report_address(d, d->x.addr, d->x.lba - 1);
    /* Active stays set when the table describes more memory than the command moved. */
    if (p.eot && !p.left)
        c->bm_status &= ~BM_ST_ACTIVE;
    c->bm_status |= BM_ST_INTR;
    if (r < 0) {
        log_io_error_once(d, "flush", d->x.lba - 1, r);
        fail(c, d, ER_ABRT);
        return;
    }
    complete(c, d);
}

static void start_dma(struct channel *c, struct drive *d, bool ext, bool write, bool fua)
{
    if (write && blockdev_readonly(d->bd)) {
        fail(c, d, ER_ABRT);
        return;
    }
    if (!setup_transfer(c, d, ext, write))
        return;
    d->x.fua = fua;
    d->x.kind = XFER_DMA;
    d->status = ST_IDLE | ST_DRQ;
    if (c->bm_cmd & BM_CMD_START)
        run_dma(c, d);
}

/* ---- IDENTIFY DEVICE ---- */

static void ata_string(uint16_t *id, int word, int nwords, const char *s)
{
    size_t len = strlen(s);
    for (int i = 0; i < nwords * 2; i++) {
        uint8_t ch = (size_t)i < len ? (uint8_t)s[i] : ' ';
        if (i & 1)
            id[word + i / 2] |= ch;
        else
            id[word + i / 2] = (uint16_t)ch << 8;
    }
}

/* Word 93: what the last hardware reset found about the master/slave pair. */
static uint16_t reset_result(const struct channel *c, int slot)
{
    uint16_t v = 0x4000 | 0x2000;           /* valid; 80-conductor cable detected */
    if (slot == 1)
        return v | 0x0b00;                  /* device 1, jumper, PDIAG- asserted */
    v |= 0x000b;                            /* device 0, jumper, passed diagnostics */
    if (present(&c->drive[1]))
        v |= 0x0030;                        /* PDIAG- and DASP- seen from device 1 */
    else
        v |= 0x0040;                        /* device 0 responds for device 1 */
    return v;
}

static void identify_checksum(uint16_t id[256])
{
    /* Integrity word: signature A5h, and a checksum making all 512 bytes sum to 0. */
    uint8_t sum = 0xa5;
    for (int i = 0; i < 255; i++)
        sum += (uint8_t)id[i] + (uint8_t)(id[i] >> 8);
    id[255] = (uint16_t)((uint8_t)-sum) << 8 | 0xa5;
}

/* IDENTIFY PACKET DEVICE: a removable CD-ROM with 12-byte packets, DRQ within 50 us. */
static void build_packet_identify(const struct channel *c, int slot, uint16_t id[256])
{
    const struct drive *d = &c->drive[slot];
    char serial[21];
    memset(id, 0, 512);
    snprintf(serial, sizeof(serial), "RV%08d", d->number);
    id[0] = 0x8000 | (5 << 8) | 0x80 | (2 << 5);   /* ATAPI, CD-ROM, removable, accelerated DRQ */
    ata_string(id, 10, 10, serial);
    ata_string(id, 23, 4, "1.0");
    ata_string(id, 27, 20, "RETROVISOR CD-ROM");
    id[49] = (1 << 11) | (1 << 9) | (1 << 8);      /* IORDY, LBA, DMA */
    id[53] = 0x0007;
    id[63] = 0x0007;
    if ((d->xfer_mode & 0xf8) == 0x20)
        id[63] |= 0x100 << (d->xfer_mode & 7);
    id[64] = 0x0003;
    id[65] = 120;
    id[66] = 120;
    id[67] = 120;
    id[68] = 120;
    id[71] = 30;                                    /* typical release times, ns */
    id[72] = 30;
    id[80] = 0x00fe;
    id[82] = (1 << 14) | (1 << 4);                  /* NOP, PACKET */
    id[83] = 1 << 14;
    id[84] = 1 << 14;
    id[85] = (1 << 14) | (1 << 4);
    id[87] = 1 << 14;
    id[88] = 0x003f;
    if ((d->xfer_mode & 0xf8) == 0x40)
        id[88] |= 0x100 << (d->xfer_mode & 7);
    id[93] = reset_result(c, slot);
    identify_checksum(id);
}

static void build_identify(const struct channel *c, int slot, uint16_t id[256])
{
    const struct drive *d = &c->drive[slot];
    if (d->kind == DRIVE_CDROM) {
        build_packet_identify(c, slot, id);
        return;
    }
    char serial[21];
    memset(id, 0, 512);
    snprintf(serial, sizeof(serial), "RV%08d", d->number);

    uint64_t lba28 = d->sectors < LBA28_LIMIT ? d->sectors : LBA28_LIMIT;
    uint64_t cur_capacity = (uint64_t)d->cur_cyls * d->cur_heads * d->cur_spt;
    if (cur_capacity > d->sectors)
        cur_capacity = d->sectors;

    id[0] = 0x0040;                         /* fixed device, not removable */
    id[1] = d->cyls;
    id[3] = d->heads;
    id[6] = d->spt;
    ata_string(id, 10, 10, serial);
    ata_string(id, 23, 4, "1.0");
    ata_string(id, 27, 20, "RETROVISOR HARDDISK");
    id[47] = 0x8000 | MAX_MULTIPLE;
    id[49] = (1 << 11) | (1 << 10) | (1 << 9) | (1 << 8);  /* IORDY, IORDY disable, LBA, DMA */
    id[50] = 0x4000;
    id[51] = 2 << 8;                        /* PIO timing mode 2 (obsolete field) */
    id[53] = 0x0007;                        /* words 54-58, 64-70 and 88 are valid */
    id[54] = d->cur_cyls;
    id[55] = d->cur_heads;
    id[56] = d->cur_spt;
    id[57] = (uint16_t)cur_capacity;
    id[58] = (uint16_t)(cur_capacity >> 16);
    id[59] = d->multiple ? 0x0100 | d->multiple : 0;
    id[60] = (uint16_t)lba28;
    id[61] = (uint16_t)(lba28 >> 16);
    id[63] = 0x0007;                        /* multiword DMA 0-2 */
    if ((d->xfer_mode & 0xf8) == 0x20)
        id[63] |= 0x100 << (d->xfer_mode & 7);
    id[64] = 0x0003;                        /* PIO 3 and 4 */
    id[65] = 120;
    id[66] = 120;
    id[67] = 120;
    id[68] = 120;
    id[80] = 0x00fe;                        /* ATA/ATAPI-1 to -7 */
    id[82] = (1 << 14) | (1 << 6) | (1 << 5);   /* NOP, look-ahead, write cache */
    id[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10);   /* FLUSH CACHE (EXT), LBA48 */
    id[84] = 1 << 14;
    id[85] = (1 << 14) | (d->look_ahead ? 1 << 6 : 0) | (d->write_cache ? 1 << 5 : 0);
    id[86] = (1 << 13) | (1 << 12) | (1 << 10);
    id[87] = 1 << 14;
    id[88] = 0x003f;                        /* UDMA 0-5 */
    if ((d->xfer_mode & 0xf8) == 0x40)
        id[88] |= 0x100 << (d->xfer_mode & 7);
    id[93] = reset_result(c, slot);
    id[100] = (uint16_t)d->sectors;
    id[101] = (uint16_t)(d->sectors >> 16);
    id[102] = (uint16_t)(d->sectors >> 32);
    id[103] = (uint16_t)(d->sectors >> 48);
    identify_checksum(id);
}

static void identify(struct channel *c, struct drive *d)
{
    uint16_t id[256];
    build_identify(c, (int)(d - c->drive), id);
    for (int i = 0; i < 256; i++) {
        d->buf[2 * i] = (uint8_t)id[i];
        d->buf[2 * i + 1] = (uint8_t)(id[i] >> 8);
    }
    memset(&d->x, 0, sizeof(d->x));
    d->x.kind = XFER_PIO_IN;
    expose_block(c, d, SECTOR);
    raise_irq(c, d);
}

/* ---- other commands ---- */

static bool valid_transfer_mode(uint8_t mode)
{
    switch (mode & 0xf8) {
    case 0x00: return mode <= 0x01;         /* PIO default */
    case 0x08: return (mode & 7) <= 4;      /* PIO flow control 0-4 */
    case 0x20: return (mode & 7) <= 2;      /* multiword DMA 0-2 */
    case 0x40: return (mode & 7) <= 5;      /* Ultra DMA 0-5 */
    default: return false;
    }
}

static void set_features(struct channel *c, struct drive *d)
{
    switch (d->tf.feature) {
    case 0x03:
        if (!valid_transfer_mode(d->tf.count)) {
            fail(c, d, ER_ABRT);
            return;
        }
        d->xfer_mode = d->tf.count;
        break;
    case 0x02:
        d->write_cache = true;
        break;
    case 0x82:
        /* From now on every write is durable at completion; so must be those before. */
        d->write_cache = false;
        if (blockdev_flush(d->bd) < 0) {
            fail(c, d, ER_ABRT);
            return;
        }
        break;
    case 0xaa:
        d->look_ahead = true;
        break;
    case 0x55:
        d->look_ahead = false;
        break;
    case 0x66:  /* keep settings over a reset: they are kept anyway */
    case 0xcc:
        break;
    default:
        fail(c, d, ER_ABRT);
        return;
    }
    complete(c, d);
}

static void set_multiple(struct channel *c, struct drive *d)
{
    uint8_t n = d->tf.count;
    if (n > MAX_MULTIPLE || (n & (n - 1))) {
        fail(c, d, ER_ABRT);
        return;
    }
    d->multiple = n;
    complete(c, d);
}

static void initialize_device_parameters(struct channel *c, struct drive *d)
{
    uint16_t heads = (d->tf.device & 0x0f) + 1, spt = d->tf.count;
    if (!spt) {
        fail(c, d, ER_ABRT);
        return;
    }
    uint64_t cyls = d->sectors / ((uint32_t)heads * spt);
    d->cur_heads = heads;
    d->cur_spt = spt;
    d->cur_cyls = cyls > 65535 ? 65535 : (uint16_t)cyls;
    complete(c, d);
}

static void read_verify(struct channel *c, struct drive *d, bool ext)
{
    if (!setup_transfer(c, d, ext, false))
        return;
    report_address(d, d->x.addr, d->x.lba + d->x.remaining - 1);
    complete(c, d);
}

static void flush_cache(struct channel *c, struct drive *d)
{
    int r = blockdev_flush(d->bd);
    if (r < 0) {
        log_io_error_once(d, "flush", 0, r);
        fail(c, d, ER_ABRT);
        return;
    }
    complete(c, d);
}

static void read_native_max(struct channel *c, struct drive *d, bool ext)
{
    uint64_t max = d->sectors - 1;
    if (!ext && max > LBA28_LIMIT - 1)
        max = LBA28_LIMIT - 1;
    report_address(d, ext ? ADDR_LBA48 : ADDR_LBA28, max);
    complete(c, d);
}

static void check_power_mode(struct channel *c, struct drive *d)
{
    d->tf.count = 0xff;     /* active or idle */
    complete(c, d);
}

/* ---- PACKET (ATAPI) ---- */

/* The byte count limit as a driver may write it: 0 and odd values are not
 * meaningful for PIO blocks, so they become the largest even count. */
static uint32_t pio_byte_limit(const struct drive *d)
{
    uint32_t limit = d->x.byte_limit & ~1u;
    return limit ? limit : 0xfffe;
}

static void packet_complete(struct channel *c, struct drive *d)
{
    d->x.packet = PKT_NONE;
    d->tf.count = IR_IO | IR_COD;
    complete(c, d);
}

/* CHECK CONDITION: the sense key goes in the Error register's high nibble. */
static void packet_fail(struct channel *c, struct drive *d, uint8_t sense_key)
{
    d->x.packet = PKT_NONE;
    fail(c, d, (uint8_t)(sense_key << 4) | (sense_key == SENSE_ILLEGAL_REQUEST ? ER_ABRT : 0));
    d->tf.count = IR_IO | IR_COD;
}

/* Offer the next PIO block of a data phase, its size in the byte count registers. */
static void packet_pio_block(struct channel *c, struct drive *d, bool in)
{
    uint64_t left = in ? atapi_data_in_left(d->cd) : atapi_data_out_left(d->cd);
    uint32_t limit = pio_byte_limit(d);
    uint32_t n = left < limit ? (uint32_t)left : limit;
    if (in && !atapi_data_in(d->cd, d->buf, n)) {
        uint8_t key = SENSE_MEDIUM_ERROR;
        atapi_failed(d->cd, &key);
        packet_fail(c, d, key);
        return;
    }
    d->tf.lbam = (uint8_t)n;
    d->tf.lbah = (uint8_t)(n >> 8);
    d->tf.count = in ? IR_IO : 0;
    d->x.kind = in ? XFER_PIO_IN : XFER_PIO_OUT;
    d->x.packet = in ? PKT_DATA_IN : PKT_DATA_OUT;
    expose_block(c, d, n);
    raise_irq(c, d);
}

/* What follows a command packet or a finished data block. */
static void packet_next(struct channel *c, struct drive *d)
{
    uint8_t key;
    if (atapi_failed(d->cd, &key)) {
        packet_fail(c, d, key);
        return;
    }
    bool in = atapi_data_in_left(d->cd) > 0;
    if (!in && !atapi_data_out_left(d->cd)) {
        packet_complete(c, d);
        return;
    }
    if (d->x.dma) {
        d->x.packet = in ? PKT_DATA_IN : PKT_DATA_OUT;
        d->x.kind = XFER_DMA;
        d->tf.count = in ? IR_IO : 0;
        d->status = ST_IDLE | ST_DRQ;
        if (c->bm_cmd & BM_CMD_START)
            run_packet_dma(c, d);
        return;
    }
    packet_pio_block(c, d, in);
}

static void packet_in_block_done(struct channel *c, struct drive *d)
{
    packet_next(c, d);
}

static void packet_out_block_done(struct channel *c, struct drive *d)
{
    if (d->x.packet == PKT_COMMAND) {
        d->x.kind = XFER_IDLE;
        d->status = ST_IDLE | ST_BSY;
        atapi_packet(d->cd, d->buf);
        packet_next(c, d);
        return;
    }
    atapi_data_out(d->cd, d->buf, d->x.len);
    packet_next(c, d);
}

/* PACKET (A0h): ask for the 12-byte command; no interrupt (DRQ within 50 us). */
static void packet_command(struct channel *c, struct drive *d)
{
    d->x.packet = PKT_COMMAND;
    d->x.dma = (d->tf.feature & PKT_FEAT_DMA) != 0;
    d->x.byte_limit = (uint16_t)(d->tf.lbah << 8 | d->tf.lbam);
    d->x.kind = XFER_PIO_OUT;
    d->tf.count = IR_COD;
    expose_block(c, d, ATAPI_PACKET_SIZE);
}

/* The bus master ran short of PRD entries or hit memory outside RAM. */
static void packet_dma_abort(struct channel *c, struct drive *d)
{
    c->bm_status = (c->bm_status & ~BM_ST_ACTIVE) | BM_ST_ERROR | BM_ST_INTR;
    atapi_soft_reset(d->cd);
    packet_fail(c, d, 0x0b);    /* ABORTED COMMAND */
}

static void run_packet_dma(struct channel *c, struct drive *d)
{
    struct ide *s = c->ide;
    struct prd_cursor p = { .table = c->bm_prd };
    bool in = d->x.packet == PKT_DATA_IN;
    for (;;) {
        uint64_t left = in ? atapi_data_in_left(d->cd) : atapi_data_out_left(d->cd);
        if (!left)
            break;
        uint32_t n = left < sizeof(s->dma_buf) ? (uint32_t)left : sizeof(s->dma_buf);
        if (in) {
            if (!atapi_data_in(d->cd, s->dma_buf, n)) {
                uint8_t key = SENSE_MEDIUM_ERROR;
                atapi_failed(d->cd, &key);
                c->bm_status = (c->bm_status & ~BM_ST_ACTIVE) | BM_ST_INTR;
                packet_fail(c, d, key);
                return;
            }
            if (prd_copy(s, &p, s->dma_buf, n, true) != DMA_OK) {
                packet_dma_abort(c, d);
                return;
            }
        } else {
            if (prd_copy(s, &p, s->dma_buf, n, false) != DMA_OK) {
                packet_dma_abort(c, d);
                return;
            }
            atapi_data_out(d->cd, s->dma_buf, n);
        }
    }
    if (p.eot && !p.left)
        c->bm_status &= ~BM_ST_ACTIVE;
    c->bm_status |= BM_ST_INTR;
    packet_complete(c, d);
}

static void cd_set_features(struct channel *c, struct drive *d)
{
    if (d->tf.feature == 0x03) {
        if (!valid_transfer_mode(d->tf.count)) {
            fail(c, d, ER_ABRT);
            return;
        }
        d->xfer_mode = d->tf.count;
    }
    /* The cache and look-ahead switches mean nothing for a read-only drive. */
    complete(c, d);
}

static void set_signature(struct drive *d);
static void post_reset_state(struct drive *d);

/* DEVICE RESET (08h): the packet device alone resets; no interrupt. */
static void device_reset(struct channel *c, struct drive *d)
{
    atapi_soft_reset(d->cd);
    post_reset_state(d);
}

static void cd_command(struct channel *c, struct drive *d, uint8_t cmd)
{
    switch (cmd) {
    case 0xa0: packet_command(c, d); break;
    case 0xa1: identify(c, d); break;                                          /* IDENTIFY PACKET DEVICE */
    case 0x08: device_reset(c, d); break;
    case 0xef: cd_set_features(c, d); break;
    case 0xe5: case 0x98: check_power_mode(c, d); break;
    case 0xe0: case 0x94: case 0xe1: case 0x95: case 0xe2: case 0x96:         /* STANDBY, IDLE (IMMEDIATE) */
    case 0xe3: case 0x97: case 0xe6: case 0x99:                               /* SLEEP */
    case 0xe7: case 0xea:                                                      /* FLUSH CACHE (EXT) */
        complete(c, d);
        break;
    default:
        /* IDENTIFY DEVICE and the read/write commands: a packet device aborts
         * them and shows its signature, which is how drivers tell it apart. */
        set_signature(d);
        fail(c, d, ER_ABRT);
        break;
    }
}

static void disk_command(struct channel *c, struct drive *d, uint8_t cmd)
{
    switch (cmd) {
    case 0x20: case 0x21: start_pio(c, d, false, false, false, false); break;  /* READ SECTORS */
    case 0x24: start_pio(c, d, true, false, false, false); break;              /* READ SECTORS EXT */
    case 0xc4: start_pio(c, d, false, false, true, false); break;              /* READ MULTIPLE */
    case 0x29: start_pio(c, d, true, false, true, false); break;               /* READ MULTIPLE EXT */
    case 0x30: case 0x31: start_pio(c, d, false, true, false, false); break;   /* WRITE SECTORS */
    case 0x34: start_pio(c, d, true, true, false, false); break;               /* WRITE SECTORS EXT */
    case 0xc5: start_pio(c, d, false, true, true, false); break;               /* WRITE MULTIPLE */
    case 0x39: start_pio(c, d, true, true, true, false); break;                /* WRITE MULTIPLE EXT */
    case 0xce: start_pio(c, d, true, true, true, true); break;                 /* WRITE MULTIPLE FUA EXT */
    case 0xc8: case 0xc9: start_dma(c, d, false, false, false); break;         /* READ DMA */
    case 0x25: start_dma(c, d, true, false, false); break;                     /* READ DMA EXT */
    case 0xca: case 0xcb: start_dma(c, d, false, true, false); break;          /* WRITE DMA */
    case 0x35: start_dma(c, d, true, true, false); break;                      /* WRITE DMA EXT */
    case 0x3d: start_dma(c, d, true, true, true); break;                       /* WRITE DMA FUA EXT */
    case 0x40: case 0x41: read_verify(c, d, false); break;                     /* READ VERIFY SECTORS */
    case 0x42: read_verify(c, d, true); break;                                 /* READ VERIFY SECTORS EXT */
    case 0xe7: case 0xea: flush_cache(c, d); break;                            /* FLUSH CACHE (EXT) */
    case 0xec: identify(c, d); break;                                          /* IDENTIFY DEVICE */
    case 0xef: set_features(c, d); break;
    case 0xc6: set_multiple(c, d); break;
    case 0x91: initialize_device_parameters(c, d); break;
    case 0xf8: read_native_max(c, d, false); break;
    case 0x27: read_native_max(c, d, true); break;
    case 0xe5: case 0x98: check_power_mode(c, d); break;
    /* A drive about to spin down writes its cache back first. */
    case 0xe0: case 0x94:                                                      /* STANDBY IMMEDIATE */
    case 0xe6: case 0x99:                                                      /* SLEEP */
        flush_cache(c, d);
        break;
    case 0xe1: case 0x95:                                                      /* IDLE IMMEDIATE */
    case 0xe2: case 0x96:                                                      /* STANDBY */
    case 0xe3: case 0x97:                                                      /* IDLE */
        complete(c, d);
        break;
    default:
        if ((cmd & 0xf0) == 0x10 || (cmd & 0xf0) == 0x70) {                    /* RECALIBRATE, SEEK */
            complete(c, d);
            break;
        }
        /* Includes DEVICE RESET, PACKET and IDENTIFY PACKET DEVICE, which ATA disks abort. */
        fail(c, d, ER_ABRT);
        break;
    }
}

/* ---- resets and diagnostics ---- */

static void set_signature(struct drive *d)
{
    struct taskfile *t = &d->tf;
    bool packet = d->kind == DRIVE_CDROM;
    t->count = t->hob_count = 1;
    t->lbal = t->hob_lbal = 1;
    t->lbam = t->hob_lbam = packet ? 0x14 : 0;
    t->lbah = t->hob_lbah = packet ? 0xeb : 0;
    t->device = 0;
}

/* The state a reset or diagnostic leaves: signature, "passed", ready. */
static void post_reset_state(struct drive *d)
{
    memset(&d->x, 0, sizeof(d->x));
    set_signature(d);
    d->intrq = false;
    d->error = ER_DIAG_PASSED;
    /* A packet device leaves DRDY clear after a reset (drivers wait for it
     * only on ATA disks). */
    d->status = d->kind == DRIVE_DISK ? ST_IDLE : 0;
}

static void execute_diagnostic(struct channel *c)
{
    for (int k = 0; k < 2; k++)
        post_reset_state(&c->drive[k]);
    c->sel = 0;
    raise_irq(c, present(&c->drive[0]) ? &c->drive[0] : &c->drive[1]);
}

static void begin_soft_reset(struct channel *c)
{
    for (int k = 0; k < 2; k++) {
        struct drive *d = &c->drive[k];
        memset(&d->x, 0, sizeof(d->x));
        d->intrq = false;
        d->status = present(d) ? ST_BSY : 0;
    }
}

static void finish_soft_reset(struct channel *c)
{
    for (int k = 0; k < 2; k++) {
        if (c->drive[k].cd)
            atapi_soft_reset(c->drive[k].cd);
        post_reset_state(&c->drive[k]);
    }
    c->sel = 0;
}

static void devctl_write(struct channel *c, uint8_t v)
{
    bool was_reset = c->devctl & DC_SRST;
    c->devctl = v & (DC_NIEN | DC_SRST | DC_HOB);
    if ((v & DC_SRST) && !was_reset)
        begin_soft_reset(c);
    else if (!(v & DC_SRST) && was_reset)
        finish_soft_reset(c);
    update_irq(c);
}

/* Power-on defaults of the settings a guest can change. */
static void default_settings(struct drive *d)
{
    d->cur_cyls = d->cyls;
    d->cur_heads = d->heads;
    d->cur_spt = d->spt;
    d->multiple = MAX_MULTIPLE;
    d->write_cache = true;
    d->look_ahead = true;
    d->xfer_mode = 0x22;    /* multiword DMA 2, what a PIIX3 runs */
}

static void reset_channel(struct channel *c)
{
    c->devctl = 0;
    c->sel = 0;
    c->bm_cmd = 0;
    c->bm_status = 0;
    c->bm_prd = 0;
    for (int k = 0; k < 2; k++) {
        struct drive *d = &c->drive[k];
        default_settings(d);
        d->tf = (struct taskfile){ 0 };
        if (d->cd)
            atapi_power_on(d->cd);
        post_reset_state(d);
    }
    c->line = false;
    irq_set(c->ide->bus, c->irq, 0);
}

static void ide_reset(void *opaque)
{
    struct ide *s = opaque;
    for (int k = 0; k < 2; k++)
        reset_channel(&s->ch[k]);
}

/* ---- command block and control block ports ---- */

static uint8_t taskfile_read(const struct taskfile *t, int reg, bool hob)
{
    switch (reg) {
    case 2: return hob ? t->hob_count : t->count;
    case 3: return hob ? t->hob_lbal : t->lbal;
    case 4: return hob ? t->hob_lbam : t->lbam;
    case 5: return hob ? t->hob_lbah : t->lbah;
    default: return t->device;
    }
}

static uint8_t status_read(struct channel *c, bool clear_irq)
{
    struct drive *d = selected(c);
    if (!present(d))
        return 0;
    if (clear_irq)
        lower_irq(c, d);
    return d->status;
}

static uint8_t reg_read(struct channel *c, int reg)
{
    struct drive *d = selected(c);
    struct drive *other = &c->drive[!c->sel];
    if (!present(d) && !present(other))
        return 0;
    if (reg == 7)
        return status_read(c, true);
    const struct drive *r = present(d) ? d : other;
    if (reg == 1)
        return r->error;
    return taskfile_read(&r->tf, reg, c->devctl & DC_HOB);
}

static void taskfile_write(struct taskfile *t, int reg, uint8_t v)
{
    switch (reg) {
    case 1: t->hob_feature = t->feature; t->feature = v; break;
    case 2: t->hob_count = t->count; t->count = v; break;
    case 3: t->hob_lbal = t->lbal; t->lbal = v; break;
    case 4: t->hob_lbam = t->lbam; t->lbam = v; break;
    case 5: t->hob_lbah = t->lbah; t->lbah = v; break;
    case 6: t->device = v; break;
    }
}

static void command_write(struct channel *c, uint8_t cmd)
{
    if (cmd == 0x90) {      /* EXECUTE DEVICE DIAGNOSTIC: every drive runs it */
        execute_diagnostic(c);
        return;
    }
    struct drive *d = selected(c);
    if (!present(d))
        return;
    /* A new command abandons a data transfer the host gave up on. */
    memset(&d->x, 0, sizeof(d->x));
    d->error = 0;
    lower_irq(c, d);
    if (d->kind == DRIVE_CDROM)
        cd_command(c, d, cmd);
    else
        disk_command(c, d, cmd);
}

static void reg_write(struct channel *c, int reg, uint8_t v)
{
    if (c->devctl & DC_SRST)
        return;             /* drives are busy resetting */
    c->devctl &= ~DC_HOB;
    if (reg == 7) {
        command_write(c, v);
        return;
    }
    for (int k = 0; k < 2; k++)
        taskfile_write(&c->drive[k].tf, reg, v);
    if (reg == 6) {
        c->sel = (v & DEV_SLAVE) ? 1 : 0;
        update_irq(c);
    }
}

static uint32_t cmd_read(void *opaque, uint16_t port, int size)
{
    struct channel *c = opaque;
    int reg = port & 7;
    if (reg == 0)
        return data_read(c, size);
    /* Wider accesses to the 8-bit registers split into byte cycles, as on ISA. */
    uint32_t v = 0;
    for (int i = 0; i < size; i++)
        v |= (uint32_t)(reg + i <= 7 ? reg_read(c, reg + i) : 0xff) << (8 * i);
    return v;
}

static void cmd_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct channel *c = opaque;
    int reg = port & 7;
    if (reg == 0) {
        data_write(c, val, size);
        return;
    }
    for (int i = 0; i < size && reg + i <= 7; i++)
        reg_write(c, reg + i, val >> (8 * i));
}

static uint32_t ctl_read(void *opaque, uint16_t port, int size)
{
    struct channel *c = opaque;
    return status_read(c, false) | (ones(size) & ~0xffu);
}

static void ctl_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    devctl_write(opaque, val);
}

/* ---- bus-master registers (BAR4) ---- */

static uint8_t bm_read_byte(struct ide *s, int off)
{
    struct channel *c = &s->ch[off >> 3];
    switch (off & 7) {
    case 0: return c->bm_cmd;
    case 2: return c->bm_status;
    case 4: case 5: case 6: case 7: return (c->bm_prd & ~3u) >> (8 * (off & 3));
    default: return 0;
    }
}

static void bm_command_write(struct channel *c, uint8_t v)
{
    bool was_started = c->bm_cmd & BM_CMD_START;
    c->bm_cmd = v & (BM_CMD_START | BM_CMD_TO_MEMORY);
    if (!(v & BM_CMD_START)) {
        /* Stopping the engine ends whatever it was doing. */
        c->bm_status &= ~BM_ST_ACTIVE;
        return;
    }
    if (was_started)
        return;
    c->bm_status |= BM_ST_ACTIVE;
    struct drive *d = dma_drive(c);
    if (d)
        run_dma(c, d);
}

static void bm_write_byte(struct ide *s, int off, uint8_t v)
{
    struct channel *c = &s->ch[off >> 3];
    switch (off & 7) {
    case 0:
        bm_command_write(c, v);
        break;
    case 2:
        c->bm_status &= ~(v & (BM_ST_ERROR | BM_ST_INTR));
        c->bm_status = (c->bm_status & ~BM_ST_DRIVE_DMA) | (v & BM_ST_DRIVE_DMA);
        break;
    case 4: case 5: case 6: case 7: {
        int shift = 8 * (off & 3);
        c->bm_prd = (c->bm_prd & ~(0xffu << shift)) | ((uint32_t)v << shift);
        break;
    }
    }
}

static uint32_t bm_read(void *opaque, uint16_t port, int size)
{
    struct ide *s = opaque;
    int off = port - s->bm_base;
    uint32_t v = 0;
    for (int i = 0; i < size; i++)
        v |= (uint32_t)(off + i < 16 ? bm_read_byte(s, off + i) : 0xff) << (8 * i);
    return v;
}

static void bm_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct ide *s = opaque;
    int off = port - s->bm_base;
    for (int i = 0; i < size && off + i < 16; i++)
        bm_write_byte(s, off + i, val >> (8 * i));
}

static void bm_map(struct pci_dev *pd, int bar, uint32_t base)
{
    struct ide *s = pd->opaque;
    if (s->bm_base != PCI_BAR_UNMAPPED)
        bus_unregister_pio(s->bus, (uint16_t)s->bm_base, 16);
    s->bm_base = PCI_BAR_UNMAPPED;
    if (base == PCI_BAR_UNMAPPED || base > 0x10000 - 16)
        return;
    s->bm_base = base;
    bus_register_pio(s->bus, (uint16_t)base, 16, s, bm_read, bm_write);
}

/* ---- PCI function ---- */

/*
 * The IDE timing registers come up with decode enabled on both channels:
 * Linux's ata_piix skips a channel whose enable bit (0x41/0x43 bit 7) is
 * clear, and a guest started without firmware has nobody to set it.
 * SeaBIOS writes the same values.  The legacy ports decode regardless.
 */
static void pci_config_defaults(struct pci_dev *pd)
{
    pci_set16(pd, PCI_IDETIM_PRI, IDETIM_DECODE_ENABLE);
    pci_set16(pd, PCI_IDETIM_SEC, IDETIM_DECODE_ENABLE);
    pd->config[PCI_SIDETIM] = 0;
}

static void setup_pci(struct ide *s, struct pci_bus *pb)
{
    struct pci_dev *pd = &s->pci;
    pci_dev_init(pd, "piix3-ide", IDE_PCI_DEVFN, 0x8086, 0x7010, 0x010180, 0x00);
    pd->opaque = s;
    pci_set16(pd, 0x06, 0x0280);    /* status: medium DEVSEL, fast back-to-back capable */
    pci_set_bar(pd, 4, 16, true, bm_map);
    for (int off = PCI_IDETIM_PRI; off <= PCI_SIDETIM; off++)
        pd->wmask[off] = 0xff;
    pci_config_defaults(pd);
    pd->reset = pci_config_defaults;
    pci_register(pb, pd);
}

/* ---- public API ---- */

/* BARs and INTx from config space; the read-ahead holds what the image
 * had, and the disk a snapshot brings back may differ: read it again. */
static void ide_post_load(void *opaque)
{
    struct ide *s = opaque;
    if (s->pci.bus)
        pci_dev_post_load(&s->pci);
    for (int k = 0; k < 2; k++) {
        struct channel *c = &s->ch[k];
        for (int n = 0; n < 2; n++)
            c->drive[n].ahead_count = 0;
        if (c->line)
            irq_set(s->bus, c->irq, 1);
    }
}

/* What the image decides (kind, size, default geometry) is configuration. */
#define IDE_DRIVE(c, n) \
    STATE_FIELD(struct ide, ch[c].drive[n].tf), STATE_FIELD(struct ide, ch[c].drive[n].status), \
    STATE_FIELD(struct ide, ch[c].drive[n].error), STATE_FIELD(struct ide, ch[c].drive[n].intrq), \
    STATE_FIELD(struct ide, ch[c].drive[n].cur_cyls), STATE_FIELD(struct ide, ch[c].drive[n].cur_heads), \
    STATE_FIELD(struct ide, ch[c].drive[n].cur_spt), STATE_FIELD(struct ide, ch[c].drive[n].multiple), \
    STATE_FIELD(struct ide, ch[c].drive[n].write_cache), STATE_FIELD(struct ide, ch[c].drive[n].look_ahead), \
    STATE_FIELD(struct ide, ch[c].drive[n].xfer_mode), STATE_FIELD(struct ide, ch[c].drive[n].x), \
    STATE_FIELD(struct ide, ch[c].drive[n].buf)
#define IDE_CHANNEL(c) \
    IDE_DRIVE(c, 0), IDE_DRIVE(c, 1), STATE_FIELD(struct ide, ch[c].sel), STATE_FIELD(struct ide, ch[c].devctl), \
    STATE_FIELD(struct ide, ch[c].line), STATE_FIELD(struct ide, ch[c].bm_cmd), \
    STATE_FIELD(struct ide, ch[c].bm_status), STATE_FIELD(struct ide, ch[c].bm_prd)
static const struct state_field ide_fields[] = {
    STATE_FIELD(struct ide, pci.config), STATE_FIELD(struct ide, pci.irq_level), IDE_CHANNEL(0), IDE_CHANNEL(1),
};
static const struct state_table ide_state = { "ide", 1, ide_fields, STATE_COUNT(ide_fields), ide_post_load };

struct ide *ide_new(struct bus *b, struct pci_bus *pb, guest_phys_rw_fn rw, void *rw_opaque)
{
    struct ide *s = xcalloc(1, sizeof(*s));
    s->bus = b;
    s->rw = rw;
    s->rw_opaque = rw_opaque;
    s->bm_base = PCI_BAR_UNMAPPED;
    for (int k = 0; k < 2; k++) {
        struct channel *c = &s->ch[k];
        c->ide = s;
        c->irq = legacy[k].irq;
        bus_register_pio(b, legacy[k].cmd, 8, c, cmd_read, cmd_write);
        bus_register_pio(b, legacy[k].ctl, 1, c, ctl_read, ctl_write);
    }
    if (pb)
        setup_pci(s, pb);
    bus_add_device(b, &(struct device){ .name = "ide", .opaque = s, .reset = ide_reset, .state = &ide_state });
    ide_reset(s);
    return s;
}

void ide_free(struct ide *s)
{
    free(s);
}

static void derive_geometry(struct drive *d)
{
    uint64_t cyls = d->sectors / (16 * 63);
    d->heads = 16;
    d->spt = 63;
    d->cyls = cyls > 16383 ? 16383 : cyls < 1 ? 1 : (uint16_t)cyls;
}

int ide_attach_disk(struct ide *s, int channel, int slave, struct blockdev *bd, char *err, size_t errlen)
{
    if (channel < 0 || channel > 1 || slave < 0 || slave > 1 || !bd) {
        snprintf(err, errlen, "ide: no such drive slot (channel %d, %s)", channel, slave ? "slave" : "master");
        return -1;
    }
    struct channel *c = &s->ch[channel];
    struct drive *d = &c->drive[slave];
    if (present(d)) {
        snprintf(err, errlen, "ide: channel %d %s already holds %s", channel, slave ? "slave" : "master",
                 blockdev_path(d->bd));
        return -1;
    }
    d->kind = DRIVE_DISK;
    d->bd = bd;
    d->sectors = blockdev_sectors(bd);
    if (d->sectors > LBA48_LIMIT)
        d->sectors = LBA48_LIMIT;
    d->number = channel * 2 + slave + 1;
    derive_geometry(d);
    default_settings(d);
    post_reset_state(d);
    return 0;
}

int ide_attach_cdrom(struct ide *s, int channel, int slave, struct atapi *cd, char *err, size_t errlen)
{
    if (channel < 0 || channel > 1 || slave < 0 || slave > 1 || !cd) {
        snprintf(err, errlen, "ide: no such drive slot (channel %d, %s)", channel, slave ? "slave" : "master");
        return -1;
    }
    struct drive *d = &s->ch[channel].drive[slave];
    if (present(d)) {
        snprintf(err, errlen, "ide: channel %d %s is already taken", channel, slave ? "slave" : "master");
        return -1;
    }
    d->kind = DRIVE_CDROM;
    d->cd = cd;
    d->number = channel * 2 + slave + 1;
    /* QEMU's names for the drive's position: ide0-cd0 .. ide1-cd1. */
    snprintf(d->cd_name, sizeof(d->cd_name), "ide%d-cd%d", channel, slave);
    bus_add_device(s->bus, &(struct device){ .name = d->cd_name, .opaque = cd, .state = atapi_state_table() });
    default_settings(d);
    atapi_power_on(cd);
    post_reset_state(d);
    return 0;
}

bool ide_disk_geometry(struct ide *s, int channel, int slave, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
    if (channel < 0 || channel > 1 || slave < 0 || slave > 1)
        return false;
    const struct drive *d = &s->ch[channel].drive[slave];
    if (d->kind != DRIVE_DISK)
        return false;
    *cyls = d->cyls;
    *heads = (uint8_t)d->heads;
    *spt = (uint8_t)d->spt;
    return true;
}
