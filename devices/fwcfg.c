#include "devices/fwcfg.h"
#include "devices/bus.h"
#include "devices/state.h"
#include "hosted-driver/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FWCFG_PORT_SEL 0x510
#define FWCFG_PORT_DATA 0x511
#define FWCFG_PORT_DMA 0x514          /* 0x514: address bits 63-32, 0x518: bits 31-0 (big-endian) */
#define FW_CFG_VERSION_DMA 0x2
/* FWCfgDmaAccess.control bits */
#define DMA_CTL_ERROR  0x01
#define DMA_CTL_READ   0x02
#define DMA_CTL_SKIP   0x04
#define DMA_CTL_SELECT 0x08
#define DMA_CTL_WRITE  0x10
#define MAX_KEYS 0x80
#define MAX_ARCH_KEYS 0x10            /* FW_CFG_ARCH_LOCAL + 0 .. 15 */
#define MAX_FILES (MAX_KEYS - FW_CFG_FILE_FIRST)
#define FILE_NAME_LEN 56

struct item {
    uint8_t *data;
    uint32_t len;
};

struct file {
    char name[FILE_NAME_LEN];
    struct item item;
};

struct fwcfg {
    struct bus *bus;
    struct item items[MAX_KEYS];       /* numbered items, and files once laid out */
    struct item arch_items[MAX_ARCH_KEYS];   /* the x86-specific keys (bit 15) */
    struct file files[MAX_FILES];
    int nfiles;
    uint16_t selector;
    uint32_t offset;
    guest_phys_rw_fn rw;
    void *rw_opaque;
    uint32_t dma_addr_high;
};

static void set_item(struct item *it, const void *data, uint32_t len)
{
    free(it->data);
    it->data = xmalloc(len);
    memcpy(it->data, data, len);
    it->len = len;
}

static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct file *)a)->name, ((const struct file *)b)->name);
}

/* Files are numbered from FW_CFG_FILE_FIRST in name order; the directory lists them. */
static void layout_files(struct fwcfg *f)
{
    qsort(f->files, f->nfiles, sizeof(f->files[0]), by_name);
    uint32_t dir_len = 4 + 64 * f->nfiles;
    uint8_t *dir = xcalloc(1, dir_len);
    be32(dir, f->nfiles);
    for (int k = 0; k < f->nfiles; k++) {
        uint8_t *e = dir + 4 + 64 * k;
        be32(e, f->files[k].item.len);
        be16(e + 4, FW_CFG_FILE_FIRST + k);
        memcpy(e + 8, f->files[k].name, FILE_NAME_LEN);
        /* Items alias the file's storage: no copy, so clear without freeing. */
        f->items[FW_CFG_FILE_FIRST + k] = f->files[k].item;
    }
    struct item *d = &f->items[FW_CFG_FILE_DIR];
    free(d->data);
    d->data = dir;
    d->len = dir_len;
}

void fwcfg_add_bytes(struct fwcfg *f, uint16_t key, const void *data, uint32_t len)
{
    if (key >= FW_CFG_ARCH_LOCAL && key < FW_CFG_ARCH_LOCAL + MAX_ARCH_KEYS) {
        set_item(&f->arch_items[key - FW_CFG_ARCH_LOCAL], data, len);
        return;
    }
    if (key >= FW_CFG_FILE_FIRST || key == FW_CFG_FILE_DIR)
        return;
    set_item(&f->items[key], data, len);
}

void fwcfg_add_i16(struct fwcfg *f, uint16_t key, uint16_t v)
{
    uint8_t b[2] = { v, v >> 8 };
    fwcfg_add_bytes(f, key, b, 2);
}

void fwcfg_add_i32(struct fwcfg *f, uint16_t key, uint32_t v)
{
    uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };
    fwcfg_add_bytes(f, key, b, 4);
}

void fwcfg_add_i64(struct fwcfg *f, uint16_t key, uint64_t v)
{
    uint8_t b[8];
    for (int k = 0; k < 8; k++)
        b[k] = v >> (8 * k);
    fwcfg_add_bytes(f, key, b, 8);
}

