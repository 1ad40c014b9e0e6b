/* Option and file checks for the command line (see cli_check.c). */
#ifndef RV_CLI_CHECK_H
#define RV_CLI_CHECK_H

#include <stdbool.h>
#include <stdint.h>

struct machine_config;

/* "retrovisor: <message>" on stderr, exit status 2. */
_Noreturn void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
long cli_number(const char *opt, const char *s, long min, long max);
/* A file name: an empty one is refused. */
const char *cli_need_path(const char *opt, const char *val);
/* on/yes/true or off/no/false. */
bool cli_on_off(const char *opt, const char *key, const char *v);
/* -run-for: finite, positive, at least 1 ns; returns nanoseconds. */
int64_t cli_seconds(const char *opt, const char *s);
/* -icount [shift=]N: returns N. */
int cli_icount(const char *arg);
void cli_check_chardev(const char *opt, const char *spec);
/* [ADDR]:N[,sub-options] of -vnc / -display vnc=. */
void cli_check_vnc(const char *opt, const char *spec);
void cli_check_display(const char *spec);
/* Inputs exist and are regular files; no output is one of them. */
void cli_check_files(const struct machine_config *cfg, const char *trace_file, const char *screendump);

#endif
