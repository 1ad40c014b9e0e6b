/* Rate-limited log lines caused by the guest (see guestlog.h). */
#include "monitor/guestlog.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static const char *const kind_names[GUEST_LOG_KINDS] = {
    [GUEST_LOG_UNDEFINED_OPCODE] = "undefined opcode",
    [GUEST_LOG_UNMODELLED_MSR] = "unmodelled MSR",
    [GUEST_LOG_UNASSIGNED_PORT] = "unassigned port",
    [GUEST_LOG_TRIPLE_FAULT] = "triple fault",
};

static uint64_t printed[GUEST_LOG_KINDS], suppressed[GUEST_LOG_KINDS];

void guest_log(enum guest_log_kind kind, const char *fmt, ...)
{
    if (kind < 0 || kind >= GUEST_LOG_KINDS)
        return;
    if (printed[kind] >= GUEST_LOG_BURST) {
        suppressed[kind]++;
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "retrovisor: %s\n", line);
    if (++printed[kind] == GUEST_LOG_BURST)
        fprintf(stderr, "retrovisor: further '%s' lines are suppressed; their number is printed at the end\n",
                kind_names[kind]);
}

void guest_log_summary(void)
{
    for (int k = 0; k < GUEST_LOG_KINDS; k++) {
        if (suppressed[k])
            fprintf(stderr, "retrovisor: %llu more '%s' lines were suppressed\n",
                    (unsigned long long)suppressed[k], kind_names[k]);
        printed[k] = suppressed[k] = 0;
    }
}