static struct file *find_file(struct fwcfg *f, const char *name)
{
    for (int k = 0; k < f->nfiles; k++)
        if (!strncmp(f->files[k].name, name, FILE_NAME_LEN))
            return &f->files[k];
    return NULL;
}

void fwcfg_add_file(struct fwcfg *f, const char *name, const void *data, uint32_t len)
{
    struct file *file = find_file(f, name);
    if (!file) {
        if (f->nfiles >= MAX_FILES) {
            fprintf(stderr, "retrovisor: fw_cfg: too many files, dropping %s\n", name);
            return;
        }
        file = &f->files[f->nfiles++];
        memset(file, 0, sizeof(*file));
        snprintf(file->name, FILE_NAME_LEN, "%s", name);
    }
    set_item(&file->item, data, len);
    layout_files(f);
}

void fwcfg_add_e820(struct fwcfg *f, uint64_t addr, uint64_t len, uint32_t type)
{
    struct file *old = find_file(f, "etc/e820");
    uint32_t n = old ? old->item.len : 0;
    uint8_t *buf = xmalloc(n + 20);
    if (old)
        memcpy(buf, old->item.data, n);
    for (int k = 0; k < 8; k++) {
        buf[n + k] = addr >> (8 * k);
        buf[n + 8 + k] = len >> (8 * k);
    }
    for (int k = 0; k < 4; k++)
        buf[n + 16 + k] = type >> (8 * k);
    fwcfg_add_file(f, "etc/e820", buf, n + 20);
    free(buf);
}

static const struct item *current_item(const struct fwcfg *f)
{
    uint16_t arch = f->selector - FW_CFG_ARCH_LOCAL;
    if (arch < MAX_ARCH_KEYS)
        return &f->arch_items[arch];
    return f->selector < MAX_KEYS ? &f->items[f->selector] : NULL;
}

static uint32_t fw_read(void *opaque, uint16_t port, int size)
{
    struct fwcfg *f = opaque;
    if (port == FWCFG_PORT_SEL)
        return f->selector;
    /* The data port is byte-wide; wider reads return successive bytes little-endian. */
    uint32_t v = 0;
    for (int k = 0; k < size; k++) {
        const struct item *it = current_item(f);
        uint8_t b = 0;
        if (it && f->offset < it->len)
            b = it->data[f->offset];
        if (it && f->offset < it->len)
            f->offset++;
        v |= (uint32_t)b << (8 * k);
    }
    return v;
}

static void fw_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct fwcfg *f = opaque;
    if (port == FWCFG_PORT_SEL) {
        /* Bit 14 asks for write access (never granted); bit 15 marks the
         * architecture-specific keys, which must not alias the generic ones. */
        f->selector = val & 0xbfff;
        f->offset = 0;
    }
    /* Writes to the data port are ignored, as in QEMU since 2.4. */
}


/* One FWCfgDmaAccess {be32 control; be32 length; be64 address} at guest-physical `desc`. */
static void dma_transfer(struct fwcfg *f, uint64_t desc)
{
    uint8_t d[16];
    if (!f->rw(f->rw_opaque, desc, d, 16, false)) {
        /* Report it in the control field if that much is RAM, so the guest's poll ends. */
        uint8_t error[4] = { 0, 0, 0, DMA_CTL_ERROR };
        f->rw(f->rw_opaque, desc, error, 4, true);
        return;
    }
    uint32_t control = (uint32_t)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3];
    uint32_t len = (uint32_t)d[4] << 24 | d[5] << 16 | d[6] << 8 | d[7];
    uint64_t addr = 0;
    for (int k = 8; k < 16; k++)
        addr = addr << 8 | d[k];
    if (control & DMA_CTL_SELECT) {
        f->selector = (control >> 16) & 0xbfff;
        f->offset = 0;
    }
    bool ok = true;
    const struct item *it = current_item(f);
    if ((control & DMA_CTL_WRITE) && !(control & DMA_CTL_READ)) {
        ok = false;                          /* items are read-only; read wins over write */
    } else if (control & (DMA_CTL_READ | DMA_CTL_SKIP)) {
        uint32_t avail = it && f->offset < it->len ? it->len - f->offset : 0;
        uint32_t n = len < avail ? len : avail;
        if ((control & DMA_CTL_READ) && n)
            ok = f->rw(f->rw_opaque, addr, it->data + f->offset, n, true);
        if (ok && (control & DMA_CTL_READ) && len > n) {
            /* Past the end of the item the device reads zeros. */
            uint8_t zero[256] = { 0 };
            for (uint32_t done = n; ok && done < len; done += sizeof(zero)) {
                uint32_t chunk = len - done < sizeof(zero) ? len - done : sizeof(zero);
                ok = f->rw(f->rw_opaque, addr + done, zero, chunk, true);
            }
        }
        f->offset += n;
    }
    uint8_t status[4] = { 0, 0, 0, ok ? 0 : DMA_CTL_ERROR };
    f->rw(f->rw_opaque, desc, status, 4, true);
}

