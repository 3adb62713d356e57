/*
 * main.c - airlock-worker: the supervisor half of one single-use worker.
 * Builds its sandbox first (sandbox_prepare) and says Ready; then waits for
 * one Task from the broker (fd 3) - for as long as the broker keeps it in
 * its warm pool, or not at all on the cold path, where the Task is already
 * queued - runs it (sandbox_start), relays output as it comes, reports
 * Usage once the sandbox is gone, and exits. The broker revokes the task's
 * token on that report. A sandbox that cannot be built is reported as a
 * Usage with reason SANDBOX_ERROR in place of Ready. If the sandbox breaks
 * while it waits, or the broker hangs up, the worker discards it and exits.
 *
 * No gRPC here: the worker is exec'd for every task, and loading gRPC's
 * dozens of shared libraries cost more CPU than the whole sandbox.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "airlock/internal/v1/worker.pb-c.h"
#include "frame.h"
#include "sandbox.h"
#include "util.h"

#define TASK_READ_TIMEOUT_MS 10000

struct relay {
    int fd;
    crypto_hash_sha256_state hash[2]; /* stdout, stderr */
    uint64_t bytes[2];
    bool broken;                      /* the broker stopped listening */
};

static int on_output(void *ctx, int stream, const uint8_t *data, size_t len)
{
    struct relay *r = ctx;
    crypto_hash_sha256_update(&r->hash[stream == 1 ? 0 : 1], data, len);
    r->bytes[stream == 1 ? 0 : 1] += len;
    if (r->broken)
        return -1;
    Airlock__Internal__V1__WorkerEvent ev;
    airlock__internal__v1__worker_event__init(&ev); /* the INIT macro trips -Wmissing-braces */
    ProtobufCBinaryData chunk = {len, (uint8_t *)data};
    if (stream == 1) {
        ev.event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_STDOUT;
        ev.stdout = chunk;
    } else {
        ev.event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_STDERR;
        ev.stderr = chunk;
    }
    if (frame_write(r->fd, &ev.base) != 0) {
        r->broken = true;
        return -1;
    }
    return 0;
}

static void hash_hex(crypto_hash_sha256_state *st, char out[SHA256_HEX_LEN])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(st, digest);
    sodium_bin2hex(out, SHA256_HEX_LEN, digest, sizeof digest);
}

static int send_usage(int fd, Airlock__Internal__V1__Usage *usage)
{
    Airlock__Internal__V1__WorkerEvent ev;
    airlock__internal__v1__worker_event__init(&ev);
    ev.event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_USAGE;
    ev.usage = usage;
    return frame_write(fd, &ev.base);
}

/* The sandbox could not be built: the broker hears it instead of Ready. */
static int report_setup_failure(int fd, const char *msg)
{
    Airlock__Internal__V1__Usage usage = AIRLOCK__INTERNAL__V1__USAGE__INIT;
    usage.exit_code = -1;
    usage.seccomp_syscall = -1;
    usage.reason = SANDBOX_REASON_SANDBOX_ERROR;
    usage.message = (char *)msg;
    (void)send_usage(fd, &usage);
    return 1;
}

/* Waits for the broker's Task while watching the sandbox. 1 with *out, 0
 * when the broker hung up, -1 when the sandbox broke or the read failed. */
static int await_task(int fd, const struct sandbox *sb, Airlock__Internal__V1__Task **out)
{
    struct pollfd pfd[3];
    int watch[2];
    int n = sandbox_watch_fds(sb, watch, 2);
    pfd[0] = (struct pollfd){fd, POLLIN, 0};
    for (int i = 0; i < n; i++)
        pfd[1 + i] = (struct pollfd){watch[i], POLLIN, 0};
    for (;;) {
        int r = poll(pfd, (nfds_t)(1 + n), -1);
        if (r < 0 && errno == EINTR && sandbox_signalled())
            return 0; /* the broker is gone */
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        for (int i = 1; i <= n; i++)
            if (pfd[i].revents) {
                log_error("the prepared sandbox broke while it waited for a task");
                return -1;
            }
        if (pfd[0].revents)
            break;
    }
    ProtobufCMessage *m = NULL;
    int got = frame_read(fd, &airlock__internal__v1__task__descriptor, FRAME_MAX_BYTES,
                         TASK_READ_TIMEOUT_MS, &m);
    if (got == 1)
        *out = (Airlock__Internal__V1__Task *)m;
    else if (got < 0)
        log_error("bad task from the broker: %s", strerror(errno));
    return got;
}

