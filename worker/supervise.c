/*
 * supervise.c - the supervisor's side of a running sandbox: one poll loop
 * over the task's stdout/stderr (relayed to on_output as they arrive), its
 * stdin (fed from memory, then closed), the status pipe from the sandbox's
 * init, and the wall-clock deadline (CLOCK_MONOTONIC). Any kill is a SIGKILL
 * to the sandbox's pid 1: its pid namespace, and every process in it, dies
 * with it. Ends by reaping that init (wait4 gives the whole tree's usage)
 * and deciding the result.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* After a kill, how long to wait for the pipes to close before reaping. */
#define KILL_GRACE_MS 5000
#define CHUNK 65536

enum { FD_OUT, FD_ERR, FD_STATUS, FD_IN, FD_N };

struct sup_state {
    struct sbx_supervise *s;
    int fd[FD_N];
    size_t in_off;
    uint64_t out_total;
    bool killed, relay_stopped;
    enum sandbox_reason kill_reason;
    int64_t killed_at;
    /* status pipe */
    struct sbx_record rec;
    size_t rec_fill;
    bool have_status, have_error;
    int task_status, error_errno;
    char error_text[sizeof(((struct sbx_record *)0)->text)];
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

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
        close_fd(&st->fd[which]);
}

/* Records from the sandbox side: trusted for nothing but their own shape. */
static void read_status(struct sup_state *st)
{
    char *p = (char *)&st->rec;
    ssize_t n = read(st->fd[FD_STATUS], p + st->rec_fill, sizeof st->rec - st->rec_fill);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_fd(&st->fd[FD_STATUS]);
        return;
    }
    if (n < 0)
        return;
    st->rec_fill += (size_t)n;
    if (st->rec_fill < sizeof st->rec)
        return;
    st->rec_fill = 0;
    st->rec.text[sizeof st->rec.text - 1] = '\0';
    if (st->rec.type == SBX_REC_ERROR && !st->have_error && !st->have_status) {
        st->have_error = true;
        st->error_errno = st->rec.value;
        sbx_strlcpy(st->error_text, st->rec.text, sizeof st->error_text);
        kill(st->s->init_pid, SIGKILL); /* fail closed, and fast */
    } else if (st->rec.type == SBX_REC_STATUS && !st->have_status && !st->have_error) {
        st->have_status = true;
        st->task_status = st->rec.value;
    }
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
        close_fd(&st->fd[FD_IN]); /* EPIPE: the task closed its stdin */
    if (st->in_off == st->s->stdin_len)
        close_fd(&st->fd[FD_IN]);
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
        int64_t left = until - now;
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
            }
        }
    }
}

static void describe_signal(struct sandbox_result *r, int sig)
{
    r->signal = sig;
    if (sig == SIGSYS) {
        r->reason = SANDBOX_REASON_SECCOMP;
        snprintf(r->message, sizeof r->message, "killed by seccomp: forbidden system call");
    } else if (sig == SIGXCPU) {
        r->reason = SANDBOX_REASON_TIMEOUT;
        snprintf(r->message, sizeof r->message, "CPU time limit exceeded");
    } else {
        r->reason = SANDBOX_REASON_KILLED;
        snprintf(r->message, sizeof r->message, "killed by signal %d (%s)", sig, strsignal(sig));
    }
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
    if (s->stdin_len == 0)
        close_fd(&st.fd[FD_IN]);

    loop(&st);
    for (int i = 0; i < FD_N; i++)
        close_fd(&st.fd[i]);

    int wstatus = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t p;
    do
        p = wait4(s->init_pid, &wstatus, 0, &ru);
    while (p < 0 && errno == EINTR);
    r->wall_ms = (uint64_t)(monotonic_ms() - s->start_ms);
    if (p == s->init_pid) {
        r->cpu_ms = (uint64_t)ru.ru_utime.tv_sec * 1000 + (uint64_t)ru.ru_utime.tv_usec / 1000 +
                    (uint64_t)ru.ru_stime.tv_sec * 1000 + (uint64_t)ru.ru_stime.tv_usec / 1000;
        r->max_rss_kb = (uint64_t)ru.ru_maxrss;
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
        default:
            snprintf(r->message, sizeof r->message, "aborted by the supervisor");
            break;
        }
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
    return 0;
}
