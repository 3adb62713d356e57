/*
 * rlimits.c - per-process resource limits of the task: address space,
 * processes (counted per user namespace + uid, so they bound this sandbox
 * only), open files, file size, no core dumps, and a CPU-time backstop
 * behind the supervisor's wall-clock deadline.
 */
#include <errno.h>
#include <sys/resource.h>

#include "sandbox_internal.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static int set(int res, rlim_t soft, rlim_t hard, const char *name, struct sbx_err *e)
{
    struct rlimit rl = {soft, hard};
    if (setrlimit(res, &rl) != 0)
        return sbx_fail(e, name, errno);
    return 0;
}

/* Valgrind owns the hard fd limit of the processes it runs (the task until
 * execve) and refuses any change to it: there, only the soft limit is set.
 * Test runs only; a normal run sets both or fails. */
static int set_nofile(struct sbx_err *e)
{
    rlim_t hard = SBX_NOFILE;
    if (RUNNING_ON_VALGRIND) {
        struct rlimit cur;
        if (getrlimit(RLIMIT_NOFILE, &cur) != 0)
            return sbx_fail(e, "getrlimit(RLIMIT_NOFILE)", errno);
        hard = cur.rlim_max;
    }
    return set(RLIMIT_NOFILE, SBX_NOFILE, hard, "setrlimit(RLIMIT_NOFILE)", e);
}

int sbx_rlimits_apply(const struct sandbox_limits *lim, struct sbx_err *e)
{
    rlim_t cpu_s = lim->timeout_ms / 1000 + 1; /* whole seconds, rounded up */
    if (set(RLIMIT_AS, lim->memory_bytes, lim->memory_bytes, "setrlimit(RLIMIT_AS)", e) ||
        set(RLIMIT_NPROC, lim->max_pids, lim->max_pids, "setrlimit(RLIMIT_NPROC)", e) ||
        set_nofile(e) ||
        set(RLIMIT_FSIZE, (rlim_t)SBX_WORK_MB << 20, (rlim_t)SBX_WORK_MB << 20, "setrlimit(RLIMIT_FSIZE)", e) ||
        set(RLIMIT_CORE, 0, 0, "setrlimit(RLIMIT_CORE)", e) ||
        set(RLIMIT_CPU, cpu_s, cpu_s + 1, "setrlimit(RLIMIT_CPU)", e) ||
        set(RLIMIT_MEMLOCK, 0, 0, "setrlimit(RLIMIT_MEMLOCK)", e) ||
        set(RLIMIT_MSGQUEUE, 0, 0, "setrlimit(RLIMIT_MSGQUEUE)", e) ||
        set(RLIMIT_RTPRIO, 0, 0, "setrlimit(RLIMIT_RTPRIO)", e) ||
        set(RLIMIT_SIGPENDING, 1024, 1024, "setrlimit(RLIMIT_SIGPENDING)", e))
        return -1;
    return 0;
}
