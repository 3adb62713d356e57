/*
 * sandbox_internal.h - what the sandbox's subsystems share.
 *
 * sandbox.c prepares a struct sbx_plan in the parent (all allocation happens
 * there), clones, and the child (init.c) runs only from the plan: no malloc
 * after clone. Child-side functions return 0 or -1 and fill a struct sbx_err that
 * the child sends to the supervisor over the status socket (a SOCK_SEQPACKET
 * pair: one sbx_record per message; also how the seccomp listener fd
 * reaches the supervisor, as SCM_RIGHTS).
 */
#ifndef AIRLOCK_SANDBOX_INTERNAL_H
#define AIRLOCK_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "sandbox.h"
#include "util.h"

/* Defaults applied when a limit is 0. */
#define SBX_DEFAULT_TIMEOUT_MS 10000u
#define SBX_DEFAULT_MEMORY (512ull << 20)
#define SBX_DEFAULT_PIDS 64u
#define SBX_DEFAULT_OUTPUT (1ull << 20)
#define SBX_DEFAULT_CPU_MS 60000u
#define SBX_DEFAULT_DISK (32ull << 20) /* /work, /tmp (each), largest file */
#define SBX_DEFAULT_NOFILE 256u

/* A writable mount with less free space than this counts as full. */
#define SBX_DISK_FULL_SLACK (64u << 10)

/* Size in MiB of /dev/shm (its pages are not covered by RLIMIT_AS). */
#define SBX_SHM_MB 8
#define SBX_STR_(x) #x
#define SBX_STR(x) SBX_STR_(x)

/* The sandbox's only ids, and the host ids they map to (never 0). */
#define SBX_UID_N 1000 /* bare numbers: also spliced into /etc/passwd */
#define SBX_GID_N 1000
#define SBX_UID ((uid_t)SBX_UID_N)
#define SBX_GID ((gid_t)SBX_GID_N)
#define SBX_HOST_UID 65534u
#define SBX_HOST_GID 65534u
#define SBX_HOSTNAME "airlock"

/* ---- runtime.c ---- */
struct sbx_runtime {
    const char *name;
    const char *path;         /* absolute path, same inside and outside */
    const char *argv[8];      /* NULL-terminated, the script path last */
    const char *script;       /* where the code is written inside */
    /* NULL, or the argv of an interpreter started before the task: it writes
     * one byte on fd 4 when ready, reads the go message from fd 3 ('G' and
     * the environment, to end of file), then runs the script. */
    const char *const *bootstrap;
};
const struct sbx_runtime *sbx_runtime_find(const char *name);

/* ---- child error reporting ---- */
struct sbx_err {
    int err;        /* errno, 0 when none */
    char what[160]; /* what failed */
};
/* Records "what" (+ errno) and returns -1. Async-signal-safe. */
int sbx_fail(struct sbx_err *e, const char *what, int err);
/* Same, with a detail string appended after ": ". */
int sbx_fail2(struct sbx_err *e, const char *what, const char *detail, int err);

/* ---- status socket records: sandbox (init or pre-exec task) -> supervisor ----
 * One record per SOCK_SEQPACKET message. The task process sends LISTENER
 * (its seccomp listener fd as SCM_RIGHTS; value 0) before it is ready; the
 * init sends STATUS once the task has ended, after DISK_FULL if a writable
 * mount is full; either sends ERROR instead for any setup failure. */
enum {
    SBX_REC_ERROR = 0x45525221,
    SBX_REC_STATUS = 0x53544121,
    SBX_REC_LISTENER = 0x4c534e21,
    SBX_REC_DISK_FULL = 0x44534b21, /* text: the full mount, sent before STATUS */
};
struct sbx_record {
    uint32_t type;
    int32_t value;  /* errno for ERROR, wait status for STATUS */
    char text[160]; /* NUL-terminated */
};

/* ---- the plan: prepared by the parent before clone, read by the child ---- */
#define SBX_ENV_MAX 16384   /* the task's environment entries, bytes */
#define SBX_ENV_ENTRIES 64
#define SBX_BASE_ENV_MAX 16
#define SBX_PLAN_FDS 12
#define SBX_ASSIGN_MAGIC 0x41534721u

/* supervisor -> init on the assignment pipe, followed by code_len bytes of
 * code and env_len bytes of environment (NUL-terminated KEY=VALUE entries). */
struct sbx_assign_header {
    uint32_t magic;
    uint32_t env_len;
    uint64_t code_len;
    struct sandbox_limits limits; /* resolved */
    int32_t memory_by_cgroup;
};

struct sbx_plan {
    const struct sbx_runtime *rt;
    struct sock_fprog prog;
    uint64_t prepared_disk_bytes; /* /work and /tmp as built: the task's disk limit */
    /* child ends (sync, status, stdio, assignment, ready) and the go pipe */
    int sync_r, status_w, in_r, out_w, err_w, assign_r, ready_w, go_r, go_w;
    /* child-side scratch: no malloc after clone */
    char env_buf[SBX_ENV_MAX];
    char *envp[SBX_BASE_ENV_MAX + SBX_ENV_ENTRIES + 1];
};

