/*
 * Snapshots of the whole machine: CPU, devices, virtual clock, guest RAM and
 * a disk delta per writable disk, kept in one folder beside the VM's first
 * disk (NAME.snapshots/) with a small index file.  savevm/loadvm/delvm and
 * `info snapshots` of the monitor console, -loadvm at start, and the window's
 * snapshot/revert hotkeys all come here.
 *
 * Every function runs on the machine's thread, between slices (the monitor
 * and gdb reach it through machine_call).  Errors are one line in err naming
 * the snapshot or file; a refused load leaves the running machine as it was.
 */
#ifndef RV_SNAPSHOT_H
#define RV_SNAPSHOT_H

#include <stddef.h>
#include <stdio.h>

struct machine;

int snapshot_save(struct machine *m, const char *name, char *err, size_t errlen);
int snapshot_load(struct machine *m, const char *name, char *err, size_t errlen);
int snapshot_delete(struct machine *m, const char *name, char *err, size_t errlen);
/* `info snapshots`: a table of ID, name, size, date and VM clock, one line each
 * (or a line saying there are none). */
void snapshot_list(struct machine *m, FILE *out);
/* The name of the snapshot last taken or loaded (revert goes back to it), or NULL. */
const char *snapshot_last(struct machine *m);

struct machine_config;
/* At start: the layer a writable disk slot runs on when the snapshot folder
 * says so (savevm froze the image given on the command line), in out; NULL:
 * the image itself. */
const char *snapshot_current_layer(const struct machine_config *cfg, int slot, const char *image, char *out,
                                   size_t cap);
void snapshot_free(struct machine *m);

#endif
