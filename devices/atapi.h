/*
 * ATAPI CD-ROM drive: the packet (MMC/SPC) command layer behind an IDE
 * slot.  devices/ide.c runs the ATA side of the PACKET protocol (task file,
 * DRQ blocks, interrupt reason, bus-master DMA) and hands each 12-byte
 * command packet here; this file decides what the command means, what data
 * flows and what sense data the drive reports.
 *
 * The medium is an ISO 9660 image of 2048-byte sectors, opened read-only.
 * An image whose size is not a multiple of 2048 is accepted with a warning
 * and its last, partial sector is ignored; an image smaller than one sector
 * is refused.
 *
 * Media changes come from the host (atapi_insert / atapi_eject: the command
 * line now, the monitor console later) or from the guest (START STOP UNIT
 * opens and closes the tray).  The guest sees them as UNIT ATTENTION
 * (28h, "medium may have changed") on its next command and as media events
 * in GET EVENT STATUS NOTIFICATION.  PREVENT ALLOW MEDIUM REMOVAL locks the
 * tray against both the guest's eject and the host's (unless forced).
 *
 * Errors are CHECK CONDITION with sense data (REQUEST SENSE reads it):
 * ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE for a read past the
 * end, NOT READY / MEDIUM NOT PRESENT without a disc, MEDIUM ERROR when the
 * host cannot read the image.
 */
#ifndef RV_ATAPI_H
#define RV_ATAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATAPI_SECTOR 2048
#define ATAPI_PACKET_SIZE 12

/* Sense keys */
#define SENSE_NONE 0x0
#define SENSE_NOT_READY 0x2
#define SENSE_MEDIUM_ERROR 0x3
#define SENSE_ILLEGAL_REQUEST 0x5
#define SENSE_UNIT_ATTENTION 0x6

struct atapi;
struct state_table;

struct atapi *atapi_new(void);
/* What a snapshot keeps of a drive: tray, lock, sense and the data phase of
 * the command in progress (the disc itself is configuration).  The IDE
 * controller registers each attached drive under its position's name. */
const struct state_table *atapi_state_table(void);
void atapi_free(struct atapi *a);       /* closes the medium */

/* ---- host side: media ---- */

/* Put the image at path in the drive (closing the tray), replacing any disc.
 * Returns 0, or -1 with one line in err (unreadable file, too small, tray
 * locked by the guest and !force); the drive is unchanged on error. */
int atapi_insert(struct atapi *a, const char *path, bool force, char *err, size_t errlen);
/* Open the tray and take the disc out.  Returns 0, or -1 with one line in
 * err when the guest has locked the tray (and !force): the guest is then
 * told that the user asks for the disc (GESN eject request). */
int atapi_eject(struct atapi *a, bool force, char *err, size_t errlen);
bool atapi_has_medium(const struct atapi *a);
bool atapi_tray_open(const struct atapi *a);
bool atapi_locked(const struct atapi *a);
const char *atapi_medium_path(const struct atapi *a);   /* NULL: no disc */
uint32_t atapi_medium_sectors(const struct atapi *a);

/* ---- drive side: resets ---- */

/* Power-on or hardware reset: the tray lock, pending sense and events go; a
 * disc in the drive is ready at once (no unit attention). */
void atapi_power_on(struct atapi *a);
/* ATA soft reset or DEVICE RESET: the command in progress is dropped. */
void atapi_soft_reset(struct atapi *a);

/* ---- drive side: one command ---- */

/* Run a packet.  Afterwards exactly one of these holds:
 *   atapi_failed()           CHECK CONDITION; the sense key is returned;
 *   atapi_data_in_left() > 0 the host is to read that many bytes (in
 *                            pieces, through atapi_data_in);
 *   atapi_data_out_left() > 0 the host is to write that many bytes;
 *   otherwise                GOOD, no data. */
void atapi_packet(struct atapi *a, const uint8_t packet[ATAPI_PACKET_SIZE]);
bool atapi_failed(const struct atapi *a, uint8_t *sense_key);
uint64_t atapi_data_in_left(const struct atapi *a);
uint32_t atapi_data_out_left(const struct atapi *a);
/* The next n (<= left) bytes of the data-in phase.  False when the image
 * could not be read: the command has then failed (MEDIUM ERROR). */
bool atapi_data_in(struct atapi *a, uint8_t *buf, uint32_t n);
/* The next n (<= left) bytes of the data-out phase (MODE SELECT's list). */
void atapi_data_out(struct atapi *a, const uint8_t *buf, uint32_t n);

/* Sense data the drive holds now (key, ASC, ASCQ), for tests and traces. */
void atapi_sense(const struct atapi *a, uint8_t *key, uint8_t *asc, uint8_t *ascq);

#endif
