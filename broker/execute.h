/*
 * execute.h - the broker's Execute method: authenticate the caller, validate
 * the request, mint a task token, run a worker, relay its events, and make
 * sure the token ends revoked.
 */
#ifndef AIRLOCK_BROKER_EXECUTE_H
#define AIRLOCK_BROKER_EXECUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rpc.h"

struct policy;
struct inflight;

struct broker_config {
    const char *trust_domain;
    const char *credd_address;
    char worker_exe[4096];
    uint32_t default_timeout_ms;
    uint32_t max_timeout_ms;
    /* The machine's caps: the most any policy rule may grant; a rule that
     * names no limit grants these. */
    uint64_t memory_bytes;
    uint32_t max_pids;
    uint64_t output_bytes;
    uint32_t cpu_ms;
    uint64_t disk_bytes;
    uint32_t open_files;
    uint64_t max_code_bytes;  /* an Execute request's code, at most (validate.h) */
    uint64_t max_stdin_bytes; /* and its stdin */
    uint32_t cgroup_mode;    /* enum sandbox_cgroup_mode in use (V1, V2 or NONE) */
    uint32_t token_skew_s;  /* token TTL = task timeout + this */
    uint32_t max_tasks;     /* task slots (admission) */
    uint32_t queue_len;     /* callers that may wait for one */
    uint32_t shutdown_grace_ms; /* SIGTERM: running tasks' time to finish */
};

struct audit_log;
struct credd_link;
struct pool;
struct admission;

struct broker {
    const struct broker_config *config;
    const struct policy *policy;
    struct inflight *inflight;   /* tasks per identity, for policy's max_concurrent */
    struct rpc_channel *credd;
    struct credd_link *credd_link; /* minting waits for its announce */
    struct pool *pool;           /* workers, warm or cold */
    struct admission *admission; /* task slots and the queue for them */
    struct audit_log *audit;     /* the broker's chain */
    bool audit_keep_code;        /* code bodies go into execute.start */
    atomic_bool ending;          /* shutdown grace over: kill the running tasks */
};

grpc_status_code broker_execute(struct rpc_call *call, const ProtobufCMessage *request, void *ctx);

/* rpc_drain_fn for the broker's server. START: queued callers are refused
 * (UNAVAILABLE "broker shutting down", nothing run) and the pool builds no
 * more workers; running tasks go on. GRACE_OVER: every running task is
 * killed, its token revoked and its caller told Finished KILLED. */
void broker_drain(void *ctx, enum rpc_drain_phase phase);

/* The caller's SPIFFE ID: its verified SVID over TLS, its mapped (or
 * uid-derived) ID on the Unix socket. 0, or -1 with *why. */
int broker_identify(const struct broker *b, const struct rpc_peer *peer, char *out, size_t outlen,
                    const char **why);

#endif
