/*
 * sandbox.c - orchestration: validates the task, prepares everything the
 * child needs (environment, seccomp program, pipes) in the parent, clones
 * the child into new user/pid/mount/net/ipc/uts/cgroup namespaces, writes
 * its id maps, and hands over to the supervisor.
 *
 * The child is the sandbox's pid 1 (a tiny init of ours): it waits for the
 * maps, sets up hostname, loopback and the root filesystem, writes the code,
 * drops every privilege, attaches the seccomp filter with a user-notification
 * listener (once: a filter chain may hold only one listener) and sends the
 * listener fd to the supervisor, closes its own copy, forks the task (which
 * inherits the filter but never the listener), reaps everything and reports
 * the task's wait status over the status socket. When it exits, the kernel
 * kills whatever is left in its pid namespace. The task applies rlimits,
 * marks all other fds close-on-exec and execs the runtime; all it does after
 * fork (setsid, dup2, prlimit64, close_range, execve) and all the init does
 * after attaching (sendmsg, close, clone, kill, wait4, write, exit_group) is
 * on the allowlist.
 *
 * Parent <-> child protocol: sync pipe (parent writes one byte once the maps
 * are in place; EOF means abort; the parent holds it open until the end so
 * that the child can tell it is alive), status socket (SOCK_SEQPACKET, one
 * fixed-size sbx_record per message: ERROR for any setup failure, LISTENER
 * carrying the seccomp listener fd as SCM_RIGHTS, STATUS with the task's wait
 * status). Without the listener in the supervisor's hands the task never runs.
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
#define MAX_ENV 1024

/* The fixed base environment; task entries with the same key replace these. */
static const char *const base_env[] = {
    "PATH=/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8", "TMPDIR=/tmp", "USER=sandbox",
    "LOGNAME=sandbox", "PYTHONDONTWRITEBYTECODE=1",
};
#define N_BASE_ENV (sizeof base_env / sizeof base_env[0])

/* Everything the child uses: prepared before clone, read-only after. */
struct plan {
    const struct sbx_runtime *rt;
    const struct sandbox_task *task;
    struct sandbox_limits lim;
    char **envp;
    struct sock_fprog prog;
    int sync_r, status_w, in_r, out_w, err_w;
    int memory_by_cgroup; /* a memory cgroup bounds the tree */
};

/* ---------------------------------------------------------------- helpers */

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

/* ------------------------------------------------------------------ child */

static void send_record(int fd, uint32_t type, int32_t value, const char *text)
{
    struct sbx_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = type;
    rec.value = value;
    sbx_strlcpy(rec.text, text, sizeof rec.text);
    (void)write_all(fd, &rec, sizeof rec); /* < PIPE_BUF: atomic */
}

static _Noreturn void child_fail(int status_w, const struct sbx_err *e)
{
    send_record(status_w, SBX_REC_ERROR, e->err, e->what);
    _exit(127);
}

/* A LISTENER record with the seccomp listener fd attached (SCM_RIGHTS). */
static int send_listener(int status_w, int listener, struct sbx_err *e)
{
    struct sbx_record rec;
    memset(&rec, 0, sizeof rec);
    rec.type = SBX_REC_LISTENER;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&rec, sizeof rec};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &listener, sizeof listener);
    ssize_t n;
    do
        n = sendmsg(status_w, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof rec)
        return sbx_fail(e, "sending the seccomp listener", n < 0 ? errno : EMSGSIZE);
    return 0;
}

static void reset_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP/RT-internal */
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Closes every fd but those in keep[] (n small), without allocating. */
static int close_all_except(const int *keep, int n)
{
    int sorted[8];
    for (int i = 0; i < n; i++) { /* insertion sort */
        int v = keep[i], j = i;
        for (; j > 0 && sorted[j - 1] > v; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = v;
    }
    unsigned int from = 0;
    for (int i = 0; i < n; i++) {
        if ((unsigned int)sorted[i] > from && close_range(from, (unsigned int)sorted[i] - 1, 0) != 0)
            return -1;
        from = (unsigned int)sorted[i] + 1;
    }
    return close_range(from, ~0u, 0);
}

/* Moves *fd to >= 3 so that 0-2 are free for the task's pipes. */
static int lift_fd(int *fd)
{
    if (*fd > 2)
        return 0;
    int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (n < 0)
        return -1;
    *fd = n; /* the low copy is closed by close_all_except */
    return 0;
}

static _Noreturn void task_main(const struct plan *p)
{
    struct sbx_err e = {0, ""};
    if (setsid() < 0)
        child_fail(p->status_w, (sbx_fail(&e, "setsid", errno), &e));
    if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0)
        child_fail(p->status_w, (sbx_fail(&e, "dup2 stdio", errno), &e));
    if (sbx_rlimits_apply(&p->lim, p->memory_by_cgroup, &e) != 0 || sbx_oom_task_first(&e) != 0)
        child_fail(p->status_w, &e);
    /* Everything but 0-2 goes at execve; the status socket stays usable until
     * then. The seccomp filter is the init's, inherited: no second one here. */
    if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "close_range", errno), &e));
    execve(p->rt->path, (char *const *)p->rt->argv, p->envp);
    sbx_fail2(&e, "execve", p->rt->path, errno);
    child_fail(p->status_w, &e);
}

