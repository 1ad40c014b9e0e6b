/*
 * The two 8237A DMA controllers of the PC/AT, with their page registers.
 *
 *   DMA1  ports 0x00-0x0F   channels 0-3, byte transfers
 *   DMA2  ports 0xC0-0xDF   channels 4-7 (registers on even ports), word
 *                           transfers; channel 4 is the cascade from DMA1
 *   page  ports 0x81-0x8F   address bits 16-23 (0x87/0x83/0x81/0x82 for
 *                           channels 0-3, 0x8B/0x89/0x8A for 5-7); the other
 *                           ports there are plain storage, as on the PIIX.
 *                           Port 0x80 stays the POST port (devices/post.c).
 *
 * 16-bit channels address words: the byte address is
 * (page & 0xFE) << 16 | address << 1, and the count is in words.  An 8-bit
 * channel's address wraps within its 64 KiB page, a 16-bit channel's within
 * its 128 KiB page: the page register is never incremented, as on the ISA bus.
 *
 * A device (the client) on a channel holds its DREQ line with dma_set_dreq.
 * Whenever the line is held, the channel is unmasked, the controller
 * enabled and the channel not in cascade mode, the controller calls the
 * client's service function, at once or later (when the guest unmasks the
 * channel); the service moves data with dma_to_memory / dma_from_memory and
 * drops DREQ when it is done.  Single, block and demand modes differ on the
 * bus only in when the channel lets go of it between bytes; with the whole
 * transfer done in one service call they all move bytes until the client
 * stops or the count runs out.  At the terminal count the channel's TC
 * status bit is set and it either reloads its base address and count
 * (auto-init) or masks itself.
 *
 * Memory is reached only through the machine's bounds-checked accessor:
 * bytes written beyond RAM are dropped and bytes read there read as 0xFF,
 * and the count advances as on the bus.  A transfer whose mode disagrees with
 * what the client asks (a verify transfer, or the other direction) touches
 * no memory and only advances the count; the client gets 0xFF bytes.
 */
#ifndef RV_DMA_H
#define RV_DMA_H

#include <stdbool.h>
#include <stdint.h>

#ifndef RV_GUEST_PHYS_RW_FN
#define RV_GUEST_PHYS_RW_FN
/* Copy len bytes between buf and guest-physical gpa; false when the range is not all RAM. */
typedef bool (*guest_phys_rw_fn)(void *opaque, uint64_t gpa, void *buf, uint32_t len, bool write);
#endif

struct bus;
struct dma;

#define DMA_CHANNELS 8

/* The client's side: called while DREQ is held and the channel may go. */
typedef void (*dma_service_fn)(void *opaque, int channel);

struct dma *dma_new(struct bus *b, guest_phys_rw_fn rw, void *rw_opaque);
void dma_free(struct dma *d);

void dma_attach(struct dma *d, int channel, dma_service_fn service, void *opaque);
void dma_set_dreq(struct dma *d, int channel, bool held);

/* Move up to len bytes (device to memory: a "write" transfer; memory to
 * device: a "read" transfer).  Returns the bytes moved; fewer than len when
 * the terminal count came first.  *tc (may be NULL) says whether it did. */
uint32_t dma_to_memory(struct dma *d, int channel, const void *buf, uint32_t len, bool *tc);
uint32_t dma_from_memory(struct dma *d, int channel, void *buf, uint32_t len, bool *tc);

/* Bytes left before the terminal count (what the count register means). */
uint32_t dma_bytes_left(struct dma *d, int channel);

#endif
