/* Snapshots: not built yet; the interface is in place for the monitor and the window. */
#include "monitor/snapshot.h"

#include "monitor/machine.h"

int snapshot_save(struct machine *m, const char *name, char *err, size_t errlen)
{
    (void)m;
    snprintf(err, errlen, "savevm %s: snapshots are not available yet", name);
    return -1;
}

int snapshot_load(struct machine *m, const char *name, char *err, size_t errlen)
{
    (void)m;
    snprintf(err, errlen, "loadvm %s: snapshots are not available yet", name);
    return -1;
}

int snapshot_delete(struct machine *m, const char *name, char *err, size_t errlen)
{
    (void)m;
    snprintf(err, errlen, "delvm %s: snapshots are not available yet", name);
    return -1;
}

void snapshot_list(struct machine *m, FILE *out)
{
    (void)m;
    fprintf(out, "There is no snapshot available.\n");
}

const char *snapshot_last(struct machine *m)
{
    (void)m;
    return NULL;
}