/* The init is a clone of the caller: its argv (the worker's host path) and
 * name would show in the sandbox's /proc/1. Blank the argument area the
 * kernel reads /proc/PID/cmdline from, and rename the process. */
static void hide_host_argv(void)
{
    static const char name[] = "airlock-init";
    size_t len = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[256];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            len += (size_t)n;
        close(fd);
    }
    /* glibc's program_invocation_name is argv[0], the start of that area. */
    if (len > sizeof name) {
        memset(program_invocation_name, 0, len);
        memcpy(program_invocation_name, name, sizeof name);
    }
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* Tells the supervisor which writable mount the task left full (space or
 * inodes): a failure then is most likely the disk limit's doing. */
static void report_full_mounts(int status_w)
{
    static const char *const writable[] = {"/work", "/tmp", "/dev/shm"};
    for (size_t i = 0; i < sizeof writable / sizeof writable[0]; i++) {
        struct statvfs sv;
        if (statvfs(writable[i], &sv) != 0)
            continue;
        if ((uint64_t)sv.f_bavail * sv.f_frsize < SBX_DISK_FULL_SLACK || sv.f_favail == 0) {
            send_record(status_w, SBX_REC_DISK_FULL, 0, writable[i]);
            return;
        }
    }
}

/* The sandbox's pid 1. */
static _Noreturn void init_main(struct plan *p)
{
    struct sbx_err e = {0, ""};
    reset_signals();
    hide_host_argv();
    /* Out of the caller's session and process group (terminal signals). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || setsid() < 0)
        _exit(126);
    int *mine[] = {&p->sync_r, &p->status_w, &p->in_r, &p->out_w, &p->err_w};
    int keep[5];
    for (int i = 0; i < 5; i++) {
        if (lift_fd(mine[i]) != 0)
            _exit(126);
        keep[i] = *mine[i];
    }
    if (close_all_except(keep, 5) != 0)
        _exit(126);

    /* Wait for the parent to write our id maps; EOF means it gave up. */
    char go;
    ssize_t n;
    do
        n = read(p->sync_r, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(126);
    /* Now in the task's cgroup (the parent moved us before the byte): a
     * cgroup namespace rooted there shows the task nothing of the host's. */
    if (unshare(CLONE_NEWCGROUP) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "unshare(CLONE_NEWCGROUP)", errno), &e));
    if (sbx_userns_switch_ids(&e) != 0)
        child_fail(p->status_w, &e);
    /* Changing uid cleared the parent-death signal: set it again, then make
     * sure the parent did not die in between (it holds the sync pipe's write
     * end until the end: hang-up means it is gone). */
    struct pollfd pfd = {p->sync_r, POLLIN, 0};
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || poll(&pfd, 1, 0) != 0)
        _exit(126);
    close(p->sync_r);
    if (sethostname(SBX_HOSTNAME, sizeof SBX_HOSTNAME - 1) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "sethostname", errno), &e));
    if (sbx_net_setup(&e) != 0 || sbx_mounts_setup(p->rt, &p->lim, &e) != 0 ||
        sbx_mounts_write_code(p->rt, p->task->code, p->task->code_len, &e) != 0)
        child_fail(p->status_w, &e);
    /* Setup is done: init and task keep no privilege at all. */
    if (sbx_caps_drop_all(&e) != 0)
        child_fail(p->status_w, &e);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "PR_SET_DUMPABLE", errno), &e));

    /* The filter, once, for init and task alike; the supervisor gets the
     * listener before the task exists, and no process in here keeps it. */
    int listener = -1;
    if (sbx_seccomp_load(&p->prog, &listener, &e) != 0)
        child_fail(p->status_w, &e);
    if (send_listener(p->status_w, listener, &e) != 0)
        child_fail(p->status_w, &e);
    if (close(listener) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "close seccomp listener", errno), &e));

    pid_t task = fork();
    if (task < 0)
        child_fail(p->status_w, (sbx_fail(&e, "fork task", errno), &e));
    if (task == 0)
        task_main(p);
    close(p->in_r);
    close(p->out_w);
    close(p->err_w);

    /* Reap everything; when the task itself ends, report and exit: the
     * kernel then kills what is left of the namespace. */
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, __WALL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(125); /* ECHILD before the task was seen: cannot happen */
        }
        if (w == task) {
            report_full_mounts(p->status_w);
            send_record(p->status_w, SBX_REC_STATUS, st, "");
            _exit(0);
        }
    }
}

