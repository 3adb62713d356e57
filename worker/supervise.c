/*
 * supervise.c - the supervisor's side of a running sandbox: one poll loop
 * over the task's stdout/stderr (relayed to on_output as they arrive), its
 * stdin (fed from memory, then closed), the status socket from the sandbox's
 * init, the task's seccomp listener (received over that socket while the
 * sandbox was made ready), and the wall-clock deadline (CLOCK_MONOTONIC),
 * all counted from the assignment. Any kill is a SIGKILL to the sandbox's pid 1:
 * its pid namespace, and every process in it, dies with it. Ends by reaping
 * that init (wait4 gives the whole tree's usage) and deciding the result.
 *
 * Seccomp: the filter's default action is user notification, so a forbidden
 * call blocks in the kernel until answered. The supervisor never answers (a
 * "continue" would run the call): on POLLIN it reads the notification, keeps
 * the call's number for the result, and kills the sandbox (reason SECCOMP);
 * the blocked call dies unrun with its caller. The listener is read only
 * after POLLIN, so the task cannot make the supervisor block on it. ENOENT
 * (the caller was interrupted or died before the read) still proves a
 * forbidden call: the sandbox is killed likewise, number unknown. POLLHUP or
 * POLLERR alone just closes the listener. A SIGSYS death (a call through a
 * foreign ABI: the filter's bad-arch action) is SECCOMP with number -1.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* After a kill, how long to wait for the pipes to close before reaping. */
#define KILL_GRACE_MS 5000
#define CHUNK 65536

enum { FD_OUT, FD_ERR, FD_STATUS, FD_IN, FD_NOTIFY, FD_N };
/* At most this many fds are taken from one status record (one is valid). */
#define MAX_RECV_FDS 4

struct sup_state {
    struct sbx_supervise *s;
    int fd[FD_N];
    size_t in_off;
    uint64_t out_total;
    bool killed, relay_stopped;
    enum sandbox_reason kill_reason;
    int64_t killed_at;
    /* status socket */
    bool have_status, have_error, have_listener;
    int task_status, error_errno;
    char error_text[sizeof(((struct sbx_record *)0)->text)];
    char full_mount[sizeof(((struct sbx_record *)0)->text)]; /* "" unless one filled up */
    /* CPU time of the tree, from the cgroup */
    int64_t next_cpu_check;
    long ncpu;
    /* seccomp: set when a notification decided the kill */
    bool seccomp_known;
    int seccomp_nr;
    uint32_t seccomp_arch;
};

static void kill_tree(struct sup_state *st, enum sandbox_reason why)
{
    if (!st->killed) {
        st->killed = true;
        st->kill_reason = why;
        st->killed_at = monotonic_ms();
    }
    kill(st->s->init_pid, SIGKILL); /* our unreaped child: the pid cannot be reused */
}

static void relay(struct sup_state *st, int stream, const uint8_t *data, size_t len)
{
    if (st->relay_stopped)
        return;
    uint64_t limit = st->s->limits->output_bytes;
    size_t deliver = len;
    bool over = false;
    if (st->out_total + len > limit) {
        deliver = (size_t)(limit - st->out_total);
        over = true;
    }
    st->out_total += deliver;
    if (deliver > 0 && st->s->on_output &&
        st->s->on_output(st->s->ctx, stream, data, deliver) != 0) {
        st->relay_stopped = true;
        kill_tree(st, SANDBOX_REASON_KILLED);
        return;
    }
    if (over) {
        st->relay_stopped = true;
        kill_tree(st, SANDBOX_REASON_OUTPUT_LIMIT);
    }
}

static void read_output(struct sup_state *st, int which)
{
    uint8_t buf[CHUNK];
    ssize_t n = read(st->fd[which], buf, sizeof buf);
    if (n > 0)
        relay(st, which == FD_OUT ? 1 : 2, buf, (size_t)n);
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        sbx_close(&st->fd[which]);
}

/* A setup failure on the sandbox side (or a broken protocol): fail closed. */
static void set_error(struct sup_state *st, int err, const char *text)
{
    if (st->have_error || st->have_status)
        return;
    st->have_error = true;
    st->error_errno = err;
    sbx_strlcpy(st->error_text, text, sizeof st->error_text);
    kill(st->s->init_pid, SIGKILL); /* fail closed, and fast */
}

int sbx_status_recv(int fd, struct sbx_record *rec, int *rec_fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
    } ctl;
    struct iovec iov = {rec, sizeof *rec};
    struct msghdr mh;
    memset(rec, 0, sizeof *rec);
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    *rec_fd = -1;
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -1;
    int nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++, nfds++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (nfds == 0)
                *rec_fd = got;
            else
                close(got); /* one fd per record, at most */
        }
    }
    bool malformed = n != (ssize_t)sizeof *rec || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
                     nfds > 1;
    if (n == 0 || malformed) {
        if (*rec_fd >= 0)
            close(*rec_fd);
        *rec_fd = -1;
        if (n == 0)
            return 0;
        errno = EPROTO;
        return -1;
    }
    rec->text[sizeof rec->text - 1] = '\0';
    return 1;
}

