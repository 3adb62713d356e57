/*
 * rlimits.c - the task's limits: their defaults (sbx_limits_resolve), and
 * the per-process resource limits the init sets on the task process
 * (prlimit) once the task is assigned: address space (only
 * without a memory cgroup), processes (counted per user namespace + uid, so
 * they bound this sandbox only), open files, file size (SIGXFSZ: reason
 * DISK), no core dumps, and a CPU-time backstop (SIGXCPU: reason CPU).
 * Also the OOM killer's order: the task's processes first (they are the
 * most expendable on the host, and the ones over the limit), so that it
 * never picks the sandbox's init, whose death would end the task unreported.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <sys/resource.h>

#include "sandbox_internal.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static int set(pid_t pid, int res, rlim_t soft, rlim_t hard, const char *name, struct sbx_err *e)
{
    struct rlimit rl = {soft, hard};
    if (prlimit(pid, res, &rl, NULL) != 0)
        return sbx_fail(e, name, errno);
    return 0;
}

/* Valgrind owns the hard fd limit of the processes it runs (the task until
 * execve) and refuses any change to it: there, only the soft limit is set.
 * Test runs only; a normal run sets both or fails. */
static int set_nofile(pid_t pid, rlim_t n, struct sbx_err *e)
{
    rlim_t hard = n;
    if (RUNNING_ON_VALGRIND) {
        struct rlimit cur;
        if (prlimit(pid, RLIMIT_NOFILE, NULL, &cur) != 0)
            return sbx_fail(e, "prlimit(RLIMIT_NOFILE)", errno);
        hard = cur.rlim_max;
    }
    return set(pid, RLIMIT_NOFILE, n, hard, "prlimit(RLIMIT_NOFILE)", e);
}

void sbx_limits_resolve(struct sandbox_limits *lim)
{
    if (!lim->timeout_ms)
        lim->timeout_ms = SBX_DEFAULT_TIMEOUT_MS;
    if (!lim->memory_bytes)
        lim->memory_bytes = SBX_DEFAULT_MEMORY;
    if (!lim->max_pids)
        lim->max_pids = SBX_DEFAULT_PIDS;
    if (!lim->output_bytes)
        lim->output_bytes = SBX_DEFAULT_OUTPUT;
    if (!lim->cpu_ms)
        lim->cpu_ms = SBX_DEFAULT_CPU_MS;
    if (!lim->disk_bytes)
        lim->disk_bytes = SBX_DEFAULT_DISK;
    if (!lim->open_files)
        lim->open_files = SBX_DEFAULT_NOFILE;
}

int sbx_rlimits_apply(pid_t pid, const struct sandbox_limits *lim, int memory_by_cgroup,
                      struct sbx_err *e)
{
    /* RLIMIT_CPU counts whole seconds per process: a backstop (SIGXCPU, the
     * reason CPU) behind the supervisor's tree-wide CPU accounting. */
    rlim_t cpu_s = lim->cpu_ms / 1000 + 1;
    /* Under a memory cgroup the OOM killer is the limit (reason MEMORY);
     * RLIMIT_AS would turn it into allocation failures first. Without one,
     * the address-space cap is all there is. */
    rlim_t as = memory_by_cgroup ? RLIM_INFINITY : lim->memory_bytes;
    if (set(pid, RLIMIT_AS, as, as, "prlimit(RLIMIT_AS)", e) ||
        set(pid, RLIMIT_NPROC, lim->max_pids, lim->max_pids, "prlimit(RLIMIT_NPROC)", e) ||
        set_nofile(pid, lim->open_files, e) ||
        set(pid, RLIMIT_FSIZE, lim->disk_bytes, lim->disk_bytes, "prlimit(RLIMIT_FSIZE)", e) ||
        set(pid, RLIMIT_CORE, 0, 0, "prlimit(RLIMIT_CORE)", e) ||
        set(pid, RLIMIT_CPU, cpu_s, cpu_s + 1, "prlimit(RLIMIT_CPU)", e) ||
        set(pid, RLIMIT_MEMLOCK, 0, 0, "prlimit(RLIMIT_MEMLOCK)", e) ||
        set(pid, RLIMIT_MSGQUEUE, 0, 0, "prlimit(RLIMIT_MSGQUEUE)", e) ||
        set(pid, RLIMIT_RTPRIO, 0, 0, "prlimit(RLIMIT_RTPRIO)", e) ||
        set(pid, RLIMIT_SIGPENDING, 1024, 1024, "prlimit(RLIMIT_SIGPENDING)", e))
        return -1;
    return 0;
}

static int write_oom_score_adj(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int err = errno;
    close(fd);
    errno = n == (ssize_t)len ? 0 : n < 0 ? err : EIO;
    return errno ? -1 : 0;
}

int sbx_oom_task_first(struct sbx_err *e)
{
    /* Raising one's own score needs no privilege (lowering the init's would
     * need CAP_SYS_RESOURCE, which hosts may withhold), only a writable
     * /proc/self file, which a non-dumpable process does not own: become
     * dumpable (execve would make us so anyway). At 1000 the task's
     * processes always score above the init inside the task's cgroup. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        return sbx_fail(e, "PR_SET_DUMPABLE", errno);
    if (write_oom_score_adj("/proc/self/oom_score_adj", "1000") != 0)
        return sbx_fail(e, "oom_score_adj", errno);
    return 0;
}
