/*
 * main.c - airlock-worker: the supervisor half of one single-use worker.
 * Reads one Task from the broker (fd 3), runs it through sandbox_run,
 * relays output as it comes, reports Usage once the sandbox is gone, and
 * exits. The broker revokes the task's token on that report.
 *
 * No gRPC here: the worker is exec'd for every task, and loading gRPC's
 * dozens of shared libraries cost more CPU than the whole sandbox.
 */
#include <errno.h>
#include <getopt.h>
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

int main(int argc, char **argv)
{
    log_set_program("airlock-worker");
    int fd = 3;
    if (argc == 3 && strcmp(argv[1], "--fd") == 0) {
        char *end;
        long v = strtol(argv[2], &end, 10);
        if (*end || v < 0 || v > 1024) {
            fprintf(stderr, "airlock-worker: bad --fd\n");
            return 64;
        }
        fd = (int)v;
    } else if (argc != 1) {
        fprintf(stderr, "usage: airlock-worker [--fd N]  (started by airlock-broker)\n");
        return 64;
    }
    /* If the broker dies, so do we (and with us the sandbox). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1 || sodium_init() < 0)
        return 1;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);

    ProtobufCMessage *m = NULL;
    if (frame_read(fd, &airlock__internal__v1__task__descriptor, FRAME_MAX_BYTES,
                   TASK_READ_TIMEOUT_MS, &m) != 1) {
        log_error("no task from the broker: %s", strerror(errno));
        return 1;
    }
    Airlock__Internal__V1__Task *task = (Airlock__Internal__V1__Task *)m;

    size_t token_env_len = strlen("AIRLOCK_TOKEN=") + strlen(task->token) + 1;
    char *token_env = malloc(token_env_len);
    char task_env[96];
    if (!token_env) {
        protobuf_c_message_free_unpacked(m, NULL);
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
        .cgroup = (enum sandbox_cgroup_mode)task->cgroup,
        .id = task->task_id,
    };
    struct relay relay = {.fd = fd};
    crypto_hash_sha256_init(&relay.hash[0]);
    crypto_hash_sha256_init(&relay.hash[1]);
    struct sandbox_result res;
    memset(&res, 0, sizeof res);
    sandbox_run(&st, on_output, &relay, &res);
    sodium_memzero(token_env, token_env_len);
    free(token_env);

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

    Airlock__Internal__V1__WorkerEvent ev;
    airlock__internal__v1__worker_event__init(&ev);
    ev.event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_USAGE;
    ev.usage = &usage;
    int rc = frame_write(fd, &ev.base) == 0 ? 0 : 1;
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}