/* ---- init.c ---- */
/* The sandbox's pid 1, from clone on. */
_Noreturn void sbx_init_main(struct sbx_plan *p);
/* The base environment every task starts with (NULL-terminated). */
char *const *sbx_base_env(void);
/* The init's decoding of what the supervisor sends, without the I/O (pure:
 * tests/fuzz/fuzz_assign.c feeds them arbitrary bytes). Is h an assignment
 * for a sandbox prepared with that disk size? 0, or -1 when malformed. */
int sbx_assign_check(const struct sbx_assign_header *h, uint64_t prepared_disk_bytes);
/* p->envp from the go message's environment: len bytes of NUL-terminated
 * KEY=VALUE entries (an unterminated tail is ignored). */
void sbx_build_envp(struct sbx_plan *p, char *blob, size_t len);

/* ---- seccomp.c ---- */
/* Largest seccomp notification buffer the supervisor accepts (the kernel's
 * struct seccomp_notif is 80 bytes). */
#define SBX_NOTIF_MAX 1024
/* Builds the allowlist into a sealed memfd (*fd). 0 or -1 with msg filled. */
int sbx_seccomp_export(int *fd, char *msg, size_t msglen);
/* Reads a program from such a memfd (it must be sealed). 0 or -1 with msg. */
int sbx_seccomp_read(int fd, struct sock_fprog *prog, char *msg, size_t msglen);
/* Both: builds the allowlist in memory, in the parent. 0 or -1 with msg. */
int sbx_seccomp_build(struct sock_fprog *prog, char *msg, size_t msglen);
void sbx_seccomp_free(struct sock_fprog *prog);
/* Parent: the notification buffer size the kernel wants (GET_NOTIF_SIZES). */
int sbx_seccomp_notif_size(size_t *size, char *msg, size_t msglen);
/* Child: attaches the prepared program. With_listener (the task process,
 * once): with a user-notification listener, whose fd (close-on-exec) comes
 * back in *listener. Without (the init, for itself): forbidden calls fail
 * with ENOSYS. Needs no_new_privs or CAP_SYS_ADMIN. */
int sbx_seccomp_load(const struct sock_fprog *prog, bool with_listener, int *listener,
                     struct sbx_err *e);
/* Supervisor: reads one pending notification. Call only after POLLIN (it
 * blocks when none is pending). 0 with the call's number and audit arch, or
 * -errno (-ENOENT: the caller was interrupted or died before it was read). */
int sbx_seccomp_receive(int listener, size_t notif_size, int *nr, uint32_t *arch);
/* "forbidden system call 101 (ptrace)" */
void sbx_seccomp_describe(uint32_t arch, int nr, char *buf, size_t len);

/* ---- userns.c ---- */
int sbx_userns_write_maps(pid_t child, char *msg, size_t msglen); /* parent */
int sbx_userns_switch_ids(struct sbx_err *e);                      /* child */

/* ---- mounts.c ---- */
/* Builds the root filesystem; /work and /tmp hold disk_bytes each. */
int sbx_mounts_setup(uint64_t disk_bytes, struct sbx_err *e);

/* ---- net.c ---- */
int sbx_net_setup(struct sbx_err *e);

/* ---- caps.c ---- */
int sbx_caps_drop_all(struct sbx_err *e);

/* ---- rlimits.c ---- */
/* Fills the zero fields of lim with the defaults. */
void sbx_limits_resolve(struct sandbox_limits *lim);
/* The init, on the task process (prlimit): memory_by_cgroup says a memory
 * cgroup enforces memory_bytes. */
int sbx_rlimits_apply(pid_t pid, const struct sandbox_limits *lim, int memory_by_cgroup,
                      struct sbx_err *e);
/* Task process, before it is ready: the OOM killer picks it first. */
int sbx_oom_task_first(struct sbx_err *e);

/* ---- supervise.c ---- */
struct sbx_supervise {
    pid_t init_pid;
    int stdin_fd, stdout_fd, stderr_fd, status_fd; /* parent ends, closed by supervise */
    size_t notif_size;                             /* sbx_seccomp_notif_size() */
    const uint8_t *stdin_data;
    size_t stdin_len;
    const struct sandbox_limits *limits;
    int64_t start_ms; /* monotonic_ms() */
    sandbox_output_fn on_output;
    void *ctx;
    const struct sbx_cgroup *cg; /* the task's cgroup; NULL: none */
    int listener_fd;             /* the task's seccomp listener, received at prepare */
    uint64_t cpu_base_ns;        /* the cgroup's CPU time before the task was assigned */
};
/* Runs the task to its end and reaps the sandbox init. Returns 0 when a
 * result was produced, -1 on a setup error reported by the sandbox. */
int sbx_supervise(struct sbx_supervise *s, struct sandbox_result *r);

/* Receives one status record. 1 with *rec (and *fd, the one fd that came
 * with it, else -1), 0 at end of file, -1 with errno (EAGAIN: none yet;
 * EPROTO: malformed). Extra fds are closed. */
int sbx_status_recv(int fd, struct sbx_record *rec, int *rec_fd);

/* The init is about to be reaped: sandbox_kill_on's handler must no longer
 * signal its pid (sandbox.c). */
void sbx_forget_init(void);

/* ---- small helpers (sandbox.c) ---- */
size_t sbx_strlcpy(char *dst, const char *src, size_t size);
/* Closes *fd if it is open and marks it closed (-1). */
void sbx_close(int *fd);

#endif
