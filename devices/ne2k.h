/*
 * NE2000 PCI (Realtek RTL8029, PCI 10ec:8029): a DP8390 core with 32 KiB
 * of on-card buffer memory, reached by the host only through remote DMA on
 * the data port.  32 bytes of I/O at BAR0:
 *   0x00-0x0F  the DP8390 registers, in four pages chosen by CR bits 7:6
 *   0x10-0x17  the remote-DMA data port (8-, 16- or 32-bit)
 *   0x18-0x1F  the reset port (a read resets the core)
 * Buffer memory is pages 0x40-0x7F; remote reads of 0x0000-0x001F return
 * the station-address PROM (each byte doubled, as word-wide NE2000s do).
 * Received frames go into the ring between PSTART and PSTOP with a 4-byte
 * header (status, next page, length); a ring the guest configured wrongly
 * drops the frame and counts it.  Nothing touches guest memory.
 */
#ifndef RV_NE2K_H
#define RV_NE2K_H

#include <stdint.h>

struct bus;
struct pci_bus;
struct netdev;
struct ne2k;

struct ne2k *ne2k_new(struct bus *b, struct pci_bus *pb, int devfn, const uint8_t mac[6], struct netdev *nd);
void ne2k_free(struct ne2k *s);
/* Put a boot ROM (iPXE's, for -boot n) behind the card's expansion ROM BAR. */
void ne2k_set_rom(struct ne2k *s, const uint8_t *img, uint32_t len);
/* Frames dropped: ring overflow, a ring set up wrongly, oversized transmits. */
uint64_t ne2k_dropped(const struct ne2k *s);

#endif
