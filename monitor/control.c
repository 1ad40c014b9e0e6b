/* Machine control: the run state and the queue of work for the machine's thread. */
#include "monitor/control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hosted-driver/xalloc.h"
#include "monitor/machine.h"
#include "hosted-driver/vclock.h"
#include "ui/ui.h"

struct work {
    machine_work_fn fn;
    void *arg;
    bool done, ran;
    struct work *next;
};

#define MAX_LISTENERS 8

struct control {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    struct work *head, *tail;
    atomic_bool queued;          /* polled by the run loop without the lock */
    bool shut;
    bool paused;
    char reason[32];
    struct { run_state_fn fn; void *opaque; } listener[MAX_LISTENERS];
    int nlisteners;
};

struct control *control_new(void)
{
    struct control *c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work_cv, NULL);
    pthread_cond_init(&c->done_cv, NULL);
    return c;
}

void control_free(struct control *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->work_cv);
    pthread_cond_destroy(&c->done_cv);
    free(c);
}

bool machine_call(struct machine *m, machine_work_fn fn, void *arg)
{
    struct control *c = m->control;
    struct work w = { .fn = fn, .arg = arg };
    pthread_mutex_lock(&c->mu);
    if (c->shut) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    if (c->tail)
        c->tail->next = &w;
    else
        c->head = &w;
    c->tail = &w;
    atomic_store(&c->queued, true);
    pthread_cond_signal(&c->work_cv);
    while (!w.done)
        pthread_cond_wait(&c->done_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return w.ran;
}

int control_service(struct machine *m)
{
    struct control *c = m->control;
    if (!atomic_load_explicit(&c->queued, memory_order_acquire))
        return 0;
    int n = 0;
    pthread_mutex_lock(&c->mu);
    while (c->head) {
        struct work *w = c->head;
        c->head = w->next;
        if (!c->head)
            c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        w->fn(m, w->arg);
        n++;
        pthread_mutex_lock(&c->mu);
        w->ran = w->done = true;
        pthread_cond_broadcast(&c->done_cv);
    }
    atomic_store(&c->queued, false);
    pthread_mutex_unlock(&c->mu);
    return n;
}

void control_wait(struct machine *m, int timeout_ms)
{
    struct control *c = m->control;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)timeout_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&c->mu);
    if (!c->head && !c->shut)
        pthread_cond_timedwait(&c->work_cv, &c->mu, &ts);
    pthread_mutex_unlock(&c->mu);
}

void control_shutdown(struct machine *m)
{
    struct control *c = m->control;
    pthread_mutex_lock(&c->mu);
    c->shut = true;
    for (struct work *w = c->head; w; w = w->next)
        w->done = true;
    c->head = c->tail = NULL;
    pthread_cond_broadcast(&c->done_cv);
    pthread_mutex_unlock(&c->mu);
}

static void tell_listeners(struct machine *m)
{
    struct control *c = m->control;
    if (m->ui)
        ui_set_status(m->ui, c->paused ? "paused" : "running");
    for (int i = 0; i < c->nlisteners; i++)
        c->listener[i].fn(c->listener[i].opaque, c->paused, c->reason);
}

void machine_pause(struct machine *m, const char *reason)
{
    struct control *c = m->control;
    bool was = c->paused;
    c->paused = true;
    vclock_stop(m->clock);
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "user");
    if (!was)
        tell_listeners(m);
}

void machine_resume(struct machine *m)
{
    struct control *c = m->control;
    if (!c->paused)
        return;
    c->paused = false;
    vclock_start(m->clock);
    c->reason[0] = 0;
    tell_listeners(m);
}

bool machine_paused(const struct machine *m)
{
    return m->control->paused;
}

const char *machine_pause_reason(const struct machine *m)
{
    return m->control->reason;
}

void machine_add_run_state_listener(struct machine *m, run_state_fn fn, void *opaque)
{
    struct control *c = m->control;
    if (c->nlisteners < MAX_LISTENERS)
        c->listener[c->nlisteners++] = (typeof(c->listener[0])){ fn, opaque };
}
