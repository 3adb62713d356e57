/*
 * sandbox.h - run one task's code in a confined child and report usage.
 *
 * The caller (the worker's supervisor half) owns the process it runs in; the
 * sandbox owns the child: namespaces, filesystem view, privileges, seccomp,
 * rlimits, the wall-clock deadline and output relaying. One sandbox, one
 * task: sandbox_prepare builds it ahead of the task (a warm pool keeps
 * these), sandbox_start gives it its task and runs it; sandbox_run does both.
 */
#ifndef AIRLOCK_SANDBOX_H
#define AIRLOCK_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A zero field takes the sandbox's default (SBX_DEFAULT_* in sandbox_internal.h). */
struct sandbox_limits {
    uint32_t timeout_ms;    /* wall clock; the whole tree is killed at expiry */
    uint64_t memory_bytes;  /* memory of the whole tree (cgroup), else address space */
    uint32_t max_pids;      /* processes + threads */
    uint64_t output_bytes;  /* stdout + stderr; exceeded => OUTPUT_LIMIT */
    uint32_t cpu_ms;        /* CPU time; exceeded => CPU */
    uint64_t disk_bytes;    /* size of /work and of /tmp, largest file; => DISK */
    uint32_t open_files;    /* RLIMIT_NOFILE */
};

/* How the task's tree is bounded and accounted as a whole. Every mode but
 * NONE fails closed (SANDBOX_ERROR) when that cgroup setup is unusable. */
enum sandbox_cgroup_mode {
    SANDBOX_CGROUP_AUTO = 0, /* v2 if usable, else v1 */
    SANDBOX_CGROUP_V1 = 1,
    SANDBOX_CGROUP_V2 = 2,
    SANDBOX_CGROUP_NONE = 3, /* rlimits only: memory is an address-space cap per
                                process, CPU is counted per process */
};

struct sandbox_task {
    const char *runtime;        /* "python3" or "sh" */
    const uint8_t *code;
    size_t code_len;
    const uint8_t *stdin_data;  /* may be NULL when stdin_len == 0 */
    size_t stdin_len;
    const char *const *env;     /* NULL-terminated "KEY=VALUE" list added to
                                   the runtime's fixed base environment */
    struct sandbox_limits limits;
    enum sandbox_cgroup_mode cgroup;
    const char *id; /* names the task's cgroup ([A-Za-z0-9_-], <= 64); NULL: random */
};

/* Values equal airlock.v1.Finished.Reason. */
enum sandbox_reason {
    SANDBOX_REASON_OK = 1,
    SANDBOX_REASON_EXIT_NONZERO = 2,
    SANDBOX_REASON_TIMEOUT = 3,
    SANDBOX_REASON_KILLED = 4,
    SANDBOX_REASON_OUTPUT_LIMIT = 5,
    SANDBOX_REASON_MEMORY = 6,
    SANDBOX_REASON_SECCOMP = 7,
    SANDBOX_REASON_SANDBOX_ERROR = 8,
    SANDBOX_REASON_CPU = 9,
    SANDBOX_REASON_DISK = 10,
};

struct sandbox_result {
    enum sandbox_reason reason;
    int exit_code;        /* valid when the child exited */
    int signal;           /* valid when the child was killed by a signal */
    int seccomp_syscall;  /* syscall number when reason == SECCOMP, else -1 */
    uint64_t wall_ms;
    uint64_t cpu_ms;      /* user + system of the whole task tree */
    uint64_t max_rss_kb;  /* peak memory of the tree (cgroup, tmpfs included),
                             else the largest process's RSS */
    char message[256];    /* human-readable detail, "" when none */
};

/* Called for each chunk of output as it arrives. stream is 1 (stdout) or
 * 2 (stderr). Return 0 to go on, -1 to abort the task (it is killed and the
 * reason becomes KILLED). */
typedef int (*sandbox_output_fn)(void *ctx, int stream, const uint8_t *data, size_t len);

/* Once per host, by the broker before any task: finds the cgroup setup that
 * mode asks for and prepares it (cgroup v2: moves the calling process into a
 * leaf "supervisor" cgroup beside "tasks", which holds the task cgroups).
 * Returns the version in use (1 or 2, or 0 for NONE) and a one-line
 * description in desc, or -1 with the reason in desc. */
