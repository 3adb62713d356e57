/*
 * pool.c - the warm pool: per runtime, a small array of workers that are
 * building their sandbox or have built it (Ready) and wait for a task, kept
 * full by one thread. The thread spawns workers up to each runtime's size,
 * reads their Ready, and drops (reaps) any that fail to build or hang up
 * while waiting, retrying with backoff so that a broken host does not spin.
 * pool_take hands out the longest-ready worker under the lock; the slot it
 * leaves is refilled once that worker's task is over (pool_reap wakes the
 * thread): building a sandbox beside a running task slows the task about as
 * much as building its own would (fork, mounts and exec contend in the
 * kernel), and between an agent's calls there is idle time to build in. A
 * taken worker is the task's alone: the pool never reads its socket again.
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "airlock/internal/v1/worker.pb-c.h"
#include "frame.h"
#include "sandbox.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define READY_READ_MS 1000 /* a Ready frame is tiny: it is all there at POLLIN */
#define REAP_GRACE_MS 2000

enum entry_state { BUILDING, READY };

struct entry {
    struct worker w;
    enum entry_state state;
    uint64_t serial; /* unique and increasing: age, and identity across unlocks */
};

struct runtime_pool {
    char name[32];
    uint32_t size;
    struct entry *entries; /* size slots, n in use */
    size_t n;
    size_t lent;           /* taken, task not over yet: their slots wait */
    int64_t next_spawn_ms;
    int64_t backoff_ms;
};

struct pool {
    char *worker_exe;
    uint32_t cgroup_mode;
    struct sandbox_limits prepared; /* the pool's sandboxes' */
    int filter_fd;                  /* the seccomp program, built once, for every worker */
    struct runtime_pool *rt;
    size_t n_rt;
    size_t total; /* sum of sizes */
    pthread_mutex_t mu;
    int wake[2];
    bool stop;
    bool draining;  /* pool_drain: build no more workers */
    bool thread_started;
    pthread_t thread;
    uint64_t next_serial;
};

/* Starts a worker for runtime: socketpair, posix_spawn. 0, or -1 with errno. */
static int spawn_worker(const struct pool *p, const char *runtime,
                        const struct sandbox_limits *lim, struct worker *w)
{
    random_id(w->id);
    w->pid = -1;
    w->sock = -1;
    w->warm = false;
    w->pool_slot = -1;
    w->exited = false;
    w->wait_status = 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    /* Keep the child's end off fd 3 itself: dup2 onto the same number would
     * leave close-on-exec set. */
    int child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    if (child_end < 0) {
        close(sv[0]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc == 0 && (rc = posix_spawnattr_init(&attr)) != 0)
        posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        close(sv[0]);
        close(child_end);
        errno = rc;
        return -1;
    }
    rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, child_end, 3);
    rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, p->filter_fd, 4);
    rc = rc ? rc : posix_spawnattr_setsigmask(&attr, &none);
    rc = rc ? rc : posix_spawnattr_setsigdefault(&attr, &defaults);
    rc = rc ? rc : posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char cgroup[12], disk[24], memory[24], pids[12];
    snprintf(cgroup, sizeof cgroup, "%u", p->cgroup_mode);
    snprintf(disk, sizeof disk, "%llu", (unsigned long long)lim->disk_bytes);
    snprintf(memory, sizeof memory, "%llu", (unsigned long long)lim->memory_bytes);
    snprintf(pids, sizeof pids, "%u", lim->max_pids);
    char *const argv[] = {p->worker_exe,    "--fd",           "3",    "--runtime",
                          (char *)runtime,  "--id",           w->id,  "--cgroup",
                          cgroup,           "--disk-bytes",   disk,   "--memory-bytes",
                          memory,           "--max-pids",     pids,   "--seccomp-fd",
                          "4",              NULL};
    char *const envp[] = {NULL};
    if (!rc)
        rc = posix_spawn(&w->pid, p->worker_exe, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(child_end);
    if (rc) {
        close(sv[0]);
        w->pid = -1;
        errno = rc;
        return -1;
    }
    w->sock = sv[0];
    return 0;
}

static void wake_thread(struct pool *p);

void pool_reap(struct pool *p, struct worker *w, int grace_ms, bool reported)
{
    if (w->pool_slot >= 0) { /* its task is over: the pool may build its replacement */
        pthread_mutex_lock(&p->mu);
        p->rt[w->pool_slot].lent--;
        pthread_mutex_unlock(&p->mu);
        w->pool_slot = -1;
        wake_thread(p);
    }
    if (w->sock >= 0) {
        close(w->sock); /* a waiting worker takes this as "no task": it exits */
        w->sock = -1;
    }
    if (w->pid <= 0)
        return;
    int64_t until = monotonic_ms() + grace_ms;
    while (!w->exited) {
        pid_t r = waitpid(w->pid, NULL, WNOHANG);
        if (r == w->pid || (r < 0 && errno != EINTR))
            break;
        if (monotonic_ms() >= until) {
            kill(w->pid, SIGKILL);
            while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        usleep(1000);
    }
    w->pid = -1;
    char msg[256];
    if (!reported && sandbox_cgroup_remove(p->cgroup_mode, w->id, msg, sizeof msg) != 0)
        log_error("worker %s: cannot remove its cgroup: %s", w->id, msg);
}

int pool_worker_wait(struct worker *w, int timeout_ms)
{
    if (w->exited)
        return 0;
    if (w->pid <= 0)
        return -1;
    int64_t until = monotonic_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(w->pid, &status, WNOHANG);
        if (r == w->pid) {
            w->exited = true;
            w->wait_status = status;
            return 0;
        }
        if ((r < 0 && errno != EINTR) || monotonic_ms() >= until)
            return -1;
        usleep(1000);
    }
}