struct args {
    int fd;
    const char *runtime, *id;
    enum sandbox_cgroup_mode cgroup;
    uint64_t disk_bytes, memory_bytes, max_pids; /* the sandbox as prepared; 0: defaults */
    int filter_fd;                               /* the broker's seccomp program; -1: build */
};

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {{"fd", required_argument, NULL, 'f'},
                                         {"runtime", required_argument, NULL, 'r'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"cgroup", required_argument, NULL, 'c'},
                                         {"disk-bytes", required_argument, NULL, 'd'},
                                         {"memory-bytes", required_argument, NULL, 'm'},
                                         {"max-pids", required_argument, NULL, 'p'},
                                         {"seccomp-fd", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    uint64_t v;
    int c;
    *a = (struct args){.fd = 3, .cgroup = SANDBOX_CGROUP_AUTO, .filter_fd = -1};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (parse_u64_range(optarg, 0, 1024, &v) != 0)
                return -1;
            a->fd = (int)v;
            break;
        case 'c':
            if (parse_u64_range(optarg, SANDBOX_CGROUP_AUTO, SANDBOX_CGROUP_NONE, &v) != 0)
                return -1;
            a->cgroup = (enum sandbox_cgroup_mode)v;
            break;
        case 'd':
        case 'm':
        case 'p':
            if (parse_u64_range(optarg, 1, c == 'p' ? UINT32_MAX : UINT64_MAX,
                                c == 'd' ? &a->disk_bytes
                                : c == 'm' ? &a->memory_bytes
                                           : &a->max_pids) != 0)
                return -1;
            break;
        case 's':
            if (parse_u64_range(optarg, 0, 1024, &v) != 0)
                return -1;
            a->filter_fd = (int)v;
            break;
        case 'r': a->runtime = optarg; break;
        case 'i': a->id = optarg; break;
        default: return -1;
        }
    }
    return optind == argc && a->runtime && a->id ? 0 : -1;
}

int main(int argc, char **argv)
{
    log_set_program("airlock-worker");
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: airlock-worker --runtime NAME --id ID [--cgroup MODE]"
                        " [--disk-bytes N] [--memory-bytes N] [--max-pids N] [--seccomp-fd N]"
                        " [--fd N]"
                        "  (started by airlock-broker)\n");
        return 64;
    }
    /* If the broker dies, the sandbox dies at once and we follow once its
     * cgroup is removed (SIGTERM: sandbox_kill_on's handler). */
    if (sandbox_kill_on(SIGTERM) != 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
        getppid() == 1 || sodium_init() < 0)
        return 1;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);

    struct sandbox_spec spec = {.runtime = a.runtime,
                                .cgroup = a.cgroup,
                                .id = a.id,
                                .disk_bytes = a.disk_bytes,
                                .memory_bytes = a.memory_bytes,
                                .max_pids = (uint32_t)a.max_pids,
                                .filter_fd = a.filter_fd};
    struct sandbox *sb = NULL;
    char msg[256];
    if (sandbox_prepare(&spec, &sb, msg, sizeof msg) != 0) {
        log_error("%s", msg);
        return report_setup_failure(a.fd, msg);
    }
    Airlock__Internal__V1__WorkerEvent ready;
    airlock__internal__v1__worker_event__init(&ready);
    ready.event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_READY;
    ready.ready = true;
    Airlock__Internal__V1__Task *task = NULL;
    if (sandbox_signalled() || frame_write(a.fd, &ready.base) != 0 ||
        await_task(a.fd, sb, &task) != 1) {
        sandbox_discard(sb);
        return 1;
    }

    size_t token_env_len = strlen("AIRLOCK_TOKEN=") + strlen(task->token) + 1;
    char *token_env = malloc(token_env_len);
    char task_env[96];
    if (!token_env) {
        sandbox_discard(sb);
        protobuf_c_message_free_unpacked(&task->base, NULL);
        return 1;
    }
    snprintf(token_env, token_env_len, "AIRLOCK_TOKEN=%s", task->token);
    snprintf(task_env, sizeof task_env, "AIRLOCK_TASK_ID=%s", task->task_id);
    const char *env[] = {token_env, task_env, NULL};
    struct sandbox_task st = {
        .runtime = task->runtime,
        .code = task->code.data,
        .code_len = task->code.len,
        .stdin_data = task->stdin.data,
        .stdin_len = task->stdin.len,
        .env = env,
        .limits = {
            .timeout_ms = task->timeout_ms,
            .memory_bytes = task->memory_bytes,
            .max_pids = task->max_pids,
            .output_bytes = task->output_bytes,
            .cpu_ms = task->cpu_ms,
            .disk_bytes = task->disk_bytes,
            .open_files = task->open_files,
        },
    };
    struct relay relay = {.fd = a.fd};
    crypto_hash_sha256_init(&relay.hash[0]);
    crypto_hash_sha256_init(&relay.hash[1]);
    struct sandbox_result res;
    sandbox_start(sb, &st, on_output, &relay, &res);
    sodium_memzero(token_env, token_env_len);
    free(token_env);
    /* Every process of the sandbox is gone: report now, remove its cgroup
     * after (the broker revokes meanwhile). */

    Airlock__Internal__V1__Usage usage = AIRLOCK__INTERNAL__V1__USAGE__INIT;
    char out_hash[SHA256_HEX_LEN], err_hash[SHA256_HEX_LEN];
    hash_hex(&relay.hash[0], out_hash);
    hash_hex(&relay.hash[1], err_hash);
    usage.exit_code = res.exit_code;
    usage.signal = res.signal;
    usage.reason = res.reason;
    usage.wall_ms = res.wall_ms;
    usage.cpu_ms = res.cpu_ms;
    usage.max_rss_kb = res.max_rss_kb;
    usage.seccomp_syscall = res.seccomp_syscall;
    usage.message = res.message;
    usage.stdout_sha256 = out_hash;
    usage.stderr_sha256 = err_hash;
    usage.stdout_bytes = relay.bytes[0];
    usage.stderr_bytes = relay.bytes[1];
    usage.output_truncated = res.reason == SANDBOX_REASON_OUTPUT_LIMIT;
    int rc = send_usage(a.fd, &usage) == 0 ? 0 : 1;
    sandbox_discard(sb);
    protobuf_c_message_free_unpacked(&task->base, NULL);
    return rc;
}
