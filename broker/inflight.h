/*
 * inflight.h - tasks running per caller identity, for policy's
 * max_concurrent. Thread-safe; one instance per broker.
 */
#ifndef AIRLOCK_BROKER_INFLIGHT_H
#define AIRLOCK_BROKER_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

struct inflight;

/* capacity bounds the number of distinct identities with tasks running at
 * once (the broker's --max-tasks is enough: each task holds one slot). */
struct inflight *inflight_new(size_t capacity);
void inflight_free(struct inflight *in);

/* Takes a slot for id unless it already holds max (0 = no cap). Returns 0,
 * or -1 when the cap is reached (*running says how many it holds) or the
 * table is full (*running is 0). */
int inflight_acquire(struct inflight *in, const char *id, uint32_t max, uint32_t *running);
/* Gives back a slot taken by inflight_acquire. */
void inflight_release(struct inflight *in, const char *id);

#endif
