/*
 * sandbox.c - the parent side: builds a sandbox ahead of its task and hands
 * it over. Prepare: validates the runtime, makes the cgroup, compiles the
 * seccomp program and every pipe into a plan, clones the init (init.c) into
 * new user/pid/mount/net/ipc/uts namespaces, writes its id maps, moves it
 * into the cgroup and lets it go; then waits until the task process is
 * confined (its seccomp listener arrives on the status socket) and ready
 * (one byte on the ready pipe). Start: sets the task's cgroup limits, sends
 * the assignment (limits, code, environment) to the init and hands over to
 * the supervisor (supervise.c).
 *
 * Parent <-> child channels: sync pipe (one byte once the maps are in place;
 * EOF means abort; held open to the end so that the child can tell the
 * parent is alive), status socket (SOCK_SEQPACKET, one sbx_record per
 * message), stdin/stdout/stderr pipes, assignment pipe, ready pipe. Without
 * the listener in the supervisor's hands the task never runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox_internal.h"

#define CLONE_FLAGS                                                                          \
    (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |              \
     CLONE_NEWUTS) /* the cgroup namespace comes once the child is in its cgroup */
/* How long the runtime may take to become ready (python3 on a busy host). */
#define READY_TIMEOUT_MS 30000

/* For sandbox_kill_on's handler, the one state a signal handler must see:
 * the init of this process's sandbox while it is our unreaped child (so its
 * pid cannot have been reused), else 0; and whether the signal came. */
static volatile sig_atomic_t live_init;
static volatile sig_atomic_t kill_signalled;

static void kill_live_init(int sig)
{
    (void)sig;
    kill_signalled = 1;
    pid_t pid = (pid_t)live_init;
    if (pid > 0)
        kill(pid, SIGKILL);
}