/* Records from the sandbox side: trusted for nothing but their own shape.
 * One record per message (SOCK_SEQPACKET); an fd that comes along is closed
 * unless it is the one listener of a LISTENER record. */
static void read_status(struct sup_state *st)
{
    struct sbx_record rec;
    int fd = -1;
    int got = sbx_status_recv(st->fd[FD_STATUS], &rec, &fd);
    if (got < 0 && errno == EPROTO) {
        set_error(st, 0, "malformed status record");
        return;
    }
    if (got <= 0) { /* EOF (the init is gone) or a read error */
        if (got == 0 || (errno != EAGAIN && errno != EINTR))
            sbx_close(&st->fd[FD_STATUS]);
        return;
    }
    if (rec.type == SBX_REC_LISTENER) {
        if (fd < 0 || st->have_listener) {
            if (fd >= 0)
                close(fd);
            set_error(st, 0, "bad seccomp listener record (a second one, or not one fd)");
            return;
        }
        st->have_listener = true;
        st->fd[FD_NOTIFY] = fd;
        return;
    }
    if (fd >= 0)
        close(fd);
    if (rec.type == SBX_REC_ERROR) {
        set_error(st, rec.value, rec.text);
    } else if (rec.type == SBX_REC_DISK_FULL) {
        sbx_strlcpy(st->full_mount, rec.text, sizeof st->full_mount);
    } else if (rec.type == SBX_REC_STATUS && !st->have_status && !st->have_error) {
        if (!st->have_listener) { /* the task is confined before it is ready */
            set_error(st, 0, "task status before the seccomp listener");
            return;
        }
        st->have_status = true;
        st->task_status = rec.value;
    }
}

/* A forbidden system call is blocked in the kernel, waiting for us. */
static void read_notification(struct sup_state *st)
{
    int nr = -1;
    uint32_t arch = 0;
    int rc = sbx_seccomp_receive(st->fd[FD_NOTIFY], st->s->notif_size, &nr, &arch);
    if (rc == -EINTR)
        return; /* still pending: poll says so again */
    /* The first number read names the kill, if the kill is this one's. */
    if (rc == 0 && !st->seccomp_known &&
        (!st->killed || st->kill_reason == SANDBOX_REASON_SECCOMP)) {
        st->seccomp_known = true;
        st->seccomp_nr = nr;
        st->seccomp_arch = arch;
    }
    /* 0 or ENOENT: a forbidden call was made. Anything else: the listener is
     * unusable; blocked calls then fail with ENOSYS as we close it, and the
     * sandbox goes too. */
    kill_tree(st, SANDBOX_REASON_SECCOMP);
    if (rc != 0 && rc != -ENOENT)
        sbx_close(&st->fd[FD_NOTIFY]);
}

static void write_stdin(struct sup_state *st)
{
    size_t left = st->s->stdin_len - st->in_off;
    if (left > CHUNK)
        left = CHUNK;
    ssize_t n = write(st->fd[FD_IN], st->s->stdin_data + st->in_off, left);
    if (n > 0)
        st->in_off += (size_t)n;
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
        sbx_close(&st->fd[FD_IN]); /* EPIPE: the task closed its stdin */
    if (st->in_off == st->s->stdin_len)
        sbx_close(&st->fd[FD_IN]);
}

/* The task's CPU time: the cgroup's, less what the sandbox used before the
 * task was assigned (an interpreter's start). */
static uint64_t task_cpu_ns(const struct sbx_supervise *s, const struct sbx_cgroup_stats *cs)
{
    return cs->cpu_ns > s->cpu_base_ns ? cs->cpu_ns - s->cpu_base_ns : 0;
}

/* Kills the tree once its CPU time (all processes, from the cgroup) reaches
 * the limit. Checks again sooner the closer the tree is to the limit: with
 * ncpu cores it can burn at most ncpu ms per ms. */
static void check_cpu(struct sup_state *st, int64_t now)
{
    if (!st->s->cg || st->killed || now < st->next_cpu_check)
        return;
    struct sbx_cgroup_stats cs;
    int64_t step = 100;
    if (sbx_cgroup_stats(st->s->cg, &cs) == 0) {
        uint64_t used = task_cpu_ns(st->s, &cs) / 1000000, limit = st->s->limits->cpu_ms;
        if (used >= limit) {
            kill_tree(st, SANDBOX_REASON_CPU);
            return;
        }
        step = (int64_t)((limit - used) / (uint64_t)(2 * st->ncpu));
        step = step < 5 ? 5 : step > 250 ? 250 : step;
    }
    st->next_cpu_check = now + step;
}

