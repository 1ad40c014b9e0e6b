/*
 * cdctl: the CD-ROM ioctls the Linux guest's end-to-end checks need (busybox
 * has no eject).  Built static for i386 by build-linux.sh into the initramfs.
 *
 *   cdctl status DEV     prints no-disc, tray-open, not-ready, disc-ok
 *   cdctl eject DEV      opens the tray (START STOP UNIT, LoEj)
 *   cdctl close DEV      closes it
 *   cdctl info DEV       the table of contents, multisession, disc status and
 *                        sub-channel as the kernel's cdrom layer reports them
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/cdrom.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *status_name(int s)
{
    switch (s) {
    case CDS_NO_INFO: return "no-info";
    case CDS_NO_DISC: return "no-disc";
    case CDS_TRAY_OPEN: return "tray-open";
    case CDS_DRIVE_NOT_READY: return "not-ready";
    case CDS_DISC_OK: return "disc-ok";
    default: return "error";
    }
}

static const char *disc_status_name(int s)
{
    switch (s) {
    case CDS_NO_INFO: return "no-info";
    case CDS_NO_DISC: return "no-disc";
    case CDS_AUDIO: return "audio";
    case CDS_DATA_1: return "data-1";
    case CDS_DATA_2: return "data-2";
    case CDS_XA_2_1: return "xa-2-1";
    case CDS_XA_2_2: return "xa-2-2";
    case CDS_MIXED: return "mixed";
    default: return "error";
    }
}

/* Each line "NAME values", or "NAME error" when the ioctl fails. */
static int info(int fd)
{
    struct cdrom_tochdr hdr;
    if (ioctl(fd, CDROMREADTOCHDR, &hdr) == 0)
        printf("toc-header %d %d\n", hdr.cdth_trk0, hdr.cdth_trk1);
    else
        printf("toc-header error\n");
    int tracks[2] = { 1, CDROM_LEADOUT };
    for (int i = 0; i < 2; i++) {
        struct cdrom_tocentry e = { .cdte_track = (unsigned char)tracks[i], .cdte_format = CDROM_LBA };
        if (ioctl(fd, CDROMREADTOCENTRY, &e) == 0)
            printf("toc-lba %d ctrl %d lba %d\n", tracks[i], e.cdte_ctrl, e.cdte_addr.lba);
        else
            printf("toc-lba %d error\n", tracks[i]);
        e = (struct cdrom_tocentry){ .cdte_track = (unsigned char)tracks[i], .cdte_format = CDROM_MSF };
        if (ioctl(fd, CDROMREADTOCENTRY, &e) == 0)
            printf("toc-msf %d %02d:%02d:%02d\n", tracks[i], e.cdte_addr.msf.minute, e.cdte_addr.msf.second,
                   e.cdte_addr.msf.frame);
        else
            printf("toc-msf %d error\n", tracks[i]);
    }
    struct cdrom_multisession ms = { .addr_format = CDROM_LBA };
    if (ioctl(fd, CDROMMULTISESSION, &ms) == 0)
        printf("multisession xa %d lba %d\n", ms.xa_flag, ms.addr.lba);
    else
        printf("multisession error\n");
    printf("disc-status %s\n", disc_status_name(ioctl(fd, CDROM_DISC_STATUS, 0)));
    struct cdrom_subchnl sc = { .cdsc_format = CDROM_LBA };
    if (ioctl(fd, CDROMSUBCHNL, &sc) == 0)
        printf("subchannel audio 0x%02x track %d index %d lba %d\n", sc.cdsc_audiostatus, sc.cdsc_trk, sc.cdsc_ind,
               sc.cdsc_absaddr.lba);
    else
        printf("subchannel error\n");
    int cap = ioctl(fd, CDROM_GET_CAPABILITY, 0);
    printf("capability%s%s%s%s\n", cap & CDC_OPEN_TRAY ? " open-tray" : "", cap & CDC_CLOSE_TRAY ? " close-tray" : "",
           cap & CDC_LOCK ? " lock" : "", cap & CDC_MEDIA_CHANGED ? " media-changed" : "");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cdctl status|eject|close|info DEVICE\n");
        return 2;
    }
    /* O_NONBLOCK: open the drive even without a disc, and do not close the tray. */
    int fd = open(argv[2], O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    int r;
    if (!strcmp(argv[1], "status")) {
        r = ioctl(fd, CDROM_DRIVE_STATUS, CDSL_CURRENT);
        printf("%s\n", status_name(r));
        r = r < 0 ? r : 0;
    } else if (!strcmp(argv[1], "eject")) {
        r = ioctl(fd, CDROMEJECT, 0);
    } else if (!strcmp(argv[1], "close")) {
        r = ioctl(fd, CDROMCLOSETRAY, 0);
    } else if (!strcmp(argv[1], "info")) {
        r = info(fd);
    } else {
        fprintf(stderr, "cdctl: unknown command %s\n", argv[1]);
        return 2;
    }
    if (r < 0)
        perror(argv[1]);
    close(fd);
    return r < 0 ? 1 : 0;
}
