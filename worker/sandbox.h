/*
 * sandbox.h - run one task's code in a confined child and report usage.
 *
 * The caller (the worker's supervisor half) owns the process it runs in; the
 * sandbox owns the child: namespaces, filesystem view, privileges, seccomp,
 * rlimits, the wall-clock deadline and output relaying. One call, one task.
 */
#ifndef AIRLOCK_SANDBOX_H
#define AIRLOCK_SANDBOX_H

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

struct sandbox_task {
    const char *runtime;        /* "python3" or "sh" */
    const uint8_t *code;
    size_t code_len;
    const uint8_t *stdin_data;  /* may be NULL when stdin_len == 0 */
    size_t stdin_len;
    const char *const *env;     /* NULL-terminated "KEY=VALUE" list added to
                                   the runtime's fixed base environment */
    struct sandbox_limits limits;
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
    uint64_t max_rss_kb;
    char message[256];    /* human-readable detail, "" when none */
};

/* Called for each chunk of output as it arrives. stream is 1 (stdout) or
 * 2 (stderr). Return 0 to go on, -1 to abort the task (it is killed and the
 * reason becomes KILLED). */
typedef int (*sandbox_output_fn)(void *ctx, int stream, const uint8_t *data, size_t len);

/* Is this runtime name known? */
int sandbox_runtime_known(const char *runtime);

/* Runs the task to completion. Returns 0 when a result was produced (whatever
 * the task did), -1 when the sandbox could not be set up (result->reason is
 * SANDBOX_ERROR and result->message says why; the task's code never ran).
 * The calling process must be root or hold CAP_SYS_ADMIN + CAP_SETUID/GID. */
int sandbox_run(const struct sandbox_task *task, sandbox_output_fn on_output, void *ctx,
                struct sandbox_result *result);

#endif