static void loop(struct sup_state *st)
{
    int64_t deadline = st->s->start_ms + st->s->limits->timeout_ms;
    while (st->fd[FD_OUT] >= 0 || st->fd[FD_ERR] >= 0 || st->fd[FD_STATUS] >= 0) {
        int64_t now = monotonic_ms();
        int64_t until = st->killed ? st->killed_at + KILL_GRACE_MS : deadline;
        if (now >= until) {
            if (st->killed)
                break; /* give up on EOF; wait4 below still reaps everything */
            kill_tree(st, SANDBOX_REASON_TIMEOUT);
            continue;
        }
        check_cpu(st, now);
        int64_t left = until - now;
        if (st->s->cg && !st->killed && st->next_cpu_check - now < left)
            left = st->next_cpu_check > now ? st->next_cpu_check - now : 0;
        int timeout = left > INT_MAX ? INT_MAX : (int)left;

        struct pollfd pfd[FD_N];
        int idx[FD_N], n = 0;
        for (int i = 0; i < FD_N; i++) {
            if (st->fd[i] < 0)
                continue;
            pfd[n].fd = st->fd[i];
            pfd[n].events = i == FD_IN ? POLLOUT : POLLIN;
            pfd[n].revents = 0;
            idx[n++] = i;
        }
        int rc = poll(pfd, (nfds_t)n, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            kill_tree(st, SANDBOX_REASON_KILLED);
            break;
        }
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            switch (idx[k]) {
            case FD_OUT:
            case FD_ERR: read_output(st, idx[k]); break;
            case FD_STATUS: read_status(st); break;
            case FD_IN: write_stdin(st); break;
            case FD_NOTIFY:
                if (pfd[k].revents & POLLIN)
                    read_notification(st);
                else /* HUP: no process uses the filter any more; ERR, NVAL */
                    sbx_close(&st->fd[FD_NOTIFY]);
                break;
            }
        }
    }
}

static void describe_signal(struct sandbox_result *r, int sig)
{
    r->signal = sig;
    if (sig == SIGSYS) {
        /* The filter kills only calls through a foreign ABI (bad arch). */
        r->reason = SANDBOX_REASON_SECCOMP;
        snprintf(r->message, sizeof r->message,
                 "killed by SIGSYS: forbidden system call (foreign ABI, number unknown)");
    } else if (sig == SIGXCPU) {
        r->reason = SANDBOX_REASON_CPU;
        snprintf(r->message, sizeof r->message, "CPU time limit exceeded (SIGXCPU)");
    } else if (sig == SIGXFSZ) {
        r->reason = SANDBOX_REASON_DISK;
        snprintf(r->message, sizeof r->message, "file size limit exceeded (SIGXFSZ)");
    } else {
        r->reason = SANDBOX_REASON_KILLED;
        snprintf(r->message, sizeof r->message, "killed by signal %d (%s)", sig, strsignal(sig));
    }
}

/* The OOM killer acted in the task's cgroup: reason MEMORY. */
static void memory_result(struct sandbox_result *r, uint64_t limit, uint64_t kills,
                          const char *more)
{
    r->reason = SANDBOX_REASON_MEMORY;
    snprintf(r->message, sizeof r->message,
             "memory limit of %llu bytes reached: the OOM killer ended %llu process%s%s",
             (unsigned long long)limit, (unsigned long long)kills, kills == 1 ? "" : "es", more);
}

