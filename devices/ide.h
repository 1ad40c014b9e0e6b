/*
 * PIIX3 IDE controller, PCI 00:01.1 (8086:7010, class 01:01:80): two
 * channels in legacy ("compatibility") mode with bus-master DMA.
 *
 *   primary    0x1F0-0x1F7, 0x3F6, IRQ 14
 *   secondary  0x170-0x177, 0x376, IRQ 15
 *   BAR4       16 bytes of I/O: bus-master command/status/PRD pointer,
 *              primary at +0, secondary at +8 (placed by firmware)
 *
 * Each channel has a master and a slave; a drive is an ATA hard disk backed
 * by a blockdev, or an ATAPI CD-ROM whose packet commands devices/atapi.c
 * runs (ide.c moves their data by PIO, in blocks no larger than the byte
 * count limit, or by bus-master DMA).  Commands complete
 * immediately: the interrupt is raised when a PIO block is ready (reads),
 * after a PIO block has been written (writes), when a non-data command is
 * done, or when a bus-master transfer has finished.  FLUSH CACHE fsyncs the
 * image before it completes.
 *
 * DMA reaches guest memory only through the machine's bounds-checked
 * accessor; a PRD table or buffer outside RAM sets the bus-master error bit
 * and fails the ATA command.
 */
#ifndef RV_IDE_H
#define RV_IDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef RV_GUEST_PHYS_RW_FN
#define RV_GUEST_PHYS_RW_FN
/* Copy len bytes between buf and guest-physical gpa; false when the range is not all RAM. */
typedef bool (*guest_phys_rw_fn)(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write);
#endif

struct bus;
struct pci_bus;
struct blockdev;
struct atapi;
struct ide;

#define IDE_PCI_DEVFN ((1 << 3) | 1)    /* 00:01.1 */

/* Claims the legacy ports and registers the PCI function (pb may be NULL:
 * then there is no bus master, as on an ISA-only machine). */
struct ide *ide_new(struct bus *b, struct pci_bus *pb, guest_phys_rw_fn rw, void *rw_opaque);
void ide_free(struct ide *s);

/* Attach an ATA disk at channel 0/1, master (slave = 0) or slave (1).  The
 * controller does not own bd: close it after ide_free.  Returns 0, or -1
 * with one line in err (slot taken, bad channel). */
int ide_attach_disk(struct ide *s, int channel, int slave, struct blockdev *bd, char *err, size_t errlen);

/* Attach an ATAPI CD-ROM drive (devices/atapi.h) at channel 0/1, master or
 * slave.  The controller does not own cd: free it after ide_free. */
int ide_attach_cdrom(struct ide *s, int channel, int slave, struct atapi *cd, char *err, size_t errlen);

/* The disk's default CHS geometry as IDENTIFY reports it (16 heads, 63
 * sectors, cylinders = min(sectors / 1008, 16383)).  False when the slot
 * holds no disk.  The machine uses this for the CMOS disk bytes. */
bool ide_disk_geometry(struct ide *s, int channel, int slave, uint16_t *cyls, uint8_t *heads, uint8_t *spt);

#endif