int sandbox_kill_on(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kill_live_init; /* no SA_RESTART: blocking calls see EINTR */
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

bool sandbox_signalled(void)
{
    return kill_signalled != 0;
}

void sbx_forget_init(void)
{
    live_init = 0;
}

/* One sandbox: the plan the child runs from, and the parent's ends. */
struct sandbox {
    struct sbx_plan *plan;
    struct sbx_cgroup *cg;
    pid_t init_pid;
    int sync_w, status_r, in_w, out_r, err_r, assign_w, ready_r, listener;
    size_t notif_size;
    uint64_t cg_memory_bytes; /* the cgroup's limits as they stand */
    uint32_t cg_max_pids;
};

/* ---------------------------------------------------------------- helpers */

void sbx_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

size_t sbx_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

int sbx_fail(struct sbx_err *e, const char *what, int err)
{
    sbx_strlcpy(e->what, what, sizeof e->what);
    e->err = err;
    return -1;
}

int sbx_fail2(struct sbx_err *e, const char *what, const char *detail, int err)
{
    size_t n = sbx_strlcpy(e->what, what, sizeof e->what);
    if (n + 2 < sizeof e->what) {
        memcpy(e->what + n, ": ", 2);
        sbx_strlcpy(e->what + n + 2, detail, sizeof e->what - n - 2);
    }
    e->err = err;
    return -1;
}

/* ----------------------------------------------------------------- parent */

static int fail(struct sandbox_result *r, const char *fmt, const char *arg)
{
    r->reason = SANDBOX_REASON_SANDBOX_ERROR;
    snprintf(r->message, sizeof r->message, fmt, arg);
    return -1;
}

/* The host's cgroup setup for mode (not NONE): NULL with msg set when it
 * is unusable. prepare: the broker's one-time setup (see cgroup.h). */
static struct sbx_cgroup_host *cgroup_host(enum sandbox_cgroup_mode mode, int prepare, char *msg,
                                           size_t msglen)
{
    if (mode != SANDBOX_CGROUP_AUTO && mode != SANDBOX_CGROUP_V1 && mode != SANDBOX_CGROUP_V2) {
        snprintf(msg, msglen, "unknown cgroup mode %d", (int)mode);
        return NULL;
    }
    struct sbx_cgroup_host *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    int want = mode == SANDBOX_CGROUP_V1 ? 1 : mode == SANDBOX_CGROUP_V2 ? 2 : 0;
    if (sbx_cgroup_host_init(h, want, prepare, msg, msglen) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

int sandbox_cgroup_setup(enum sandbox_cgroup_mode mode, char *desc, size_t desclen)
{
    if (mode == SANDBOX_CGROUP_NONE) {
        snprintf(desc, desclen, "no cgroups (rlimits only): memory is an address-space limit "
                                "per process and CPU time is counted per process");
        return 0;
    }
    struct sbx_cgroup_host *h = cgroup_host(mode, 1, desc, desclen);
    if (!h)
        return -1;
    snprintf(desc, desclen, "%s", h->desc);
    int version = h->version;
    free(h);
    return version;
}

int sandbox_cgroup_remove(enum sandbox_cgroup_mode mode, const char *id, char *msg, size_t msglen)
{
    if (mode == SANDBOX_CGROUP_NONE)
        return 0;
    struct sbx_cgroup_host *h = cgroup_host(mode, 0, msg, msglen);
    if (!h)
        return -1;
    struct sbx_cgroup *cg = calloc(1, sizeof *cg);
    int rc = -1;
    if (!cg)
        snprintf(msg, msglen, "out of memory");
    else if (sbx_cgroup_open(h, id, cg, msg, msglen) != 0)
        rc = errno == ENOENT ? 0 : -1;
    else
        rc = sbx_cgroup_destroy(cg, msg, msglen);
    free(h);
    free(cg);
    return rc;
}

/* Makes the sandbox's cgroup (unless the mode is NONE) with the prepared
 * limits; a task's own replace them on assignment. 0, or -1 with msg. */
static int cgroup_begin(enum sandbox_cgroup_mode mode, const char *id, uint64_t memory_bytes,
                        uint32_t max_pids, struct sbx_cgroup **out, char *msg, size_t msglen)
{
    *out = NULL;
    if (mode == SANDBOX_CGROUP_NONE)
        return 0;
    char why[200], name[RANDOM_ID_LEN];
    struct sbx_cgroup_host *h = cgroup_host(mode, 0, why, sizeof why);
    if (!h)
        return err_set(msg, msglen, "cgroups: %s", why);
    struct sbx_cgroup *cg = calloc(1, sizeof *cg);
    int rc = -1;
    if (!cg) {
        err_set(msg, msglen, "out of memory");
    } else {
        if (!id)
            random_id(name);
        if (sbx_cgroup_create(h, id ? id : name, memory_bytes, max_pids, cg, why, sizeof why) != 0)
            err_set(msg, msglen, "task cgroup: %s", why);
        else
            rc = 0;
    }
    free(h);
    if (rc == 0)
        *out = cg;
    else
        free(cg);
    return rc;
}

/* Removes the task's cgroup; a failure is reported in r's message (r may
 * be NULL). */
static void cgroup_end(struct sbx_cgroup *cg, struct sandbox_result *r)
{
    if (!cg)
        return;
    char msg[200];
    if (sbx_cgroup_destroy(cg, msg, sizeof msg) != 0) {
        log_error("task cgroup left behind: %s", msg);
        if (r && !r->message[0])
            snprintf(r->message, sizeof r->message, "task cgroup left behind: %s", msg);
    }
    free(cg);
}

/* SIGPIPE blocked while we write to the sandbox's pipes (a task may close
 * its stdin early, an init may die), and any it raised dropped after. */
struct pipe_guard {
    sigset_t set, old;
    bool was_pending, set_ok;
};

static void pipe_guard_on(struct pipe_guard *g)
{
    sigset_t pending;
    sigemptyset(&g->set);
    sigaddset(&g->set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    g->set_ok = sigprocmask(SIG_BLOCK, &g->set, &g->old) == 0;
}

static void pipe_guard_off(struct pipe_guard *g)
{
    if (!g->set_ok)
        return;
    sigset_t pending;
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        (void)sigtimedwait(&g->set, NULL, &zero);
    }
    sigprocmask(SIG_SETMASK, &g->old, NULL);
}

/* Kills the init (if started), reaps it, and frees everything. */
static void sandbox_free(struct sandbox *sb, struct sandbox_result *r)
{
    if (!sb)
        return;
    if (sb->init_pid > 0) {
        kill(sb->init_pid, SIGKILL);
        sbx_forget_init();
        while (waitpid(sb->init_pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    int *fds[] = {&sb->sync_w, &sb->status_r, &sb->in_w, &sb->out_r, &sb->err_r,
                  &sb->assign_w, &sb->ready_r, &sb->listener};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        sbx_close(fds[i]);
    if (sb->plan) {
        int *child[] = {&sb->plan->sync_r, &sb->plan->status_w, &sb->plan->in_r, &sb->plan->out_w,
                        &sb->plan->err_w, &sb->plan->assign_r, &sb->plan->ready_w,
                        &sb->plan->go_r, &sb->plan->go_w};
        for (size_t i = 0; i < sizeof child / sizeof child[0]; i++)
            sbx_close(child[i]);
        sbx_seccomp_free(&sb->plan->prog);
        free(sb->plan);
    }
    cgroup_end(sb->cg, r);
    free(sb);
}

void sandbox_discard(struct sandbox *sb)
{
    sandbox_free(sb, NULL);
}

/* The channels: [0] sync, [1] status (seqpacket), [2] stdin, [3] stdout,
 * [4] stderr, [5] assignment, [6] ready, [7] go (child only). */
static int make_channels(struct sandbox *sb, char *msg, size_t msglen)
{
    int fds[8][2];
    int made = 0;
    for (; made < 8; made++)
        if ((made == 1 ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds[made])
                       : pipe2(fds[made], O_CLOEXEC)) != 0)
            break;
    if (made < 8) {
        int err = errno;
        for (int i = 0; i < made; i++) {
            close(fds[i][0]);
            close(fds[i][1]);
        }
        return err_set(msg, msglen, "pipe2/socketpair: %s", strerror(err));
    }
    struct sbx_plan *p = sb->plan;
    p->sync_r = fds[0][0], sb->sync_w = fds[0][1];
    sb->status_r = fds[1][0], p->status_w = fds[1][1];
    p->in_r = fds[2][0], sb->in_w = fds[2][1];
    sb->out_r = fds[3][0], p->out_w = fds[3][1];
    sb->err_r = fds[4][0], p->err_w = fds[4][1];
    p->assign_r = fds[5][0], sb->assign_w = fds[5][1];
    sb->ready_r = fds[6][0], p->ready_w = fds[6][1];
    p->go_r = fds[7][0], p->go_w = fds[7][1];
    return 0;
}

/* Waits until the task process is confined (LISTENER) and ready (a byte on
 * the ready pipe). 0, or -1 with msg: what the sandbox reported, or why
 * waiting failed. */
static int await_ready(struct sandbox *sb, char *msg, size_t msglen)
{
    int64_t deadline = monotonic_ms() + READY_TIMEOUT_MS;
    bool ready = false;
    while (!ready || sb->listener < 0) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            return err_set(msg, msglen, "the sandbox was not ready within %d ms", READY_TIMEOUT_MS);
        struct pollfd pfd[2] = {{sb->status_r, POLLIN, 0}, {ready ? -1 : sb->ready_r, POLLIN, 0}};
        int n = poll(pfd, 2, (int)left);
        if (n < 0 && errno != EINTR)
            return err_set(msg, msglen, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        if (pfd[0].revents) {
            struct sbx_record rec;
            int fd = -1;
            int got = sbx_status_recv(sb->status_r, &rec, &fd);
            if (got < 0 && errno == EAGAIN)
                continue;
            if (got <= 0)
                return err_set(msg, msglen, "the sandbox ended while it was being set up (%s)",
                               got == 0 ? "end of file" : strerror(errno));
            if (rec.type == SBX_REC_LISTENER && fd >= 0 && sb->listener < 0) {
                sb->listener = fd;
                continue;
            }
            if (fd >= 0)
                close(fd);
            if (rec.type == SBX_REC_ERROR)
                return err_set(msg, msglen, "sandbox setup failed: %s%s%s", rec.text,
                               rec.value ? ": " : "", rec.value ? strerror(rec.value) : "");
            return err_set(msg, msglen, "unexpected record 0x%x while the sandbox was set up",
                           rec.type);
        }
        if (pfd[1].revents) {
            char b = 0;
            ssize_t r = read(sb->ready_r, &b, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != 1 || b != 'R') {
                /* Its last words are on the status socket, if any: read them first. */
                if (poll(pfd, 1, 100) > 0)
                    continue;
                return err_set(msg, msglen, "the runtime ended before it was ready");
            }
            ready = true;
            sbx_close(&sb->ready_r);
        }
    }
    return 0;
}

int sandbox_prepare(const struct sandbox_spec *spec, struct sandbox **out, char *msg, size_t msglen)
{
    *out = NULL;
    const struct sbx_runtime *rt = sbx_runtime_find(spec->runtime);
    if (!rt)
        return err_set(msg, msglen, "unknown runtime '%.64s'",
                       spec->runtime ? spec->runtime : "(null)");
    if (access(rt->path, X_OK) != 0)
        return err_set(msg, msglen, "runtime interpreter %s is not executable", rt->path);
    struct sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return err_set(msg, msglen, "out of memory");
    sb->init_pid = -1;
    sb->sync_w = sb->status_r = sb->in_w = sb->out_r = sb->err_r = sb->assign_w = sb->ready_r =
        sb->listener = -1;
    if (!(sb->plan = calloc(1, sizeof *sb->plan))) {
        free(sb);
        return err_set(msg, msglen, "out of memory");
    }
    struct sbx_plan *p = sb->plan;
    p->rt = rt;
    p->prepared_disk_bytes = spec->disk_bytes ? spec->disk_bytes : SBX_DEFAULT_DISK;
    p->sync_r = p->status_w = p->in_r = p->out_w = p->err_w = p->assign_r = p->ready_w =
        p->go_r = p->go_w = -1;
    struct pipe_guard guard;
    pipe_guard_on(&guard);
    int rc = -1;
    sb->cg_memory_bytes = spec->memory_bytes ? spec->memory_bytes : SBX_DEFAULT_MEMORY;
    sb->cg_max_pids = spec->max_pids ? spec->max_pids : SBX_DEFAULT_PIDS;
    if (cgroup_begin(spec->cgroup, spec->id, sb->cg_memory_bytes, sb->cg_max_pids, &sb->cg, msg,
                     msglen) != 0 ||
        (spec->filter_fd >= 0 ? sbx_seccomp_read(spec->filter_fd, &p->prog, msg, msglen)
                              : sbx_seccomp_build(&p->prog, msg, msglen)) != 0 ||
        sbx_seccomp_notif_size(&sb->notif_size, msg, msglen) != 0 ||
        make_channels(sb, msg, msglen) != 0)
        goto out;

    /* fork-like clone: no new stack, the child returns here with 0. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_FLAGS | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid < 0) {
        err_set(msg, msglen, "clone: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        sbx_init_main(p);
    sb->init_pid = pid;
    live_init = pid;
    if (kill_signalled) /* it came between clone and here */
        kill(pid, SIGKILL);
    int *child[] = {&p->sync_r, &p->status_w, &p->in_r, &p->out_w,
                    &p->err_w, &p->assign_r, &p->ready_w, &p->go_r, &p->go_w};
    for (size_t i = 0; i < sizeof child / sizeof child[0]; i++)
        sbx_close(child[i]);

    char why[200];
    if (sbx_userns_write_maps(pid, why, sizeof why) != 0 ||
        (sb->cg && sbx_cgroup_attach(sb->cg, pid, why, sizeof why) != 0)) {
        err_set(msg, msglen, "sandbox setup: %s", why);
        goto out;
    }
    /* A failed write means the child died already: await_ready says why.
     * sync_w stays open: the child's parent-liveness check. */
    (void)write_all(sb->sync_w, "1", 1);
    if (await_ready(sb, msg, msglen) != 0)
        goto out;
    int *nb[] = {&sb->status_r, &sb->in_w, &sb->out_r, &sb->err_r};
    for (int i = 0; i < 4; i++) {
        int fl = fcntl(*nb[i], F_GETFL);
        if (fl < 0 || fcntl(*nb[i], F_SETFL, fl | O_NONBLOCK) != 0) {
            err_set(msg, msglen, "fcntl O_NONBLOCK: %s", strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    pipe_guard_off(&guard);
    if (rc == 0)
        *out = sb;
    else
        sandbox_free(sb, NULL);
    return rc;
}

int sandbox_watch_fds(const struct sandbox *sb, int *fds, int max)
{
    int n = 0;
    if (n < max && sb->status_r >= 0)
        fds[n++] = sb->status_r;
    if (n < max && sb->listener >= 0)
        fds[n++] = sb->listener;
    return n;
}

/* The task's environment as the init passes it on: NUL-terminated
 * KEY=VALUE entries. 0 with *len, or -1 with r set. */
static int env_blob(const char *const *env, char *buf, size_t size, size_t *len,
                    struct sandbox_result *r)
{
    size_t off = 0, n = 0;
    for (; env && env[n]; n++) {
        const char *eq = strchr(env[n], '=');
        size_t l = strlen(env[n]) + 1;
        if (!eq || eq == env[n] || n >= SBX_ENV_ENTRIES)
            return fail(r, "invalid environment entry (want KEY=VALUE, at most 64): %.64s",
                        env[n]);
        if (l > size - off)
            return fail(r, "%s", "the task's environment is too large");
        memcpy(buf + off, env[n], l);
        off += l;
    }
    *len = off;
    return 0;
}

/* Sends the assignment to the init. 0, or -1 (the init is gone: its status
 * socket says why). */
static int send_assignment(struct sandbox *sb, const struct sandbox_task *task,
                           const struct sandbox_limits *lim, const char *env, size_t env_len)
{
    struct sbx_assign_header h;
    memset(&h, 0, sizeof h);
    h.magic = SBX_ASSIGN_MAGIC;
    h.env_len = (uint32_t)env_len;
    h.code_len = task->code_len;
    h.limits = *lim;
    h.memory_by_cgroup = sb->cg != NULL;
    return write_all(sb->assign_w, &h, sizeof h) == 0 &&
                   write_all(sb->assign_w, task->code, task->code_len) == 0 &&
                   write_all(sb->assign_w, env, env_len) == 0
               ? 0
               : -1;
}

int sandbox_start(struct sandbox *sb, const struct sandbox_task *task, sandbox_output_fn on_output,
                  void *ctx, struct sandbox_result *result)
{
    if (!result)
        return -1;
    memset(result, 0, sizeof *result);
    result->exit_code = -1;
    result->seccomp_syscall = -1;
    int rc = -1;
    char *env = NULL;
    size_t env_len = 0;
    struct sandbox_limits lim;
    struct pipe_guard guard;
    pipe_guard_on(&guard);
    if (!sb || !task) {
        fail(result, "%s", "no task");
        goto out;
    }
    if ((!task->code && task->code_len) || (!task->stdin_data && task->stdin_len)) {
        fail(result, "%s", "task code or stdin is NULL");
        goto out;
    }
    if (!task->runtime || strcmp(task->runtime, sb->plan->rt->name) != 0) {
        fail(result, "the sandbox was prepared for %s", sb->plan->rt->name);
        goto out;
    }
    lim = task->limits;
    sbx_limits_resolve(&lim);
    if (lim.disk_bytes != sb->plan->prepared_disk_bytes) {
        snprintf(result->message, sizeof result->message,
                 "the sandbox was prepared with disk_bytes %llu, not %llu",
                 (unsigned long long)sb->plan->prepared_disk_bytes,
                 (unsigned long long)lim.disk_bytes);
        goto out;
    }
    if (task->code_len > lim.disk_bytes) {
        fail(result, "%s", "code is larger than the sandbox's /work");
        goto out;
    }
    if (!(env = malloc(SBX_ENV_MAX - 1))) {
        fail(result, "%s", "out of memory");
        goto out;
    }
    if (env_blob(task->env, env, SBX_ENV_MAX - 1, &env_len, result) != 0)
        goto out;
    char why[200];
    uint64_t memory = lim.memory_bytes != sb->cg_memory_bytes ? lim.memory_bytes : 0;
    uint32_t pids = lim.max_pids != sb->cg_max_pids ? lim.max_pids : 0;
    if (sb->cg && (memory || pids) && sbx_cgroup_limit(sb->cg, memory, pids, why, sizeof why) != 0) {
        fail(result, "task cgroup: %s", why);
        goto out;
    }
    struct sbx_cgroup_stats cs = {0, 0, 0};
    if (sb->cg && sbx_cgroup_stats(sb->cg, &cs) != 0)
        cs.cpu_ns = 0;

    int64_t start = monotonic_ms();
    /* A failed send means the init is gone; the supervisor reports why. */
    (void)send_assignment(sb, task, &lim, env, env_len);
    sbx_close(&sb->assign_w);
    struct sbx_supervise sup = {
        .init_pid = sb->init_pid,
        .stdin_fd = sb->in_w,
        .stdout_fd = sb->out_r,
        .stderr_fd = sb->err_r,
        .status_fd = sb->status_r,
        .notif_size = sb->notif_size,
        .stdin_data = task->stdin_data,
        .stdin_len = task->stdin_len,
        .limits = &lim,
        .start_ms = start,
        .on_output = on_output,
        .ctx = ctx,
        .cg = sb->cg,
        .listener_fd = sb->listener,
        .cpu_base_ns = cs.cpu_ns,
    };
    /* Owned by the supervisor now, which reaps the init. */
    sb->in_w = sb->out_r = sb->err_r = sb->status_r = sb->listener = -1;
    sb->init_pid = -1;
    rc = sbx_supervise(&sup, result);

out:
    pipe_guard_off(&guard);
    free(env);
    if (rc != 0)
        result->reason = SANDBOX_REASON_SANDBOX_ERROR;
    return rc;
}

int sandbox_run(const struct sandbox_task *task, sandbox_output_fn on_output, void *ctx,
                struct sandbox_result *result)
{
    if (!result)
        return -1;
    memset(result, 0, sizeof *result);
    result->exit_code = -1;
    result->seccomp_syscall = -1;
    if (!task)
        return fail(result, "%s", "no task");
    struct sandbox_limits lim = task->limits;
    sbx_limits_resolve(&lim);
    struct sandbox_spec spec = {.runtime = task->runtime,
                                .cgroup = task->cgroup,
                                .id = task->id,
                                .disk_bytes = lim.disk_bytes,
                                .memory_bytes = lim.memory_bytes,
                                .max_pids = lim.max_pids,
                                .filter_fd = -1};
    struct sandbox *sb;
    if (sandbox_prepare(&spec, &sb, result->message, sizeof result->message) != 0) {
        result->reason = SANDBOX_REASON_SANDBOX_ERROR;
        return -1;
    }
    int rc = sandbox_start(sb, task, on_output, ctx, result);
    sandbox_free(sb, result);
    return rc;
}
