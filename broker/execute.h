/*
 * execute.h - the broker's Execute method: authenticate the caller, validate
 * the request, mint a task token, run a worker, relay its events, and make
 * sure the token ends revoked.
 */
#ifndef AIRLOCK_BROKER_EXECUTE_H
#define AIRLOCK_BROKER_EXECUTE_H

#include <stdint.h>

#include "rpc.h"

struct broker_config {
    const char *trust_domain;
    const char *credd_address;
    char worker_exe[4096];
    uint32_t default_timeout_ms;
    uint32_t max_timeout_ms;
    /* Each of these is both a task's default and the most it may ask for. */
    uint64_t memory_bytes;
    uint32_t max_pids;
    uint64_t output_bytes;
    uint32_t cpu_ms;
    uint64_t disk_bytes;
    uint32_t open_files;
    uint32_t cgroup_mode;    /* enum sandbox_cgroup_mode in use (V1, V2 or NONE) */
    uint32_t token_skew_s;  /* token TTL = task timeout + this */
};

struct broker {
    const struct broker_config *config;
    struct rpc_channel *credd;
};

grpc_status_code broker_execute(struct rpc_call *call, const ProtobufCMessage *request, void *ctx);

#endif