static struct runtime_pool *find_runtime(struct pool *p, const char *name)
{
    for (size_t i = 0; i < p->n_rt; i++)
        if (strcmp(p->rt[i].name, name) == 0)
            return &p->rt[i];
    return NULL;
}

static void wake_thread(struct pool *p)
{
    (void)!write(p->wake[1], "w", 1); /* full pipe: it is awake anyway */
}

static void backoff(struct runtime_pool *r, int64_t now)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    r->next_spawn_ms = now + r->backoff_ms;
}

/* Under mu: spawns workers up to each size, unless backing off. Each spawn
 * runs unlocked (posix_spawn takes a while; pool_take must not wait for
 * it); only this thread adds entries, so the count cannot overshoot.
 * Returns how long the thread may sleep before it must look again. */
static int fill(struct pool *p)
{
    int wait_ms = 1000;
    for (size_t i = 0; i < p->n_rt && !p->stop && !p->draining; i++) {
        struct runtime_pool *r = &p->rt[i];
        while (r->n + r->lent < r->size && !p->stop && !p->draining) {
            int64_t now = monotonic_ms();
            if (now < r->next_spawn_ms) {
                if (r->next_spawn_ms - now < wait_ms)
                    wait_ms = (int)(r->next_spawn_ms - now);
                break;
            }
            struct worker w;
            pthread_mutex_unlock(&p->mu);
            int rc = spawn_worker(p, r->name, &p->prepared, &w);
            int err = errno;
            pthread_mutex_lock(&p->mu);
            if (rc != 0) {
                log_error("pool: cannot start a %s worker: %s", r->name, strerror(err));
                backoff(r, monotonic_ms());
                continue;
            }
            struct entry *e = &r->entries[r->n++];
            e->w = w;
            e->state = BUILDING;
            e->serial = ++p->next_serial;
        }
    }
    return wait_ms;
}

/* Under mu: a building worker spoke. true when it is Ready; otherwise it
 * failed (logged) and is to be dropped. */
static bool read_ready(struct runtime_pool *r, struct entry *e)
{
    ProtobufCMessage *m = NULL;
    int got = frame_read(e->w.sock, &airlock__internal__v1__worker_event__descriptor,
                         FRAME_MAX_BYTES, READY_READ_MS, &m);
    if (got != 1) {
        log_error("pool: a %s worker ended before it was ready (%s)", r->name,
                  got == 0 ? "end of stream" : strerror(errno));
        return false;
    }
    Airlock__Internal__V1__WorkerEvent *ev = (Airlock__Internal__V1__WorkerEvent *)m;
    bool ready = ev->event_case == AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_READY;
    if (!ready)
        log_error("pool: a %s worker could not build its sandbox: %s", r->name,
                  ev->event_case == AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_USAGE &&
                          ev->usage->message
                      ? ev->usage->message
                      : "unexpected message");
    protobuf_c_message_free_unpacked(m, NULL);
    return ready;
}

/* Under mu: the entry with this serial, or NULL when it was taken. */
static struct entry *find_entry(struct pool *p, uint64_t serial, struct runtime_pool **rp)
{
    for (size_t i = 0; i < p->n_rt; i++)
        for (size_t j = 0; j < p->rt[i].n; j++)
            if (p->rt[i].entries[j].serial == serial) {
                *rp = &p->rt[i];
                return &p->rt[i].entries[j];
            }
    return NULL;
}

static void remove_entry(struct runtime_pool *r, struct entry *e)
{
    *e = r->entries[--r->n]; /* order does not matter: age is the serial */
}

