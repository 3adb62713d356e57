/*
 * cgroup.h - one cgroup per task: a memory limit (no swap), a process limit,
 * CPU / peak-memory / OOM accounting and a kill that reaches every process
 * of the task, on cgroup v2 when it is usable and on cgroup v1 otherwise.
 *
 * The host setup is detected once at start (sbx_cgroup_host_init), never
 * assumed. v2 needs delegation: the broker starts alone in its cgroup C and,
 * with prepare=1, moves itself to C/supervisor and enables +memory +pids
 * (+cpu) for C and C/tasks; task cgroups are C/tasks/<name>. v1 task cgroups
 * are <own cgroup>/airlock-<name> in the memory, pids and (when mounted)
 * cpuacct hierarchies.
 */
#ifndef AIRLOCK_CGROUP_H
#define AIRLOCK_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SBX_CG_NAME_MAX 64

/* Host-level: which cgroup setup is in use. Plain data, shareable. */
struct sbx_cgroup_host {
    int version;            /* 1 or 2; 0 = none */
    char v2_base[PATH_MAX]; /* v2: the directory task cgroups are made in (C/tasks) */
    char v1_memory[PATH_MAX], v1_pids[PATH_MAX];
    char v1_cpuacct[PATH_MAX]; /* "" when no cpuacct hierarchy is mounted */
    char procs_rel[PATH_MAX];  /* v2_base (v2) or v1_pids (v1) as /proc/<pid>/cgroup names it */
    char desc[256];            /* one line for the log */
};

/* want: 0 = auto (v2 if usable, else v1), 1 or 2. prepare=1 (the broker,
 * once): v2 delegation setup described above; prepare=0 (the worker, already
 * in C/supervisor): only checks that C/tasks is ready. Returns 0, or -1 with
 * msg saying exactly what is missing. */
int sbx_cgroup_host_init(struct sbx_cgroup_host *h, int want, int prepare, char *msg,
                         size_t msglen);

/* Where host init reads from. sbx_cgroup_host_init uses /proc/self/mountinfo,
 * /proc/self/cgroup and root "" (mount points as they are); tests point these
 * at a fake tree. */
struct sbx_cgroup_sources {
    const char *mountinfo;
    const char *self_cgroup;
    const char *root; /* prefixed to every mount point */
};
int sbx_cgroup_host_init_from(struct sbx_cgroup_host *h, int want, int prepare,
                              const struct sbx_cgroup_sources *src, char *msg, size_t msglen);

/* One task's cgroup(s). A zeroed struct (version 0) owns nothing. */
enum { SBX_CG_MEMORY, SBX_CG_PIDS, SBX_CG_CPUACCT, SBX_CG_N }; /* v1 slots; v2 uses slot 0 */
struct sbx_cgroup {
    int version;                   /* 0: nothing created */
    int dirfd[SBX_CG_N];           /* -1 when unused; usable as CLONE_INTO_CGROUP (v2) */
    char path[SBX_CG_N][PATH_MAX]; /* "" when not created by us */
    char procs_rel[PATH_MAX];      /* the cgroup that lists the task's processes, as
                                      /proc/<pid>/cgroup names it (kill's membership check) */
};

/* Makes the task cgroup(s) `name` ([A-Za-z0-9_-], 1..64 chars) and sets the
 * memory limit (swap 0: v2 memory.swap.max=0, v1 memsw = limit, each when the
 * file exists; v2 memory.oom.group=1) and pids.max. A limit of 0 is left
 * unset (callers apply their defaults first). On failure nothing is left
 * behind and cg is zeroed. */
int sbx_cgroup_create(const struct sbx_cgroup_host *h, const char *name, uint64_t memory_bytes,
                      uint32_t max_pids, struct sbx_cgroup *cg, char *msg, size_t msglen);

/* Moves pid (its whole thread group) into the task cgroup(s). */
/* Opens the existing task cgroup name, to clean up after a worker that died.
 * -1 (errno ENOENT) when it does not exist; a part that does is removed. */
/* Sets (raises or lowers) the memory and process limits of a created
 * cgroup; a zero leaves that one as it is. 0, or -1 with msg. */
int sbx_cgroup_limit(struct sbx_cgroup *cg, uint64_t memory_bytes, uint32_t max_pids, char *msg,
                     size_t msglen);
int sbx_cgroup_open(const struct sbx_cgroup_host *h, const char *name, struct sbx_cgroup *cg,
                    char *msg, size_t msglen);
int sbx_cgroup_attach(struct sbx_cgroup *cg, pid_t pid, char *msg, size_t msglen);

struct sbx_cgroup_stats {
    uint64_t cpu_ns;            /* 0 when not measurable (v1 without cpuacct) */
    uint64_t memory_peak_bytes; /* 0 when not measurable (v2 before Linux 5.19) */
    uint64_t oom_kills;
};
/* 0, or -1 with errno when a file that must exist could not be read. */
int sbx_cgroup_stats(const struct sbx_cgroup *cg, struct sbx_cgroup_stats *st);

/* SIGKILLs every process in the task cgroup: v2 cgroup.kill; v1 (and v2
 * before Linux 5.14) a bounded loop over cgroup.procs that signals only
 * processes still in the cgroup (pidfd + /proc/<pid>/cgroup check). */
void sbx_cgroup_kill(struct sbx_cgroup *cg);

/* Kills, waits (at most ~2 s) until the cgroup is empty, closes and removes
 * it. 0 and cg zeroed; or -1 with msg, fds closed and what is left still in
 * cg->path (call again to retry). A no-op on a zeroed cg. */
int sbx_cgroup_destroy(struct sbx_cgroup *cg, char *msg, size_t msglen);

#endif
