/*
 * init.c - the sandbox's side: its pid 1 (a tiny init of ours) and the task
 * process, from clone to execve. Runs only from the plan the parent
 * prepared (sandbox.c): no malloc after clone.
 *
 * Built ahead of the task (the warm pool's point), in two halves:
 *
 * Ready: the init waits for its id maps, enters its cgroup namespace, takes
 * the sandbox uid, brings up loopback and builds the root filesystem. It
 * forks the task process, which drops every capability, attaches the
 * seccomp filter with a user-notification listener (sent to the supervisor
 * over the status socket, then closed) and becomes ready to run code: sh
 * waits in our code for the go message; python3 execs the interpreter,
 * whose bootstrap (runtime.c) waits for it. Either then writes one byte on
 * the ready pipe. The init drops its own capabilities, attaches the filter
 * for itself (no listener: the task's chain has it) and blocks reading the
 * assignment.
 *
 * Assigned: the assignment (sbx_assign_header, the code, the environment)
 * arrives from the supervisor. The init writes the code, sets the task
 * process's resource limits (prlimit: same uid, no privilege needed), and
 * only then passes the environment on the go pipe ('G', then NUL-separated KEY=VALUE entries;
 * end of file ends it). It reaps everything and reports the task's
 * wait status; when it exits, the kernel kills what is left of the pid
 * namespace.
 *
 * Records on the status socket: ERROR for any setup failure, LISTENER (the
 * task's seccomp listener, SCM_RIGHTS), DISK_FULL, STATUS.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* The fixed base environment; task entries with the same key replace these. */
static const char *const base_env[] = {
    "PATH=/usr/bin:/bin", "HOME=/work", "LANG=C.UTF-8", "TMPDIR=/tmp", "USER=sandbox",
    "LOGNAME=sandbox", "PYTHONDONTWRITEBYTECODE=1", NULL,
};

char *const *sbx_base_env(void)
{
    return (char *const *)base_env;
}

/* ------------------------------------------------------------- records */

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

/* -------------------------------------------------------------- helpers */

static int read_full(int fd, void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? EPIPE : errno;
            return -1;
        }
        off += (size_t)n;
    }
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

