/*
 * admission.h - the broker's global task slots: at most max_running tasks
 * at once, and a bounded first-come-first-served queue of callers waiting
 * for a slot. Past the queue's length a caller is refused at once; a waiting
 * caller may give up (cancelled, deadline passed). Thread-safe; one instance
 * per broker.
 */
#ifndef AIRLOCK_BROKER_ADMISSION_H
#define AIRLOCK_BROKER_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

struct admission;

/* NULL on OOM. max_queued 0: a caller never waits (busy is QUEUE_FULL). */
struct admission *admission_new(uint32_t max_running, uint32_t max_queued);
/* Once every admission_enter has returned. NULL is fine. */
void admission_free(struct admission *a);

/* Outcome of admission_enter. */
enum admission_result { ADMISSION_OK = 0, ADMISSION_QUEUE_FULL, ADMISSION_GAVE_UP, ADMISSION_SHUTDOWN };

/* Takes a running slot; if none is free, waits in FIFO order while the
 * queue holds fewer than max_queued waiters, else returns QUEUE_FULL at
 * once. While waiting, calls give_up(ctx) (never under the lock) once before
 * sleeping and at least every 50 ms; when it returns true the waiter leaves
 * the queue with GAVE_UP, and a slot handed to it meanwhile goes to the
 * next waiter. give_up may be NULL. *waited_ms (may be NULL) receives how
 * long the call waited (0 when it did not). Only OK holds a slot, to be
 * given back with admission_leave. */
enum admission_result admission_enter(struct admission *a, bool (*give_up)(void *ctx), void *ctx,
                                      uint64_t *waited_ms);
/* Gives back a slot: to the first waiter if there is one (waking only it). */
void admission_leave(struct admission *a);

/* Snapshot for logs/metrics. Either pointer may be NULL. */
void admission_counts(struct admission *a, uint32_t *running, uint32_t *queued);

/* Wakes every waiter with SHUTDOWN and makes later enters fail that way.
 * Slots already held stay held until admission_leave. */
void admission_shutdown(struct admission *a);

#endif
