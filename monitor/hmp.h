/*
 * The monitor console (-monitor): QEMU's human monitor commands, where the
 * meaning is the same, over the terminal, a unix socket or TCP.
 *
 * The console has a thread of its own: it accepts connections (several,
 * one after another or at once), reads lines, and hands each command to
 * the machine's thread through machine_call, so a command runs between
 * slices and sees (and may change) a consistent machine.  Its output is
 * collected there and written back to the client by the console thread.
 *
 * -monitor stdio shares the terminal with a serial port on stdio as QEMU's
 * mux does: Ctrl-A C switches between the two.
 */
#ifndef RV_HMP_H
#define RV_HMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct machine;
struct cpu;

/* -monitor stdio | unix:PATH[,server][,nowait] | tcp:[HOST]:PORT[,server][,nowait]
 * (also server=on|off, wait=on|off).  Without server the console connects
 * to PATH or HOST:PORT as a client.  HOST defaults to 127.0.0.1. */
enum hmp_kind { HMP_STDIO, HMP_UNIX, HMP_TCP };
struct hmp_spec {
    enum hmp_kind kind;
    char path[108];          /* unix: the socket's path */
    char host[256];          /* tcp: the address to bind or connect to */
    char port[16];
    bool server;
    bool wait;               /* server: wait for the first client before the guest starts */
};
/* False with one line in err (naming the spec and why). */
bool hmp_parse_spec(const char *spec, struct hmp_spec *out, char *err, size_t errlen);

struct hmp;
/* Start the console; serial_on_stdio: a serial port has the terminal too
 * (stdio is then shared, Ctrl-A C switches).  NULL with one line in err. */
struct hmp *hmp_open(struct machine *m, const char *spec, bool serial_on_stdio, char *err, size_t errlen);
/* Stop the console thread and close its sockets (after machine_run). */
void hmp_close(struct hmp *h);

/* ---- the command layer (machine thread), public for the unit tests ---- */

/* x/FMT and xp/FMT: count, format (x d u o c i) and unit size (b h w g). */
struct hmp_format {
    unsigned count;
    char format;
    int size;                /* bytes: 1, 2, 4, 8 */
};
/* fmt is what follows the '/' ("10i", "4xw", "" for the defaults). */
bool hmp_parse_format(const char *fmt, struct hmp_format *out, char *err, size_t errlen);
/* An address: a number (0x hex, else decimal), $REG ($eax..$edi, $ax..,
 * $eip, $pc = CS base + EIP, $esp, segment selectors, $cr0..$cr4, $eflags),
 * or a sum/difference of those ("$esp+8"). */
bool hmp_parse_address(const struct cpu *c, const char *s, uint64_t *out, char *err, size_t errlen);
/* A sendkey argument ("ctrl-alt-delete") as set-1 keys; returns how many
 * (at most max), or -1 with one line in err for an unknown key name. */
struct hmp_key { uint8_t code; bool e0; };
int hmp_parse_keys(const char *s, struct hmp_key *keys, int max, char *err, size_t errlen);
/* Run one command line, printing its output (or one error line) to out. */
void hmp_execute(struct machine *m, const char *line, FILE *out);

#endif
