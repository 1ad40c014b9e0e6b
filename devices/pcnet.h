/*
 * AMD PCnet-PCI II (Am79C970A, PCI 1022:2000), the card VMware emulated
 * ("vlance").  32 bytes of I/O at BAR0:
 *   0x00-0x0F  the address PROM (MAC, checksum, "WW")
 *   WIO (16-bit, after reset)  0x10 RDP, 0x12 RAP, 0x14 RESET, 0x16 BDP
 *   DWIO (32-bit, after a dword write to RDP)  0x10 RDP, 0x14 RAP, 0x18 RESET, 0x1C BDP
 * RAP selects a CSR for RDP or a BCR for BDP.  The initialization block
 * and the descriptor rings live in guest memory in software style 0
 * (16-bit LANCE), 2 (32-bit PCnet-PCI) or 3 (style 2 with the descriptor
 * words swapped), chosen by BCR20.  Every guest-memory access goes
 * through the machine's bounds-checked accessor: a ring, descriptor or
 * buffer outside RAM sets MERR (or the descriptor's error bits), drops the
 * frame and counts it.
 */
#ifndef RV_PCNET_H
#define RV_PCNET_H

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
struct netdev;
struct pcnet;

struct pcnet *pcnet_new(struct bus *b, struct pci_bus *pb, int devfn, const uint8_t mac[6], struct netdev *nd,
                        guest_phys_rw_fn rw, void *rw_opaque);
void pcnet_free(struct pcnet *s);
/* Put a boot ROM (iPXE's, for -boot n) behind the card's expansion ROM BAR. */
void pcnet_set_rom(struct pcnet *s, const uint8_t *img, uint32_t len);
/* Frames the card dropped: guest mistakes (rings or buffers outside RAM,
 * oversized frames) and receive overruns (no descriptor owned). */
uint64_t pcnet_dropped(const struct pcnet *s);

#endif