int sandbox_cgroup_setup(enum sandbox_cgroup_mode mode, char *desc, size_t desclen);

/* After a worker died without cleaning up: kills and removes task id's
 * cgroup if it exists. 0 when none is left, -1 with msg set. */
int sandbox_cgroup_remove(enum sandbox_cgroup_mode mode, const char *id, char *msg, size_t msglen);

/* Is this runtime name known? */
int sandbox_runtime_known(const char *runtime);

/* A sandbox built ahead of its task: namespaces, root filesystem, cgroup,
 * seccomp, and the runtime ready to run code (python3's interpreter already
 * started, waiting). Nothing of any task is in it yet. */
struct sandbox;

struct sandbox_spec {
    const char *runtime;
    enum sandbox_cgroup_mode cgroup;
    const char *id; /* names its cgroup ([A-Za-z0-9_-], <= 64); NULL: random */
    /* The size of /work and /tmp (a tmpfs is sized when it is mounted, and
     * the sandbox holds no privilege to resize it later): the task's
     * limits.disk_bytes must be this. 0: SBX_DEFAULT_DISK. */
    uint64_t disk_bytes;
    /* The cgroup's limits while it waits (0: the defaults); a task with
     * other limits has them written on assignment, the same ones cost
     * nothing. */
    uint64_t memory_bytes;
    uint32_t max_pids;
    /* The seccomp program, from sandbox_filter_fd (read, not consumed);
     * -1: built here. Set it: 0 is a valid fd. */
    int filter_fd;
};

/* The sandbox's seccomp program, built once, in a sealed memfd (close-on-
 * exec) for sandbox_spec.filter_fd. The fd, or -1 with msg. */
int sandbox_filter_fd(char *msg, size_t msglen);

/* Builds a sandbox and waits until it is ready. 0 with *out, or -1 with msg.
 * The calling process must be root or hold CAP_SYS_ADMIN + CAP_SETUID/GID. */
int sandbox_prepare(const struct sandbox_spec *spec, struct sandbox **out, char *msg,
                    size_t msglen);

/* The fds to watch while a prepared sandbox waits: any event on one (POLLIN,
 * POLLHUP, POLLERR) means it broke and must be discarded. Returns how many
 * were stored (at most 2). */
int sandbox_watch_fds(const struct sandbox *sb, int *fds, int max);

/* Gives a prepared sandbox its task (task->runtime and the resolved
 * limits.disk_bytes must be the prepared ones; task->cgroup and task->id
 * are not used) and runs it to completion as sandbox_run does. The task's
 * limits apply from here, and its time and CPU count from here. On return
 * every process of the sandbox is gone; sb still holds its cgroup: end it
 * with sandbox_discard (the result can go out first). */
int sandbox_start(struct sandbox *sb, const struct sandbox_task *task, sandbox_output_fn on_output,
                  void *ctx, struct sandbox_result *result);

/* Makes sig end the process's sandbox at once, whatever it is doing: the
 * handler SIGKILLs the sandbox's init (being built, waiting or running), so
 * the call in progress fails or ends, and the caller cleans up as usual
 * (sandbox_discard removes the cgroup). For the worker's parent-death
 * signal: a broker that dies leaves no sandbox and no cgroup behind. A
 * process holds one sandbox at a time. 0, or -1 with errno. */
int sandbox_kill_on(int sig);
/* Has that signal come? */
bool sandbox_signalled(void);

/* Kills what is left of a sandbox (nothing, after sandbox_start), removes
 * its cgroup and frees it. NULL is fine. */
void sandbox_discard(struct sandbox *sb);

/* Runs the task to completion. Returns 0 when a result was produced (whatever
 * the task did), -1 when the sandbox could not be set up (result->reason is
 * SANDBOX_ERROR and result->message says why; the task's code never ran).
 * The calling process must be root or hold CAP_SYS_ADMIN + CAP_SETUID/GID. */
int sandbox_run(const struct sandbox_task *task, sandbox_output_fn on_output, void *ctx,
                struct sandbox_result *result);

#endif