/* ----------------------------------------------------------------- parent */

static int fail(struct sandbox_result *r, const char *fmt, const char *arg)
{
    r->reason = SANDBOX_REASON_SANDBOX_ERROR;
    snprintf(r->message, sizeof r->message, fmt, arg);
    return -1;
}

/* Base environment plus the task's entries (which win on equal keys). */
static char **build_env(const char *const *extra, struct sandbox_result *r)
{
    size_t n_extra = 0;
    for (; extra && extra[n_extra]; n_extra++) {
        const char *eq = strchr(extra[n_extra], '=');
        if (n_extra >= MAX_ENV || !eq || eq == extra[n_extra]) {
            fail(r, "invalid environment entry (want KEY=VALUE): %.64s", extra[n_extra]);
            return NULL;
        }
    }
    char **envp = calloc(N_BASE_ENV + n_extra + 1, sizeof *envp);
    if (!envp) {
        fail(r, "%s", "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < N_BASE_ENV; i++) {
        size_t klen = (size_t)(strchr(base_env[i], '=') - base_env[i]) + 1;
        bool overridden = false;
        for (size_t j = 0; j < n_extra && !overridden; j++)
            overridden = strncmp(extra[j], base_env[i], klen) == 0;
        if (!overridden)
            envp[k++] = (char *)base_env[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[k++] = (char *)extra[j];
    envp[k] = NULL;
    return envp;
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

/* Makes the task's cgroup (unless the mode is NONE). 0, or -1 with r set. */
static int cgroup_begin(enum sandbox_cgroup_mode mode, const char *id,
                        const struct sandbox_limits *lim, struct sbx_cgroup **out,
                        struct sandbox_result *r)
{
    *out = NULL;
    if (mode == SANDBOX_CGROUP_NONE)
        return 0;
    char msg[200], name[RANDOM_ID_LEN];
    struct sbx_cgroup_host *h = cgroup_host(mode, 0, msg, sizeof msg);
    if (!h)
        return fail(r, "cgroups: %s", msg);
    struct sbx_cgroup *cg = calloc(1, sizeof *cg);
    int rc = -1;
    if (!cg) {
        fail(r, "%s", "out of memory");
    } else {
        if (!id)
            random_id(name);
        if (sbx_cgroup_create(h, id ? id : name, lim->memory_bytes, lim->max_pids, cg, msg,
                              sizeof msg) != 0)
            fail(r, "task cgroup: %s", msg);
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

/* Removes the task's cgroup; a failure is reported in r's message. */
static void cgroup_end(struct sbx_cgroup *cg, struct sandbox_result *r)
{
    if (!cg)
        return;
    char msg[200];
    if (sbx_cgroup_destroy(cg, msg, sizeof msg) != 0) {
        log_error("task cgroup left behind: %s", msg);
        if (!r->message[0])
            snprintf(r->message, sizeof r->message, "task cgroup left behind: %s", msg);
    }
    free(cg);
}

static void close_if(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
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
    if ((!task->code && task->code_len) || (!task->stdin_data && task->stdin_len))
        return fail(result, "%s", "task code or stdin is NULL");

    struct plan p;
    memset(&p, 0, sizeof p);
    p.task = task;
    p.rt = sbx_runtime_find(task->runtime);
    if (!p.rt)
        return fail(result, "unknown runtime '%.64s'", task->runtime ? task->runtime : "(null)");
    if (access(p.rt->path, X_OK) != 0)
        return fail(result, "runtime interpreter %s is not executable", p.rt->path);
    p.lim = task->limits;
    sbx_limits_resolve(&p.lim);
    if (task->code_len > p.lim.disk_bytes)
        return fail(result, "%s", "code is larger than the sandbox's /work");
    struct sbx_cgroup *cg = NULL;
    if (cgroup_begin(task->cgroup, task->id, &p.lim, &cg, result) != 0)
        return -1;
    p.memory_by_cgroup = cg != NULL;

    int rc = -1;
    int sync_w = -1, status_r = -1, in_w = -1, out_r = -1, err_r = -1;
    p.sync_r = p.status_w = p.in_r = p.out_w = p.err_w = -1;
    sigset_t pipe_set, old_mask, pending;
    bool mask_set = false, pipe_was_pending = false;

    p.envp = build_env(task->env, result);
    if (!p.envp)
        goto out;
    size_t notif_size = 0;
    if (sbx_seccomp_build(&p.prog, result->message, sizeof result->message) != 0 ||
        sbx_seccomp_notif_size(&notif_size, result->message, sizeof result->message) != 0) {
        result->reason = SANDBOX_REASON_SANDBOX_ERROR;
        goto out;
    }

    int fds[5][2];
    int made = 0;
    for (; made < 5; made++) /* [1]: the status socket */
        if ((made == 1 ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds[made])
                       : pipe2(fds[made], O_CLOEXEC)) != 0)
            break;
    if (made < 5) {
        fail(result, "pipe2/socketpair: %s", strerror(errno));
        for (int i = 0; i < made; i++) {
            close(fds[i][0]);
            close(fds[i][1]);
        }
        goto out;
    }
    p.sync_r = fds[0][0], sync_w = fds[0][1];
    status_r = fds[1][0], p.status_w = fds[1][1];
    p.in_r = fds[2][0], in_w = fds[2][1];
    out_r = fds[3][0], p.out_w = fds[3][1];
    err_r = fds[4][0], p.err_w = fds[4][1];

    /* A task closing its stdin early must not kill us with SIGPIPE. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    pipe_was_pending = sigismember(&pending, SIGPIPE);
    if (sigprocmask(SIG_BLOCK, &pipe_set, &old_mask) != 0) {
        fail(result, "sigprocmask: %s", strerror(errno));
        goto out;
    }
    mask_set = true;

    int64_t start = monotonic_ms();
    /* fork-like clone: no new stack, the child returns here with 0. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_FLAGS | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid < 0) {
        fail(result, "clone: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        init_main(&p);

    close_if(&p.sync_r);
    close_if(&p.status_w);
    close_if(&p.in_r);
    close_if(&p.out_w);
    close_if(&p.err_w);

    char msg[200];
    if (sbx_userns_write_maps(pid, msg, sizeof msg) != 0 ||
        (cg && sbx_cgroup_attach(cg, pid, msg, sizeof msg) != 0)) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        fail(result, "sandbox setup: %s", msg);
        goto out;
    }
    /* A failed write means the child died already; the supervisor reports
     * what it said. sync_w stays open: the child's parent-liveness check. */
    (void)write_all(sync_w, "1", 1);

    int fl_ok = 1;
    int *nb[] = {&status_r, &in_w, &out_r, &err_r};
    for (int i = 0; i < 4; i++) {
        int fl = fcntl(*nb[i], F_GETFL);
        fl_ok &= fl >= 0 && fcntl(*nb[i], F_SETFL, fl | O_NONBLOCK) == 0;
    }
    if (!fl_ok) {
        kill(pid, SIGKILL); /* the supervisor below reaps it */
    }

    struct sbx_supervise sup = {
        .init_pid = pid,
        .stdin_fd = in_w,
        .stdout_fd = out_r,
        .stderr_fd = err_r,
        .status_fd = status_r,
        .notif_size = notif_size,
        .stdin_data = task->stdin_data,
        .stdin_len = task->stdin_len,
        .limits = &p.lim,
        .start_ms = start,
        .on_output = on_output,
        .ctx = ctx,
        .cg = cg,
    };
    in_w = out_r = err_r = status_r = -1; /* owned by the supervisor now */
    rc = sbx_supervise(&sup, result);
    if (!fl_ok && rc == 0) {
        fail(result, "%s", "fcntl O_NONBLOCK failed");
        rc = -1;
    }

out:
    close_if(&p.sync_r);
    close_if(&p.status_w);
    close_if(&p.in_r);
    close_if(&p.out_w);
    close_if(&p.err_w);
    close_if(&sync_w);
    close_if(&status_r);
    close_if(&in_w);
    close_if(&out_r);
    close_if(&err_r);
    if (mask_set) {
        sigpending(&pending);
        if (!pipe_was_pending && sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            (void)sigtimedwait(&pipe_set, NULL, &zero);
        }
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
    }
    sbx_seccomp_free(&p.prog);
    free(p.envp);
    cgroup_end(cg, result);
    if (rc != 0)
        result->reason = SANDBOX_REASON_SANDBOX_ERROR;
    return rc;
}
