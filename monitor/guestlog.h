/*
 * Lines that the guest can cause (an undefined opcode, an unmodelled MSR, a
 * port nobody decodes, a triple fault) go through here, so that a hostile or broken guest
 * cannot flood the host's stderr: each kind prints its first
 * GUEST_LOG_BURST lines, says once that it is falling silent, and
 * guest_log_summary() counts what was held back when the run ends.
 */
#ifndef RV_GUESTLOG_H
#define RV_GUESTLOG_H

enum guest_log_kind {
    GUEST_LOG_UNDEFINED_OPCODE,
    GUEST_LOG_UNMODELLED_MSR,
    GUEST_LOG_UNASSIGNED_PORT,
    GUEST_LOG_TRIPLE_FAULT,
    GUEST_LOG_KINDS
};

#define GUEST_LOG_BURST 10

/* One line "retrovisor: <text>" on stderr, unless this kind's burst is spent. */
void guest_log(enum guest_log_kind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line per kind that held lines back; the counts start again afterwards. */
void guest_log_summary(void);

#endif
