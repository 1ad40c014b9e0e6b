/*
 * Standard VGA with the Bochs VBE "DISPI" extension, as a PCI function
 * (1234:1111, class 03:00:00, revision 2) — what QEMU calls "-vga std" and
 * what SeaVGABIOS's bochsvga/stdvga driver programs.
 *
 *   legacy ports   0x3B4/0x3B5/0x3BA (mono) or 0x3D4/0x3D5/0x3DA (colour),
 *                  chosen by bit 0 of the misc output register; 0x3C0-0x3CF
 *   legacy memory  0xA0000-0xBFFFF, decoded by GR6's memory map select
 *   DISPI          index 0x1CE, data 0x1CF (16-bit registers, IDs up to 0xB0C5)
 *   BAR0           the linear framebuffer: all 16 MiB of video memory, prefetchable
 *   BAR2           4 KiB of MMIO: VGA ports at 0x400, DISPI at 0x500, QEMU
 *                  extended registers at 0x600 (what Linux's bochs-drm uses)
 *   ROM BAR        the VGA BIOS image (SeaVGABIOS), copied by SeaBIOS at boot
 *
 * Video memory layout.  The 256 KiB VGA area is the first 256 KiB of video
 * memory, planes interleaved: plane p of plane offset o is vram[o * 4 + p].
 * Chain-4 CPU address A is vram[A] (so mode 13h and VBE modes are linear),
 * odd/even CPU address A is plane (A & 1) [| 2] of offset A >> 1, and the
 * CRTC's memory address counter is a plane offset.  VBE modes use vram
 * linearly from 0.
 */
#ifndef RV_VGA_H
#define RV_VGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct pci_bus;
struct vga;

#define VGA_PCI_DEVFN (2 << 3)      /* 00:02.0, where QEMU's PC puts it too */
#define VGA_DEFAULT_BIOS "/usr/share/seabios/vgabios-stdvga.bin"
#define VGA_VRAM_SIZE (16u << 20)
#define VGA_PLANAR_SIZE (256u << 10)

/* Bochs DISPI registers (index port 0x1CE). */
enum {
    VBE_INDEX_ID, VBE_INDEX_XRES, VBE_INDEX_YRES, VBE_INDEX_BPP, VBE_INDEX_ENABLE,
    VBE_INDEX_BANK, VBE_INDEX_VIRT_WIDTH, VBE_INDEX_VIRT_HEIGHT, VBE_INDEX_X_OFFSET,
    VBE_INDEX_Y_OFFSET, VBE_INDEX_VIDEO_MEMORY_64K, VBE_INDEX_COUNT
};
#define VBE_ENABLED 0x01
#define VBE_GETCAPS 0x02
#define VBE_8BIT_DAC 0x20
#define VBE_LFB_ENABLED 0x40
#define VBE_NOCLEARMEM 0x80
#define VBE_MAX_XRES 2560
#define VBE_MAX_YRES 1600
#define VBE_MAX_BPP 32

/*
 * Everything the renderer reads, as the guest last programmed it.  The
 * pointer from vga_state stays valid for the device's lifetime; read only.
 */
struct vga_state {
    uint8_t misc;               /* misc output register (0x3C2/0x3CC) */
    uint8_t sr[8];              /* sequencer */
    uint8_t gr[16];             /* graphics controller */
    uint8_t cr[256];            /* CRTC (0x00-0x18 defined; others are scratch) */
    uint8_t ar[32];             /* attribute controller (0x00-0x14 defined) */
    uint8_t ar_index;           /* bit 5: palette address source (0 = screen blanked) */
    uint8_t pel_mask;           /* DAC pixel mask (0x3C6) */
    uint8_t palette[256 * 3];   /* DAC, R G B; 6-bit values unless dac_8bit */
    bool dac_8bit;              /* VBE_8BIT_DAC: palette values are 8-bit */
    uint16_t vbe[VBE_INDEX_COUNT];
    uint32_t vbe_line_bytes;    /* bytes per scanline of the VBE mode */
    uint32_t vbe_start_bytes;   /* offset of the first visible pixel (X/Y_OFFSET) */
    uint8_t *vram;              /* VGA_VRAM_SIZE bytes */
    uint32_t vram_size;
};

/*
 * Claims the legacy ports and memory window, the DISPI ports, and registers
 * the PCI function at devfn (pci may be NULL: then no BARs and no ROM, like
 * an ISA VGA whose BIOS the machine loads itself).  Reads the VGA BIOS image
 * from vgabios_path; NULL with one line in err when it is missing, unreadable
 * or not an option ROM.
 */
struct vga *vga_new(struct bus *b, struct pci_bus *pci, int devfn, const char *vgabios_path,
                    char *err, size_t errlen);
void vga_free(struct vga *v);

const struct vga_state *vga_state(const struct vga *v);
/* The VGA BIOS image as loaded (for machines without PCI ROM support). */
const uint8_t *vga_bios(const struct vga *v, uint32_t *size);

/*
 * The linear framebuffer (BAR0) is plain memory, so the machine should map
 * it like RAM instead of taking an MMIO callback per pixel.  When the guest
 * places BAR0, map(opaque, base, len, host) is called with the video memory;
 * before it moves or when decoding stops, map(opaque, PCI_BAR_UNMAPPED, len,
 * NULL) removes the previous mapping.  The LFB is also registered as bus MMIO,
 * so it works (slowly) with no mapper set.  Setting a mapper while BAR0 is
 * placed calls it at once.
 */
typedef void (*vga_lfb_map_fn)(void *opaque, uint32_t base, uint32_t len, uint8_t *host);
void vga_set_lfb_mapper(struct vga *v, vga_lfb_map_fn map, void *opaque);
/* Where BAR0 decodes now, or PCI_BAR_UNMAPPED. */
uint32_t vga_lfb_base(const struct vga *v);

#endif
