/*
 * cdctl: the CD-ROM ioctls the Linux guest's end-to-end checks need (busybox
 * has no eject).  Built static for i386 by build-linux.sh into the initramfs.
 *
 *   cdctl status DEV     prints no-disc, tray-open, not-ready, disc-ok
 *   cdctl eject DEV      opens the tray (START STOP UNIT, LoEj)
 *   cdctl close DEV      closes it
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

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cdctl status|eject|close DEVICE\n");
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
    } else {
        fprintf(stderr, "cdctl: unknown command %s\n", argv[1]);
        return 2;
    }
    if (r < 0)
        perror(argv[1]);
    close(fd);
    return r < 0 ? 1 : 0;
}