int sbx_supervise(struct sbx_supervise *s, struct sandbox_result *r)
{
    struct sup_state st;
    memset(&st, 0, sizeof st);
    st.s = s;
    st.fd[FD_OUT] = s->stdout_fd;
    st.fd[FD_ERR] = s->stderr_fd;
    st.fd[FD_STATUS] = s->status_fd;
    st.fd[FD_IN] = s->stdin_fd;
    st.fd[FD_NOTIFY] = s->listener_fd; /* received while the sandbox was made ready */
    st.have_listener = s->listener_fd >= 0;
    st.ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (st.ncpu < 1)
        st.ncpu = 1;
    st.next_cpu_check = s->start_ms;
    if (s->stdin_len == 0)
        sbx_close(&st.fd[FD_IN]);

    loop(&st);
    for (int i = 0; i < FD_N; i++)
        sbx_close(&st.fd[i]);

    int wstatus = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t p;
    sbx_forget_init(); /* it has exited or been killed: only the reaping is left */
    do
        p = wait4(s->init_pid, &wstatus, 0, &ru);
    while (p < 0 && errno == EINTR);
    r->wall_ms = (uint64_t)(monotonic_ms() - s->start_ms);
    if (p == s->init_pid) {
        r->cpu_ms = (uint64_t)ru.ru_utime.tv_sec * 1000 + (uint64_t)ru.ru_utime.tv_usec / 1000 +
                    (uint64_t)ru.ru_stime.tv_sec * 1000 + (uint64_t)ru.ru_stime.tv_usec / 1000;
        r->max_rss_kb = (uint64_t)ru.ru_maxrss;
    }
    /* The cgroup sees the whole tree, orphans and tmpfs pages included, and
     * tells the task's CPU time from the sandbox's start. */
    struct sbx_cgroup_stats cs = {0, 0, 0};
    if (s->cg && sbx_cgroup_stats(s->cg, &cs) == 0) {
        r->cpu_ms = task_cpu_ns(s, &cs) / 1000000;
        if (cs.memory_peak_bytes / 1024 > r->max_rss_kb)
            r->max_rss_kb = cs.memory_peak_bytes / 1024;
    }

    if (st.have_error) {
        r->reason = SANDBOX_REASON_SANDBOX_ERROR;
        snprintf(r->message, sizeof r->message, "sandbox setup failed: %s%s%s", st.error_text,
                 st.error_errno ? ": " : "", st.error_errno ? strerror(st.error_errno) : "");
        return -1;
    }
    if (st.killed) {
        r->reason = st.kill_reason;
        r->signal = SIGKILL;
        switch (st.kill_reason) {
        case SANDBOX_REASON_TIMEOUT:
            snprintf(r->message, sizeof r->message, "wall-clock timeout after %u ms",
                     s->limits->timeout_ms);
            break;
        case SANDBOX_REASON_OUTPUT_LIMIT:
            snprintf(r->message, sizeof r->message, "output exceeded %llu bytes",
                     (unsigned long long)s->limits->output_bytes);
            break;
        case SANDBOX_REASON_CPU:
            snprintf(r->message, sizeof r->message, "CPU time of the task's tree reached %u ms",
                     s->limits->cpu_ms);
            break;
        case SANDBOX_REASON_SECCOMP:
            if (st.seccomp_known) {
                r->seccomp_syscall = st.seccomp_nr;
                sbx_seccomp_describe(st.seccomp_arch, st.seccomp_nr, r->message,
                                     sizeof r->message);
            } else {
                snprintf(r->message, sizeof r->message,
                         "forbidden system call (interrupted before its number was read)");
            }
            break;
        default:
            snprintf(r->message, sizeof r->message, "aborted by the supervisor");
            break;
        }
        return 0;
    }
    if (!st.have_status && cs.oom_kills > 0 && WIFSIGNALED(wstatus) &&
        WTERMSIG(wstatus) == SIGKILL) {
        /* Memory the task left behind (tmpfs pages outlive it) can leave its
         * init nothing to report with: the OOM killer ended it too. */
        memory_result(r, s->limits->memory_bytes, cs.oom_kills, ", the sandbox's init among them");
        r->signal = SIGKILL;
        return 0;
    }
    if (!st.have_status) {
        r->reason = SANDBOX_REASON_SANDBOX_ERROR;
        snprintf(r->message, sizeof r->message,
                 "sandbox init ended without reporting the task (wait status 0x%x)", wstatus);
        return -1;
    }
    if (WIFEXITED(st.task_status)) {
        r->exit_code = WEXITSTATUS(st.task_status);
        r->reason = r->exit_code == 0 ? SANDBOX_REASON_OK : SANDBOX_REASON_EXIT_NONZERO;
        if (r->exit_code != 0)
            snprintf(r->message, sizeof r->message, "exited with status %d", r->exit_code);
    } else if (WIFSIGNALED(st.task_status)) {
        describe_signal(r, WTERMSIG(st.task_status));
    } else {
        r->reason = SANDBOX_REASON_SANDBOX_ERROR;
        snprintf(r->message, sizeof r->message, "unexpected task status 0x%x", st.task_status);
        return -1;
    }
    /* A task that failed with a writable mount full ran out of disk. */
    if (st.full_mount[0] &&
        (r->reason == SANDBOX_REASON_EXIT_NONZERO || r->reason == SANDBOX_REASON_KILLED)) {
        r->reason = SANDBOX_REASON_DISK;
        snprintf(r->message, sizeof r->message, "%s is full (disk limit %llu bytes); %s",
                 st.full_mount, (unsigned long long)s->limits->disk_bytes,
                 WIFEXITED(st.task_status) ? "the task exited non-zero" : "the task was killed");
    }
    /* The OOM killer acted in the task's cgroup: whatever the task did
     * next, the memory limit decided the outcome. */
    if (cs.oom_kills > 0)
        memory_result(r, s->limits->memory_bytes, cs.oom_kills, "");
    return 0;
}