static uint32_t dma_read(void *opaque, uint16_t port, int size)
{
    /* Reading the address register gives the signature "QEMU CFG" (big-endian). */
    static const char sig[] = "QEMU CFG";
    int off = port - FWCFG_PORT_DMA;
    uint32_t v = 0;
    for (int k = 0; k < size && off + k < 8; k++)
        v |= (uint32_t)(uint8_t)sig[off + k] << (8 * k);
    return v;
}

static void dma_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    struct fwcfg *f = opaque;
    uint32_t be = __builtin_bswap32(val);
    if (size != 4)
        return;
    if (port == FWCFG_PORT_DMA) {
        f->dma_addr_high = be;
    } else if (port == FWCFG_PORT_DMA + 4) {
        dma_transfer(f, (uint64_t)f->dma_addr_high << 32 | be);
        f->dma_addr_high = 0;
    }
}

static void fw_reset(void *opaque)
{
    struct fwcfg *f = opaque;
    f->selector = 0;
    f->offset = 0;
}

/* The items are the machine's configuration, filled again when it is built;
 * what the guest changes is where it is reading. */
static const struct state_field fwcfg_fields[] = {
    STATE_FIELD(struct fwcfg, selector), STATE_FIELD(struct fwcfg, offset), STATE_FIELD(struct fwcfg, dma_addr_high),
};
static const struct state_table fwcfg_state = { "fw_cfg", 1, fwcfg_fields, STATE_COUNT(fwcfg_fields), NULL };

struct fwcfg *fwcfg_new(struct bus *b, guest_phys_rw_fn rw, void *rw_opaque)
{
    struct fwcfg *f = xcalloc(1, sizeof(*f));
    f->bus = b;
    f->rw = rw;
    f->rw_opaque = rw_opaque;
    fwcfg_add_bytes(f, FW_CFG_SIGNATURE, "QEMU", 4);
    /* Traditional interface, plus DMA when the machine gave us a guest-memory accessor. */
    fwcfg_add_i32(f, FW_CFG_ID, 1 | (rw ? FW_CFG_VERSION_DMA : 0));
    layout_files(f);
    bus_register_pio(b, FWCFG_PORT_SEL, 2, f, fw_read, fw_write);
    if (rw)
        bus_register_pio(b, FWCFG_PORT_DMA, 8, f, dma_read, dma_write);
    struct device dev = { "fw_cfg", f, fw_reset, &fwcfg_state };
    bus_add_device(b, &dev);
    return f;
}

void fwcfg_free(struct fwcfg *f)
{
    if (!f)
        return;
    for (int k = 0; k < MAX_KEYS; k++)
        if (k < FW_CFG_FILE_FIRST)
            free(f->items[k].data);
    for (int k = 0; k < MAX_ARCH_KEYS; k++)
        free(f->arch_items[k].data);
    for (int k = 0; k < f->nfiles; k++)
        free(f->files[k].item.data);
    free(f);
}