static void *pool_main(void *arg)
{
    struct pool *p = arg;
    size_t cap = 1 + p->total;
    struct pollfd *pfd = calloc(cap, sizeof *pfd);
    uint64_t *serial = calloc(cap, sizeof *serial);
    struct worker *doomed = calloc(cap, sizeof *doomed);
    if (!pfd || !serial || !doomed) {
        log_error("pool: out of memory: no warm workers");
        goto out;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int wait_ms = fill(p);
        size_t k = 0;
        pfd[k++] = (struct pollfd){p->wake[0], POLLIN, 0};
        for (size_t i = 0; i < p->n_rt; i++)
            for (size_t j = 0; j < p->rt[i].n; j++) {
                serial[k] = p->rt[i].entries[j].serial;
                pfd[k++] = (struct pollfd){p->rt[i].entries[j].w.sock, POLLIN, 0};
            }
        pthread_mutex_unlock(&p->mu);
        int n = poll(pfd, (nfds_t)k, wait_ms);
        pthread_mutex_lock(&p->mu);
        if (n <= 0)
            continue;
        char drain[64];
        if (pfd[0].revents)
            while (read(p->wake[0], drain, sizeof drain) > 0) {
            }
        size_t n_doomed = 0;
        int64_t now = monotonic_ms();
        for (size_t i = 1; i < k; i++) {
            struct runtime_pool *r;
            struct entry *e;
            if (!pfd[i].revents || !(e = find_entry(p, serial[i], &r)))
                continue; /* taken meanwhile: the task's now */
            if (e->state == BUILDING && (pfd[i].revents & POLLIN) && read_ready(r, e)) {
                e->state = READY;
                r->backoff_ms = 0;
                continue;
            }
            if (e->state == READY)
                log_warn("pool: a ready %s worker went away (its sandbox broke?)", r->name);
            backoff(r, now);
            doomed[n_doomed++] = e->w;
            remove_entry(r, e);
        }
        if (n_doomed) {
            pthread_mutex_unlock(&p->mu);
            for (size_t i = 0; i < n_doomed; i++)
                pool_reap(p, &doomed[i], REAP_GRACE_MS, false);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
out:
    free(pfd);
    free(serial);
    free(doomed);
    return NULL;
}

struct pool *pool_new(const char *worker_exe, uint32_t cgroup_mode,
                      const struct sandbox_limits *prepared, const struct pool_setting *sizes,
                      size_t n, char *err, size_t errlen)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    p->wake[0] = p->wake[1] = p->filter_fd = -1;
    p->cgroup_mode = cgroup_mode;
    p->prepared = *prepared;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        err_set(err, errlen, "pthread_mutex_init failed");
        return NULL;
    }
    if (!(p->worker_exe = strdup(worker_exe)) || !(p->rt = calloc(n ? n : 1, sizeof *p->rt))) {
        err_set(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        struct runtime_pool *r = &p->rt[p->n_rt];
        if (!sandbox_runtime_known(sizes[i].runtime) ||
            snprintf(r->name, sizeof r->name, "%s", sizes[i].runtime) >= (int)sizeof r->name) {
            err_set(err, errlen, "pool: unknown runtime '%.64s'", sizes[i].runtime);
            goto fail;
        }
        if (find_runtime(p, r->name)) {
            err_set(err, errlen, "pool: runtime %s given twice", r->name);
            goto fail;
        }
        r->size = sizes[i].ready;
        if (r->size && !(r->entries = calloc(r->size, sizeof *r->entries))) {
            err_set(err, errlen, "out of memory");
            goto fail;
        }
        p->total += r->size;
        p->n_rt++;
    }
    /* Above the fds a worker's spawn sets up (0, 3, 4). */
    int filter = sandbox_filter_fd(err, errlen);
    if (filter < 0)
        goto fail;
    p->filter_fd = fcntl(filter, F_DUPFD_CLOEXEC, 10);
    close(filter);
    if (p->filter_fd < 0) {
        err_set(err, errlen, "fcntl: %s", strerror(errno));
        goto fail;
    }
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        err_set(err, errlen, "pipe2: %s", strerror(errno));
        goto fail;
    }
    if (p->total > 0) {
        int rc = pthread_create(&p->thread, NULL, pool_main, p);
        if (rc != 0) {
            err_set(err, errlen, "pthread_create: %s", strerror(rc));
            goto fail;
        }
        p->thread_started = true;
    }
    return p;
fail:
    pool_free(p);
    return NULL;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_mutex_unlock(&p->mu);
        wake_thread(p);
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; p->rt && i < p->n_rt; i++) {
        for (size_t j = 0; j < p->rt[i].n; j++)
            pool_reap(p, &p->rt[i].entries[j].w, REAP_GRACE_MS, false);
        free(p->rt[i].entries);
    }
    for (int i = 0; i < 2; i++)
        if (p->wake[i] >= 0)
            close(p->wake[i]);
    if (p->filter_fd >= 0)
        close(p->filter_fd);
    pthread_mutex_destroy(&p->mu);
    free(p->rt);
    free(p->worker_exe);
    free(p);
}

void pool_drain(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->draining = true;
    pthread_mutex_unlock(&p->mu);
}

int pool_take(struct pool *p, const char *runtime, const struct sandbox_limits *limits,
              struct worker *out)
{
    pthread_mutex_lock(&p->mu);
    struct runtime_pool *r =
        limits->disk_bytes == p->prepared.disk_bytes ? find_runtime(p, runtime) : NULL;
    struct entry *best = NULL;
    for (size_t j = 0; r && j < r->n; j++) {
        struct entry *e = &r->entries[j];
        if (!best || (e->state == READY && best->state != READY) ||
            (e->state == best->state && e->serial < best->serial))
            best = e;
    }
    if (best) {
        *out = best->w;
        out->warm = best->state == READY;
        out->pool_slot = (int)(r - p->rt);
        r->lent++;
        remove_entry(r, best);
    }
    pthread_mutex_unlock(&p->mu);
    return best ? 0 : spawn_worker(p, runtime, limits, out);
}
