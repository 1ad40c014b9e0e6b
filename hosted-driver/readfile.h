/*
 * Reading a whole input file (firmware, kernel, initrd, option ROM) that the
 * user named: it must be a regular file no larger than its purpose allows,
 * which is checked with fstat before a byte is read, so that a directory, a
 * FIFO or a 4 GiB file given by mistake is refused at once instead of read.
 */
#ifndef RV_READFILE_H
#define RV_READFILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the contents (free with free()) and their length, or NULL with
 * one line in err that starts with the path: "PATH: why".  An empty file
 * is an error.  limit_why says what the limit is, for the message
 * ("a BIOS image is at most 256 KiB").
 */
uint8_t *read_regular_file(const char *path, uint64_t limit, const char *limit_why, size_t *len, char *err,
                           size_t errlen);

/* Why path is no file to read input from ("is a directory", "is a FIFO", ...), or NULL when it can be. */
const char *input_file_problem(const char *path, char *buf, size_t buflen);

#endif
