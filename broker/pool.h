/*
 * pool.h - the broker's workers. Per runtime, a warm pool of workers whose
 * sandbox is already built and waiting for a task; each is used for one
 * task and then gone, and a background thread builds its replacement. When
 * none is ready (pool empty or disabled) a worker is started for the task:
 * the cold path, the same worker, only later.
 */
#ifndef AIRLOCK_BROKER_POOL_H
#define AIRLOCK_BROKER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "sandbox.h"
#include "util.h"

struct pool;


/* A worker handed to one task. The broker writes the Task on sock and
 * reads its events (a Ready may come first: ignore it). */
struct worker {
    pid_t pid;
    int sock;
    char id[RANDOM_ID_LEN]; /* names the sandbox's cgroup */
    bool warm;              /* its sandbox was ready when it was taken */
    int pool_slot;          /* the runtime whose pool it came from (pool.c's), or -1 */
    bool exited;            /* reaped by pool_worker_wait; wait_status says how */
    int wait_status;
};

/* Starts the pool's thread, which builds sizes[i].ready workers for each
 * runtime with the prepared limits: disk_bytes sizes /work and /tmp (fixed
 * when a sandbox is built: tasks granted another size take the cold path),
 * memory_bytes and max_pids its cgroup until a task's own are written.
 * cgroup_mode is the broker's (enum sandbox_cgroup_mode). NULL with err on
 * failure. */
struct pool *pool_new(const char *worker_exe, uint32_t cgroup_mode,
                      const struct sandbox_limits *prepared, const struct pool_setting *sizes,
                      size_t n, char *err, size_t errlen);

/* The broker is stopping: no worker is built from now on (not even to
 * replace a taken one). Ready workers stay until pool_free. */
void pool_drain(struct pool *p);

/* Stops the thread and ends every waiting worker (and its sandbox). */
void pool_free(struct pool *p);

/* A worker for runtime and these limits: the longest-ready one of
 * its pool, else one still being built, else a new one (cold). 0, or -1
 * with errno. */
int pool_take(struct pool *p, const char *runtime, const struct sandbox_limits *limits,
              struct worker *out);

/* Waits up to timeout_ms for a taken worker to exit by itself and reaps it
 * (w->exited, w->wait_status; pool_reap still cleans up after it). 0 once
 * it has exited, -1 if it still runs. */
int pool_worker_wait(struct worker *w, int timeout_ms);

/* Ends a taken worker: waits up to grace_ms for it to exit (after its
 * report), then kills it. A worker that did not report (killed, crashed,
 * never given its task) may have left its sandbox's cgroup: removed here.
 * A worker from the pool is replaced from here on: its replacement is
 * built once its task is over, not beside it. */
void pool_reap(struct pool *p, struct worker *w, int grace_ms, bool reported);

#endif