/* Closes every fd but those in keep[] (n <= SBX_PLAN_FDS), without allocating. */
static int close_all_except(const int *keep, int n)
{
    int sorted[SBX_PLAN_FDS];
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

/* Moves *fd to >= min (close-on-exec; the old number is closed later). */
static int lift_fd(int *fd, int min)
{
    if (*fd >= min)
        return 0;
    int n = fcntl(*fd, F_DUPFD_CLOEXEC, min);
    if (n < 0)
        return -1;
    *fd = n;
    return 0;
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

/* ---------------------------------------------------------- the task */

/* envp = the base environment, minus keys the task's entries replace, plus
 * those entries (NUL-separated "KEY=VALUE" in blob, validated by the
 * supervisor). */
void sbx_build_envp(struct sbx_plan *p, char *blob, size_t len)
{
    char *extra[SBX_ENV_ENTRIES];
    size_t n_extra = 0;
    for (size_t off = 0; off < len && n_extra < SBX_ENV_ENTRIES;) {
        size_t l = strnlen(blob + off, len - off);
        if (l == len - off)
            break; /* unterminated: the supervisor never sends one */
        if (l)
            extra[n_extra++] = blob + off;
        off += l + 1;
    }
    size_t k = 0;
    for (size_t i = 0; base_env[i]; i++) {
        size_t klen = (size_t)(strchr(base_env[i], '=') - base_env[i]) + 1;
        bool overridden = false;
        for (size_t j = 0; j < n_extra && !overridden; j++)
            overridden = strncmp(extra[j], base_env[i], klen) == 0;
        if (!overridden)
            p->envp[k++] = (char *)base_env[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        p->envp[k++] = extra[j];
    p->envp[k] = NULL;
}

/* The task process, up to execve. Confined before anything of the task's
 * exists: no capabilities, the filter (whose listener the supervisor holds),
 * then ready. sh waits here for the go message (the environment); python3
 * execs now and its bootstrap waits for it on fd 3 (ready pipe: fd 4). */
static _Noreturn void task_main(struct sbx_plan *p)
{
    struct sbx_err e = {0, ""};
    sbx_close(&p->go_w);
    sbx_close(&p->assign_r);
    sbx_close(&p->sync_r);
    if (setsid() < 0)
        child_fail(p->status_w, (sbx_fail(&e, "setsid", errno), &e));
    if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0)
        child_fail(p->status_w, (sbx_fail(&e, "dup2 stdio", errno), &e));
    if (sbx_oom_task_first(&e) != 0 || sbx_caps_drop_all(&e) != 0)
        child_fail(p->status_w, &e);
    int listener = -1;
    if (sbx_seccomp_load(&p->prog, true, &listener, &e) != 0 ||
        send_listener(p->status_w, listener, &e) != 0)
        child_fail(p->status_w, &e);
    close(listener);

    if (p->rt->bootstrap) {
        /* The interpreter takes over the wait: go on fd 3, ready on 4. */
        if (lift_fd(&p->go_r, 10) != 0 || lift_fd(&p->ready_w, 10) != 0 ||
            dup2(p->go_r, 3) < 0 || dup2(p->ready_w, 4) < 0)
            child_fail(p->status_w, (sbx_fail(&e, "dup2 bootstrap fds", errno), &e));
        if (close_range(5, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
            child_fail(p->status_w, (sbx_fail(&e, "close_range", errno), &e));
        execve(p->rt->path, (char *const *)p->rt->bootstrap, sbx_base_env());
        sbx_fail2(&e, "execve", p->rt->path, errno);
        child_fail(p->status_w, &e);
    }

    close(p->status_w); /* errors from here on show as the exit status */
    if (write_all(p->ready_w, "R", 1) != 0)
        _exit(126);
    close(p->ready_w);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p->go_r, p->env_buf + len, sizeof p->env_buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            _exit(126);
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof p->env_buf)
            _exit(126);
    }
    if (len == 0 || p->env_buf[0] != 'G')
        _exit(126); /* no go: the init gave up */
    close(p->go_r);
    sbx_build_envp(p, p->env_buf + 1, len - 1);
    if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
        _exit(126);
    execve(p->rt->path, (char *const *)p->rt->argv, p->envp);
    _exit(127);
}

/* ------------------------------------------------------- the assignment */

/* Streams the code from the assignment pipe into the runtime's script. */
static int receive_code(struct sbx_plan *p, uint64_t len, struct sbx_err *e)
{
    int fd = open(p->rt->script, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return sbx_fail2(e, "create", p->rt->script, errno);
    char buf[16384];
    while (len > 0) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        if (read_full(p->assign_r, buf, n) != 0) {
            close(fd);
            return sbx_fail(e, "reading the code", errno);
        }
        if (write_all(fd, buf, n) != 0) {
            int err = errno;
            close(fd);
            return sbx_fail2(e, "write", p->rt->script, err);
        }
        len -= n;
    }
    if (close(fd) != 0)
        return sbx_fail2(e, "close", p->rt->script, errno);
    return 0;
}

int sbx_assign_check(const struct sbx_assign_header *h, uint64_t prepared_disk_bytes)
{
    if (h->magic != SBX_ASSIGN_MAGIC || h->env_len > SBX_ENV_MAX ||
        h->code_len > h->limits.disk_bytes || h->limits.disk_bytes != prepared_disk_bytes)
        return -1;
    return 0;
}

/* Receives the assignment and makes the sandbox the task's: disk size,
 * code, resource limits. Returns the environment's length in p->env_buf. */
static int assign(struct sbx_plan *p, pid_t task, size_t *env_len, struct sbx_err *e)
{
    struct sbx_assign_header h;
    if (read_full(p->assign_r, &h, sizeof h) != 0)
        return sbx_fail(e, "reading the assignment", errno);
    if (sbx_assign_check(&h, p->prepared_disk_bytes) != 0)
        return sbx_fail(e, "malformed assignment", EPROTO);
    if (receive_code(p, h.code_len, e) != 0)
        return -1;
    if (read_full(p->assign_r, p->env_buf, h.env_len) != 0)
        return sbx_fail(e, "reading the environment", errno);
    sbx_close(&p->assign_r);
    *env_len = h.env_len;
    return sbx_rlimits_apply(task, &h.limits, h.memory_by_cgroup, e);
}

/* ------------------------------------------------------------- the init */

_Noreturn void sbx_init_main(struct sbx_plan *p)
{
    struct sbx_err e = {0, ""};
    reset_signals();
    hide_host_argv();
    /* Out of the caller's session and process group (terminal signals). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || setsid() < 0)
        _exit(126);
    int *mine[] = {&p->sync_r, &p->status_w, &p->in_r, &p->out_w, &p->err_w,
                   &p->assign_r, &p->ready_w, &p->go_r, &p->go_w};
    int n_mine = (int)(sizeof mine / sizeof mine[0]);
    int keep[SBX_PLAN_FDS];
    for (int i = 0; i < n_mine; i++) {
        if (lift_fd(mine[i], 3) != 0)
            _exit(126);
        keep[i] = *mine[i];
    }
    if (close_all_except(keep, n_mine) != 0)
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
    sbx_close(&p->sync_r);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "PR_SET_DUMPABLE", errno), &e));
    if (sethostname(SBX_HOSTNAME, sizeof SBX_HOSTNAME - 1) != 0)
        child_fail(p->status_w, (sbx_fail(&e, "sethostname", errno), &e));
    if (sbx_net_setup(&e) != 0 || sbx_mounts_setup(p->prepared_disk_bytes, &e) != 0)
        child_fail(p->status_w, &e);
    if (chdir("/work") != 0)
        child_fail(p->status_w, (sbx_fail(&e, "chdir /work", errno), &e));

    pid_t task = fork();
    if (task < 0)
        child_fail(p->status_w, (sbx_fail(&e, "fork task", errno), &e));
    if (task == 0)
        task_main(p);
    sbx_close(&p->in_r);
    sbx_close(&p->out_w);
    sbx_close(&p->err_w);
    sbx_close(&p->go_r);
    sbx_close(&p->ready_w);

    /* No privilege left in here either, before anything of a task exists. */
    int none = -1;
    if (sbx_caps_drop_all(&e) != 0 || sbx_seccomp_load(&p->prog, false, &none, &e) != 0)
        child_fail(p->status_w, &e);

    /* Ready. Everything from here is the task's. */
    size_t env_len = 0;
    if (assign(p, task, &env_len, &e) != 0)
        child_fail(p->status_w, &e);
    /* Go: 'G' and the environment. A failed write means the task is gone
     * already; its wait status says how. */
    if (write_all(p->go_w, "G", 1) == 0)
        (void)write_all(p->go_w, p->env_buf, env_len);
    sbx_close(&p->go_w);

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
