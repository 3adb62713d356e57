/*
 * admission.c - task slots and the FIFO of callers waiting for one. One
 * mutex guards the counts and a doubly linked list of waiters; each waiter
 * lives on its caller's stack with a condition variable of its own, so a
 * freed slot wakes exactly the waiter it is handed to. Slots are handed
 * over, not put back: while anyone waits, admission_leave gives its slot to
 * the head of the queue and `running` stays the same, so a newcomer can
 * never overtake a waiter. A waiter that gives up unlinks itself; the ones
 * behind it keep their places.
 */
#include "admission.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

#define GIVE_UP_POLL_MS 50

enum waiter_state { WAITING, ADMITTED, SHUT_OUT };

struct waiter {
    pthread_cond_t wake;
    struct waiter *prev, *next;
    enum waiter_state state; /* changed under the lock by leave or shutdown */
};

struct admission {
    pthread_mutex_t lock;
    pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC, for every waiter's condvar */
    uint32_t max_running, max_queued;
    uint32_t running, queued;
    struct waiter *head, *tail;
    bool shutdown;
};

/* A mutex or condvar call fails only on a corrupted object: stop there
 * rather than run on with slots nobody can account for. */
static void must(int rc)
{
    if (rc != 0)
        abort();
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    must(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct admission *admission_new(uint32_t max_running, uint32_t max_queued)
{
    struct admission *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (pthread_condattr_init(&a->cond_attr) != 0) {
        free(a);
        return NULL;
    }
    if (pthread_condattr_setclock(&a->cond_attr, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&a->lock, NULL) != 0) {
        (void)pthread_condattr_destroy(&a->cond_attr);
        free(a);
        return NULL;
    }
    a->max_running = max_running;
    a->max_queued = max_queued;
    return a;
}

void admission_free(struct admission *a)
{
    if (!a)
        return;
    /* Nothing to do should these fail: the memory goes either way. */
    (void)pthread_mutex_destroy(&a->lock);
    (void)pthread_condattr_destroy(&a->cond_attr);
    free(a);
}

static void unlink_waiter(struct admission *a, struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        a->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        a->tail = w->prev;
    w->prev = w->next = NULL;
    a->queued--;
}

/* A slot comes free: to the first waiter, else back to the pool. Lock held. */
static void pass_slot(struct admission *a)
{
    struct waiter *w = a->head;
    if (!w) {
        a->running--;
        return;
    }
    unlink_waiter(a, w);
    w->state = ADMITTED;
    must(pthread_cond_signal(&w->wake));
}

/* Sleeps until w is woken or GIVE_UP_POLL_MS pass. Lock held. */
static void wait_a_little(struct admission *a, struct waiter *w)
{
    struct timespec until = timespec_after_ms(CLOCK_MONOTONIC, GIVE_UP_POLL_MS);
    int rc = pthread_cond_timedwait(&w->wake, &a->lock, &until);
    if (rc != ETIMEDOUT)
        must(rc);
}

/* Queued: waits until w is admitted or refused, or the caller gives up.
 * Lock held on entry and return. */
static enum admission_result wait_turn(struct admission *a, struct waiter *w,
                                       bool (*give_up)(void *ctx), void *ctx)
{
    for (;;) {
        bool gave_up = false;
        if (give_up && w->state == WAITING) {
            /* Not under the lock: give_up may be slow, and must not stall
             * leave or the other waiters. */
            must(pthread_mutex_unlock(&a->lock));
            gave_up = give_up(ctx);
            must(pthread_mutex_lock(&a->lock));
        }
        if (gave_up) {
            if (w->state == WAITING)
                unlink_waiter(a, w);
            else if (w->state == ADMITTED)
                pass_slot(a); /* handed over while we asked: not ours to keep */
            else
                return ADMISSION_SHUTDOWN;
            return ADMISSION_GAVE_UP;
        }
        if (w->state == ADMITTED)
            return ADMISSION_OK;
        if (w->state == SHUT_OUT)
            return ADMISSION_SHUTDOWN;
        wait_a_little(a, w);
    }
}

enum admission_result admission_enter(struct admission *a, bool (*give_up)(void *ctx), void *ctx,
                                      uint64_t *waited_ms)
{
    enum admission_result r;
    uint64_t start = 0;
    if (waited_ms)
        *waited_ms = 0;
    must(pthread_mutex_lock(&a->lock));
    if (a->shutdown) {
        r = ADMISSION_SHUTDOWN;
    } else if (a->running < a->max_running && !a->head) {
        a->running++;
        r = ADMISSION_OK;
    } else if (a->queued >= a->max_queued) {
        r = ADMISSION_QUEUE_FULL;
    } else {
        struct waiter w = {.prev = a->tail, .state = WAITING};
        /* glibc's never fails; should one, there is no room to wait. */
        if (pthread_cond_init(&w.wake, &a->cond_attr) != 0) {
            must(pthread_mutex_unlock(&a->lock));
            return ADMISSION_QUEUE_FULL;
        }
        if (a->tail)
            a->tail->next = &w;
        else
            a->head = &w;
        a->tail = &w;
        a->queued++;
        start = now_ms();
        r = wait_turn(a, &w, give_up, ctx);
        must(pthread_cond_destroy(&w.wake));
        if (waited_ms)
            *waited_ms = now_ms() - start;
    }
    must(pthread_mutex_unlock(&a->lock));
    return r;
}

void admission_leave(struct admission *a)
{
    must(pthread_mutex_lock(&a->lock));
    if (a->running > 0)
        pass_slot(a);
    must(pthread_mutex_unlock(&a->lock));
}

void admission_counts(struct admission *a, uint32_t *running, uint32_t *queued)
{
    must(pthread_mutex_lock(&a->lock));
    if (running)
        *running = a->running;
    if (queued)
        *queued = a->queued;
    must(pthread_mutex_unlock(&a->lock));
}

void admission_shutdown(struct admission *a)
{
    must(pthread_mutex_lock(&a->lock));
    a->shutdown = true;
    while (a->head) {
        struct waiter *w = a->head;
        unlink_waiter(a, w);
        w->state = SHUT_OUT;
        must(pthread_cond_signal(&w->wake));
    }
    must(pthread_mutex_unlock(&a->lock));
}
