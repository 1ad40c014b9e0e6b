#include "hosted-driver/prefault.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#define AHEAD ((size_t)8 << 20)    /* kept present beyond an area's fill point */
#define STEP ((size_t)2 << 20)     /* one madvise: a huge page */

struct area {
    uint8_t *base;
    size_t size;
    size_t done;                   /* [0, done) is present (guarded by lock) */
    size_t target;                 /* the thread works towards it (guarded by lock) */
    size_t rearm;                  /* the caller's thread only: a fill beyond it raises target */
};

struct prefault {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool failed;                   /* MADV_POPULATE_WRITE refused: nothing more is tried */
    int n;
    struct area areas[PREFAULT_MAX_AREAS];
};

/* The area with work left, or NULL (called with the lock held). */
static struct area *pending_area(struct prefault *pf)
{
    for (int k = 0; k < pf->n; k++)
        if (pf->areas[k].done < pf->areas[k].target)
            return &pf->areas[k];
    return NULL;
}

static void *prefault_thread(void *opaque)
{
    struct prefault *pf = opaque;
    pthread_mutex_lock(&pf->lock);
    while (!pf->stop) {
        struct area *a = pf->failed ? NULL : pending_area(pf);
        if (!a) {
            pthread_cond_wait(&pf->wake, &pf->lock);
            continue;
        }
        size_t from = a->done;
        size_t len = a->target - from < STEP ? a->target - from : STEP;
        pthread_mutex_unlock(&pf->lock);
        /* Populating leaves present pages and their contents as they are,
         * so the other thread may be writing next to (or in) this range. */
        int r = madvise(a->base + from, len, MADV_POPULATE_WRITE);
        int err = errno;
        pthread_mutex_lock(&pf->lock);
        if (r != 0 && err != EINTR && err != EAGAIN)
            pf->failed = true;
        else if (r == 0)
            a->done = from + len;
    }
    pthread_mutex_unlock(&pf->lock);
    return NULL;
}

struct prefault *prefault_new(void)
{
    struct prefault *pf = xcalloc(1, sizeof(*pf));
    if (!pf)
        return NULL;
    pthread_mutex_init(&pf->lock, NULL);
    pthread_cond_init(&pf->wake, NULL);
    /* The thread takes no signals: the guest's thread handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&pf->thread, NULL, prefault_thread, pf);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        pthread_cond_destroy(&pf->wake);
        pthread_mutex_destroy(&pf->lock);
        free(pf);
        return NULL;
    }
    return pf;
}

void prefault_free(struct prefault *pf)
{
    if (!pf)
        return;
    pthread_mutex_lock(&pf->lock);
    pf->stop = true;
    pthread_cond_signal(&pf->wake);
    pthread_mutex_unlock(&pf->lock);
    pthread_join(pf->thread, NULL);
    pthread_cond_destroy(&pf->wake);
    pthread_mutex_destroy(&pf->lock);
    free(pf);
}

int prefault_add(struct prefault *pf, uint8_t *base, size_t size)
{
    if (!pf || pf->n == PREFAULT_MAX_AREAS)
        return -1;
    pthread_mutex_lock(&pf->lock);
    int k = pf->n++;
    pf->areas[k] = (struct area){ .base = base, .size = size };
    pthread_mutex_unlock(&pf->lock);
    return k;
}

void prefault_note(struct prefault *pf, int area, const uint8_t *fill)
{
    if (!pf || area < 0)
        return;
    struct area *a = &pf->areas[area];
    size_t used = (size_t)(fill - a->base);
    if (used < a->rearm)
        return;
    size_t target = (used + AHEAD + STEP - 1) & ~(STEP - 1);   /* madvise wants page-aligned starts */
    if (target > a->size)
        target = a->size;
    a->rearm = used + AHEAD / 2;
    pthread_mutex_lock(&pf->lock);
    if (target > a->target) {
        a->target = target;
        pthread_cond_signal(&pf->wake);
    }
    pthread_mutex_unlock(&pf->lock);
}
