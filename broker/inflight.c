/*
 * inflight.c - per-identity task counts. A small array scanned under one
 * mutex: it holds only identities with a task running, at most --max-tasks
 * of them, and a scan costs far less than the task it admits.
 */
#include "inflight.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    char *id;       /* NULL: free */
    uint32_t count;
};

struct inflight {
    pthread_mutex_t lock;
    size_t capacity;
    struct slot *slots;
};

struct inflight *inflight_new(size_t capacity)
{
    struct inflight *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->slots = calloc(capacity, sizeof *in->slots);
    if (!in->slots || pthread_mutex_init(&in->lock, NULL) != 0) {
        free(in->slots);
        free(in);
        return NULL;
    }
    in->capacity = capacity;
    return in;
}

void inflight_free(struct inflight *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->capacity; i++)
        free(in->slots[i].id);
    free(in->slots);
    pthread_mutex_destroy(&in->lock);
    free(in);
}

/* The slot holding id, or NULL; *free_slot gets the first empty one. */
static struct slot *find(struct inflight *in, const char *id, struct slot **free_slot)
{
    *free_slot = NULL;
    for (size_t i = 0; i < in->capacity; i++) {
        struct slot *s = &in->slots[i];
        if (!s->id) {
            if (!*free_slot)
                *free_slot = s;
        } else if (strcmp(s->id, id) == 0) {
            return s;
        }
    }
    return NULL;
}

int inflight_acquire(struct inflight *in, const char *id, uint32_t max, uint32_t *running)
{
    int rc = -1;
    *running = 0;
    pthread_mutex_lock(&in->lock);
    struct slot *empty, *s = find(in, id, &empty);
    if (s && max && s->count >= max) {
        *running = s->count;
    } else if (s) {
        s->count++;
        rc = 0;
    } else if (empty && (empty->id = strdup(id)) != NULL) {
        empty->count = 1;
        rc = 0;
    }
    pthread_mutex_unlock(&in->lock);
    return rc;
}

void inflight_release(struct inflight *in, const char *id)
{
    pthread_mutex_lock(&in->lock);
    struct slot *empty, *s = find(in, id, &empty);
    if (s && --s->count == 0) {
        free(s->id);
        s->id = NULL;
    }
    pthread_mutex_unlock(&in->lock);
}
