/* The machine's side of the window hotkeys (monitor/window_keys.h). */
#include "monitor/window_keys.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "monitor/control.h"
#include "monitor/machine.h"
#include "monitor/snapshot.h"
#include "ui/hotkeys.h"
#include "ui/ui.h"

/* One machine per process, so the hotkeys' state can be too. */
static struct window_keys {
    struct machine *m;
    bool button_pressed;        /* Ctrl+Alt+Q pressed once: the next powers off at once */
    char last_stamp[64];        /* the last hotkey snapshot's name without a -N suffix */
    int same_second;
} wk;

const char *window_parse_name(const char *arg, char *buf, size_t len, char *err, size_t errlen)
{
    const char *given = arg[0] ? arg : "''";
    const char *comma = strchr(arg, ',');
    size_t n = comma ? (size_t)(comma - arg) : strlen(arg);
    if (n >= 6 && !strncmp(arg, "guest=", 6)) {
        arg += 6;
        n -= 6;
    }
    if (n == 0) {
        snprintf(err, errlen, "-name %s: the name is empty", given);
        return NULL;
    }
    if (n >= len) {
        snprintf(err, errlen, "-name %s: the name is longer than %zu characters", given, len - 1);
        return NULL;
    }
    memcpy(buf, arg, n);
    buf[n] = 0;
    while (comma) {
        const char *opt = comma + 1;
        comma = strchr(opt, ',');
        size_t on = comma ? (size_t)(comma - opt) : strlen(opt);
        if ((on > 8 && !strncmp(opt, "process=", 8)) ||
            (on == 16 && !strncmp(opt, "debug-threads=on", 16)) ||
            (on == 17 && !strncmp(opt, "debug-threads=off", 17)))
            continue;
        snprintf(err, errlen, "-name %s: unknown option '%.*s' (NAME[,process=P][,debug-threads=on|off])",
                 buf, (int)on, opt);
        return NULL;
    }
    return buf;
}

static const char *base_name(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, len, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = 0;
    return buf;
}

const char *window_default_name(const struct machine_config *cfg, char *buf, size_t len)
{
    for (int i = 0; i < 4; i++)
        if (cfg->drive[i].path && !cfg->drive[i].cdrom)
            return base_name(cfg->drive[i].path, buf, len);
    for (int i = 0; i < 4; i++)
        if (cfg->drive[i].path)
            return base_name(cfg->drive[i].path, buf, len);
    for (int i = 0; i < 2; i++)
        if (cfg->floppy[i].path)
            return base_name(cfg->floppy[i].path, buf, len);
    if (cfg->kernel)
        return base_name(cfg->kernel, buf, len);
    snprintf(buf, len, "%s", "");
    return buf;
}

/* A hotkey's result: one line on stderr, and for a while in the title. */
static void report(struct machine *m, const char *msg)
{
    fprintf(stderr, "retrovisor: %s\n", msg);
    ui_show_message(m->ui, msg);
}

static void toggle_pause(struct machine *m)
{
    if (machine_paused(m))
        machine_resume(m);
    else
        machine_pause(m, "user");
}

/* The title's [STATE] is the run state; the result goes in the message. */
static void show_run_state(struct machine *m)
{
    ui_set_status(m->ui, machine_paused(m) ? "paused" : "running");
}

/* Snapshots taken by the hotkey are named by the host time they were taken at. */
static void take_snapshot(struct machine *m)
{
    char name[64], err[512], msg[600];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(name, sizeof(name), "hotkey-%Y%m%d-%H%M%S", &tm);
    if (!strcmp(name, wk.last_stamp)) {     /* a second one within the second keeps the first */
        wk.same_second++;
        snprintf(name + strlen(name), sizeof(name) - strlen(name), "-%d", wk.same_second + 1);
    } else {
        snprintf(wk.last_stamp, sizeof(wk.last_stamp), "%s", name);
        wk.same_second = 0;
    }
    err[0] = 0;
    if (snapshot_save(m, name, err, sizeof(err)) == 0) {
        snprintf(msg, sizeof(msg), "snapshot %s taken", name);
        show_run_state(m);
    }
    else
        snprintf(msg, sizeof(msg), "snapshot %s failed: %s", name, err[0] ? err : "no reason given");
    report(m, msg);
}

static void revert_snapshot(struct machine *m)
{
    char err[512], msg[600];
    const char *last = snapshot_last(m);
    if (!last) {
        report(m, "revert: no snapshot taken or loaded yet (Ctrl+Alt+S takes one)");
        return;
    }
    char name[256];
    snprintf(name, sizeof(name), "%s", last);
    err[0] = 0;
    if (snapshot_load(m, name, err, sizeof(err)) == 0) {
        snprintf(msg, sizeof(msg), "reverted to snapshot %s", name);
        show_run_state(m);
    }
    else
        snprintf(msg, sizeof(msg), "revert to %s failed: %s", name, err[0] ? err : "no reason given");
    report(m, msg);
}

/* First press: the ACPI power button, the guest shuts down in its own way.
 * A second press, a paused machine or one without ACPI: power off now. */
static bool power_off(struct machine *m)
{
    if (wk.button_pressed || machine_paused(m) || !machine_power_button(m)) {
        fprintf(stderr, "retrovisor: powered off (Ctrl+Alt+Q)\n");
        return false;
    }
    wk.button_pressed = true;
    report(m, "power button pressed; Ctrl+Alt+Q again powers off at once");
    return true;
}

static bool on_hotkey(void *opaque, int action)
{
    struct machine *m = opaque;
    switch (action) {
    case HOTKEY_PAUSE:
        toggle_pause(m);
        return true;
    case HOTKEY_SNAPSHOT:
        take_snapshot(m);
        return true;
    case HOTKEY_REVERT:
        revert_snapshot(m);
        return true;
    case HOTKEY_POWER_OFF:
        return power_off(m);
    default:
        return false;
    }
}

void window_keys_attach(struct machine *m, const char *name)
{
    wk.m = m;
    wk.button_pressed = false;
    ui_set_hotkeys(m->ui, on_hotkey, m);
    ui_set_name(m->ui, name);
}
