/*
 * 82077AA-compatible floppy disk controller at 0x3F0-0x3F5 and 0x3F7
 * (0x3F6 is the IDE channel's), IRQ 6, ISA DMA channel 2, two drives.
 *
 * Registers: SRA/SRB (read-only status), DOR (drive select, reset, DMA
 * gate, motors), TDR, MSR/DSR, the data FIFO, DIR (bit 7: the selected
 * drive's disk-change line)/CCR.  Commands: specify, sense drive status,
 * recalibrate, seek and relative seek, sense interrupt status, read and
 * write data (multi-track, MFM; SK accepted: there are no deleted sectors),
 * read ID, format track, version, configure, lock/unlock, dumpreg and
 * perpendicular mode; anything else is invalid (one result byte 0x80), so
 * Linux sees a "post-1991 82077".  SPECIFY's ND bit selects non-DMA mode:
 * the execution phase then moves its bytes through the FIFO port, with
 * IRQ 6 held while it lasts.
 *
 * Media are raw images of a known size (floppy_format_by_size); sectors are
 * 512 bytes and found by the C/H/R of the command (as on a disk that was
 * formatted to its geometry).  A command that cannot find its sector ends
 * as the chip does: ST0 abnormal termination and ST1 "missing address mark"
 * (no disk, a data rate the medium was not recorded at, FM instead of MFM,
 * a cylinder beyond the medium) or "no data" (no such sector or head, a
 * sector size other than 512); writes to a read-only image give ST1 "not
 * writable".  Running off the end of the track without the DMA's terminal
 * count gives "end of cylinder", which is how a non-DMA transfer ends.
 *
 * Each drive's disk-change line is set when a disk is inserted or removed
 * (and at power-on) and cleared by a seek or recalibrate with a disk in.
 * Results and seeks complete after a short delay on the virtual clock.
 */
#ifndef RV_FDC_H
#define RV_FDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct dma;
struct blockdev;
struct fdc;

#define FDC_IRQ 6
#define FDC_DMA_CHANNEL 2

/* CMOS register 0x10 drive types. */
enum floppy_drive_type {
    FLOPPY_NONE = 0,
    FLOPPY_360K = 1,      /* 5.25" double density */
    FLOPPY_1200K = 2,     /* 5.25" high density */
    FLOPPY_720K = 3,      /* 3.5" double density */
    FLOPPY_1440K = 4,     /* 3.5" high density */
    FLOPPY_2880K = 5,     /* 3.5" extra density */
};

struct floppy_format {
    uint32_t bytes;
    uint8_t tracks, heads, spt;
    uint8_t rate;                     /* DSR/CCR data rate code the medium is read at */
    enum floppy_drive_type drive;     /* the drive such a disk goes in */
    const char *name;
};

/* The format of an image of this many bytes, or NULL. */
const struct floppy_format *floppy_format_by_size(uint64_t bytes);
/* The sizes known, as text for error messages ("160K, 180K, ..."). */
const char *floppy_known_sizes(void);

struct fdc *fdc_new(struct bus *b, struct dma *dma);
void fdc_free(struct fdc *f);

/* Connect drive unit (0 = A:, 1 = B:) of the given type. */
void fdc_add_drive(struct fdc *f, int unit, enum floppy_drive_type type);
enum floppy_drive_type fdc_drive_type(const struct fdc *f, int unit);
/* Put a disk in a connected drive (the controller does not own bd).
 * Returns 0, or -1 with one line in err (no such drive, size of no format). */
int fdc_insert(struct fdc *f, int unit, struct blockdev *bd, char *err, size_t errlen);
/* Take the disk out; returns it (for the caller to close), or NULL. */
struct blockdev *fdc_eject(struct fdc *f, int unit);

#endif
