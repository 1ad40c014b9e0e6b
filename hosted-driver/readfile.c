/* Whole-file input, type and size checked first (see readfile.h). */
#include "hosted-driver/readfile.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode))
        return "is a directory";
    if (S_ISFIFO(mode))
        return "is a FIFO, not a regular file";
    if (S_ISSOCK(mode))
        return "is a socket, not a regular file";
    if (S_ISCHR(mode))
        return "is a character device, not a regular file";
    if (S_ISBLK(mode))
        return "is a block device, not a regular file";
    return "is not a regular file";
}

const char *input_file_problem(const char *path, char *buf, size_t buflen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(buf, buflen, "%s", strerror(errno));
        return buf;
    }
    if (!S_ISREG(st.st_mode))
        return kind_of(st.st_mode);
    return NULL;
}

static bool read_all(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

uint8_t *read_regular_file(const char *path, uint64_t limit, const char *limit_why, size_t *len, char *err,
                           size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, kind_of(st.st_mode));
        close(fd);
        return NULL;
    }
    if (st.st_size <= 0) {
        snprintf(err, errlen, "%s: empty file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > limit) {
        snprintf(err, errlen, "%s: %llu bytes is too large (%s)", path, (unsigned long long)st.st_size, limit_why);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    size_t n = (size_t)st.st_size;
    uint8_t *buf = xmalloc(n);
    errno = 0;
    if (!read_all(fd, buf, n)) {
        snprintf(err, errlen, "%s: cannot read %zu bytes (%s)", path, n, errno ? strerror(errno) : "file shrank");
        free(buf);
        close(fd);
        return NULL;
    }
    close(fd);
    *len = n;
    return buf;
}
